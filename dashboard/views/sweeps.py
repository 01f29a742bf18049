"""Sweeps: every sweep with its job counts and duration, and the chosen sweep's failures and skips with their reasons.

While any sweep runs, the page redraws itself every few seconds.
"""
import pandas as pd
import streamlit as st

from farm import hints
from farm.dashboard import analysis, filters, queries
from farm.dashboard.plain import md, md_frame

REFRESH_S = 5
MAX_REASONS = 50
STALLED_S = 600  # a running sweep with no job started or finished for this long has probably lost its coordinator

selection = filters.current()
st.title("Sweeps")
st.caption("Counts and reasons cover whole sweeps; the sidebar's filters apply to the result pages.")
live = bool((selection.sweeps["state"] == "running").any())


def overview(table: pd.DataFrame, now: pd.Timestamp) -> pd.DataFrame:
    ends = table["finished"].where(table["state"] == "done", table["last_activity"])
    ends = ends.where(table["state"] != "running", now)
    seconds = (ends - table["first_started"]).dt.total_seconds()
    finished = table["done"] + table["failed"] + table["skipped"]
    return pd.DataFrame({
        "sweep": table["name"], "state": table["state"],
        "progress": (finished / table["jobs"].where(table["jobs"] > 0)).fillna(0.0),
        "done": table["done"], "failed": table["failed"], "skipped": table["skipped"], "pending": table["pending"],
        "running": table["running"], "jobs": table["jobs"],
        "created": table["created"].dt.strftime("%Y-%m-%d %H:%M UTC"),
        "duration": [analysis.duration_text(s) for s in seconds],
    }).iloc[::-1]


def details(sweep: pd.Series, now: pd.Timestamp) -> None:
    name = md(sweep["name"])
    st.subheader(f"Sweep {name}")
    finished = sweep["done"] + sweep["failed"] + sweep["skipped"]
    if sweep["state"] == "running":
        st.info(f"**Sweep {name} is still running:** {finished} of {sweep['jobs']} jobs finished, {sweep['running']} "
                f"running now, {sweep['pending']} pending. This page refreshes every {REFRESH_S} s; the result pages "
                "show the jobs done so far.", icon=":material/sync:")
        idle = (now - sweep["last_activity"]).total_seconds() if pd.notna(sweep["last_activity"]) else None
        if idle is not None and idle > STALLED_S:
            st.warning(f"No job of {name} has started or finished for {analysis.duration_text(idle)}. If its "
                       f"coordinator stopped, farm sweep resume {name} carries on without redoing a finished job.")
    elif sweep["state"] == "interrupted":
        st.info(f"Sweep {name} was interrupted: {finished} of {sweep['jobs']} jobs finished, {sweep['pending']} "
                f"pending. {md(hints.command('sweep resume', sweep['name'], db=selection.db))} carries on without "
                "redoing a finished job.")
    elif sweep["state"] == "pending":
        st.info(f"Sweep {name} is planned and has not started: farm sweep resume {name} runs it.")
    columns = st.columns(5)
    for column, state in zip(columns, ("done", "failed", "skipped", "pending", "running")):
        column.metric(state, int(sweep[state]))

    in_flight = queries.jobs_in(selection.db, int(sweep["id"]), ("running",))
    if not in_flight.empty:
        st.markdown("**Running now**")
        st.dataframe(in_flight.drop(columns=["state", "finished"]), hide_index=True)

    reasons = queries.problem_reasons(selection.db, int(sweep["id"]))
    if reasons.empty:
        st.success("No failed or skipped jobs." if finished else "No job has finished yet.")
        return
    st.markdown("**Why jobs failed or were skipped**")
    st.table(md_frame(reasons.head(MAX_REASONS).rename(columns={"state": "outcome"}).set_index("outcome")))
    if len(reasons) > MAX_REASONS:
        st.caption(f"The {MAX_REASONS} most frequent of {len(reasons)} reasons; every job is in the table below.")
    problems = queries.jobs_in(selection.db, int(sweep["id"]), ("failed", "skipped"))
    st.markdown(f"**Every failed and skipped job** ({len(problems)}"
                f"{' shown' if len(problems) < sweep['failed'] + sweep['skipped'] else ''})")
    st.dataframe(problems.drop(columns=["started"]), hide_index=True)


def status() -> None:
    table = queries.sweeps(selection.db)
    if live and not (table["state"] == "running").any():
        st.rerun()  # the last running sweep finished: redraw everything once, without the timer
    now = pd.Timestamp.now(tz="UTC")
    st.dataframe(overview(table, now), hide_index=True, column_config={
        "progress": st.column_config.ProgressColumn("finished", format="percent", min_value=0.0, max_value=1.0)})
    chosen = table[table["id"] == selection.sweep_id]
    if chosen.empty:
        st.warning(f"Sweep {md(selection.sweep['name'])} is no longer in the store.")
        return
    st.caption("Pick another sweep in the sidebar to see its failures and skips.")
    details(chosen.iloc[0], now)


st.fragment(status, run_every=REFRESH_S if live else None)()
