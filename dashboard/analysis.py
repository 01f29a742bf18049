"""The dashboard's math, apart from Streamlit and SQL so that it can be tested with plain numbers.

Pareto fronts of latency against accuracy, the Mann-Whitney U test on raw latency samples, the verdict on a change
between two sweeps (beyond noise or not), box-plot statistics and the temperature a device reported around a job.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import pandas as pd

# A change between two sweeps is flagged when the samples differ (two-sided p below ALPHA) *and* the median moved by at
# least MIN_CHANGE: with hundreds of samples a 0.5 % shift can be significant and still be of no interest to anyone.
ALPHA = 0.01
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


def mann_whitney_rows(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mann-Whitney U of each row of `a` against the same row of `b`, and its two-sided p-value.

    `a` is (k, n1) and `b` is (k, n2). The p-value is the normal approximation with the tie correction and the
    continuity correction (scipy's mannwhitneyu(method="asymptotic")); it is fine from about 20 samples a side.
    """
    a = np.atleast_2d(np.asarray(a, dtype=np.float64))
    b = np.atleast_2d(np.asarray(b, dtype=np.float64))
    k, n1 = a.shape
    n2 = b.shape[1]
    if b.shape[0] != k or n1 == 0 or n2 == 0:
        raise ValueError(f"cannot compare samples of shapes {a.shape} and {b.shape}")
    n = n1 + n2
    both = np.concatenate([a, b], axis=1)
    order = np.argsort(both, axis=1, kind="stable")
    ordered = np.take_along_axis(both, order, axis=1)

    # Runs of equal values (ties), numbered across the whole matrix; a row always starts a new run.
    new_run = np.ones((k, n), dtype=bool)
    new_run[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    run = np.cumsum(new_run.ravel()) - 1
    starts = np.flatnonzero(new_run.ravel())
    sizes = np.diff(np.append(starts, k * n))
    first_rank = starts % n + 1  # 1-based rank of a run's first member within its row
    mean_rank = first_rank + (sizes - 1) / 2.0
    ranks = mean_rank[run].reshape(k, n)

    rank_sum_a = np.where(order < n1, ranks, 0.0).sum(axis=1)
    u = rank_sum_a - n1 * (n1 + 1) / 2.0
    ties = np.bincount(starts // n, weights=sizes.astype(np.float64) ** 3 - sizes, minlength=k)
    mean = n1 * n2 / 2.0
    variance = n1 * n2 / 12.0 * ((n + 1) - ties / (n * (n - 1))) if n > 1 else np.zeros(k)
    sd = np.sqrt(np.maximum(variance, 0.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(sd > 0, (np.abs(u - mean) - 0.5) / sd, 0.0)
    p = np.array([min(1.0, math.erfc(max(value, 0.0) / math.sqrt(2.0))) for value in z])
    return u, p


def mann_whitney(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    """Mann-Whitney U of `a` against `b` and its two-sided p-value (normal approximation, as mann_whitney_rows)."""
    u, p = mann_whitney_rows(np.asarray(a, dtype=np.float64)[None, :], np.asarray(b, dtype=np.float64)[None, :])
    return float(u[0]), float(p[0])


def mann_whitney_many(a: Sequence[np.ndarray], b: Sequence[np.ndarray]) -> np.ndarray:
    """Two-sided p-values of many pairs of samples of any sizes, batched by size for speed."""
    if len(a) != len(b):
        raise ValueError(f"{len(a)} sample sets against {len(b)}")
    p = np.full(len(a), np.nan)
    by_size: dict[tuple[int, int], list[int]] = {}
    for i, (x, y) in enumerate(zip(a, b)):
        if len(x) and len(y):
            by_size.setdefault((len(x), len(y)), []).append(i)
    for rows in by_size.values():
        _, p[rows] = mann_whitney_rows(np.stack([a[i] for i in rows]), np.stack([b[i] for i in rows]))
    return p


def change_verdicts(relative_change: Sequence[float], p: Sequence[float], alpha: float = ALPHA,
                    min_change: float = MIN_CHANGE) -> np.ndarray:
    """'slower', 'faster' or 'noise' for each change of median latency (B / A - 1) given its test's p-value."""
    change = np.asarray(relative_change, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    real = (p < alpha) & (np.abs(change) >= min_change)
    return np.where(real & (change > 0), "slower", np.where(real & (change < 0), "faster", "noise"))


def compare_samples(a: pd.DataFrame, b: pd.DataFrame, keys: list[str], alpha: float = ALPHA,
                    min_change: float = MIN_CHANGE) -> pd.DataFrame:
    """Per key, sweep A's and B's median latency, B's relative change, the test's p-value and the verdict.

    `a` and `b` hold the key columns and `samples_ms` (an array per result); repeats of a key are pooled. Keys found in
    only one of the two get the verdict 'only in A' or 'only in B'.
    """
    a, b = _pooled(a, keys), _pooled(b, keys)
    pairs = a.merge(b, on=keys, how="outer", suffixes=("_a", "_b"), indicator=True)
    both = (pairs["_merge"] == "both").to_numpy()
    median = {side: np.array([np.median(x) if isinstance(x, np.ndarray) and x.size else np.nan
                              for x in pairs[f"samples_ms_{side}"]]) for side in ("a", "b")}
    p = np.full(len(pairs), np.nan)
    p[both] = mann_whitney_many(list(pairs.loc[both, "samples_ms_a"]), list(pairs.loc[both, "samples_ms_b"]))
    change = median["b"] / median["a"] - 1.0
    verdict = np.where(both, change_verdicts(change, np.where(both, p, 1.0), alpha, min_change),
                       np.where(pairs["_merge"] == "left_only", "only in A", "only in B"))
    return pairs[keys].assign(
        runs_a=[x.size if isinstance(x, np.ndarray) else 0 for x in pairs["samples_ms_a"]],
        runs_b=[x.size if isinstance(x, np.ndarray) else 0 for x in pairs["samples_ms_b"]],
        median_a=median["a"], median_b=median["b"], change=change, p=p, verdict=verdict)


def _pooled(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    if not frame.duplicated(keys).any():
        return frame[[*keys, "samples_ms"]]
    return frame.groupby(keys, sort=False)["samples_ms"].agg(lambda s: np.concatenate(list(s))).reset_index()


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
