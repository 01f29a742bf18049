"""The scheduler survives its own death: SIGKILL mid-sweep, then `farm sweep resume` → exactly one result per job
(on SQLite and on PostgreSQL)."""
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import yaml
from conftest import FIXTURES, REPO, farm, sql


def counts(db):
    from sqlalchemy.exc import OperationalError, ProgrammingError

    try:
        return dict(sql(db, "SELECT state, count(*) FROM jobs GROUP BY state"))
    except (OperationalError, ProgrammingError):  # not created yet
        return {}


def test_sigkill_then_resume_gives_exactly_one_result_per_job(tmp_path, digits_dir, db):
    spec = tmp_path / "sweep.yaml"
    spec.write_text(yaml.safe_dump({
        "name": "crash",
        "inventory": [str(REPO / "inventory" / "local.yaml")],
        "models": [{"source": str(digits_dir / "digits.keras"), "variants": ["fp32", "dynamic"],
                    "eval": str(digits_dir / "digits_eval.npz")}],
        "delegates": ["xnnpack", "none"],
        "threads": [1, 2],
        "repeats": 2,
        "runs": 20,
        "min_secs": 0.5,  # every job lasts long enough to be caught mid-run
    }))
    coordinator = subprocess.Popen([sys.executable, "-m", "farm", "sweep", "run", str(spec), "--db", str(db)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    seen = {}
    while time.monotonic() < deadline and coordinator.poll() is None:
        seen = counts(db)
        if seen.get("done", 0) >= 3 and seen.get("running", 0) == 1:
            break
        time.sleep(0.05)
    assert coordinator.poll() is None, f"the sweep ended before it could be killed: {seen}"
    os.kill(coordinator.pid, signal.SIGKILL)
    coordinator.wait(timeout=30)
    killed = counts(db)
    assert killed.get("running") == 1 and killed.get("pending", 0) > 0, killed
    # Nothing could be said or cleaned up; status tells the truth all the same: nothing runs those jobs.
    status = json.loads(farm("sweep", "status", "crash", "--db", db, "--json").stdout)["sweeps"][0]
    assert status["state"] == "interrupted" and status["counts"]["running"] == 0
    assert status["counts"]["pending"] == killed["pending"] + 1

    resumed = farm("sweep", "resume", "crash", "--db", db)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr

    ((total,),) = sql(db, "SELECT count(*) FROM jobs")
    assert total == 2 * 2 * 2 * 2
    assert counts(db) == {"done": total}
    per_job = sql(db, "SELECT j.id, count(r.id) FROM jobs j LEFT JOIN results r ON r.job_id = j.id GROUP BY j.id")
    assert {n for _, n in per_job} == {1}
    assert sql(db, "SELECT count(*) FROM samples") == [(total,)]
    # The job that was running at the kill was run again: its attempt count says so.
    assert sql(db, "SELECT max(attempts) FROM jobs") == [(2,)]
    assert sql(db, "SELECT state FROM sweeps") == [("done",)]


def test_a_job_over_its_timeout_fails_with_the_reason_and_the_lane_goes_on(tmp_path, digits_dir):
    db = tmp_path / "farm.db"
    spec = tmp_path / "sweep.yaml"
    spec.write_text(yaml.safe_dump({
        "name": "slow",
        "inventory": [str(REPO / "inventory" / "local.yaml")],
        "models": [{"source": str(digits_dir / "digits.keras")}],
        "threads": [1, 2],
        "repeats": 1,
        "min_secs": 60,  # each job would measure for a minute...
        "timeout_s": 3,  # ...but may take 3 s
    }))
    started = time.monotonic()
    run = farm("sweep", "run", spec, "--db", db)
    assert run.returncode == 1, run.stdout + run.stderr
    assert time.monotonic() - started < 45
    connection = sqlite3.connect(db)
    rows = connection.execute("SELECT state, error, attempts FROM jobs ORDER BY id").fetchall()
    assert rows == [("failed", "timed out after 3 s", 1)] * 2
    assert connection.execute("SELECT count(*) FROM results").fetchone()[0] == 0


def test_a_phone_log_without_percentiles_is_still_a_result(tmp_path, digits_dir):
    """The scheduler with a transport that replays a real benchmark_model log (a real fixture, TF 2.4 format: no
    percentiles printed): the job is done, its percentiles stay empty rather than invented."""
    import asyncio

    from farm.inventory import parse_device
    from farm.plan import parse_spec
    from farm.results import BENCHMARK_MODEL, RawResult
    from farm.run import SweepRunner
    from farm.store import Store
    from farm.sweep import create_sweep

    log = (FIXTURES / "v2.4_cpu_peak_memory.txt").read_text()

    class ReplayedPhone:
        bytes_uploaded = 0

        def __init__(self, device):
            self.device = device

        async def probe(self):
            return {"model": "replayed"}

        async def run_job(self, job):
            return RawResult(BENCHMARK_MODEL, log, "", 0, {"delegate": job.delegate.name})

        async def eval_predictions(self, job):
            return None

        async def reconnect(self):
            return None

        async def close(self):
            return None

    phone = {"name": "old-phone", "kind": "android", "serial": "s", "delegates": ["none"],
             "binaries": {"armeabi-v7a": "benchmark_model"}}
    (tmp_path / "inventory.yaml").write_text(yaml.safe_dump({"devices": [phone]}))
    spec = parse_spec({"name": "old", "inventory": [str(tmp_path / "inventory.yaml")], "delegates": ["none"], "repeats": 1,
                       "models": [{"source": str(digits_dir / "digits.keras")}]}, "test").resolve(tmp_path)
    store = Store(tmp_path / "farm.db")
    sweep = create_sweep(store, spec, "test", log=lambda line: None)
    runner = SweepRunner(store, sweep, spec, {"old-phone": parse_device(phone)}, transport_for=ReplayedPhone)
    assert asyncio.run(runner.run())["done"] == 1
    (row,) = store.report(sweep.id)
    assert row["mean_ms"] == 249.684 and row["count"] == 50 and row["peak_mb"] == 138.809
    assert row["p50_ms"] is None and row["p99_ms"] is None and store.samples(row["result_id"]) == []
