"""The dashboard's math, apart from Streamlit and SQL so that it can be tested with plain numbers.

Pareto fronts of latency against accuracy, box-plot statistics, the temperature a device reported around a job, and op
profiles pooled over repeats.
(Whether two sweeps differ is farm.compare's, as for `farm compare`.)
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import pandas as pd

# A change between two sweeps is flagged when the repeats differ (farm.compare) *and* the median moved by at least
# MIN_CHANGE: a small shift can be significant and still be of no interest to anyone.
MIN_CHANGE = 0.02


def pareto_front(latency: Sequence[float], accuracy: Sequence[float]) -> np.ndarray:
    """Mask of the points no other point beats: none is as fast and as accurate, and strictly better in one of the two.

    Points with a missing (NaN) latency or accuracy are never on the front.
    """
    latency = np.asarray(latency, dtype=np.float64)
    accuracy = np.asarray(accuracy, dtype=np.float64)
    on_front = np.zeros(latency.shape, dtype=bool)
    valid = np.flatnonzero(~(np.isnan(latency) | np.isnan(accuracy)))
    order = valid[np.lexsort((-accuracy[valid], latency[valid]))]  # fastest first; most accurate first among equals
    best_faster = -np.inf  # the best accuracy among strictly faster points
    i = 0
    while i < len(order):
        j = i
        while j < len(order) and latency[order[j]] == latency[order[i]]:
            j += 1
        group = order[i:j]
        best_here = accuracy[group[0]]
        if best_here > best_faster:
            on_front[group[accuracy[group] == best_here]] = True
            best_faster = best_here
        i = j
    return on_front


def box_stats(samples: Sequence[float]) -> dict[str, float]:
    """Quartiles and Tukey whiskers (the furthest samples within 1.5 IQR of the box) of one set of samples."""
    x = np.sort(np.asarray(samples, dtype=np.float64))
    if x.size == 0:
        raise ValueError("no samples")
    q1, median, q3 = np.percentile(x, (25, 50, 75))
    iqr = q3 - q1
    inside = x[(x >= q1 - 1.5 * iqr) & (x <= q3 + 1.5 * iqr)]
    return {"q1": float(q1), "median": float(median), "q3": float(q3), "lowerfence": float(inside.min()),
            "upperfence": float(inside.max()), "mean": float(x.mean()), "n": int(x.size)}


def hottest(env: dict | None) -> float | None:
    """The highest temperature (°C) of any thermal zone in an environment snapshot, or None if it has none."""
    temps = (env or {}).get("temps_c") or {}
    values = [float(v) for v in temps.values() if isinstance(v, (int, float))]
    return max(values) if values else None


def duration_text(seconds: float | None) -> str:
    """A duration as a person reads it: '2 h 05 min', '3 min 07 s', '12 s'; '—' when unknown."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return "—"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min {secs:02d} s"
    return f"{secs} s"


def ops_by_node(rows: pd.DataFrame) -> pd.DataFrame:
    """One configuration's op profile, a row per node in run order, its repeats pooled: the mean time per run (each
    node's time per call times its calls) and share, over the repeats that profiled it."""
    rows = rows.assign(ms_per_run=rows["avg_ms"] * rows["times_called"].fillna(1).clip(lower=1))
    nodes = rows.groupby("position", sort=True).agg(
        op=("op", "first"), name=("name", "first"), ms_per_run=("ms_per_run", "mean"), avg_ms=("avg_ms", "mean"),
        times_called=("times_called", "max"), pct=("pct", "mean"), repeats=("repeat", "nunique"))
    return nodes.reset_index()


def ops_by_type(rows: pd.DataFrame) -> pd.Series:
    """Time per run spent in each op type (ms), summed over its nodes, averaged over the repeats; largest first.
    Types are what two variants of a model share: their nodes differ (an int8 model adds QUANTIZE nodes)."""
    rows = rows.assign(ms_per_run=rows["avg_ms"] * rows["times_called"].fillna(1).clip(lower=1))
    per_repeat = rows.groupby(["repeat", "op"])["ms_per_run"].sum().unstack(fill_value=0.0)
    return per_repeat.mean().sort_values(ascending=False)
