"""The math of a benchmark, kept apart from I/O so that it can be tested with plain numbers."""
from __future__ import annotations

import itertools
import math
from typing import Sequence

import numpy as np

PERCENTILES = (50, 90, 95, 99)


def summarize(samples_us: Sequence[float]) -> dict[str, float]:
    """Latency statistics in milliseconds from steady-state samples in microseconds."""
    if len(samples_us) == 0:
        raise ValueError("no latency samples")
    ms = np.asarray(samples_us, dtype=np.float64) / 1000.0
    summary = {
        "count": int(ms.size),
        "mean_ms": float(ms.mean()),
        # Sample standard deviation (ddof=1) as benchmark tools report it; 0 for a single run.
        "std_ms": float(ms.std(ddof=1)) if ms.size > 1 else 0.0,
        "min_ms": float(ms.min()),
        "max_ms": float(ms.max()),
    }
    for p, value in zip(PERCENTILES, np.percentile(ms, PERCENTILES)):
        summary[f"p{p}_ms"] = float(value)
    return summary


def accuracy(predictions: Sequence[int], labels: Sequence[int]) -> float:
    """Top-1 accuracy: the share of predictions equal to their label."""
    if len(predictions) != len(labels) or not predictions:
        raise ValueError(f"{len(predictions)} predictions for {len(labels)} labels")
    return float(np.mean(np.asarray(predictions) == np.asarray(labels)))


def agreement(predictions: Sequence[int], reference: Sequence[int]) -> float | None:
    """The share of top-1 predictions equal to a reference variant's on the same inputs (None if not comparable)."""
    if len(predictions) != len(reference) or not predictions:
        return None
    return float(np.mean(np.asarray(predictions) == np.asarray(reference)))


def eval_task(labels: np.ndarray | None, outputs_per_sample: int) -> str:
    """What an eval set scores: "classification" (top-1 against integer labels) when the model outputs a class vector
    and the labels, if any, are integers; else "regression" (errors of the output values)."""
    if outputs_per_sample > 1 and (labels is None or np.asarray(labels).dtype.kind in "iub"):
        return "classification"
    return "regression"


def errors(outputs: Sequence[Sequence[float]], reference: np.ndarray | Sequence) -> tuple[float, float] | None:
    """(RMSE, max absolute error) of per-sample output values against a reference of the same shape, or None when
    the two are not comparable (other sample count or output size)."""
    ours = np.asarray(outputs, dtype=np.float64)
    theirs = np.asarray(reference, dtype=np.float64)
    if ours.size == 0 or theirs.size != ours.size or len(theirs) != len(ours):
        return None
    difference = ours.reshape(len(ours), -1) - theirs.reshape(len(theirs), -1)
    return float(np.sqrt(np.mean(difference ** 2))), float(np.max(np.abs(difference)))


CI_PERCENTILES = (50, 90, 99)
BOOTSTRAP_ROUNDS = 1000
MAX_SAMPLES = 2000  # trials longer than their share of this are represented by that many of their quantiles


