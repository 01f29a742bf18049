"""The tflite-farm dashboard: `streamlit run dashboard/app.py -- --db farm.db` (what `farm dashboard` starts).

This script is the frame every page runs in: it opens the store read-only, says so plainly when the store is missing,
empty or of another schema version, draws the sidebar's filters, then runs the page chosen in the navigation.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import streamlit as st
from sqlalchemy.exc import DBAPIError

from farm.dashboard import filters, queries
from farm.dashboard.plain import md
from farm.errors import FarmError

PAGES = (
    ("views/sweeps.py", "Sweeps", ":material/checklist:"),
    ("views/leaderboard.py", "Leaderboard", ":material/leaderboard:"),
    ("views/tradeoffs.py", "Trade-offs", ":material/scatter_plot:"),
    ("views/device.py", "Device", ":material/developer_board:"),
    ("views/compare.py", "Compare", ":material/compare_arrows:"),
    ("views/ops.py", "Ops", ":material/account_tree:"),
    ("views/export.py", "Export", ":material/download:"),
)


def store_argument(argv: list[str]) -> str:
    """The --db given after `--` on the streamlit command line (a path or an SQLAlchemy URL); farm.db by default."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--db", default="farm.db")
    return parser.parse_known_args(argv)[0].db


def main() -> None:
    st.set_page_config(page_title="tflite-farm", page_icon="📟", layout="wide")
    db = store_argument(sys.argv[1:])
    here = Path(__file__).parent
    page = st.navigation([st.Page(here / path, title=title, icon=icon, default=i == 0)
                          for i, (path, title, icon) in enumerate(PAGES)])
    try:
        queries.open_store(db)
        sweeps = queries.sweeps(db)
    except FarmError as error:
        st.error(f"**Cannot show this store.** {md(error)}", icon=":material/error:")
        st.stop()
    if sweeps.empty:
        st.info(f"**No sweeps in {md(db)} yet.** Run one (`farm sweep run sweeps/your-sweep.yaml`, or `make demo` for "
                "this machine) and this page fills in as its jobs finish.", icon=":material/hourglass_empty:")
        st.stop()
    filters.sidebar(db, sweeps)
    try:
        page.run()
    except FarmError as error:
        st.error(md(error), icon=":material/error:")
    except DBAPIError as error:
        st.error(f"Cannot read the store {md(db)}: {md(str(error.orig).splitlines()[0])}", icon=":material/error:")


main()
