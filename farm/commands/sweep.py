"""`farm sweep`: run, resume and follow sweeps."""
from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

from farm import hints
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
                    **({"eval": args.eval} if args.eval else {}),
                    **({"train": args.train} if args.train else {}),
                    **({"static_shapes": True} if args.static_shapes else {})}],
    }
    for key in ("devices", "delegates", "threads", "repeats", "runs", "warmup_runs", "min_secs"):
        if getattr(args, key) is not None:
            raw[key] = getattr(args, key)
    if args.profile:
        raw["profile"] = True
    return parse_spec(raw, "command line").resolve(Path.cwd()), "command line"


def exit_code(counts: dict[str, int]) -> int:
    """A sweep's exit code from its job counts alone, so `run` and `resume` agree: 0 when every job ran (or was
    skipped, with its reason), 1 when some failed or are still to run."""
    return 0 if counts["failed"] == counts["pending"] == counts["running"] == 0 else 1


def answer_interrupts() -> None:
    """SIGINT raises KeyboardInterrupt, as in a terminal, even when farm was started with it ignored."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def run_and_report(store, sweep, wait: bool = True, as_json: bool = False, db: str | None = None) -> int:
    """Run a recorded sweep with a live display, print its results; exit_code() of its final state, 130 when
    interrupted (Ctrl-C or SIGTERM: the running jobs go back to pending, the sweep is `interrupted`). With `as_json`,
    the display goes to stderr and stdout gets one JSON summary, for CI. `db`: the store as hints should name it."""
    from farm.progress import SweepDisplay, make_console, problems, results_table
    from farm.report import configurations
    from farm.sweep import run_sweep

    store_option = {"db": db} if db else {}
    console = make_console(stderr=as_json)
    counts = store.counts(sweep.id)
    # SIGTERM (a CI runner cancelling, `kill`) ends the sweep the way Ctrl-C does, state kept true. A shell starts a
    # background job (`farm sweep run … &` in a script) with SIGINT ignored: farm answers it all the same.
    answer_interrupts()
    previous = signal.signal(signal.SIGTERM, lambda *_: os.kill(os.getpid(), signal.SIGINT))
    try:
        with SweepDisplay(sweep.name, counts, console) as display:
            runner = run_sweep(store, sweep, display.notify, wait)
    except KeyboardInterrupt:
        requeued = store.requeue_running(sweep.id)
        store.set_sweep_state(sweep.id, "interrupted")
        print(f"farm: interrupted; {requeued} running job{'s' * (requeued != 1)} back to pending; continue with: "
              f"{hints.command('sweep resume', sweep.name, **store_option)}", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    rows = configurations(store, sweep.id)
    counts = runner.counts
    code = exit_code(counts)
    uploaded = sum(runner.bytes_uploaded.values())
    if as_json:
        print(json.dumps({"sweep": sweep.name, "store": store.url, "exit_code": code, "counts": counts,
                          "bytes_uploaded": uploaded, "configurations": rows}, indent=2))
        return code
    console.print(results_table(rows, f"sweep {sweep.name}"))
    for line in problems(rows):
        console.print(line, markup=False, highlight=False, soft_wrap=True)
    console.print(f"sweep {sweep.name}: " + ", ".join(f"{n} {state}" for state, n in counts.items() if n)
                  + f"; {uploaded} bytes uploaded to devices", markup=False, highlight=False)
    if counts["failed"]:
        console.print(f"once their cause is fixed, run the failed jobs again with: "
                      f"{hints.command('sweep resume', sweep.name, '--retry-failed', **store_option)}",
                      markup=False, highlight=False, soft_wrap=True)
    return code


def run(args) -> int:
    from farm.store import Store
    from farm.sweep import create_sweep

    def say(line: str) -> None:  # on stderr when stdout is the JSON summary; at once, as progress (a pipe buffers)
        print(line, file=sys.stderr if args.json else sys.stdout, flush=True)

    spec, where = spec_from_args(args)
    store = Store(args.db)
    sweep = create_sweep(store, spec, where, name=args.name if args.spec else None, log=say)
    say(f"sweep {sweep.name}: {sum(store.counts(sweep.id).values())} jobs recorded in {hints.without_password(args.db)}")
    return run_and_report(store, sweep, args.wait, args.json)


def resume(args) -> int:
    from farm.store import Store

    store = Store(args.db, create=False)
    sweep = store.sweep(args.sweep)
    if args.retry_failed:
        retried = store.retry_failed(sweep.id)
        print(f"sweep {sweep.name}: {retried} failed job{'s' * (retried != 1)} back to pending (each keeps its "
              "failure in its history)", file=sys.stderr if args.json else sys.stdout)
    return run_and_report(store, sweep, args.wait, args.json)


def status(args) -> int:
    from farm.leases import Leases, sweep_lease
    from farm.progress import add_plain_row, make_console, plain_table
    from farm.store import Store

    store = Store(args.db, create=False)
    sweeps = [store.sweep(args.sweep)] if args.sweep else store.sweeps()
    with Leases(store, "status") as leases:
        held = leases.held()
    table = plain_table(f"sweeps in {hints.without_password(args.db)}", title_justify="left")
    for column in ("sweep", "state", "created", "pending", "running", "done", "failed", "skipped", "driven by"):
        table.add_column(column)
    rows = []
    for sweep in sweeps:
        counts = store.counts(sweep.id)
        driver = held.get(sweep_lease(sweep.name))
        # A sweep is running only while a live coordinator drives it; else it was interrupted (its driver died), and
        # the jobs it left `running` are pending: nothing runs them, and resume starts them again.
        state = "interrupted" if sweep.state == "running" and driver is None else sweep.state
        if driver is None:
            counts["pending"], counts["running"] = counts["pending"] + counts["running"], 0
        rows.append((sweep.name, state, counts))
        add_plain_row(table, sweep.name, state, f"{sweep.created:%Y-%m-%d %H:%M}",
                      *(str(counts[s]) for s in ("pending", "running", "done", "failed", "skipped")),
                      f"pid {driver.pid} on {driver.host}" if driver else "-")
    if args.json:
        print(json.dumps({
            "sweeps": [{"sweep": sweep.name, "state": state, "created": sweep.created.isoformat(),
                        "counts": counts, "driven_by": _holder(held.get(sweep_lease(sweep.name)))}
                       for sweep, (_, state, counts) in zip(sweeps, rows)],
            "devices_held": {name.removeprefix("device:"): _holder(holder)
                             for name, holder in sorted(held.items()) if name.startswith("device:")}}, indent=2))
        return 0
    console = make_console()
    console.print(table)
    for name, holder in sorted(held.items()):
        if name.startswith("device:"):
            console.print(f"{name.removeprefix('device:')}: held by {holder}", markup=False, highlight=False)
    if args.sweep:
        for row in store.report(sweeps[0].id):
            if row["status"] in ("failed", "skipped"):
                console.print(f"  {row['status']}: {row['device']} {row['model']} {row['variant']} {row['delegate']} "
                              f"t{row['threads']}: {row['error']}", markup=False, highlight=False, soft_wrap=True)
    return 0


def _holder(holder) -> dict | None:
    return None if holder is None else {"sweep": holder.sweep, "pid": holder.pid, "host": holder.host,
                                        "since": holder.since.isoformat()}
