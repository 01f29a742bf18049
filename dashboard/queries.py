"""What the dashboard reads from the store: SQL run in the database (filters in WHERE, aggregates in GROUP BY), on a
read-only connection, cached per store URL for a few seconds.

The store is opened through farm.store (so its schema check and its one-line errors apply) but read-only: SQLite with
`mode=ro`, PostgreSQL in read-only transactions. The dashboard never writes.
"""
from __future__ import annotations

import json
from typing import NamedTuple

import numpy as np
import pandas as pd
import streamlit as st
from sqlalchemy import bindparam, text

from farm import export
from farm.store import JOB_STATES, Store, decode_samples

from farm.dashboard.analysis import hottest

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
    "agreement with fp32": ("agreement", True),
}
CONFIG = ["model", "variant", "delegate", "threads"]  # a configuration: what runs, with what, on how many threads


class Filters(NamedTuple):
    """What the sidebar narrows the result pages to; None means no restriction on that field."""

    models: tuple[str, ...] | None = None
    variants: tuple[str, ...] | None = None
    delegates: tuple[str, ...] | None = None
    devices: tuple[str, ...] | None = None  # the devices carrying any of the chosen tags


@st.cache_resource(show_spinner=False)
def open_store(db: str) -> Store:
    """The read-only store at `db` (a path or an SQLAlchemy URL), opened once per process; raises FarmError."""
    return Store(db, readonly=True)


def _read(db: str, sql: str, params: dict | None = None, filters: Filters | None = None) -> pd.DataFrame:
    """Run one SELECT; `{filters}` in `sql` becomes the AND clauses of `filters` over aliases m, v and j, and a list
    parameter the values of an `IN :name`."""
    params = dict(params or {})
    clauses = []
    for name, column in (("models", "m.name"), ("variants", "v.kind"), ("delegates", "j.delegate"),
                         ("devices", "j.device")):
        values = getattr(filters, name) if filters else None
        if values is not None:
            clauses.append(f"AND {column} IN :{name}")
            params[name] = list(values)
    query = text(sql.replace("{filters}", " ".join(clauses)))
    expanding = [bindparam(name, expanding=True) for name, value in params.items() if isinstance(value, (list, tuple))]
    if expanding:
        query = query.bindparams(*expanding)
    with open_store(db).engine.connect() as connection:
        result = connection.execute(query, params)
        return pd.DataFrame(result.fetchall(), columns=list(result.keys()))


def _utc(values: pd.Series) -> pd.Series:
    # SQLite hands datetimes back as text; the store writes UTC, and naive values mean UTC.
    return pd.to_datetime(values, utc=True, format="mixed")


# --- sweeps ----------------------------------------------------------------------------------------------------------


@st.cache_data(ttl=LIVE_TTL, show_spinner=False)
def sweeps(db: str) -> pd.DataFrame:
    """Every sweep, oldest first, with its job count per state and the times of its first and latest activity."""
    counts = ",\n".join(f"SUM(CASE WHEN j.state = '{state}' THEN 1 ELSE 0 END) AS {state}" for state in JOB_STATES)
    frame = _read(db, f"""
        SELECT s.id, s.name, s.state, s.created, s.finished, COUNT(j.id) AS jobs, {counts},
               MIN(j.started) AS first_started, MAX(j.started) AS last_started, MAX(j.finished) AS last_finished
        FROM sweeps s LEFT JOIN jobs j ON j.sweep_id = s.id
        GROUP BY s.id, s.name, s.state, s.created, s.finished
        ORDER BY s.id""")
    for column in ("created", "finished", "first_started", "last_started", "last_finished"):
        frame[column] = _utc(frame[column])
    for state in (*JOB_STATES, "jobs"):
        frame[state] = frame[state].fillna(0).astype(int)
    frame["last_activity"] = frame[["last_started", "last_finished"]].max(axis=1)
    return frame


@st.cache_data(ttl=LIVE_TTL, show_spinner=False)
def problem_reasons(db: str, sweep_id: int) -> pd.DataFrame:
    """The reasons of a sweep's failed and skipped jobs, most frequent first, with how many jobs and devices each."""
    return _read(db, """
        SELECT j.state, COALESCE(j.error, '(no reason recorded)') AS reason, COUNT(*) AS jobs,
               COUNT(DISTINCT j.device) AS devices
        FROM jobs j WHERE j.sweep_id = :sweep AND j.state IN ('failed', 'skipped')
        GROUP BY j.state, j.error ORDER BY jobs DESC, j.state, reason""", {"sweep": sweep_id})


@st.cache_data(ttl=LIVE_TTL, show_spinner=False)
def jobs_in(db: str, sweep_id: int, states: tuple[str, ...], limit: int = 5000) -> pd.DataFrame:
    """A sweep's jobs in the given states with their configuration, attempts and last error (at most `limit`)."""
    frame = _read(db, """
        SELECT j.state, j.device, m.name AS model, v.kind AS variant, j.delegate, j.threads, j.repeat, j.attempts,
               j.error AS reason, j.started, j.finished
        FROM jobs j JOIN variants v ON v.id = j.variant_id JOIN models m ON m.id = v.model_id
        WHERE j.sweep_id = :sweep AND j.state IN :states
        ORDER BY j.state, j.device, m.name, v.kind, j.delegate, j.threads, j.repeat
        LIMIT :limit""", {"sweep": sweep_id, "states": list(states), "limit": limit})
    for column in ("started", "finished"):
        frame[column] = _utc(frame[column])
    return frame


