"""`farm demo`: two small real models, trained, converted and benchmarked on this machine."""
from __future__ import annotations

from pathlib import Path

import yaml

from farm import hints
from farm.commands.sweep import run_and_report


def demo(args) -> int:
    return run_demo(Path(args.workdir), db=args.db, reports=Path(args.out) if args.out else None, runs=args.runs)


def run_demo(workdir: Path, db: str | None = None, reports: Path | None = None, runs: int = 50) -> int:
    """Build, convert and benchmark the demo models into `workdir`: models in demo/, the store farm.db, CSVs in reports/."""
    from farm.demo import build_digits, build_mobilenet, demo_spec
    from farm.export import export_per_device
    from farm.plan import load_spec
    from farm.store import Store
    from farm.sweep import create_sweep

    workdir = workdir.resolve()
    models = workdir / "demo"
    db = db or str(workdir / "farm.db")
    reports = reports or workdir / "reports"
    print(f"demo: building models in {models} (trained once, then reused)")
    build_digits(models)
    build_mobilenet(models)
    spec_path = models / "sweep.yaml"
    spec_path.write_text(yaml.safe_dump(demo_spec(models, runs), sort_keys=False))
    print(f"demo: sweep spec written to {spec_path}")
    store = Store(db)
    sweep = create_sweep(store, load_spec(spec_path), str(spec_path))
    run_and_report(store, sweep, db=db)
    for path in export_per_device(store, sweep.name, reports):
        print(f"demo: wrote {path}")
    counts = store.counts(sweep.id)
    if counts["failed"]:
        # Failed jobs are findings here (e.g. XNNPACK takes no node of a 16x8 model), not a broken demo.
        print(f"demo: {counts['failed']} jobs failed, each with its reason: "
              f"{hints.command('sweep status', sweep.name, db=db)}")
    return 0 if counts["pending"] == counts["running"] == 0 else 1
