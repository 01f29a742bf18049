"""A shared lab under load: 3 coordinators at once, each running 3 sweeps one after another, over this machine and
4 real SSH boards (the test fleet, tests/fleet), all in one store; on SQLite and on PostgreSQL (a private cluster,
tests/postgres). Prints, per backend:
  * overlaps: pairs of jobs that ran on one device at the same time (from the stored [started, finished]; must be 0)
  * results per job (must be exactly 1 for every job)
  * lease waits: how long a lane waited for its device's lease, p50 and p90 over every lane of every sweep
  * makespan / busiest device's summed job time (1.0 = the farm was kept busy with no gap on its busiest device)

    .venv/bin/python benchmarks/shared_lab.py [--runs N] [--min-secs S] [--backends sqlite,postgresql]
"""
from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from fleet import start_fleet  # noqa: E402  (the real sshd fleet of the test suite)
from phone.models import tiny_mlp  # noqa: E402  (a small real .tflite, written without TensorFlow)
from postgres import Cluster  # noqa: E402

from farm.inventory import load_inventory  # noqa: E402
from farm.plan import load_spec  # noqa: E402
from farm.run import SweepRunner  # noqa: E402
from farm.store import Store  # noqa: E402
from farm.sweep import create_sweep  # noqa: E402

COORDINATORS, SWEEPS = 3, 3


def coordinator(db: str, spec_path: str, name: str, waits) -> None:
    """One coordinator process: its sweeps one after another; each lane's wait for its lease goes to `waits`."""
    hold = SweepRunner._hold

    async def timed_hold(self, device, jobs):
        start = time.perf_counter()
        held = await hold(self, device, jobs)
        waits.put((device.name, time.perf_counter() - start))
        return held

    SweepRunner._hold = timed_hold  # measured where it happens: the lane's own wait for the lease
    store = Store(db)
    spec = load_spec(spec_path)
    devices = {d.name: d for d in load_inventory(*spec.inventory).devices}
    for index in range(SWEEPS):
        sweep = create_sweep(store, spec, spec_path, name=f"{name}-{index}", log=lambda line: None)
        asyncio.run(SweepRunner(store, sweep, spec, devices).run())


def as_time(value) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(value)  # SQLite hands back text


def measure(db: str, spec_path: Path) -> dict:
    waits = multiprocessing.Queue()
    start = time.perf_counter()
    processes = [multiprocessing.Process(target=coordinator, args=(db, str(spec_path), f"c{i}", waits))
                 for i in range(COORDINATORS)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=1800)
        if process.exitcode != 0:
            raise SystemExit(f"a coordinator failed (exit {process.exitcode})")
    makespan = time.perf_counter() - start
    lane_waits = []
    while not waits.empty():
        lane_waits.append(waits.get()[1])

    store = Store(db)
    with store.session() as session:
        from sqlalchemy import text

        rows = session.execute(text("SELECT j.device, j.started, j.finished, j.state, count(r.id) FROM jobs j "
                                    "LEFT JOIN results r ON r.job_id = j.id "
                                    "GROUP BY j.id, j.device, j.started, j.finished, j.state")).all()
    store.engine.dispose()
    spans: dict[str, list[tuple[datetime, datetime]]] = {}
    for device, started, finished, state, _ in rows:
        spans.setdefault(device, []).append((as_time(started), as_time(finished)))
    overlaps = 0
    for device_spans in spans.values():
        device_spans.sort()
        overlaps += sum(1 for (_, end), (begin, _) in zip(device_spans, device_spans[1:]) if begin < end)
    busy = {device: sum((end - begin).total_seconds() for begin, end in device_spans)
            for device, device_spans in spans.items()}
    lane_waits.sort()
    return {"jobs": len(rows), "not done": sum(1 for *_, state, _ in rows if state != "done"),
            "results per job": sorted({n for *_, n in rows}), "overlaps": overlaps,
            "wait p50": statistics.median(lane_waits), "wait p90": lane_waits[int(0.9 * (len(lane_waits) - 1))],
            "lanes": len(lane_waits), "makespan": makespan, "busiest": max(busy.values()),
            "busiest device": max(busy, key=busy.get)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="measured runs per job")
    parser.add_argument("--min-secs", type=float, default=0.3, help="each job measures at least this long")
    parser.add_argument("--backends", default="sqlite,postgresql")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="shared-lab-bench-") as tmp:
        tmp = Path(tmp)
        model = tiny_mlp(tmp / "tiny_mlp.tflite")
        fleet = start_fleet(4, tmp / "fleet")
        cluster = Cluster().start() if "postgresql" in args.backends else None
        try:
            devices = [h.device(python=sys.executable, delegates=["xnnpack"]) for h in fleet]
            devices.append({"name": "local", "kind": "local", "delegates": ["xnnpack"]})
            (tmp / "lab.yaml").write_text(yaml.safe_dump({"devices": devices}))
            spec = tmp / "sweep.yaml"
            spec.write_text(yaml.safe_dump({"name": "lab", "inventory": [str(tmp / "lab.yaml")],
                                            "models": [{"source": str(model)}], "threads": [1, 2],
                                            "runs": args.runs, "warmup_runs": 2, "min_secs": args.min_secs}))
            results = {}
            for backend in args.backends.split(","):
                db = str(tmp / "farm.db") if backend == "sqlite" else cluster.new_database()
                print(f"{backend}: {COORDINATORS} coordinators × {SWEEPS} sweeps × {len(devices)} devices ...",
                      file=sys.stderr)
                results[backend] = measure(db, spec)
        finally:
            fleet.stop()
            if cluster is not None:
                cluster.stop()

    for backend, r in results.items():
        print(f"{backend}: {r['jobs']} jobs ({r['not done']} not done), results per job {r['results per job']}, "
              f"overlaps {r['overlaps']} (must be 0)")
        print(f"  lease wait over {r['lanes']} lanes: p50 {r['wait p50']:.2f} s, p90 {r['wait p90']:.2f} s")
        print(f"  makespan {r['makespan']:.1f} s / busiest device's summed job time {r['busiest']:.1f} s "
              f"({r['busiest device']}) = {r['makespan'] / r['busiest']:.3f}")


if __name__ == "__main__":
    main()
