"""The store: schema version, job lifecycle, one transaction per result, never two results for a job. The tests of
what every store does run on SQLite and on PostgreSQL (a private cluster, tests/postgres)."""
import json
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy.exc import IntegrityError

from farm.errors import FarmError
from farm.inventory import parse_device
from farm.stats import summarize
from farm.store import Store
from farm.tables import SCHEMA_VERSION


@dataclass
class FakeVariantRecord:
    """A conversion result as farm.convert returns it (only the fields the store reads)."""

    model: str
    kind: str
    sha256: str
    size: int = 1024
    path: Path = Path("/x.tflite")
    source_sha: str = "src"
    description: dict = field(default_factory=lambda: {"inputs": [], "outputs": [], "needs_flex": False})
    error: str | None = None


def result(samples):
    return {**summarize(samples), "init_ms": 3.0, "first_ms": 2.0, "delegate_outcome": "applied",
            "runtime": "ai_edge_litert", "runtime_version": "2.3.0"}


@pytest.fixture
def store(db):
    """A store with two devices, on each backend."""
    return with_devices(Store(db))


@pytest.fixture
def sqlite_store(tmp_path):
    """A SQLite store, for what only SQLite has (its file, WAL, the tests that rewrite the schema by hand)."""
    return with_devices(Store(tmp_path / "farm.db"))


def with_devices(store):
    store.upsert_device(parse_device(dict(name="pi", kind="linux", host="h", user="u")), {"cores": 4})
    store.upsert_device(parse_device(dict(name="local", kind="local")))
    return store


def make_sweep(store, name="s"):
    fp32 = store.add_variant(FakeVariantRecord("m", "fp32", "a" * 64))
    int8 = store.add_variant(FakeVariantRecord("m", "int8", "b" * 64, size=512))
    jobs = [{"device": d, "variant_id": v, "delegate": "xnnpack", "threads": 1, "repeat": 0}
            for d in ("pi", "local") for v in (fp32, int8)]
    jobs.append({"device": "pi", "variant_id": int8, "delegate": "gpu", "threads": 1, "repeat": 0,
                 "state": "skipped", "error": "no gpu"})
    return store.create_sweep(name, {"name": name}, jobs)


def test_wal_mode_and_schema_version(sqlite_store, tmp_path):
    connection = sqlite3.connect(tmp_path / "farm.db")
    assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert connection.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == str(SCHEMA_VERSION)


def test_incompatible_store_is_refused_clearly(sqlite_store, tmp_path):
    connection = sqlite3.connect(tmp_path / "farm.db")
    connection.execute("UPDATE meta SET value='0' WHERE key='schema_version'")
    connection.commit()
    with pytest.raises(FarmError, match=f"store schema version 0, this tflite-farm needs {SCHEMA_VERSION}"):
        Store(tmp_path / "farm.db")