# --- what can be filtered -------------------------------------------------------------------------------------------


@st.cache_data(ttl=RESULTS_TTL, show_spinner=False)
def choices(db: str) -> dict[str, list[str]]:
    """The models, variants and delegates in the store, for the sidebar's pickers."""
    return {
        "model": _read(db, "SELECT DISTINCT name FROM models ORDER BY name")["name"].tolist(),
        "variant": _read(db, "SELECT DISTINCT kind FROM variants ORDER BY kind")["kind"].tolist(),
        "delegate": _read(db, "SELECT DISTINCT delegate FROM jobs ORDER BY delegate")["delegate"].tolist(),
    }


@st.cache_data(ttl=RESULTS_TTL, show_spinner=False)
def devices(db: str) -> pd.DataFrame:
    """Every device with its tags, delegates and probed facts (decoded), by name."""
    frame = _read(db, "SELECT name, kind, tags, delegates, facts, last_seen FROM devices ORDER BY name")
    for column in ("tags", "delegates", "facts"):
        frame[column] = [json.loads(value) if value else None for value in frame[column]]
    frame["last_seen"] = _utc(frame["last_seen"])
    return frame


# --- results ---------------------------------------------------------------------------------------------------------


@st.cache_data(ttl=RESULTS_TTL, show_spinner=False)
def configs(db: str, sweep_id: int, filters: Filters) -> pd.DataFrame:
    """Per device and configuration of a sweep: every metric (mean over repeats), the variant size, the repeats."""
    metrics = ", ".join(f"AVG(r.{column}) AS {column}" for column, _ in METRICS.values())
    return _read(db, f"""
        SELECT j.device, m.name AS model, v.kind AS variant, j.delegate, j.threads, COUNT(*) AS repeats,
               {metrics}, MAX(v.size) AS size_bytes
        FROM results r JOIN jobs j ON j.id = r.job_id JOIN variants v ON v.id = j.variant_id
             JOIN models m ON m.id = v.model_id
        WHERE j.sweep_id = :sweep {{filters}}
        GROUP BY j.device, m.name, v.kind, j.delegate, j.threads
        ORDER BY j.device, m.name, v.kind, j.delegate, j.threads""", {"sweep": sweep_id}, filters)


@st.cache_data(ttl=RESULTS_TTL, show_spinner=False)
def device_results(db: str, sweep_id: int, device: str, filters: Filters) -> pd.DataFrame:
    """One device's results in a sweep, in the order they ran, with the hottest zone and governor before and after."""
    frame = _read(db, """
        SELECT r.id AS result_id, m.name AS model, v.kind AS variant, j.delegate, j.threads, j.repeat, r.count,
               r.p50_ms, r.p90_ms, r.p95_ms, r.p99_ms, r.mean_ms, r.std_ms, r.min_ms, r.max_ms, r.init_ms, r.first_ms,
               r.peak_mb, r.peak_delta_mb, r.delegate_outcome, r.delegated_nodes, r.total_nodes, r.runtime,
               r.runtime_version, r.env_before, r.env_after, j.started, j.finished
        FROM results r JOIN jobs j ON j.id = r.job_id JOIN variants v ON v.id = j.variant_id
             JOIN models m ON m.id = v.model_id
        WHERE j.sweep_id = :sweep AND j.device = :device {filters}
        ORDER BY j.started, j.id""", {"sweep": sweep_id, "device": device}, filters)
    for when in ("before", "after"):
        envs = [json.loads(value) if value else {} for value in frame.pop(f"env_{when}")]
        frame[f"temp_{when}_c"] = [hottest(env) for env in envs]
        frame[f"governor_{when}"] = [env.get("governor") for env in envs]
    for column in ("started", "finished"):
        frame[column] = _utc(frame[column])
    return frame


@st.cache_data(ttl=RESULTS_TTL, show_spinner=False)
def latency_samples(db: str, sweep_id: int, filters: Filters, device: str | None = None) -> pd.DataFrame:
    """Every raw latency sample (ms, as an array per result) of a sweep's results, with the job they belong to."""
    frame = _read(db, """
        SELECT j.device, m.name AS model, v.kind AS variant, j.delegate, j.threads, j.repeat, r.id AS result_id,
               s.latency_us
        FROM samples s JOIN results r ON r.id = s.result_id JOIN jobs j ON j.id = r.job_id
             JOIN variants v ON v.id = j.variant_id JOIN models m ON m.id = v.model_id
        WHERE j.sweep_id = :sweep {device} {filters}
        ORDER BY j.device, m.name, v.kind, j.delegate, j.threads, j.repeat
        """.replace("{device}", "AND j.device = :device" if device else ""),
        {"sweep": sweep_id, "device": device}, filters)
    frame["samples_ms"] = [np.asarray(decode_samples(value), dtype=np.float64) / 1000.0
                           for value in frame.pop("latency_us")]
    return frame


@st.cache_data(ttl=RESULTS_TTL, show_spinner=False)
def device_csv(db: str, sweep_id: int, device: str) -> str:
    """One device's report of a sweep, byte for byte the CSV `farm export` writes for it."""
    return export.device_csv(open_store(db), sweep_id, device)


@st.cache_data(ttl=LIVE_TTL, show_spinner=False)
def sweep_devices(db: str, sweep_id: int) -> list[str]:
    """The devices a sweep has jobs on, by name."""
    return _read(db, "SELECT DISTINCT device FROM jobs WHERE sweep_id = :sweep ORDER BY device",
                 {"sweep": sweep_id})["device"].tolist()
