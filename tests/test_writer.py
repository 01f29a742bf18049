"""The store's writer (farm.writer): a sweep's writes leave the event loop, go in few commits, a refused write fails
only its job, a run ends (or is cancelled) with what its lanes queued committed, and a writer that stops stops the run
instead of hanging it. On SQLite and PostgreSQL where the backend does not matter; SQLite's write lock where it does."""
import asyncio
import sqlite3
import threading
import time

import pytest
import yaml
from conftest import FIXTURES
from sqlalchemy.exc import IntegrityError

from farm.inventory import parse_device
from farm.plan import parse_spec
from farm.results import BENCHMARK_MODEL, RawResult
from farm.run import Event, SweepRunner
from farm.stats import summarize
from farm.store import Store
from farm.sweep import create_sweep
from farm.tables import now
from farm.writer import StoreWriteFailed, StoreWriter

LOG = (FIXTURES / "v2.4_cpu_peak_memory.txt").read_text()  # a real benchmark_model log: one result per job


def result(samples):
    return {**summarize(samples), "init_ms": 3.0, "first_ms": 2.0, "delegate_outcome": "applied",
            "runtime": "ai_edge_litert", "runtime_version": "2.3.0"}


def phones(count):
    return [{"name": f"phone{i}", "kind": "android", "serial": f"s{i}", "delegates": ["none"],
             "binaries": {"armeabi-v7a": "benchmark_model"}} for i in range(count)]


def sweep_of(tmp_path, db, model, devices, repeats):
    """A recorded sweep of `repeats` jobs on each device; (store, sweep, spec, devices by name)."""
    (tmp_path / "inventory.yaml").write_text(yaml.safe_dump({"devices": devices}))
    spec = parse_spec({"name": "w", "inventory": [str(tmp_path / "inventory.yaml")], "delegates": ["none"],
                       "repeats": repeats, "models": [{"source": str(model)}]}, "test").resolve(tmp_path)
    store = Store(db)
    sweep = create_sweep(store, spec, "test", log=lambda line: None)
    return store, sweep, spec, {device["name"]: parse_device(device) for device in devices}


class Phone:
    """A transport that replays a benchmark_model log: at once, or when the device's gate in `gates` opens."""

    bytes_uploaded = 0
    gates: dict[str, asyncio.Event] = {}
    measured: list[str] = []

    def __init__(self, device):
        self.device = device

    async def probe(self):
        return {"model": "replayed"}

    async def run_job(self, job):
        Phone.measured.append(self.device.name)
        if self.device.name in Phone.gates:
            await Phone.gates[self.device.name].wait()
        return RawResult(BENCHMARK_MODEL, LOG, "", 0, {"delegate": job.delegate.name})

    async def eval_predictions(self, job):
        return None

    async def reconnect(self):
        return None

    async def close(self):
        return None


@pytest.fixture(autouse=True)
def fresh_phone():
    Phone.gates, Phone.measured = {}, []


def one_result_per_done_job(store, sweep):
    rows = store.report(sweep.id)
    assert all((row["status"] == "done") == (row["result_id"] is not None) for row in rows), rows
    return rows


def test_many_writes_go_in_few_commits(tmp_path, db, tiny_tflite):
    store, sweep, _, _ = sweep_of(tmp_path, db, tiny_tflite, phones(4), repeats=75)
    jobs = store.jobs(sweep.id)

    async def lifecycles():
        writer = StoreWriter(store)
        try:
            for job in jobs:
                writer.submit(store.write_start, job.id, now())
            await asyncio.gather(*(writer.wait(store.write_result, job.id, result([1000, 2000]), [1000, 2000], None,
                                               now()) for job in jobs))
        finally:
            writer.close()
        return writer.commits

    commits = asyncio.run(lifecycles())
    assert len(jobs) == 300 and commits <= 10, commits  # 600 writes
    assert store.counts(sweep.id)["done"] == 300
    assert {row["attempts"] for row in one_result_per_done_job(store, sweep)} == {1}


def test_a_result_the_store_refuses_fails_its_job_alone_and_says_so(tmp_path, db, tiny_tflite):
    store, sweep, spec, devices = sweep_of(tmp_path, db, tiny_tflite, phones(3), repeats=2)
    refused = store.jobs(sweep.id)[2].id
    write_result = store.write_result

    def refusing(connection, job_id, values, *rest):
        if job_id == refused:
            values = {**values, "init_ms": None}  # NOT NULL: the store refuses this result
        write_result(connection, job_id, values, *rest)

    store.write_result = refusing
    events: list[Event] = []
    counts = asyncio.run(SweepRunner(store, sweep, spec, devices, events.append, transport_for=Phone).run())
    assert (counts["done"], counts["failed"]) == (5, 1)
    (failed,) = [job for job in store.jobs(sweep.id) if job.state == "failed"]
    assert failed.id == refused and failed.error.startswith("result not stored: IntegrityError: ")
    assert failed.finished is not None
    said = [event for event in events if event.state == "failed"]
    assert len(said) == 1 and said[0].detail == failed.error
    assert [event.state for event in events].count("done") == 5
    one_result_per_done_job(store, sweep)


