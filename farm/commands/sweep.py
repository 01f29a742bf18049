"""`farm sweep`: run, resume and follow sweeps."""
from __future__ import annotations

import sys
from pathlib import Path

from farm.errors import FarmError


def spec_from_args(args):
    from farm.plan import load_spec, parse_spec

    if args.spec:
        return load_spec(args.spec), args.spec
    if not args.model:
        raise FarmError("farm sweep run: give a sweep spec file, or --model with flags")
    raw = {
        "name": args.name or Path(args.model).name.split(".")[0],
        "inventory": args.inventory or [],
        "models": [{"source": args.model, "variants": args.variants or ["fp32"],
                    **({"calibration": args.calibration} if args.calibration else {}),
                    **({"eval": args.eval} if args.eval else {})}],
    }
    for key in ("devices", "delegates", "threads", "repeats", "runs", "warmup_runs", "min_secs"):
        if getattr(args, key) is not None:
            raw[key] = getattr(args, key)
    return parse_spec(raw, "command line").resolve(Path.cwd()), "command line"


def run_and_report(store, sweep) -> int:
    """Run a recorded sweep with a live display, print its results; 0 when every job ran, 1 when some failed."""
    from farm.progress import SweepDisplay, make_console, results_table
    from farm.sweep import run_sweep

    console = make_console()
    counts = store.counts(sweep.id)
    try:
        with SweepDisplay(sweep.name, counts, console) as display:
            runner = run_sweep(store, sweep, display.notify)
    except KeyboardInterrupt:
        print(f"farm: interrupted; continue with: farm sweep resume {sweep.name}", file=sys.stderr)
        return 130
    console.print(results_table(store.report(sweep.id), f"sweep {sweep.name}"))
    counts = runner.counts
    uploaded = sum(runner.bytes_uploaded.values())
    console.print(f"sweep {sweep.name}: " + ", ".join(f"{n} {state}" for state, n in counts.items() if n)
                  + f"; {uploaded} bytes uploaded to devices", markup=False, highlight=False)
    return 0 if counts["failed"] == 0 else 1


def run(args) -> int:
    from farm.store import Store
    from farm.sweep import create_sweep

    spec, where = spec_from_args(args)
    store = Store(args.db)
    sweep = create_sweep(store, spec, where, name=args.name if args.spec else None)
    print(f"sweep {sweep.name}: {sum(store.counts(sweep.id).values())} jobs recorded in {args.db}")
    return run_and_report(store, sweep)


def resume(args) -> int:
    from farm.store import Store

    store = Store(args.db, create=False)
    sweep = store.sweep(args.sweep)
    return run_and_report(store, sweep)


def status(args) -> int:
    from farm.progress import add_plain_row, make_console, plain_table

    from farm.store import Store

    store = Store(args.db, create=False)
    sweeps = [store.sweep(args.sweep)] if args.sweep else store.sweeps()
    table = plain_table(f"sweeps in {args.db}", title_justify="left")
    for column in ("sweep", "state", "created", "pending", "running", "done", "failed", "skipped"):
        table.add_column(column)
    for sweep in sweeps:
        counts = store.counts(sweep.id)
        add_plain_row(table, sweep.name, sweep.state, f"{sweep.created:%Y-%m-%d %H:%M}",
                      *(str(counts[s]) for s in ("pending", "running", "done", "failed", "skipped")))
    console = make_console()
    console.print(table)
    if args.sweep:
        for row in store.report(sweeps[0].id):
            if row["status"] in ("failed", "skipped"):
                console.print(f"  {row['status']}: {row['device']} {row['model']} {row['variant']} {row['delegate']} "
                              f"t{row['threads']}: {row['error']}", markup=False, highlight=False, soft_wrap=True)
    return 0