def trial_intervals(trials: Sequence[Sequence[float]], rounds: int = BOOTSTRAP_ROUNDS,
                    seed: int = 0) -> dict[int, tuple[float, float, float]]:
    """p50/p90/p99 (ms) of a configuration measured in several independent trials (repeats, µs samples each), with
    95% confidence intervals: {percentile: (estimate, low, high)}.

    The estimate is the percentile of all samples pooled. The interval is a two-level bootstrap: each round resamples
    the trials (with replacement), then the samples within each chosen trial, so it carries the variance between runs
    (process start, caches, clocks, neighbours) and not only the scatter inside one run. With one trial it can only
    carry the scatter inside that run, and is that much narrower than the truth. The samples are resampled as a
    Poisson bootstrap (each sample drawn Poisson(k) times, k = how often its trial was drawn), which is the
    multinomial resampling in all but name and runs as one array operation.
    """
    arrays = [np.asarray(t, dtype=np.float64) / 1000.0 for t in trials if len(t)]
    if not arrays:
        raise ValueError("no latency samples")
    estimates = np.percentile(np.concatenate(arrays), CI_PERCENTILES)
    share = max(50, MAX_SAMPLES // len(arrays))
    arrays = [a if a.size <= share else np.quantile(a, np.linspace(0, 1, share)) for a in arrays]
    rng = np.random.default_rng(seed)
    values = np.concatenate(arrays)
    trial_of = np.repeat(np.arange(len(arrays)), [a.size for a in arrays])
    order = np.argsort(values)
    values, trial_of = values[order], trial_of[order]
    # How often each round draws each trial, then how often each sample within it.
    drawn = rng.multinomial(len(arrays), np.full(len(arrays), 1 / len(arrays)), size=rounds)
    weights = rng.poisson(drawn[:, trial_of]).astype(np.float64)
    cumulative = np.cumsum(weights, axis=1)
    totals = cumulative[:, -1]
    # Each round's weighted percentiles, all rounds in one search: row i is shifted past every row before it.
    shift = (np.arange(rounds) * (totals.max() + 1))[:, None]
    targets = totals[:, None] * (np.asarray(CI_PERCENTILES) / 100.0) + shift
    found = np.searchsorted((cumulative + shift).ravel(), targets.ravel()).reshape(rounds, -1) % values.size
    replicates = values[found]
    low, high = np.percentile(replicates, [2.5, 97.5], axis=0)
    return {p: (float(e), float(lo), float(hi)) for p, e, lo, hi in zip(CI_PERCENTILES, estimates, low, high)}


def interval_over_trials(values: Sequence[float], rounds: int = BOOTSTRAP_ROUNDS,
                         seed: int = 0) -> tuple[float, float | None, float | None]:
    """The median of one figure over trials, with a 95% bootstrap interval over the trials (None with fewer than two):
    for tools that print aggregates and no samples."""
    values = np.asarray(values, dtype=np.float64)
    if values.size < 2:
        return float(values[0]), None, None
    rng = np.random.default_rng(seed)
    medians = np.median(values[rng.integers(0, values.size, (rounds, values.size))], axis=1)
    low, high = np.percentile(medians, [2.5, 97.5])
    return float(np.median(values)), float(low), float(high)


# --- tests on a handful of trials (no SciPy at run time) -------------------------------------------------------------


def normal_sf(z: float) -> float:
    """P(Z > z) for a standard normal Z."""
    return 0.5 * math.erfc(z / math.sqrt(2.0))


def _betainc(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function I_x(a, b), by its continued fraction (Lentz's method)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    if x > (a + 1.0) / (a + b + 2.0):  # the fraction converges fast only on this side
        return 1.0 - _betainc(b, a, 1.0 - x)
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)) / a
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    result = d
    for m in range(1, 500):
        for numerator in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                          -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            result *= c * d
        if abs(c * d - 1.0) < 1e-14:
            break
    return front * result


def t_sf(t: float, df: float) -> float:
    """P(T > t) for Student's t with `df` degrees of freedom."""
    tail = 0.5 * _betainc(df / 2.0, 0.5, df / (df + t * t))
    return tail if t >= 0 else 1.0 - tail


def t_ppf(q: float, df: float) -> float:
    """The t with P(T <= t) = q, by bisection (q in (0, 1))."""
    low, high = -1e3, 1e3
    for _ in range(200):
        middle = (low + high) / 2.0
        if 1.0 - t_sf(middle, df) < q:
            low = middle
        else:
            high = middle
    return (low + high) / 2.0


def mann_whitney_p(a: Sequence[float], b: Sequence[float]) -> float:
    """Two-sided Mann-Whitney p of `a` against `b`: exact (every assignment of the pooled ranks, ties as mid-ranks)
    for up to 20 values in all, the normal approximation with tie correction beyond."""
    a, b = list(a), list(b)
    n1, n2 = len(a), len(b)
    if not n1 or not n2:
        raise ValueError("Mann-Whitney needs values on both sides")
    ranks = _midranks(a + b)
    mean = n1 * (n1 + n2 + 1) / 2.0
    observed = abs(sum(ranks[:n1]) - mean)
    if n1 + n2 <= 20:
        sums = [sum(ranks[i] for i in chosen) for chosen in itertools.combinations(range(n1 + n2), n1)]
        return sum(1 for s in sums if abs(s - mean) >= observed - 1e-9) / len(sums)
    n = n1 + n2
    counts = np.unique(np.asarray(a + b), return_counts=True)[1]
    variance = n1 * n2 / 12.0 * ((n + 1) - float(np.sum(counts ** 3 - counts)) / (n * (n - 1)))
    return min(1.0, 2 * normal_sf(max(observed - 0.5, 0.0) / math.sqrt(variance))) if variance > 0 else 1.0


def _midranks(values: Sequence[float]) -> list[float]:
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return ranks