def test_a_store_of_schema_1_is_upgraded_by_a_writer_and_keeps_its_results(sqlite_store, tmp_path):
    store = sqlite_store
    sweep = make_sweep(store)
    job = store.jobs(sweep.id)[0]
    store.start_job(job.id)
    store.finish_job(job.id, result([1000, 2000]), [1000, 2000])
    store.engine.dispose()
    # Back to the first schema as an older tflite-farm wrote it: other metric names, no memory_kind or warnings,
    # no leases, no op profiles, no source validation, regression scores or compressed sizes.
    with sqlite3.connect(tmp_path / "farm.db") as connection:
        for statement in ("ALTER TABLE jobs DROP COLUMN history",
                          "ALTER TABLE variants DROP COLUMN gzip_size", "DROP TABLE source_outputs",
                          *(f"ALTER TABLE results DROP COLUMN {name}" for name in (
                              "agreement_with_source", "rmse", "max_abs_error", "rmse_vs_source", "max_abs_vs_source")),
                          "ALTER TABLE results RENAME COLUMN agreement_with_fp32 TO agreement",
                          "ALTER TABLE results DROP COLUMN memory_kind", "ALTER TABLE results DROP COLUMN warnings",
                          "ALTER TABLE devices ADD COLUMN connection TEXT NOT NULL DEFAULT '{}'",
                          "ALTER TABLE models ADD COLUMN task VARCHAR NOT NULL DEFAULT 'classification'",
                          "DROP TABLE leases", "DROP TABLE ops", "UPDATE meta SET value='1' WHERE key='schema_version'"):
            connection.execute(statement)

    with pytest.raises(FarmError, match=f"store schema version 1, this tflite-farm needs {SCHEMA_VERSION}; any farm command that "
                                        "writes to it upgrades it"):
        Store(tmp_path / "farm.db", readonly=True)  # a reader never changes the store
    upgraded = Store(tmp_path / "farm.db", create=False)
    (row,) = [r for r in upgraded.report(sweep.id) if r["result_id"]]
    assert (row["p50_ms"], row["memory_kind"], row["agreement_with_fp32"], row["rmse"], row["gzip_bytes"]) == \
        (1.5, "peak_rss", None, None, None)
    assert upgraded.samples(row["result_id"]) == [1000, 2000]
    with sqlite3.connect(tmp_path / "farm.db") as connection:
        assert connection.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == str(SCHEMA_VERSION)
        assert connection.execute("SELECT count(*) FROM leases").fetchone()[0] == 0
        assert connection.execute("SELECT count(*) FROM ops").fetchone()[0] == 0
        assert connection.execute("SELECT count(*) FROM source_outputs").fetchone()[0] == 0
        columns = {name for _, name, *_ in connection.execute("PRAGMA table_info(devices)")}
    assert "connection" not in columns


def test_foreign_database_and_missing_store(tmp_path):
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE t (x)")
    with pytest.raises(FarmError, match="not a tflite-farm store"):
        Store(other)
    with pytest.raises(FarmError, match="no such store"):
        Store(tmp_path / "missing.db", create=False)


def test_a_later_probe_keeps_what_provisioning_chose(store):
    pi = parse_device(dict(name="pi", kind="linux", host="h", user="u"))

    def facts() -> dict:
        return next(json.loads(row.facts) for row in store.devices() if row.name == "pi")

    chosen = {"runtime": "tflite-runtime", "version": "2.14.0", "numpy": "1.26.4", "why": "--runtime tflite-runtime"}
    store.upsert_device(pi, {"cores": 4, "provisioned": chosen})
    store.upsert_device(pi, {"cores": 8})  # a probe (inventory probe, a sweep's), which knows nothing of it
    assert facts() == {"cores": 8, "provisioned": chosen}
    store.upsert_device(pi)  # a sweep's plan: no facts, none touched
    assert facts() == {"cores": 8, "provisioned": chosen}
    again = {"runtime": "ai-edge-litert", "version": "2.3.0", "numpy": "2.0.0", "why": "pip found a wheel for Python "
             "3.11 x86_64"}
    store.upsert_device(pi, {"cores": 8, "provisioned": again})  # provisioned again: the new choice replaces it
    assert facts() == {"cores": 8, "provisioned": again}


def test_job_lifecycle_and_one_result_per_job(store):
    sweep = make_sweep(store)
    assert store.counts(sweep.id) == {"pending": 4, "running": 0, "done": 0, "failed": 0, "skipped": 1}
    job = store.jobs(sweep.id, ("pending",))[0]
    assert store.start_job(job.id) == 1
    store.finish_job(job.id, result([1000, 2000, 3000]), [1000, 2000, 3000])
    with pytest.raises(RuntimeError, match="already done"):
        store.finish_job(job.id, result([1000]), [1000])
    (done,) = store.jobs(sweep.id, ("done",))
    assert done.attempts == 1 and done.finished is not None
    rows = [r for r in store.report(sweep.id) if r["status"] == "done"]
    assert len(rows) == 1 and rows[0]["p50_ms"] == 2.0 and rows[0]["count"] == 3
    assert store.samples(rows[0]["result_id"]) == [1000, 2000, 3000]


