"""What the dashboard reads, through the store's own read functions (SQL run in the database), on a read-only
connection, cached per store URL for a few seconds.

The store is opened through farm.store (so its schema check and its one-line errors apply) but read-only: SQLite with
`mode=ro`, PostgreSQL in read-only transactions. The dashboard never writes.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from farm import export, report
from farm.compare import Trials, trials_of
from farm.dashboard.analysis import hottest
from farm.store import Filters, Store

__all__ = ["CONFIG", "METRICS", "Filters", "open_store"]

LIVE_TTL = 2  # seconds: sweep progress should look live
RESULTS_TTL = 30  # results only grow while a sweep runs; a page rerun within this reuses them

# The figures a page can rank or plot by, with the results column they come from and whether more is better.
METRICS = {
    "p50 latency (ms)": ("p50_ms", False),
    "p90 latency (ms)": ("p90_ms", False),
    "p99 latency (ms)": ("p99_ms", False),
    "init (ms)": ("init_ms", False),
    "first inference (ms)": ("first_ms", False),
    "peak memory (MB)": ("peak_mb", False),
    "accuracy": ("accuracy", True),
    "agreement with fp32": ("agreement_with_fp32", True),
}
CONFIG = ["model", "variant", "delegate", "threads"]  # a configuration: what runs, with what, on how many threads


@st.cache_resource(show_spinner=False)
def open_store(db: str) -> Store:
    """The read-only store at `db` (a path or an SQLAlchemy URL), opened once per process; raises FarmError."""
    return Store(db, readonly=True)


# --- sweeps ----------------------------------------------------------------------------------------------------------


@st.cache_data(ttl=LIVE_TTL, show_spinner=False)
def sweeps(db: str) -> pd.DataFrame:
    """Every sweep, oldest first, with its job count per state and the times of its first and latest activity."""
    return open_store(db).sweep_overview()


@st.cache_data(ttl=LIVE_TTL, show_spinner=False)
def problem_reasons(db: str, sweep_id: int) -> pd.DataFrame:
    """The reasons of a sweep's failed and skipped jobs, most frequent first, with how many jobs and devices each."""
    return open_store(db).problem_reasons(sweep_id)


@st.cache_data(ttl=LIVE_TTL, show_spinner=False)
def jobs_in(db: str, sweep_id: int, states: tuple[str, ...], limit: int = 5000) -> pd.DataFrame:
    """A sweep's jobs in the given states with their configuration, attempts and last error (at most `limit`)."""
    return open_store(db).jobs_in(sweep_id, states, limit)


@st.cache_data(ttl=LIVE_TTL, show_spinner=False)
def sweep_devices(db: str, sweep_id: int) -> list[str]:
    """The devices a sweep has jobs on, by name."""
    return open_store(db).sweep_devices(sweep_id)


# --- what can be filtered -------------------------------------------------------------------------------------------


@st.cache_data(ttl=RESULTS_TTL, show_spinner=False)
def choices(db: str) -> dict[str, list[str]]:
    """The models, variants and delegates in the store, for the sidebar's pickers."""
    return open_store(db).choices()


@st.cache_data(ttl=RESULTS_TTL, show_spinner=False)
def devices(db: str) -> pd.DataFrame:
    """Every device with its tags, delegates and probed facts (decoded), by name."""
    return open_store(db).device_table()


# --- results ---------------------------------------------------------------------------------------------------------


@st.cache_data(ttl=RESULTS_TTL, show_spinner=False)
def configs(db: str, sweep_id: int, filters: Filters) -> pd.DataFrame:
    """Per device and configuration of a sweep: every metric (mean over repeats), the variant size, the repeats."""
    return open_store(db).configs(sweep_id, filters, [column for column, _ in METRICS.values()])


@st.cache_data(ttl=RESULTS_TTL, show_spinner=False)
def device_results(db: str, sweep_id: int, device: str, filters: Filters) -> pd.DataFrame:
    """One device's results in a sweep, in the order they ran, with the hottest zone and governor before and after."""
    frame = open_store(db).device_results(sweep_id, device, filters)
    for when in ("before", "after"):
        envs = frame.pop(f"env_{when}")
        frame[f"temp_{when}_c"] = [hottest(env) for env in envs]
        frame[f"governor_{when}"] = [env.get("governor") for env in envs]
    return frame


@st.cache_data(ttl=RESULTS_TTL, show_spinner=False)
def latency_samples(db: str, sweep_id: int, filters: Filters, device: str | None = None) -> pd.DataFrame:
    """Every raw latency sample (ms, as an array per result) of a sweep's results, with the job they belong to."""
    frame = open_store(db).latency_samples(sweep_id, filters, device)
    frame["samples_ms"] = [np.asarray(value, dtype=np.float64) / 1000.0 for value in frame.pop("latency_us")]
    return frame


@st.cache_data(ttl=RESULTS_TTL, show_spinner=False)
def op_profiles(db: str, sweep_id: int, device: str) -> pd.DataFrame:
    """Every op-profile row of one device's results in a sweep (profile: true), with configuration and repeat."""
    return open_store(db).op_profiles(sweep_id, device)


@st.cache_data(ttl=RESULTS_TTL, show_spinner=False)
def configurations(db: str, sweep_id: int, device: str, filters: Filters) -> pd.DataFrame:
    """One device's configurations in a sweep, repeats pooled: percentiles with 95% intervals, flags (farm.report)."""
    rows = [row for row in report.configurations(open_store(db), sweep_id, device) if row["repeats"]
            and all(values is None or row[field] in values for field, values in
                    (("model", filters.models), ("variant", filters.variants), ("delegate", filters.delegates)))]
    return pd.DataFrame(rows)


@st.cache_data(ttl=RESULTS_TTL, show_spinner=False)
def trials(db: str, sweep_id: int, filters: Filters) -> dict[tuple, Trials]:
    """Per configuration (device, model, variant, delegate, threads) of a sweep: each done repeat's median latency and
    the eval scores, the units `farm compare` tests on."""
    chosen = {"device": filters.devices, "model": filters.models, "variant": filters.variants,
              "delegate": filters.delegates}
    return {key: found for key, found in trials_of(open_store(db), [sweep_id]).items()
            if all(values is None or key[i] in values for i, values in enumerate(chosen.values()))}


@st.cache_data(ttl=RESULTS_TTL, show_spinner=False)
def device_csv(db: str, sweep_id: int, device: str) -> str:
    """One device's report of a sweep, byte for byte the CSV `farm export` writes for it."""
    return export.device_csv(open_store(db), sweep_id, device)
