"""`farm compare`: two sweeps, or a sweep against its history, configuration by configuration; exit 3 on a
regression beyond the thresholds, for CI."""
from __future__ import annotations

import json
import re

from farm.errors import FarmError

REGRESSION = 3  # the exit code a CI job fails on


def compare(args) -> int:
    from farm.compare import compare as compare_trials
    from farm.compare import ALPHA, differences, percent, trials_of
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
    devices = {c.device for c in changes}
    differ = [d for d in differences(store, sorted(set().union(*(t.sweeps for t in baseline.values()))), [candidate.id])
              if d.device is None or d.device in devices]
    if args.json:
        print(json.dumps({"baseline": baseline_name, "candidate": candidate.name, "max_slowdown": max_slowdown,
                          "max_accuracy_drop": max_drop, "alpha": ALPHA, "regressed": len(regressed),
                          "differences": [d.to_dict() for d in differ],
                          "configurations": [c.to_dict() for c in changes]}, indent=2))
    elif args.markdown:
        print(markdown(changes, baseline_name, candidate.name, len(regressed), differ, rule(max_slowdown, max_drop)))
    else:
        table(changes, baseline_name, candidate.name, len(regressed), differ, rule(max_slowdown, max_drop))
    return REGRESSION if regressed else 0


def warning(differ, baseline: str, candidate: str) -> list[str]:
    """What the two sides were not measured alike in, said before any verdict: a change may be that alone."""
    if not differ:
        return []
    return ([f"warning: {candidate} and {baseline} were not measured alike; a change below may come from this, "
             f"not from the model:"]
            + [f"  {d.field}: {d.baseline} in {baseline}, {d.candidate} in {candidate}" for d in differ])


def rule(max_slowdown: float | None, max_drop: float | None) -> str:
    """What a verdict takes: the significance test and the size of the change, with their thresholds."""
    from farm.compare import ALPHA

    said = (f"slower or faster: Welch's p below {ALPHA:g} on the repeats' log medians and a 95% interval of the "
            f"change clear of 0")
    if max_slowdown is not None:
        said += f"; a slowdown regresses when its whole interval lies beyond +{max_slowdown:.1%}"
    if max_drop is not None:
        said += f"; a top-1 drop regresses when significant (p below {ALPHA:g}) and larger than {max_drop:g}"
    return said


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


def table(changes, baseline: str, candidate: str, regressed: int, differ=(), said: str = "") -> None:
    from farm.progress import add_plain_row, make_console, plain_table

    console = make_console()
    for line in warning(differ, baseline, candidate):  # names and facts from users and devices: never markup
        console.print(line, markup=False, highlight=False, soft_wrap=True)
    out = plain_table(f"{candidate} against {baseline}", title_justify="left")
    for column in COLUMNS:
        out.add_column(column, no_wrap=True)
    for change in changes:
        add_plain_row(out, *cells(change))
    console.print(out)
    console.print(summary(baseline, candidate, regressed), markup=False, highlight=False)
    if said:
        console.print(said, markup=False, highlight=False, soft_wrap=True)


def markdown(changes, baseline: str, candidate: str, regressed: int, differ=(), said: str = "") -> str:
    """A table for a CI comment. Names come from users and devices: every markdown character is escaped, so none
    becomes a link, an image or a table break."""
    def escape(text: str) -> str:
        return re.sub(r"([\\`*_{}\[\]()<>#+\-.!|~])", r"\\\1", text.replace("\n", " "))

    lines = []
    heading, *items = warning(differ, baseline, candidate) or [""]
    if heading:  # before any verdict, the summary's included
        lines += [escape(heading), "", *(f"- {escape(item.strip())}" for item in items), ""]
    lines += [f"**{escape(summary(baseline, candidate, regressed))}**", "",
              "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(escape(cell) for cell in cells(change)) + " |" for change in changes]
    if said:
        lines += ["", escape(said)]
    return "\n".join(lines)
