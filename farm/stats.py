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
