"""What a sweep's store writes cost the coordinator: N job lifecycles (start; finish with a realistic result of 50
latency samples, its environment, host facts and 100 eval predictions), written by many lanes at once in one event
loop, three ways, side by side in one run on a SQLite store:

  ORM in the loop    the store as it was before farm.writer: an ORM session, get and commit per write, called from
                     the event loop (reproduced here as it was)
  Core in the loop   Store.start_job / finish_job today: Core statements, a commit per write, called from the loop
  writer             farm.writer as the runner uses it: the lanes submit, one thread commits batches

Each way runs twice: in a burst, the lanes in lockstep (every device answers at once, as at a sweep's start), for the
cost: the time until every lifecycle is committed, and the commits made; and spread, each lane's start (its probe)
and each job's device time drawn from 0 to --device-s seconds, for what a lane feels: the longest the event loop was
blocked, as the largest gap between the ticks of a task that sleeps 1 ms (how late anything the loop runs can be).
Both while the store is free, and while
another process holds SQLite's write lock (BEGIN IMMEDIATE) for the first LOCK_S seconds, as another coordinator of a
shared store may. Medians of --repeats runs, then the ratios.

    .venv/bin/python benchmarks/store_writes.py [--jobs N] [--lanes L] [--device-s S] [--repeats R]

The defaults (2,000 jobs, 1,000 lanes, 3 repeats) take about 7 minutes on 2 cores, the ORM's runs most of it;
--jobs 400 --lanes 200 --repeats 1 takes one.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from farm.inventory import parse_device  # noqa: E402
from farm.stats import summarize  # noqa: E402
from farm.store import Store  # noqa: E402
from farm.tables import JobRow, ResultRow, SampleRow, now  # noqa: E402
from farm.writer import StoreWriter  # noqa: E402

LOCK_S = 2.0
HOLD_LOCK = ("import sqlite3, sys, time\n"
             "connection = sqlite3.connect(sys.argv[1])\n"
             "connection.execute('BEGIN IMMEDIATE')\n"
             "print('locked', flush=True)\n"
             "time.sleep(float(sys.argv[2]))\n"
             "connection.rollback()\n")


def realistic_result(_: int = 0) -> tuple[dict, list[float]]:
    """A result as farm.parse makes it from an agent's reply, with 50 samples and 100 eval predictions."""
    samples = [random.gauss(4200.0, 150.0) for _ in range(50)]
    env = {"temps_c": {"cpu-thermal": 51.2, "gpu-thermal": 49.8}, "governor": "performance", "load": [0.3, 0.2, 0.1],
           "mem_available_mb": 3120.5}
    result = {**summarize(samples), "init_ms": 35.1, "first_ms": 5.2, "warmup_ms": 4.4, "peak_mb": 61.2,
              "memory_kind": "peak_rss", "peak_delta_mb": 12.3, "delegate_outcome": "applied", "delegated_nodes": 11,
              "total_nodes": 11, "runtime": "ai_edge_litert", "runtime_version": "2.3.0",
              "env_before": json.dumps(env), "env_after": json.dumps(env),
              "host": json.dumps({"machine": "aarch64", "python": "3.11.2", "cores": 4, "board": "Raspberry Pi 4"}),
              "agent_ms": 812.0, "warnings": "[]", "wall_ms": 1020.5, "accuracy": 0.97,
              "predictions": json.dumps([random.randrange(10) for _ in range(100)])}
    return result, samples


class OrmInTheLoop:
    """The store's job writes before farm.writer, as they were: an ORM session per write, from the event loop."""

    def __init__(self, store: Store):
        self.store = store
        self.commits = 0

    async def start(self, job_id: int) -> None:
        with self.store.session() as session:
            job = session.get(JobRow, job_id)
            job.state, job.attempts, job.started = "running", job.attempts + 1, now()
        self.commits += 1

    async def finish(self, job_id: int, result: dict, samples: list[float]) -> None:
        with self.store.session() as session:
            job = session.get(JobRow, job_id)
            row = ResultRow(job_id=job_id, **result)
            session.add(row)
            session.flush()
            session.add(SampleRow(result_id=row.id, latency_us=json.dumps(samples)))
            job.state, job.error, job.finished = "done", None, now()
        self.commits += 1


class CoreInTheLoop:
    """Store.start_job and finish_job called from the event loop: a transaction and a commit each."""

    def __init__(self, store: Store):
        self.store = store
        self.commits = 0

    async def start(self, job_id: int) -> None:
        self.store.start_job(job_id)
        self.commits += 1

    async def finish(self, job_id: int, result: dict, samples: list[float]) -> None:
        self.store.finish_job(job_id, result, samples)
        self.commits += 1


class Writer:
    """farm.writer as SweepRunner uses it: a start is submitted, a result is waited for."""

    def __init__(self, store: Store):
        self.store = store
        self.writer = StoreWriter(store)

    @property
    def commits(self) -> int:
        return self.writer.commits

    async def start(self, job_id: int) -> None:
        self.writer.submit(self.store.write_start, job_id, now())

    async def finish(self, job_id: int, result: dict, samples: list[float]) -> None:
        await self.writer.wait(self.store.write_result, job_id, result, samples, None, now())