def test_the_event_loop_runs_on_while_another_connection_holds_the_write_lock(tmp_path, tiny_tflite):
    db = tmp_path / "farm.db"
    store, sweep, _, _ = sweep_of(tmp_path, db, tiny_tflite, phones(2), repeats=50)
    jobs = store.jobs(sweep.id)
    blocker = sqlite3.connect(db)  # another coordinator, in the middle of its own write
    blocker.execute("BEGIN IMMEDIATE")
    gaps = []

    async def lanes_while_locked():
        asyncio.get_running_loop().call_later(1.5, blocker.rollback)
        writer = StoreWriter(store)

        async def ticker():
            last = time.perf_counter()
            while True:
                await asyncio.sleep(0.01)
                gaps.append(time.perf_counter() - last)
                last = time.perf_counter()

        ticking = asyncio.create_task(ticker())
        start = time.perf_counter()
        try:
            for job in jobs:
                writer.submit(store.write_start, job.id, now())
            await asyncio.gather(*(writer.wait(store.write_result, job.id, result([1000]), [1000], None, now())
                                   for job in jobs))
        finally:
            writer.close()
            ticking.cancel()
        return time.perf_counter() - start, writer.commits

    waited, commits = asyncio.run(lanes_while_locked())
    assert waited >= 1.4  # the results really waited for the lock...
    assert max(gaps) < 0.25, max(gaps)  # ...and the loop did not: it ticked on, every 10 ms
    assert commits <= 3 and store.counts(sweep.id)["done"] == 100  # everything queued behind the lock, one batch


def test_a_write_the_store_refuses_in_a_batch_fails_alone(tmp_path, tiny_tflite):
    db = tmp_path / "farm.db"
    store, sweep, _, _ = sweep_of(tmp_path, db, tiny_tflite, phones(2), repeats=10)
    jobs = store.jobs(sweep.id)
    refused = jobs[7].id
    blocker = sqlite3.connect(db)
    blocker.execute("BEGIN IMMEDIATE")  # every write queues up behind the lock: one batch once it is let go

    async def lifecycles():
        asyncio.get_running_loop().call_later(0.5, blocker.rollback)
        writer = StoreWriter(store)
        try:
            for job in jobs:
                writer.submit(store.write_start, job.id, now())
            outcomes = await asyncio.gather(
                *(writer.wait(store.write_result, job.id, result([1000]) | ({"init_ms": None} if job.id == refused
                                                                           else {}), [1000], None, now())
                  for job in jobs), return_exceptions=True)
        finally:
            writer.close()
        return outcomes, writer.error

    outcomes, error = asyncio.run(lifecycles())
    assert error is None  # the writer goes on
    failed = [job.id for job, outcome in zip(jobs, outcomes) if isinstance(outcome, IntegrityError)]
    assert failed == [refused] and outcomes.count(None) == 19
    states = {job.id: job.state for job in store.jobs(sweep.id)}
    assert states.pop(refused) == "running" and set(states.values()) == {"done"}
    one_result_per_done_job(store, sweep)


def test_a_cancelled_run_commits_the_results_its_lanes_queued(tmp_path, tiny_tflite):
    """Ctrl-C's path: the run is cancelled while a finished job's result waits for the write lock; the run does not
    end before that result is committed, and the job that was cut off is left running, for requeue_running."""
    db = tmp_path / "farm.db"
    store, sweep, spec, devices = sweep_of(tmp_path, db, tiny_tflite, phones(2), repeats=1)
    blocker = sqlite3.connect(db, check_same_thread=False)
    runner = SweepRunner(store, sweep, spec, devices, transport_for=Phone)

    async def cancelled():
        Phone.gates = {"phone0": asyncio.Event(), "phone1": asyncio.Event()}  # phone1's never opens
        task = asyncio.create_task(runner.run())
        while len(Phone.measured) < 2:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.2)  # both jobs are stored as running by now
        blocker.execute("BEGIN IMMEDIATE")
        threading.Timer(1.0, blocker.rollback).start()  # from a thread: the run's end blocks the loop till then
        Phone.gates["phone0"].set()
        await asyncio.sleep(0.2)
        assert store.counts(sweep.id)["done"] == 0  # phone0's result is queued behind the lock
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(cancelled())
    states = {job.device: job.state for job in store.jobs(sweep.id)}
    assert states == {"phone0": "done", "phone1": "running"}
    assert store.requeue_running(sweep.id) == 1
    one_result_per_done_job(store, sweep)


def test_a_writer_that_stops_stops_the_run_and_leaves_every_job_for_resume(tmp_path, db, tiny_tflite):
    store, sweep, spec, devices = sweep_of(tmp_path, db, tiny_tflite, phones(3), repeats=4)
    stopper = store.jobs(sweep.id)[5].id
    write_start = store.write_start

    def refusing(connection, job_id, started):
        if job_id == stopper:
            raise IntegrityError("UPDATE jobs", {}, Exception("refused"))  # what a broken store would answer
        write_start(connection, job_id, started)

    store.write_start = refusing
    runner = SweepRunner(store, sweep, spec, devices, transport_for=Phone)
    started = time.monotonic()
    with pytest.raises(StoreWriteFailed, match="the store's writer stopped .*IntegrityError.*stay for resume"):
        asyncio.run(asyncio.wait_for(runner.run(), 60))
    assert time.monotonic() - started < 30
    counts = store.counts(sweep.id)
    assert counts["done"] < 12 and counts["failed"] == 0
    one_result_per_done_job(store, sweep)


def test_a_reason_with_a_nul_is_stored_as_one_line_on_every_backend(tmp_path, db, tiny_tflite):
    # A device's words reach jobs.error; PostgreSQL's text refuses NUL, which would stop the writer and the sweep.
    store, sweep, _, _ = sweep_of(tmp_path, db, tiny_tflite, phones(1), repeats=1)
    (job,) = store.jobs(sweep.id)
    store.fail_job(job.id, "device lost: \x00garbage\nfrom the board\x00")
    assert store.jobs(sweep.id)[0].error == "device lost: \ufffdgarbage from the board\ufffd"