def test_a_failed_write_leaves_the_job_as_it_was(store):
    sweep = make_sweep(store)
    job = store.jobs(sweep.id, ("pending",))[0]
    store.start_job(job.id)
    bad = result([1000]) | {"init_ms": None}  # NOT NULL: the transaction must roll back whole
    with pytest.raises(IntegrityError):
        store.finish_job(job.id, bad, [1000])
    assert store.counts(sweep.id)["running"] == 1
    assert all(r["result_id"] is None for r in store.report(sweep.id))


def test_running_jobs_of_a_dead_coordinator_return_to_pending(store):
    sweep = make_sweep(store)
    for job in store.jobs(sweep.id, ("pending",))[:2]:
        store.start_job(job.id)
    assert store.requeue_running(sweep.id) == 2
    assert store.counts(sweep.id)["pending"] == 4


def test_a_running_job_with_its_result_is_repaired_to_done_once(store):
    # The state two drivers of one sweep could leave before leases: the result stored, the job still `running`.
    sweep = make_sweep(store)
    job, other = store.jobs(sweep.id, ("pending",))[:2]
    store.start_job(job.id)
    store.finish_job(job.id, result([1000]), [1000])
    store.start_job(other.id)
    with store.engine.begin() as connection:
        connection.exec_driver_sql(f"UPDATE jobs SET state = 'running' WHERE id = {job.id}")
    assert store.requeue_running(sweep.id) == 1  # the other one; the job with a result is done
    states = {row.id: row.state for row in store.jobs(sweep.id)}
    assert (states[job.id], states[other.id]) == ("done", "pending")
    assert len([r for r in store.report(sweep.id) if r["result_id"]]) == 1


def test_job_key_is_unique(store):
    sweep = make_sweep(store)
    job = store.jobs(sweep.id)[0]
    duplicate = {k: getattr(job, k) for k in ("device", "variant_id", "delegate", "threads", "repeat")}
    with pytest.raises(IntegrityError):
        store.create_sweep("t", {}, [duplicate, duplicate])
    assert [s.name for s in store.sweeps()] == ["s"]  # nothing half-written
    assert store.unique_sweep_name("s") == "s-2"


def test_agreement_with_fp32(store):
    sweep = make_sweep(store)
    for job in store.jobs(sweep.id, ("pending",)):
        store.start_job(job.id)
        kind = store.variant_names(job.variant_id)[1]
        predictions = [1, 2, 3, 4] if kind == "fp32" else [1, 2, 3, 0]
        store.finish_job(job.id, result([1000]) | {"predictions": json.dumps(predictions)}, [1000])
    store.update_agreement(sweep.id)
    agreements = {(r["device"], r["variant"]): r["agreement_with_fp32"] for r in store.report(sweep.id) if r["result_id"]}
    assert agreements == {("pi", "fp32"): 1.0, ("pi", "int8"): 0.75, ("local", "fp32"): 1.0, ("local", "int8"): 0.75}


def test_a_done_job_stays_done(store):
    sweep = make_sweep(store)
    job = store.jobs(sweep.id, ("pending",))[0]
    store.start_job(job.id)
    store.finish_job(job.id, result([1000]), [1000])
    store.fail_job(job.id, "a late failure from a second coordinator")
    store.retry_job(job.id, "device lost")
    (row,) = [r for r in store.report(sweep.id) if r["result_id"]]
    assert (row["status"], row["error"]) == ("done", None)


def test_coordinators_that_create_one_store_at_the_same_moment_all_open_it(db):
    import subprocess
    import sys
    import time

    # Each process imports first, then opens the new store at the same instant.
    code = ("import sys, time; from farm.store import Store; from farm.tables import now\n"
            "while time.time() < float(sys.argv[2]): pass\n"
            "Store(sys.argv[1]).set_lease('x', 's', 1, 'h', now())")
    at = str(time.time() + 6)
    starts = [subprocess.Popen([sys.executable, "-c", code, db, at], stderr=subprocess.PIPE, text=True)
              for _ in range(4)]
    failures = [p.stderr.read() for p in starts if p.wait(timeout=120) != 0]
    assert not failures, failures[0]
    assert Store(db).leases()["x"][0] == "s"
