"""The math of a benchmark, kept apart from I/O so that it can be tested with plain numbers."""
from __future__ import annotations

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
