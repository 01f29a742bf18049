"""A sweep's report: a row per configuration (device, model, variant, delegate, threads), its repeats pooled. Repeats
are independent trials, so each figure carries a 95% confidence interval over them (farm.stats). The CLI's results
table, the CSV and the gate all read these rows.
"""
from __future__ import annotations

import json
from itertools import groupby
from statistics import median

from farm.stats import CI_PERCENTILES, interval_over_trials, trial_intervals
from farm.store import Store

KEY = ("device", "model", "variant", "delegate", "threads")
# How well a configuration's outputs match: top-1 for a classification, errors for a regression (medians over repeats).
SCORES = ("accuracy", "agreement_with_fp32", "agreement_with_source", "rmse", "max_abs_error", "rmse_vs_source",
          "max_abs_vs_source")
# Validity: a flagged figure is kept and labelled, never dropped.
SHORT_SAMPLES, SHORT_SECONDS = 50, 1.0  # benchmark_model's own minimums (--num_runs=50, --min_secs=1)
NOISY_PCT = 5.0  # half-width of the p50's 95% interval, in % of the p50
HOT_RISE_C = 5.0  # a thermal zone that warmed by more than this during a job


def configurations(store: Store, sweep_id: int, device: str | None = None) -> list[dict]:
    """One row per configuration of a sweep (or of one of its devices), in the report's order."""
    jobs = store.report(sweep_id, device)
    samples = store.samples_of([job["result_id"] for job in jobs if job["result_id"]])
    keyed = sorted(jobs, key=lambda job: tuple(job[k] for k in KEY))
    rows = [_configuration(list(group), samples) for _, group in groupby(keyed, key=lambda j: tuple(j[k] for k in KEY))]
    _flag_thread_inversions(rows)
    for row in rows:
        row["flags"] = ",".join(row["flags"])
    return rows


def _configuration(jobs: list[dict], samples: dict[int, list[float]]) -> dict:
    first = jobs[0]
    done = [job for job in jobs if job["status"] == "done"]
    row = {"sweep": first["sweep"], **{k: first[k] for k in KEY}, "repeats": len(done), "jobs": len(jobs),
           "status": _status({job["status"] for job in jobs}),
           "error": next((job["error"] for job in jobs if job["status"] in ("failed", "skipped")), None),
           "size_bytes": first["size_bytes"], "gzip_bytes": first["gzip_bytes"], "flags": []}
    for p in CI_PERCENTILES:
        row[f"p{p}_ms"] = row[f"p{p}_ci_low_ms"] = row[f"p{p}_ci_high_ms"] = None
    for name in ("mean_ms", "min_ms", "max_ms", "init_ms", "first_ms", "peak_mb", *SCORES, "count", "memory_kind",
                 "delegate_outcome", "delegated_nodes", "total_nodes", "runtime", "runtime_version"):
        row[name] = None
    if not done:
        return row
    trials = [samples.get(job["result_id"], []) for job in done]
    if all(trials):
        for p, (estimate, low, high) in trial_intervals(trials).items():
            row[f"p{p}_ms"], row[f"p{p}_ci_low_ms"], row[f"p{p}_ci_high_ms"] = estimate, low, high
    else:  # a tool that prints aggregates and no samples (benchmark_model): intervals over the repeats' figures
        for p in CI_PERCENTILES:
            values = [job[f"p{p}_ms"] for job in done if job[f"p{p}_ms"] is not None]
            if values:
                row[f"p{p}_ms"], row[f"p{p}_ci_low_ms"], row[f"p{p}_ci_high_ms"] = interval_over_trials(values)
    counts = [job["count"] or 0 for job in done]
    row["count"] = sum(counts)
    row["mean_ms"] = sum(job["mean_ms"] * n for job, n in zip(done, counts)) / max(sum(counts), 1)
    row["min_ms"] = min(job["min_ms"] for job in done)
    row["max_ms"] = max(job["max_ms"] for job in done)
    for name in ("init_ms", "first_ms", *SCORES):
        values = [job[name] for job in done if job[name] is not None]
        row[name] = median(values) if values else None
    peaks = [job["peak_mb"] for job in done if job["peak_mb"] is not None]
    row["peak_mb"] = max(peaks) if peaks else None
    for name in ("memory_kind", "delegate_outcome", "delegated_nodes", "total_nodes", "runtime", "runtime_version"):
        values = {job[name] for job in done}
        row[name] = values.pop() if len(values) == 1 else ("mixed" if isinstance(first[name], str) else None)
    seconds = sum(sum(trial) for trial in trials) / 1e6
    if row["count"] < SHORT_SAMPLES or (all(trials) and seconds < SHORT_SECONDS):
        row["flags"].append("short")
    if (half_width_pct(row) or 0.0) > NOISY_PCT:
        row["flags"].append("noisy")
    if max((_warming(job) for job in done), default=0.0) > HOT_RISE_C or any(_throttling(job) for job in done):
        row["flags"].append("hot")
    if any(job["delegate_outcome"] == "partial" for job in done):
        row["flags"].append("partial-delegate")
    return row


def _warming(job: dict) -> float:
    """How much the warmest-rising thermal zone rose during a job, in °C (0 when the device reports none)."""
    before = json.loads(job["env_before"] or "{}").get("temps_c") or {}
    after = json.loads(job["env_after"] or "{}").get("temps_c") or {}
    rises = [after[zone] - before[zone] for zone in after
             if isinstance(after.get(zone), (int, float)) and isinstance(before.get(zone), (int, float))]
    return max(rises, default=0.0)


def _throttling(job: dict) -> bool:
    """Whether a thermal zone was at or above its passive trip point (the kernel throttling) before or after a job."""
    for when in ("env_before", "env_after"):
        env = json.loads(job[when] or "{}")
        temps, trips = env.get("temps_c") or {}, env.get("trips_c") or {}
        if any(isinstance(temps.get(zone), (int, float)) and isinstance(trip, (int, float)) and temps[zone] >= trip
               for zone, trip in trips.items()):
            return True
    return False


def _flag_thread_inversions(rows: list[dict]) -> None:
    """`N-threads-slower`: more threads slower than the fewest, beyond both intervals (the thread matrix inverted)."""
    by_setup: dict[tuple, list[dict]] = {}
    for row in rows:
        if row["p50_ci_low_ms"] is not None:
            by_setup.setdefault((row["device"], row["model"], row["variant"], row["delegate"]), []).append(row)
    for group in by_setup.values():
        fewest = min(group, key=lambda row: row["threads"])
        for row in group:
            if row["threads"] > fewest["threads"] and row["p50_ci_low_ms"] > fewest["p50_ci_high_ms"]:
                row["flags"].append(f"{row['threads']}-threads-slower")


def _status(states: set[str]) -> str:
    """A configuration's state from its repeats': theirs when they agree, else what is still to come, else `partial`
    (some repeats done, some failed)."""
    if len(states) == 1:
        return states.pop()
    for state in ("running", "pending"):
        if state in states:
            return state
    return "partial" if "done" in states else "failed"


def half_width_pct(row: dict, p: int = 50) -> float | None:
    """The half-width of a figure's 95% interval, in % of the figure (None without an interval)."""
    estimate, low, high = row[f"p{p}_ms"], row[f"p{p}_ci_low_ms"], row[f"p{p}_ci_high_ms"]
    if estimate is None or low is None or high is None or estimate <= 0:
        return None
    return (high - low) / 2 / estimate * 100
