"""How `farm dashboard` starts the dashboard: the streamlit command line for a store, a port and an address."""
from __future__ import annotations

import sys
from pathlib import Path

APP = Path(__file__).resolve().parent / "app.py"


def command(db: str, port: int, address: str = "127.0.0.1") -> list[str]:
    """The argv that serves the dashboard over store `db` (a path or an SQLAlchemy URL) at http://address:port/."""
    if "://" not in db:
        db = str(Path(db).expanduser().resolve())  # the server may run from another directory
    return [sys.executable, "-m", "streamlit", "run", str(APP),
            "--server.address", address, "--server.port", str(port),
            "--server.headless", "true",  # no browser opened, no first-run e-mail prompt
            "--browser.gatherUsageStats", "false",  # nothing leaves the machine
            "--server.fileWatcherType", "none",
            "--", "--db", db]
