"""How well the scheduler fills a farm, and what the coordinator costs per job, over real SSH.

Starts the test fleet (4 real OpenSSH servers on loopback, tests/fleet) plus this machine as a local device, sweeps the
digits CNN over all five, twice (the second time with warm caches: the agent and models already on every board), and
prints, for the warm sweeps (their median):
  * lane efficiency: the sweep's wall time / the busiest device's summed job time (1.0 = the sweep took exactly as long
    as its longest lane; target <= 1.05). Each job samples for --secs (1 s by default: min_secs), 36 jobs a device
    (fp32, fp16, int8 x xnnpack, none x 1 and 2 threads x --repeats 3), so a lane's one-time start (connecting,
    its probe, which starts its warm agent) is weighed against a sweep of realistic length; that start, the gaps
    between jobs and the lanes' tails are printed too.
  * the coordinator's overhead per job: job wall time seen by the coordinator minus the agent's own run time on the
    board (counted from the fork of the job's process by the warm agent), as p50 and p90
  * the bytes uploaded by each sweep (the warm one must upload 0)

    .venv/bin/python benchmarks/ssh_fleet_sweep.py [--secs S] [--rounds R]
"""
from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from fleet import start_fleet  # noqa: E402  (the real sshd fleet of the test suite)

from farm.demo import build_digits  # noqa: E402
from farm.inventory import load_inventory  # noqa: E402
from farm.plan import load_spec  # noqa: E402
from farm.run import SweepRunner  # noqa: E402
from farm.store import Store  # noqa: E402
from farm.sweep import create_sweep  # noqa: E402


def sweep_once(store: Store, spec_path: Path, name: str) -> tuple[float, SweepRunner, int, dict[str, list]]:
    """Run a sweep; its wall time, runner, id, and per device the times (from the sweep's start) of its jobs' starts
    and ends, as the progress display is told them."""
    spec = load_spec(spec_path)
    sweep = create_sweep(store, spec, str(spec_path), name=name, log=lambda line: None)
    devices = {d.name: d for d in load_inventory(*spec.inventory).devices}
    events: dict[str, list] = {}
    start = time.perf_counter()

    def notify(event):
        if event.state in ("running", "done", "failed"):
            events.setdefault(event.device, []).append((time.perf_counter() - start, event.state))

    runner = SweepRunner(store, sweep, spec, devices, notify=notify)
    asyncio.run(runner.run())
    return time.perf_counter() - start, runner, sweep.id, events


def lane_times(wall: float, events: dict[str, list]) -> tuple[list[float], list[float], list[float]]:
    """Per lane: its start (the sweep's start to its first job: connecting, the probe and the agent's start), the gaps
    between one job's end and the next one's start, and its tail (its last job's end to the sweep's end)."""
    starts, gaps, tails = [], [], []
    for times in events.values():
        starts.append(times[0][0])
        tails.append(wall - times[-1][0])
        gaps += [later[0] - earlier[0] for earlier, later in zip(times, times[1:])
                 if earlier[1] != "running" and later[1] == "running"]
    return starts, gaps, tails


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--secs", type=float, default=1.0, help="how long each job samples (its min_secs)")
    parser.add_argument("--repeats", type=int, default=3, help="repeats of each of the 12 jobs on every device")
    parser.add_argument("--rounds", type=int, default=3, help="warm sweeps to take the median of")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="ssh-fleet-bench-") as tmp:
        tmp = Path(tmp)
        build_digits(tmp / "digits")
        fleet = start_fleet(4, tmp / "fleet")
        try:
            devices = [h.device(python=sys.executable, delegates=["xnnpack", "none"]) for h in fleet]
            devices.append({"name": "local", "kind": "local", "delegates": ["xnnpack", "none"]})
            (tmp / "lab.yaml").write_text(yaml.safe_dump({"devices": devices}))
            (tmp / "sweep.yaml").write_text(yaml.safe_dump({
                "name": "bench",
                "inventory": [str(tmp / "lab.yaml")],
                "models": [{"name": "digits", "source": str(tmp / "digits" / "digits.keras"),
                            "variants": ["fp32", "fp16", "int8"],
                            "calibration": str(tmp / "digits" / "digits_calib.npz"),
                            "eval": str(tmp / "digits" / "digits_eval.npz")}],
                "delegates": ["xnnpack", "none"],
                "threads": [1, 2],
                "repeats": args.repeats,
                "runs": 10,
                "min_secs": args.secs,
            }))
            store = Store(tmp / "farm.db")
            cold_wall, cold, _, _ = sweep_once(store, tmp / "sweep.yaml", "cold")
            print(f"cold sweep: {cold_wall:.2f} s, {sum(cold.bytes_uploaded.values())} bytes uploaded, "
                  f"jobs {cold.counts}")
            efficiencies, overheads, uploaded, starts, gaps, tails = [], [], [], [], [], []
            for round_ in range(args.rounds):
                wall, runner, sweep_id, events = sweep_once(store, tmp / "sweep.yaml", f"warm-{round_}")
                for found, times in zip((starts, gaps, tails), lane_times(wall, events)):
                    found += times
                rows = [r for r in store.report(sweep_id) if r["status"] == "done"]
                lanes: dict[str, float] = {}
                for row in rows:
                    lanes[row["device"]] = lanes.get(row["device"], 0.0) + row["wall_ms"] / 1000
                with store.session() as session:
                    from sqlalchemy import text

                    pairs = session.execute(text(
                        "SELECT r.wall_ms, r.agent_ms FROM results r JOIN jobs j ON j.id = r.job_id "
                        "WHERE j.sweep_id = :s AND j.device != 'local'"), {"s": sweep_id}).all()
                overheads.extend(wall_ms - agent_ms for wall_ms, agent_ms in pairs)
                busiest = max(lanes.values())
                efficiencies.append(wall / busiest)
                uploaded.append(sum(runner.bytes_uploaded.values()))
                print(f"warm sweep {round_ + 1}: wall {wall:.2f} s, busiest lane {busiest:.2f} s "
                      f"({max(lanes, key=lanes.get)}), ratio {wall / busiest:.3f}, {len(rows)} jobs done, "
                      f"{uploaded[-1]} bytes uploaded")
        finally:
            fleet.stop()

    overheads.sort()
    p90 = overheads[int(0.9 * (len(overheads) - 1))]
    print()
    print(f"lane efficiency (sweep wall / busiest device's summed job time), median of {args.rounds}: "
          f"{statistics.median(efficiencies):.3f}  (target <= 1.05)")
    print(f"coordinator overhead per SSH job, warm caches ({len(overheads)} jobs): "
          f"p50 {statistics.median(overheads):.1f} ms, p90 {p90:.1f} ms")
    print(f"where a lane's time outside its jobs goes, p50: its start {statistics.median(starts):.2f} s (connecting, the "
          f"probe, the agent's start; five devices at once on this machine's cores), between jobs "
          f"{statistics.median(gaps) * 1000:.1f} ms, its tail {statistics.median(tails):.2f} s")
    print(f"bytes uploaded by the warm sweeps: {uploaded}  (target 0)")


if __name__ == "__main__":
    main()
