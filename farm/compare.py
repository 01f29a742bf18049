"""Two sweeps compared, configuration by configuration, with a repeat as the unit: the gate a CI job can fail on.

The samples inside one run are not independent trials: the variance that matters is between runs (process start,
caches, clocks, neighbours on the machine), so a test on pooled samples calls noise a regression. Here each repeat
is one observation, its median latency; a change is the ratio of the geometric means of those medians, with a 95%
interval and a p value from Welch's t-test on their logarithms (Mann-Whitney's p on the same medians is shown too; with
3 repeats a side it can never go below 0.1). A slowdown fails the gate only when its whole 95% interval lies beyond the
threshold: significantly worse than the slowdown allowed, not merely significantly slower. Two sweeps of one model run
minutes apart differ by a few percent (clocks, heat, neighbours), and with a handful of repeats a side a 7% change whose
interval reaches down to +0.5% is no evidence of a slowdown past 5%.

A test can only say that two sets of numbers differ, not why: two sweeps measured differently (other run counts, another
runtime version or kernel, a governor) differ for that alone. `differences` lists what was not alike, for the CLI and
the dashboard to say before any verdict.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field

import numpy as np

from farm.errors import FarmError
from farm.report import KEY
from farm.stats import mann_whitney_p, normal_sf, t_ppf, t_sf
from farm.store import Store

ALPHA = 0.05


@dataclass
class Trials:
    """A configuration's repeats in one or more sweeps: each repeat's median latency (ms), and the eval scores."""

    medians: list[float]
    correct: int = 0  # eval predictions equal to their label, over all repeats' first scored run
    scored: int = 0
    sweeps: set[int] = field(default_factory=set)  # the sweeps the repeats are of


@dataclass
class Change:
    device: str
    model: str
    variant: str
    delegate: str
    threads: int
    baseline_ms: float | None
    candidate_ms: float | None
    repeats: tuple[int, int]
    change: float | None  # candidate / baseline - 1, on the repeats' medians
    change_low: float | None
    change_high: float | None
    p_welch: float | None
    p_mann_whitney: float | None
    accuracy_change: float | None
    p_accuracy: float | None
    verdict: str  # slower, faster, same, less-accurate, n/a
    regressed: bool

    def to_dict(self) -> dict:
        return asdict(self)


def trials_of(store: Store, sweep_ids: list[int], per_configuration: int | None = None) -> dict[tuple, Trials]:
    """The done repeats of every configuration over the given sweeps (newest first), by configuration key; with
    `per_configuration`, each configuration takes only the newest that many sweeps that ran it (a rolling baseline)."""
    out: dict[tuple, Trials] = {}
    sweeps_of: dict[tuple, set[int]] = {}
    for sweep_id in sweep_ids:
        for job in store.report(sweep_id):
            key = tuple(job[k] for k in KEY)
            if job["status"] != "done":
                continue
            seen = sweeps_of.setdefault(key, set())
            if per_configuration and sweep_id not in seen and len(seen) >= per_configuration:
                continue
            seen.add(sweep_id)
            median = job["p50_ms"] if job["p50_ms"] is not None else job["mean_ms"]
            trials = out.setdefault(key, Trials([]))
            trials.medians.append(median)
            trials.sweeps.add(sweep_id)
            if job["accuracy"] is not None and job["predictions"]:
                trials.correct += round(job["accuracy"] * len(job["predictions"]))
                trials.scored += len(job["predictions"])
    return out


def compare(baseline: dict[tuple, Trials], candidate: dict[tuple, Trials], max_slowdown: float | None,
            max_accuracy_drop: float | None, alpha: float = ALPHA) -> list[Change]:
    """Every configuration the candidate has, against the baseline's."""
    return [_change(key, baseline.get(key), candidate[key], max_slowdown, max_accuracy_drop, alpha)
            for key in sorted(candidate, key=str)]


