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
from farm.compare import Difference, Trials, differences as compare_differences, trials_of
from farm.dashboard.analysis import hottest
from farm.frames import Filters
from farm.store import Store

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
    "agreement with source": ("agreement_with_source", True),
    "RMSE": ("rmse", False),
    "max abs error": ("max_abs_error", False),
    "RMSE vs source": ("rmse_vs_source", False),
    "max abs vs source": ("max_abs_vs_source", False),
}
# How a model's outputs are scored: top-1 for a classification; for a regression (its rows have rmse), errors against
# the eval targets and against the source model's own outputs.
CLASSIFICATION_SCORES = ["accuracy", "agreement_with_fp32", "agreement_with_source"]
REGRESSION_SCORES = ["rmse", "max_abs_error", "rmse_vs_source", "max_abs_vs_source"]
CONFIG = ["model", "variant", "delegate", "threads"]  # a configuration: what runs, with what, on how many threads
# What the pages colour or group configurations by.
DIMENSIONS = ["device", "runtime", "variant", "model", "delegate"]
# How a table shows a variant's sizes from configs(), side by side: plain, gzip-compressed (where pruning pays off),
# and the share of zero weights of a pruned variant.
SIZE_COLUMNS = {"size_kb": st.column_config.NumberColumn("size (KB)", format="%.0f"),
                "gzip_kb": st.column_config.NumberColumn("gzip (KB)", format="%.0f"),
                "sparsity": st.column_config.NumberColumn("sparsity", format="percent")}


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
    """Per device, configuration and runtime of a sweep: every metric (mean over repeats), the variant's plain and gzip
    size (KB) and sparsity, the repeats."""
    metrics = [column for column, _ in METRICS.values()]
    frame = open_store(db).configs(sweep_id, filters, metrics)
    # NaN for what a result did not record (a column that is NULL throughout comes back as None objects).
    numbers = [*metrics, "size_bytes", "gzip_bytes", "sparsity"]
    frame[numbers] = frame[numbers].apply(pd.to_numeric).astype(np.float64)
    return frame.assign(size_kb=frame["size_bytes"] / 1024.0, gzip_kb=frame["gzip_bytes"] / 1024.0)


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
                    (("model", filters.models), ("variant", filters.variants), ("delegate", filters.delegates),
                     ("runtime", filters.runtimes)))]
    return pd.DataFrame(rows)


@st.cache_data(ttl=RESULTS_TTL, show_spinner=False)
def trials(db: str, sweep_id: int, filters: Filters) -> dict[tuple, Trials]:
    """Per configuration (device, model, variant, delegate, threads) of a sweep that the filters let through: each
    done repeat's median latency and the eval scores, the units `farm compare` tests on."""
    # farm.compare keys configurations without their runtime: which ones pass the filters (the runtime's included)
    # is what the store's filtered SQL selects.
    chosen = set(configs(db, sweep_id, filters)[["device", *CONFIG]].itertuples(index=False, name=None))
    return {key: found for key, found in trials_of(open_store(db), [sweep_id]).items() if key in chosen}


@st.cache_data(ttl=RESULTS_TTL, show_spinner=False)
def differences(db: str, a: int, b: int) -> list[Difference]:
    """What sweeps a and b were not measured alike in (farm.compare.differences, as `farm compare` says it)."""
    return compare_differences(open_store(db), [a], [b])


@st.cache_data(ttl=RESULTS_TTL, show_spinner=False)
def device_csv(db: str, sweep_id: int, device: str) -> str:
    """One device's report of a sweep, byte for byte the CSV `farm export` writes for it."""
    return export.device_csv(open_store(db), sweep_id, device)
