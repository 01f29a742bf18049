"""Reports: one CSV per device, a row per configuration (its repeats pooled, with 95% intervals), written with pandas."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from farm.paths import atomic_write
from farm.report import SCORES, configurations
from farm.store import Store

COLUMNS = [
    "sweep", "device", "model", "variant", "delegate", "threads", "repeats", "status", "error", "flags",
    "p50_ms", "p50_ci_low_ms", "p50_ci_high_ms", "p90_ms", "p90_ci_low_ms", "p90_ci_high_ms",
    "p99_ms", "p99_ci_low_ms", "p99_ci_high_ms", "mean_ms", "min_ms", "max_ms", "init_ms", "first_ms",
    "peak_mb", "size_kb", "gzip_kb", *SCORES,
    "count", "memory_kind", "delegate_outcome", "delegated_nodes", "total_nodes", "runtime", "runtime_version",
]


# Counts stay integers in the CSV even where a configuration has none (a skipped one has no sample count).
INTEGER_COLUMNS = ["threads", "repeats", "count", "delegated_nodes", "total_nodes"]


def report_frame(store: Store, sweep_id: int, device: str | None = None) -> pd.DataFrame:
    """The report of a sweep (or of one of its devices) as a DataFrame with the CSV's columns."""
    frame = pd.DataFrame(configurations(store, sweep_id, device))
    if frame.empty:
        return pd.DataFrame(columns=COLUMNS)
    frame["size_kb"] = frame["size_bytes"] / 1024.0
    frame["gzip_kb"] = pd.to_numeric(frame["gzip_bytes"]) / 1024.0  # None for variants stored before it was kept
    for column in INTEGER_COLUMNS:
        frame[column] = frame[column].astype("Int64")
    return frame[COLUMNS]


def device_csv(store: Store, sweep_id: int, device: str) -> str:
    """One device's report of a sweep as CSV text: what `farm export` writes and the dashboard offers for download."""
    return report_frame(store, sweep_id, device).to_csv(index=False, float_format="%.4f")


def export_per_device(store: Store, sweep_name: str | None, out: Path) -> list[Path]:
    """Write <out>/<sweep>-<device>.csv for every device of the sweep; returns the files written."""
    sweep = store.sweep(sweep_name)
    devices = sorted({row["device"] for row in store.report(sweep.id)})
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for device in devices:
        path = out / f"{sweep.name}-{device}.csv"
        atomic_write(path, device_csv(store, sweep.id, device).encode())
        written.append(path)
    return written