def _change(key: tuple, base: Trials | None, cand: Trials, max_slowdown: float | None,
            max_accuracy_drop: float | None, alpha: float) -> Change:
    fields = dict(zip(KEY, key))
    candidate_ms = _geomean(cand.medians)
    if base is None:
        return Change(**fields, baseline_ms=None, candidate_ms=candidate_ms, repeats=(0, len(cand.medians)),
                      change=None, change_low=None, change_high=None, p_welch=None, p_mann_whitney=None,
                      accuracy_change=None, p_accuracy=None, verdict="n/a: not in the baseline", regressed=False)
    a, b = np.log(base.medians), np.log(cand.medians)
    change = math.exp(b.mean() - a.mean()) - 1
    low = high = p_welch = p_mw = None
    if len(a) >= 2 and len(b) >= 2:
        va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
        se = math.sqrt(va + vb)
        if se > 0:
            df = (va + vb) ** 2 / ((va ** 2 / (len(a) - 1) if va else 0) + (vb ** 2 / (len(b) - 1) if vb else 0))
            t = t_ppf(1 - alpha / 2, df)
            low, high = math.exp(b.mean() - a.mean() - t * se) - 1, math.exp(b.mean() - a.mean() + t * se) - 1
            p_welch = 2 * t_sf(abs(b.mean() - a.mean()) / se, df)
        else:  # identical repeats on both sides: no spread to test against
            low = high = change
            p_welch = 1.0 if change == 0 else 0.0
        p_mw = mann_whitney_p(list(b), list(a))
    accuracy_change = p_accuracy = None
    if base.scored and cand.scored:
        pa, pb = base.correct / base.scored, cand.correct / cand.scored
        accuracy_change = pb - pa
        pooled = (base.correct + cand.correct) / (base.scored + cand.scored)
        se = math.sqrt(pooled * (1 - pooled) * (1 / base.scored + 1 / cand.scored))
        p_accuracy = 2 * normal_sf(abs(accuracy_change) / se) if se > 0 else (
            1.0 if accuracy_change == 0 else 0.0)
    significant = p_welch is not None and p_welch < alpha
    slower = significant and low is not None and low > 0
    faster = significant and high is not None and high < 0
    less_accurate = (accuracy_change is not None and accuracy_change < 0 and p_accuracy is not None
                     and p_accuracy < alpha)
    regressed = bool((slower and max_slowdown is not None and low > max_slowdown)
                     or (less_accurate and max_accuracy_drop is not None and -accuracy_change > max_accuracy_drop))
    if p_welch is None:
        verdict = "n/a: needs 2+ repeats a side"
    else:
        verdict = "less accurate" if less_accurate else ("slower" if slower else ("faster" if faster else "same"))
    return Change(**fields, baseline_ms=_geomean(base.medians), candidate_ms=candidate_ms,
                  repeats=(len(base.medians), len(cand.medians)), change=change, change_low=low, change_high=high,
                  p_welch=p_welch, p_mann_whitney=p_mw, accuracy_change=accuracy_change, p_accuracy=p_accuracy,
                  verdict=verdict, regressed=regressed)


# What two sweeps must share for their latencies to compare: the spec's measuring options, and on each device the
# runtime and the machine's facts as its results recorded them (the agent's host facts; a phone's serial and ABI).
SPEC_FIELDS = ("runs", "warmup_runs", "min_secs", "max_secs", "threads", "pin_governor", "cooldown")
HOST_FACTS = {"cpu_model": "CPU", "cores": "cores", "cpus_allowed": "CPUs allowed", "os_release": "kernel",
              "governor": "governor", "board": "board", "serial": "serial", "abi": "ABI"}


@dataclass
class Difference:
    """A condition the two sides of a comparison were not measured alike in: its values on each side."""

    field: str  # a spec field (runs), or a device's fact ("pi4: kernel")
    baseline: str
    candidate: str
    device: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def differences(store: Store, baseline: list[int], candidate: list[int]) -> list[Difference]:
    """What the baseline's sweeps and the candidate's were measured under that differs (each side's values joined when
    it has several sweeps, or a fact changed during one): the spec's measuring options first, then per device that
    ran on both sides. A fact only one side recorded is not a difference: it is unknown on the other."""
    a, b = _conditions(store, baseline), _conditions(store, candidate)
    shared = [key for key in a if key in b and a[key] != b[key]]
    shared.sort(key=lambda key: (0, SPEC_FIELDS.index(key[1])) if key[0] is None else (1, *key))
    return [Difference(name if device is None else f"{device}: {name}", a[(device, name)], b[(device, name)], device)
            for device, name in shared]


def _conditions(store: Store, sweep_ids: list[int]) -> dict[tuple[str | None, str], str]:
    """(device or None, field) -> the values the sweeps were measured under, sorted and joined."""
    found: dict[tuple[str | None, str], set[str]] = {}
    specs = {sweep.id: json.loads(sweep.spec or "{}") for sweep in store.sweeps() if sweep.id in set(sweep_ids)}
    for sweep_id, spec in specs.items():
        for name in SPEC_FIELDS:
            if name in spec:
                found.setdefault((None, name), set()).add(_text(spec[name]))
        for row in store.run_conditions(sweep_id):
            device = row["device"]
            found.setdefault((device, "runtime"), set()).add(f"{row['runtime']} {row['runtime_version']}")
            # The governor in force before the job, where the device said (a pinned one shows there), else the
            # agent's at its start.
            governor = row["env_before"].get("governor")
            facts = {**row["host"], **({"governor": governor} if governor else {})}
            for key, label in HOST_FACTS.items():
                if facts.get(key) is not None:
                    found.setdefault((device, label), set()).add(_text(facts[key]))
    return {key: ", ".join(sorted(values)) for key, values in found.items()}


def _text(value: object) -> str:
    if value is None:
        return "none"
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def _geomean(values: list[float]) -> float:
    return float(math.exp(np.mean(np.log(values))))


def percent(text: str, what: str) -> float:
    """`5%` or `0.05` as a fraction; FarmError naming the option otherwise."""
    try:
        value = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        raise FarmError(f"{what}: {text!r} is not a number or a percentage (e.g. 5%)") from None
    if not 0 <= value < 10:
        raise FarmError(f"{what}: {text!r} is out of range")
    return value
