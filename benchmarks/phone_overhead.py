"""What a phone job costs beyond the benchmark itself, and where the coordinator's time per job goes.

Uses the suite's simulated phones (tests/phone: TEST CODE that speaks the real ADB protocol to a real adb server on
loopback; no emulator runs here) with the stand-in benchmark_model, and the demo's digits CNN (fp32 and int8, with an
eval set). The sweep runs once with cold caches (binary, models and eval inputs pushed), then again warm, and for the
warm sweep it prints:
  * the per-job overhead: the job's wall time as the coordinator saw it (results.wall_ms) minus the work
    benchmark_model reported (init + warm-up runs, the first inference among them, + measured runs), p50 and p90;
    and the same without the eval step (one benchmark_model run per eval sample on the phone, outputs pulled)
  * where the time per job goes, from the transports' own accounting (AdbTransport.seconds and .round_trips): staging
    (sha checks, pushes), battery and thermal reads, the benchmark run (its shell call), the eval runs, pulling the
    eval outputs, and the coordinator's own rest; mean ms and adb round trips per job

The stand-in is a Python script that imports LiteRT: its start-up (hundreds of ms, where a real benchmark_model binary
takes a few) is in the benchmark run's time but not in the work it reports.

    .venv/bin/python benchmarks/phone_overhead.py [--repeats N] [--eval-limit N]
"""
from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from phone.fixtures import PHONES  # noqa: E402  (the simulated phones of the test suite)
from phone.phone import Lab, write_benchmark_model  # noqa: E402

from farm.benchmark_model import parse_benchmark_model  # noqa: E402
from farm.inventory import load_inventory  # noqa: E402
from farm.plan import load_spec  # noqa: E402
from farm.run import SweepRunner  # noqa: E402
from farm.store import Store  # noqa: E402
from farm.sweep import create_sweep  # noqa: E402
from farm.transports.adb import AdbTransport  # noqa: E402

# Per-job phases, in a job's order; probe and governor are per lane, not per job.
PHASES = (("stage", "staging: sha checks, pushes"), ("environment", "battery and thermal reads"),
          ("run", "benchmark run (shell call)"), ("eval", "eval runs (shell loop)"), ("pull", "eval outputs pulled"))


def tool_work_ms(stdout: str, stderr: str, exit_code: int) -> float:
    """The work benchmark_model reports: init, every warm-up run (the first inference is the first of them), and
    every measured run."""
    log = parse_benchmark_model(stdout, stderr, exit_code)
    counts = [int(n) for n in re.findall(r"^INFO: count=(\d+)", stdout, re.M)]
    warmups = counts[0] if len(counts) > 1 else 0  # the warm-up loop's count= line comes before the measured one's
    return (log.init_ms or 0.0) + warmups * (log.warmup_avg_ms or 0.0) + (log.count or 0) * log.mean_ms


class MeasuredPhone(AdbTransport):
    """The phone's transport, noting each job's reported work and eval step time in the order the lane runs them."""

    def __init__(self, device):
        super().__init__(device)
        self.work_ms: list[float] = []
        self.eval_ms: list[float] = []

    async def run_job(self, job):
        raw = await super().run_job(job)
        self.work_ms.append(tool_work_ms(raw.stdout, raw.stderr, raw.exit_code))
        return raw

    async def eval_predictions(self, job):
        start = time.perf_counter()
        try:
            return await super().eval_predictions(job)
        finally:
            self.eval_ms.append((time.perf_counter() - start) * 1000)


def sweep(store: Store, spec_path: Path, name: str) -> tuple[list[MeasuredPhone], int, float]:
    spec = load_spec(spec_path)
    created = create_sweep(store, spec, str(spec_path), name=name, log=lambda line: None)
    transports: list[MeasuredPhone] = []

    def transport_for(device):
        transports.append(MeasuredPhone(device))
        return transports[-1]

    runner = SweepRunner(store, created, spec, {d.name: d for d in load_inventory(*spec.inventory).devices},
                         transport_for=transport_for)
    start = time.perf_counter()
    asyncio.run(runner.run())
    if any(count for state, count in runner.counts.items() if state != "done"):
        raise SystemExit(f"sweep {name}: not every job is done: {runner.counts}")
    return transports, created.id, time.perf_counter() - start


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[int(fraction * (len(ordered) - 1))]