PATHS = {"ORM in the loop": OrmInTheLoop, "Core in the loop": CoreInTheLoop, "writer": Writer}


def new_store(folder: Path, jobs: int, lanes: int) -> tuple[Store, list[list[int]]]:
    """A store with one sweep of `jobs` pending jobs over `lanes` devices; each lane's job ids."""
    store = Store(folder / "farm.db")
    store.add_variant(type("Variant", (), {"model": "m", "kind": "fp32", "sha256": "a" * 64, "size": 1, "path": "/m",
                                           "source_sha": "s", "description": {}, "error": None})())
    names = [f"device{i:04d}" for i in range(lanes)]
    for name in names:
        store.upsert_device(parse_device({"name": name, "kind": "local"}))
    sweep = store.create_sweep("s", {}, [{"device": names[i % lanes], "variant_id": 1, "delegate": "none",
                                          "threads": 1, "repeat": i // lanes} for i in range(jobs)])
    per_lane: dict[str, list[int]] = {}
    for job in store.jobs(sweep.id):
        per_lane.setdefault(job.device, []).append(job.id)
    return store, list(per_lane.values())


async def lifecycles(path, per_lane: list[list[int]], device_s: float) -> tuple[float, float]:
    """Every lane's jobs, lanes at once, each job on its device for up to `device_s` (0: none, the lanes in
    lockstep); (seconds until all committed, longest event loop block in seconds)."""
    longest = 0.0

    async def ticker():
        nonlocal longest
        last = time.perf_counter()
        while True:
            await asyncio.sleep(0.001)
            longest = max(longest, time.perf_counter() - last)
            last = time.perf_counter()

    results = list(map(realistic_result, range(100)))  # made before: what is timed is the writing
    draw = random.Random(0)

    async def lane(job_ids):
        await asyncio.sleep(draw.uniform(0, device_s))  # its device's probe
        for job_id in job_ids:
            await path.start(job_id)
            await asyncio.sleep(draw.uniform(0, device_s))  # the benchmark on the device: the lane awaits it
            await path.finish(job_id, *results[job_id % len(results)])

    ticking = asyncio.create_task(ticker())
    await asyncio.sleep(0.01)
    start = time.perf_counter()
    await asyncio.gather(*(lane(job_ids) for job_ids in per_lane))
    elapsed = time.perf_counter() - start
    ticking.cancel()
    return elapsed, longest


def run_once(path_name: str, locked: bool, jobs: int, lanes: int, device_s: float) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        store, per_lane = new_store(Path(folder), jobs, lanes)
        holder = None
        if locked:  # another coordinator in the middle of a write: it holds the lock from before the first job
            holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(Path(folder) / "farm.db"), str(LOCK_S)],
                                      stdout=subprocess.PIPE, text=True)
            assert holder.stdout.readline().strip() == "locked"

        async def main():
            path = PATHS[path_name](store)
            try:
                return (*await lifecycles(path, per_lane, device_s), path)
            finally:
                if isinstance(path, Writer):
                    path.writer.close()

        elapsed, longest, path = asyncio.run(main())
        if holder is not None:
            holder.wait()
        done = store.counts(1)["done"]
        assert done == jobs, (path_name, done)
        store.engine.dispose()
        return {"seconds": elapsed, "block": longest, "commits": path.commits}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--lanes", type=int, default=1000)
    parser.add_argument("--device-s", type=float, default=4.0, help="the spread runs' longest job on a device")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    print(f"{args.jobs} job lifecycles (start; finish with 50 samples) from {args.lanes} lanes in one event loop, "
          f"SQLite; median of {args.repeats} runs")
    for title, device_s in (("burst: the lanes in lockstep", 0.0),
                            (f"spread: each job 0-{args.device_s:g} s on its device", args.device_s)):
        medians: dict[tuple[str, bool], dict] = {}
        for locked in (False, True):
            for name in PATHS:
                runs = [run_once(name, locked, args.jobs, args.lanes, device_s) for _ in range(args.repeats)]
                medians[name, locked] = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
        print(f"\n{title}")
        print(f"{'':18} {'store free':^32} | {f'write lock held {LOCK_S:g} s by another process':^32}")
        header = f"{'total s':>9} {'max block ms':>13} {'commits':>8}"
        print(f"{'path':18} {header}  | {header}")
        for name in PATHS:
            cells = []
            for locked in (False, True):
                m = medians[name, locked]
                cells.append(f"{m['seconds']:9.2f} {m['block'] * 1000:13.1f} {m['commits']:8.0f}")
            print(f"{name:18} {cells[0]}  | {cells[1]}")
        measure = "seconds" if device_s == 0 else "block"  # what each mode is for: the cost, what a lane feels
        for locked in (False, True):
            orm, core, writer = (medians[name, locked][measure] for name in PATHS)
            print(f"  {'total time' if measure == 'seconds' else 'longest loop block'}, "
                  f"{'locked' if locked else 'free'}: ORM/writer {orm / writer:.1f}x, Core/writer {core / writer:.1f}x")


if __name__ == "__main__":
    main()
