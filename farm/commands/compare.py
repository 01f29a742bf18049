"""`farm compare`: two sweeps, or a sweep against its history, configuration by configuration; exit 3 on a
regression beyond the thresholds, for CI."""
from __future__ import annotations

import json
import re

from farm.errors import FarmError

REGRESSION = 3  # the exit code a CI job fails on


def compare(args) -> int:
    from farm.compare import compare as compare_trials
    from farm.compare import percent, trials_of
    from farm.store import Store

    max_slowdown = percent(args.max_slowdown, "--max-slowdown") if args.max_slowdown is not None else None
    max_drop = percent(args.max_accuracy_drop, "--max-accuracy-drop") if args.max_accuracy_drop is not None else None
    store = Store(args.db, create=False)
    if args.history is not None:
        if args.history < 1:
            raise FarmError(f"--history: {args.history}: give the number of earlier sweeps, 1 or more")
        if len(args.sweeps) > 1:
            raise FarmError("farm compare --history N: give at most one sweep, the candidate (default: the newest)")
        candidate = store.sweep(args.sweeps[0] if args.sweeps else None)
        earlier = [s for s in reversed(store.sweeps()) if s.id < candidate.id and s.state == "done"]
        if not earlier:
            raise FarmError(f"no finished sweep before {candidate.name} in {store.url} to compare with")
        baseline = trials_of(store, [s.id for s in earlier], per_configuration=args.history)
        baseline_name = f"the last {args.history} sweeps of each configuration"
    else:
        if len(args.sweeps) != 2:
            raise FarmError("farm compare: give two sweeps, BASELINE and CANDIDATE, or --history N [CANDIDATE]")
        first, candidate = store.sweep(args.sweeps[0]), store.sweep(args.sweeps[1])
        baseline, baseline_name = trials_of(store, [first.id]), first.name
    changes = compare_trials(baseline, trials_of(store, [candidate.id]), max_slowdown, max_drop)
    if not changes:
        raise FarmError(f"sweep {candidate.name} has no finished job to compare")
    regressed = [c for c in changes if c.regressed]
    if args.json:
        print(json.dumps({"baseline": baseline_name, "candidate": candidate.name, "max_slowdown": max_slowdown,
                          "max_accuracy_drop": max_drop, "regressed": len(regressed),
                          "configurations": [c.to_dict() for c in changes]}, indent=2))
    elif args.markdown:
        print(markdown(changes, baseline_name, candidate.name, len(regressed)))
    else:
        table(changes, baseline_name, candidate.name, len(regressed))
    return REGRESSION if regressed else 0


COLUMNS = ("device", "model", "variant", "delegate", "thr", "reps", "baseline p50", "candidate p50", "change (95% CI)",
           "p", "p (M-W)", "top-1 change", "verdict")


def cells(c) -> list[str]:
    def ms(value):
        return "-" if value is None else f"{value:.3f} ms"

    def signed(value, digits=1):
        return f"{value * 100:+.{digits}f}%"

    change = "-" if c.change is None else signed(c.change) + (
        f" ({signed(c.change_low)} … {signed(c.change_high)})" if c.change_low is not None else "")
    verdict = c.verdict + (" — REGRESSION" if c.regressed else "")
    return [c.device, c.model, c.variant, c.delegate, str(c.threads), f"{c.repeats[0]}:{c.repeats[1]}",
            ms(c.baseline_ms), ms(c.candidate_ms), change, "-" if c.p_welch is None else f"{c.p_welch:.3g}",
            "-" if c.p_mann_whitney is None else f"{c.p_mann_whitney:.3g}",
            "-" if c.accuracy_change is None else f"{c.accuracy_change:+.3f}", verdict]


def summary(baseline: str, candidate: str, regressed: int) -> str:
    return (f"{candidate} against {baseline}: " + (f"{regressed} configuration(s) regressed" if regressed else
                                                   "no regression"))


def table(changes, baseline: str, candidate: str, regressed: int) -> None:
    from farm.progress import add_plain_row, make_console, plain_table

    out = plain_table(f"{candidate} against {baseline}", title_justify="left")
    for column in COLUMNS:
        out.add_column(column, no_wrap=True)
    for change in changes:
        add_plain_row(out, *cells(change))
    console = make_console()
    console.print(out)
    console.print(summary(baseline, candidate, regressed), markup=False, highlight=False)


def markdown(changes, baseline: str, candidate: str, regressed: int) -> str:
    """A table for a CI comment. Names come from users and devices: every markdown character is escaped, so none
    becomes a link, an image or a table break."""
    def escape(text: str) -> str:
        return re.sub(r"([\\`*_{}\[\]()<>#+\-.!|~])", r"\\\1", text.replace("\n", " "))

    lines = [f"**{escape(summary(baseline, candidate, regressed))}**", "",
             "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(escape(cell) for cell in cells(change)) + " |" for change in changes]
    return "\n".join(lines)