def report(store: Store, sweep_id: int, transports: list[MeasuredPhone]) -> None:
    from sqlalchemy import text

    overheads, outside_eval, walls = [], [], []
    for transport in transports:
        with store.session() as session:
            wall = [w for (w,) in session.execute(text(
                "SELECT r.wall_ms FROM results r JOIN jobs j ON j.id = r.job_id "
                "WHERE j.sweep_id = :s AND j.device = :d ORDER BY r.id"), {"s": sweep_id, "d": transport.device.name})]
        if not len(wall) == len(transport.work_ms) == len(transport.eval_ms):
            raise SystemExit(f"{transport.device.name}: {len(wall)} results for {len(transport.work_ms)} runs")
        walls += wall
        overheads += [w - work for w, work in zip(wall, transport.work_ms)]
        outside_eval += [w - work - e for w, work, e in zip(wall, transport.work_ms, transport.eval_ms)]
    jobs = len(walls)
    work = sum(w for t in transports for w in t.work_ms) / jobs

    def per_job(attribute: str, phase: str) -> float:
        return sum(getattr(t, attribute).get(phase, 0) for t in transports) / jobs

    print(f"phone per-job overhead ({jobs} jobs): p50 {statistics.median(overheads):.0f} ms, "
          f"p90 {percentile(overheads, 0.9):.0f} ms")
    print(f"  without the eval step: p50 {statistics.median(outside_eval):.0f} ms, "
          f"p90 {percentile(outside_eval, 0.9):.0f} ms")
    print(f"  job wall time: mean {statistics.mean(walls):.0f} ms, of which benchmark_model reported {work:.0f} ms")
    print()
    print(f"{'phase':<34} {'ms/job':>8} {'round trips/job':>16}")
    phased = 0.0
    for phase, label in PHASES:
        ms = per_job("seconds", phase) * 1000
        phased += ms
        print(f"{label:<34} {ms:>8.1f} {per_job('round_trips', phase):>16.2f}")
    print(f"{'coordinator (the rest of the wall)':<34} {statistics.mean(walls) - phased:>8.1f} {'':>16}")
    trips = sum(per_job("round_trips", phase) for phase, _ in PHASES)
    print(f"{'total':<34} {statistics.mean(walls):>8.1f} {trips:>16.2f}")
    if not per_job("round_trips", "environment"):
        print("(the battery and thermal reads ride in the benchmark run's shell call)")
    lanes = len(transports)
    print(f"per lane, not per job: probe {sum(t.seconds.get('probe', 0) for t in transports) / lanes * 1000:.0f} ms, "
          f"{sum(t.round_trips.get('probe', 0) for t in transports) / lanes:.0f} round trips")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="repeats of each variant on each phone")
    parser.add_argument("--eval-limit", type=int, default=3, help="eval samples per job (one run on the phone each)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="phone-overhead-") as tmp:
        tmp = Path(tmp)
        from farm.demo import build_digits

        build_digits(tmp / "digits")
        binary = write_benchmark_model(tmp / "benchmark_model")
        lab = Lab(tmp / "lab").start()
        try:
            phones = [lab.add_phone(name, **options) for name, options in PHONES.items()]
            devices = [{"name": p.name, "kind": "android", "serial": p.serial, "adb_server": f"127.0.0.1:{lab.port}",
                        "binaries": {"arm64-v8a": str(binary)}, "delegates": ["xnnpack"]} for p in phones]
            (tmp / "phones.yaml").write_text(yaml.safe_dump({"devices": devices}))
            (tmp / "sweep.yaml").write_text(yaml.safe_dump({
                "name": "overhead", "inventory": [str(tmp / "phones.yaml")],
                "models": [{"name": "digits", "source": str(tmp / "digits" / "digits.keras"),
                            "variants": ["fp32", "int8"], "calibration": str(tmp / "digits" / "digits_calib.npz"),
                            "eval": str(tmp / "digits" / "digits_eval.npz")}],
                "delegates": ["xnnpack"], "runs": 20, "warmup_runs": 2, "repeats": args.repeats,
                "eval_limit": args.eval_limit}))
            store = Store(tmp / "farm.db")
            _, _, cold = sweep(store, tmp / "sweep.yaml", "cold")
            transports, sweep_id, warm = sweep(store, tmp / "sweep.yaml", "warm")
            print(f"cold sweep {cold:.1f} s, warm sweep {warm:.1f} s ({len(transports)} phones)")
            report(store, sweep_id, transports)
        finally:
            lab.stop()


if __name__ == "__main__":
    main()
