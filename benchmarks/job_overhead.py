"""What a job costs beyond the benchmark itself, as the user waits for it: per-job overhead on this machine and on SSH
boards.

A job's overhead is its wall time as the coordinator saw it (results.wall_ms: from handing the job to the transport to
having its reply) minus the work the agent measured: init + first inference + warmup runs + measured runs. It is what
the coordinator, the transport and the agent's own start add to every job.

Starts the test fleet (real OpenSSH servers on loopback, tests/fleet), converts the demo's digits CNN, and sweeps fp32
and int8 with xnnpack and none, REPEATS times each: on this machine alone, then on one SSH board alone (a real board
has CPUs of its own; here a board shares this machine's two cores with the coordinator, so one at a time is the fair
case), then on four boards and this machine at once (five lanes on two cores: contention included, for information).
Each is swept once to upload (cold), then ROUNDS times warm, whose jobs are measured. Prints each case's overhead p50
and p90 (target: p50 <= 30 ms on this machine and on a board), then, side by side on this machine, what the same job
cost when each job started a fresh agent process (the one-shot agent, `python litert_agent.py < request`), and the
agent's start, which a device pays once per sweep, with its probe.

    .venv/bin/python benchmarks/job_overhead.py [--repeats N] [--rounds R]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from fleet import start_fleet  # noqa: E402  (the real sshd fleet of the test suite)

from farm import AGENT_PATH  # noqa: E402
from farm.demo import build_digits  # noqa: E402
from farm.inventory import load_inventory  # noqa: E402
from farm.plan import load_spec  # noqa: E402
from farm.run import SweepRunner  # noqa: E402
from farm.store import Store  # noqa: E402
from farm.sweep import create_sweep  # noqa: E402
from farm.transports import open_transport  # noqa: E402

WARMUP, RUNS = 5, 20


def sweep(store: Store, spec_path: Path, name: str) -> int:
    spec = load_spec(spec_path)
    created = create_sweep(store, spec, str(spec_path), name=name, log=lambda line: None)
    devices = {d.name: d for d in load_inventory(*spec.inventory).devices}
    asyncio.run(SweepRunner(store, created, spec, devices).run())
    return created.id


def overheads(store: Store, sweep_id: int) -> list[float]:
    """Each done job's wall time minus the work the agent measured, in ms."""
    rows = [row for row in store.report(sweep_id) if row["status"] == "done"]
    samples = store.samples_of([row["result_id"] for row in rows])
    return [row["wall_ms"] - (row["init_ms"] + row["first_ms"] + row["warmup_ms"] * WARMUP
                              + sum(samples[row["result_id"]]) / 1000) for row in rows]


def one_shot(model: str, rounds: int) -> list[float]:
    """The same job's overhead with a fresh agent process per job, as jobs ran before the warm agent."""
    request = json.dumps({"model": model, "delegate": "xnnpack", "runs": RUNS, "warmup_runs": WARMUP}).encode()
    found = []
    for _ in range(rounds):
        start = time.perf_counter()
        reply = json.loads(subprocess.run([sys.executable, str(AGENT_PATH)], input=request, capture_output=True,
                                          check=True).stdout)
        wall = (time.perf_counter() - start) * 1000
        work = reply["init_ms"] + reply["first_ms"] + sum(reply["warmup_ms"]) + sum(reply["samples_us"]) / 1000
        found.append(wall - work)
    return found


def agent_starts(inventory: Path, rounds: int) -> dict[str, list[float]]:
    """How long a device's probe takes, which starts its warm agent: paid once per device per sweep."""
    found: dict[str, list[float]] = {"local": [], "ssh": []}

    async def probe(device):
        transport = open_transport(device)
        try:
            start = time.perf_counter()
            await transport.probe()
            return (time.perf_counter() - start) * 1000
        finally:
            await transport.close()

    for _ in range(rounds):
        for device in load_inventory(inventory).devices:
            found["local" if device.kind == "local" else "ssh"].append(asyncio.run(probe(device)))
    return found


def p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[round(q * (len(ordered) - 1))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="repeats of each variant x delegate per sweep")
    parser.add_argument("--rounds", type=int, default=2, help="warm sweeps to measure")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="job-overhead-") as tmp:
        tmp = Path(tmp)
        build_digits(tmp / "digits")
        fleet = start_fleet(4, tmp / "fleet")
        try:
            here = {"name": "local", "kind": "local", "delegates": ["xnnpack", "none"]}
            boards = [h.device(python=sys.executable, delegates=["xnnpack", "none"]) for h in fleet]
            cases = {"this machine alone": [here], "one SSH board alone": boards[:1],
                     "4 boards + this machine at once": boards + [here]}
            store = Store(tmp / "farm.db")
            measured: dict[str, list[float]] = {}
            for index, (case, devices) in enumerate(cases.items()):
                inventory = tmp / f"lab-{index}.yaml"
                inventory.write_text(yaml.safe_dump({"devices": devices}))
                spec = tmp / f"sweep-{index}.yaml"
                spec.write_text(yaml.safe_dump({
                    "name": "overhead", "inventory": [str(inventory)],
                    "models": [{"name": "digits", "source": str(tmp / "digits" / "digits.keras"),
                                "variants": ["fp32", "int8"],
                                "calibration": str(tmp / "digits" / "digits_calib.npz")}],
                    "delegates": ["xnnpack", "none"], "threads": [1], "repeats": args.repeats,
                    "runs": RUNS, "warmup_runs": WARMUP,
                }))
                sweep(store, spec, f"cold-{index}")
                measured[case] = [value for round_ in range(args.rounds)
                                  for value in overheads(store, sweep(store, spec, f"warm-{index}-{round_}"))]
            fp32 = next(job for job in store.jobs(1) if store.variant_names(job.variant_id)[1] == "fp32")
            model = store.variant(fp32.variant_id).path  # in the conversion cache, which outlives this folder
            starts = agent_starts(tmp / "lab-2.yaml", 2)
        finally:
            fleet.stop()
        fresh = one_shot(model, 15)

    print(f"per-job overhead: job wall time - (init + first + warmup + runs), digits fp32/int8 x xnnpack/none, "
          f"{WARMUP} warmup + {RUNS} runs, warm caches")
    print(f"  {'case':<34} {'jobs':>5} {'p50 ms':>8} {'p90 ms':>8}")
    for case, values in measured.items():
        print(f"  {case:<34} {len(values):>5} {statistics.median(values):>8.1f} {p(values, 0.9):>8.1f}")
    print(f"  {'this machine, one-shot agent':<34} {len(fresh):>5} {statistics.median(fresh):>8.1f} "
          f"{p(fresh, 0.9):>8.1f}   (a fresh process per job, as before the warm agent)")
    local = statistics.median(measured["this machine alone"])
    print(f"warm / one-shot on this machine: {local / statistics.median(fresh):.3f}   "
          f"(target: p50 <= 30 ms on this machine and on a board)")
    print("agent start, paid once per device per sweep (its probe): "
          + ", ".join(f"{kind} p50 {statistics.median(values):.0f} ms" for kind, values in starts.items()))


if __name__ == "__main__":
    main()
