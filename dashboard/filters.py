"""The sidebar: the sweep and the models, variants, delegates, runtimes and device tags that every page shows.

The choices live in the session (they carry from page to page) and in the query string (a view can be shared as a link).
"""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import streamlit as st

from farm.dashboard import queries
from farm.dashboard.plain import md

# sidebar field (also its session key and query-string key) -> label
FIELDS = {"model": "Models", "variant": "Variants", "delegate": "Delegates", "runtime": "Runtimes",
          "tag": "Device tags"}


@dataclass(frozen=True)
class Selection:
    """What the pages show: the store, its sweeps, the chosen sweep and the filters."""

    db: str
    sweeps: pd.DataFrame  # queries.sweeps()
    sweep: pd.Series  # one row of `sweeps`
    filters: queries.Filters
    devices: tuple[str, ...]  # the devices the tag filter lets through, by name

    @property
    def sweep_id(self) -> int:
        return int(self.sweep["id"])


def sidebar(db: str, sweeps: pd.DataFrame) -> Selection:
    """Draw the sidebar's pickers and remember what they select for the page that runs next."""
    choices = queries.choices(db) | {"tag": sorted({t for tags in queries.devices(db)["tags"] for t in tags or []})}
    names = sweeps["name"].tolist()[::-1]  # newest first
    _seed_from_query_string(names, choices)
    with st.sidebar:
        st.caption(f"Store: {md(db)}")
        label = dict(zip(sweeps["name"], sweeps["state"]))
        name = st.selectbox("Sweep", names, key="sweep",
                            format_func=lambda n: n if label[n] == "done" else f"{n} ({label[n]})")
        for field, title in FIELDS.items():
            st.multiselect(title, choices[field], key=field, placeholder="all")
    picked = {field: tuple(st.session_state[field]) or None for field in FIELDS}
    table = queries.devices(db)
    wanted = set(picked["tag"] or ())
    devices = tuple(n for n, tags in zip(table["name"], table["tags"]) if not wanted or wanted & set(tags or ()))
    filters = queries.Filters(picked["model"], picked["variant"], picked["delegate"],
                              devices if picked["tag"] else None, picked["runtime"])
    st.query_params.from_dict({"sweep": name, **{field: list(values) for field, values in picked.items() if values}})
    selection = Selection(db, sweeps, sweeps[sweeps["name"] == name].iloc[0], filters, devices)
    st.session_state["selection"] = selection
    return selection


def current() -> Selection:
    """The selection the sidebar made in this run (the app draws the sidebar before it runs a page)."""
    return st.session_state["selection"]


def _seed_from_query_string(sweeps: list[str], choices: dict[str, list[str]]) -> None:
    # Only on a session's first run (or when a value has gone from the store): after that the widgets own their state.
    params = st.query_params
    if st.session_state.get("sweep") not in sweeps:
        st.session_state["sweep"] = params.get("sweep") if params.get("sweep") in sweeps else sweeps[0]
    for field in FIELDS:
        if field not in st.session_state:
            st.session_state[field] = [v for v in params.get_all(field) if v in choices[field]]
        else:
            st.session_state[field] = [v for v in st.session_state[field] if v in choices[field]]


def describe(selection: Selection) -> str:
    """One line that says what the filters keep, for the top of a page."""
    f = selection.filters
    parts = [f"{label.lower()}: {md(', '.join(values))}" for label, values in
             (("Models", f.models), ("Variants", f.variants), ("Delegates", f.delegates), ("Runtimes", f.runtimes))
             if values]
    if f.devices is not None:
        parts.append(f"devices: {md(', '.join(f.devices)) or 'none with those tags'}")
    return f"Sweep **{md(selection.sweep['name'])}**" + (f" · {' · '.join(parts)}" if parts else " · no filters")


def no_results(selection: Selection) -> str:
    """Why a result page has nothing to show for this selection, and where to look."""
    name = md(selection.sweep["name"])
    if selection.sweep["state"] == "running":
        return f"No results in sweep {name} for the current filters yet: it is still running."
    return f"No results in sweep {name} for the current filters: the Sweeps page says why its jobs failed or were skipped."
