"""Reports: one CSV per device, a row per job, written with pandas."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from farm.paths import atomic_write
from farm.store import Store

COLUMNS = [
    "sweep", "device", "model", "variant", "delegate", "threads", "repeat", "status", "error",
    "init_ms", "first_ms", "mean_ms", "std_ms", "min_ms", "max_ms", "p50_ms", "p90_ms", "p95_ms", "p99_ms",
    "peak_mb", "size_kb", "accuracy", "agreement_with_fp32",
    "count", "warmup_ms", "memory_kind", "peak_delta_mb", "delegate_outcome", "delegated_nodes", "total_nodes",
    "runtime", "runtime_version", "attempts",
]


# Counts stay integers in the CSV even where a job has none (a skipped job has no sample count).
INTEGER_COLUMNS = ["threads", "repeat", "count", "delegated_nodes", "total_nodes", "attempts"]


def report_frame(store: Store, sweep_id: int, device: str | None = None) -> pd.DataFrame:
    """The report of a sweep (or of one of its devices) as a DataFrame with the CSV's columns."""
    frame = pd.DataFrame(store.report(sweep_id, device))
    if frame.empty:
        return pd.DataFrame(columns=COLUMNS)
    frame["size_kb"] = frame["size_bytes"] / 1024.0
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
