"""The store: every device, model, variant, sweep, job, result and raw latency sample, in SQL.

SQLite (`farm.db`, WAL mode) by default; any SQLAlchemy URL with --db. This module alone owns the stored format: every
write and every read (the CLI's, the exports', the dashboard's) goes through it; its reads as DataFrames live in
farm/frames.py, which Store inherits.
A job's result and its `done` state are written in one transaction, and the unique job key
(sweep, device, variant, delegate, threads, repeat) plus a unique result per job mean a job can never have two results.
The writes of a running sweep (a job's state, its result, a device's facts) are `write_*` methods on a connection, so
that farm.writer can run many in one transaction; the methods of the same name without `write_` run one alone.
"""
from __future__ import annotations

import functools
import json
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import quote

from sqlalchemy import bindparam, event, insert, inspect, text, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import DatabaseError, IntegrityError, OperationalError, ProgrammingError
from sqlmodel import Session, SQLModel, create_engine, select

from farm import hints
from farm.errors import FarmError, one_line
from farm.frames import FrameReads, decode_samples
from farm.tables import (JOB_STATES, MIGRATIONS, SCHEMA_VERSION, DeviceRow, JobRow, LeaseRow, Meta, ModelRow, OpRow,
                         ResultRow, SampleRow, SourceOutputRow, SweepRow, VariantRow, now)

# The hot writes as SQLAlchemy Core statements, built once: no session, get or flush per write, and each statement
# compiled once for the whole run; a job's start and finish take less than half the ORM's time.
_JOBS, _DEVICES = JobRow.__table__, DeviceRow.__table__
# A device's facts that no probe reports, kept when a probe's facts replace the rest: what `farm provision` chose.
KEPT_FACTS = ("provisioned",)
_START = update(_JOBS).where(_JOBS.c.id == bindparam("job")).values(
    state="running", attempts=_JOBS.c.attempts + 1, started=bindparam("at"))
# A done job keeps its result and its state (done is final).
_END = update(_JOBS).where(_JOBS.c.id == bindparam("job"), _JOBS.c.state != "done").values(
    state=bindparam("new_state"), error=bindparam("why"))
_FAIL = _END.values(finished=bindparam("at"))
_DONE = update(_JOBS).where(_JOBS.c.id == bindparam("job"), _JOBS.c.state != "done").values(
    state="done", error=None, finished=bindparam("at"))
_ADD_RESULT, _ADD_SAMPLES, _ADD_OPS = (insert(row.__table__) for row in (ResultRow, SampleRow, OpRow))
# What a ResultRow or OpRow would have filled in: Core inserts only the columns it is given.
_RESULT_DEFAULTS = {name: field.default for name, field in ResultRow.model_fields.items()
                    if not field.is_required() and name != "id"}
_OP_DEFAULTS = {name: field.default for name, field in OpRow.model_fields.items() if not field.is_required()}


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def db_url(db: str | Path) -> str:
    """A plain path means SQLite; anything with '://' is an SQLAlchemy URL (postgresql:// means psycopg 3, the driver
    of the `postgres` extra)."""
    db = str(db)
    if db.startswith("postgresql://") or db.startswith("postgres://"):
        return "postgresql+psycopg://" + db.split("://", 1)[1]
    return db if "://" in db else f"sqlite:///{Path(db).expanduser()}"


def _sqlite_reader(dbapi_connection: Any, _record: Any) -> None:
    # A checkpoint by a sweep's writer can hold a lock for a moment.
    dbapi_connection.execute("PRAGMA busy_timeout=30000")


def _postgresql_session(dbapi_connection: Any, _record: Any, readonly: bool = False) -> None:
    # Times are stored as UTC whatever the server's own time zone (the columns hold no zone).
    cursor = dbapi_connection.cursor()
    cursor.execute("SET TIME ZONE 'UTC'")
    if readonly:
        cursor.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
    cursor.close()
    dbapi_connection.commit()


class Store(FrameReads):
    """A connection to the store, opened with its schema checked; `readonly` for readers such as the dashboard."""

    def __init__(self, db: str | Path = "farm.db", *, create: bool = True, readonly: bool = False):
        url = make_url(db_url(db))
        self.url = url.render_as_string(hide_password=True)  # what messages show: never a password
        self.readonly = readonly
        self._variant_names: dict[int, tuple[str, str]] = {}
        create = create and not readonly
        if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
            path = Path(url.database).expanduser()
            if not create and not path.exists():
                raise FarmError(f"{db}: no such store (run a sweep first, or pass --db)")
            if readonly:
                # SQLite itself refuses every write: mode=ro on a URI filename.
                url = url.set(database=f"file:{quote(str(path.resolve()))}", query={**url.query, "mode": "ro", "uri": "true"})
        try:
            self.engine: Engine = create_engine(url)
        except ModuleNotFoundError as error:
            extra = "postgres" if url.get_backend_name() == "postgresql" else None
            fix = f"install it with: pip install 'tflite-farm[{extra}]'" if extra else "install it"
            raise FarmError(f"{self.url}: the database driver {error.name} is missing; {fix}") from None
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_reader if readonly else _sqlite_pragmas)
        elif self.engine.dialect.name == "postgresql":
            event.listen(self.engine, "connect", functools.partial(_postgresql_session, readonly=readonly))
        self._check_schema(create)

    def _check_schema(self, create: bool) -> None:
        try:
            tables = set(inspect(self.engine).get_table_names())
        except DatabaseError as error:  # OperationalError (can't open), or a file that is not a database at all
            raise FarmError(f"{self.url}: cannot open the store: {error.orig}") from None
        if "meta" not in tables:
            if tables - set(SQLModel.metadata.tables):  # only ours: a store another coordinator is creating now
                raise FarmError(f"{self.url}: not a tflite-farm store (it has other tables)")
            if not create:
                raise FarmError(f"{self.url}: empty store (run a sweep first)")
            try:
                SQLModel.metadata.create_all(self.engine)
                with self.session() as session:
                    session.add(Meta(key="schema_version", value=str(SCHEMA_VERSION)))
                return
            except (OperationalError, ProgrammingError, IntegrityError):
                pass  # another coordinator created this store at the same moment: check what it made
        found = self._schema_version()
        if found in MIGRATIONS and not self.readonly:
            found = self._migrate(found)
        if found != SCHEMA_VERSION:
            fix = (f"any farm command that writes to it upgrades it, e.g. {hints.command('sweep status')}"
                   if found in MIGRATIONS
                   else "export what you need with the matching tflite-farm, then use a new --db")
            raise FarmError(f"{self.url}: store schema version {found}, this tflite-farm needs {SCHEMA_VERSION}; {fix}")

    def _schema_version(self) -> int:
        """The store's schema version; a store that another coordinator is creating right now gets 10 s to say it."""
        for _ in range(100):
            try:
                with self.session() as session:
                    row = session.get(Meta, "schema_version")
            except (OperationalError, ProgrammingError):
                row = None
            if row is not None:
                return int(row.value)
            time.sleep(0.1)
        return 0

    def _migrate(self, found: int) -> int:
        """Bring an older store up to this schema, one version at a time, each in one transaction."""
        while found < SCHEMA_VERSION and found in MIGRATIONS:
            with self.engine.begin() as connection:
                for statement in MIGRATIONS[found]:
                    connection.execute(text(statement))
                found += 1
                connection.execute(text("UPDATE meta SET value = :v WHERE key = 'schema_version'"), {"v": str(found)})
        return found

    @contextmanager
    def session(self) -> Iterator[Session]:
        """One transaction: committed on success, rolled back on any error."""
        with Session(self.engine, expire_on_commit=False) as session:
            with session.begin():
                yield session

    # --- devices, models, variants -------------------------------------------------------------------------------

    def upsert_device(self, device: Any, facts: dict | None = None) -> None:
        with self.engine.begin() as connection:
            self.write_device(connection, device, facts, now())

    def write_device(self, connection: Connection, device: Any, facts: dict | None, seen: datetime) -> None:
        """A device as the inventory names it; with `facts`, what its probe said at `seen` (and the KEPT_FACTS it had,
        unless these facts have them)."""
        values = {"kind": device.kind, "tags": json.dumps(device.tags), "delegates": json.dumps(device.delegates)}
        if facts is not None:
            values["last_seen"] = seen
        # An update first: it takes the write lock at once, and a device is new only once.
        if connection.execute(update(_DEVICES).where(_DEVICES.c.name == device.name).values(values)).rowcount == 0:
            connection.execute(insert(_DEVICES).values({"facts": "{}", **values, "name": device.name}))
        if facts is not None:
            # Read under the write lock the update took: no other writer comes in between.
            before = json.loads(connection.execute(
                select(_DEVICES.c.facts).where(_DEVICES.c.name == device.name)).scalar_one() or "{}")
            kept = {key: before[key] for key in KEPT_FACTS if key in before and key not in facts}
            connection.execute(update(_DEVICES).where(_DEVICES.c.name == device.name)
                               .values(facts=json.dumps({**facts, **kept})))

    def devices(self) -> list[DeviceRow]:
        """Every device the store knows, by name, with the facts last probed from it."""
        with self.session() as session:
            return list(session.exec(select(DeviceRow).order_by(DeviceRow.name)).all())

    def add_variant(self, variant: Any) -> int:
        """Record a model and one of its variants (idempotent); returns the variant id."""
        with self.session() as session:
            model = session.exec(
                select(ModelRow).where(ModelRow.name == variant.model, ModelRow.source_sha == variant.source_sha)
            ).first()
            if model is None:
                model = ModelRow(name=variant.model, source=str(getattr(variant, "source", "")), source_sha=variant.source_sha)
                session.add(model)
                session.flush()
            row = session.exec(
                select(VariantRow).where(
                    VariantRow.model_id == model.id, VariantRow.kind == variant.kind, VariantRow.sha256 == variant.sha256
                )
            ).first()
            if row is None:
                row = VariantRow(model_id=model.id, kind=variant.kind, sha256=variant.sha256, size=variant.size, path="")
            row.size = variant.size
            row.gzip_size = getattr(variant, "gzip_size", None) or None
            row.path = str(variant.path)
            row.description = json.dumps(variant.description)
            row.needs_flex = bool(variant.description.get("needs_flex", False))
            row.error = variant.error
            session.add(row)
            session.flush()
            return row.id

    def set_source_outputs(self, model_id: int, eval_sha256: str, eval_limit: int | None, task: str,
                           outputs: list) -> None:
        """Keep the source model's outputs on an eval set (idempotent: the same inputs give the same outputs)."""
        key = (model_id, eval_sha256, eval_limit or 0)
        with self.session() as session:
            row = session.get(SourceOutputRow, key) or SourceOutputRow(model_id=model_id, eval_sha256=eval_sha256,
                                                                       eval_limit=eval_limit or 0, task=task, outputs="")
            row.task, row.outputs = task, json.dumps(outputs)
            session.add(row)

    def source_outputs(self, model_id: int, eval_sha256: str, eval_limit: int | None) -> tuple[str, list] | None:
        """(task, outputs) of the source model on an eval set, if the coordinator computed them."""
        with self.session() as session:
            row = session.get(SourceOutputRow, (model_id, eval_sha256, eval_limit or 0))
        return None if row is None else (row.task, json.loads(row.outputs))

    # --- sweeps and jobs ----------------------------------------------------------------------------------------------

    def unique_sweep_name(self, name: str) -> str:
        with self.session() as session:
            taken = set(session.exec(select(SweepRow.name)).all())
        if name not in taken:
            return name
        return next(f"{name}-{n}" for n in range(2, len(taken) + 3) if f"{name}-{n}" not in taken)

    def create_sweep(self, name: str, spec: dict, jobs: list[dict]) -> SweepRow:
        """A sweep and all its planned jobs, in one transaction."""
        with self.session() as session:
            sweep = SweepRow(name=name, spec=json.dumps(spec), state="pending")
            session.add(sweep)
            session.flush()
            for job in jobs:
                session.add(JobRow(sweep_id=sweep.id, **job))
            return sweep

    def sweep(self, name: str | None = None) -> SweepRow:
        """The named sweep, or the newest one."""
        with self.session() as session:
            query = select(SweepRow)
            query = query.where(SweepRow.name == name) if name else query.order_by(SweepRow.id.desc())
            row = session.exec(query).first()
        if row is None:
            raise FarmError(f"no sweep named {name!r} in {self.url}" if name else f"no sweeps yet in {self.url}")
        return row

    def sweeps(self) -> list[SweepRow]:
        with self.session() as session:
            return list(session.exec(select(SweepRow).order_by(SweepRow.id)).all())

    def set_sweep_state(self, sweep_id: int, state: str) -> None:
        with self.session() as session:
            sweep = session.get(SweepRow, sweep_id)
            sweep.state = state
            sweep.finished = now() if state == "done" else None

    def jobs(self, sweep_id: int, states: tuple[str, ...] = JOB_STATES) -> list[JobRow]:
        with self.session() as session:
            query = select(JobRow).where(JobRow.sweep_id == sweep_id, JobRow.state.in_(states)).order_by(JobRow.id)
            return list(session.exec(query).all())

    def variant(self, variant_id: int) -> VariantRow:
        with self.session() as session:
            return session.get(VariantRow, variant_id)

    def variant_names(self, variant_id: int) -> tuple[str, str]:
        """(model name, variant kind) of a variant; a variant never changes them, so each is read once."""
        if variant_id not in self._variant_names:
            query = text("SELECT m.name, v.kind FROM variants v JOIN models m ON m.id = v.model_id WHERE v.id = :id")
            with self.session() as session:
                model, kind = session.execute(query, {"id": variant_id}).one()
            self._variant_names[variant_id] = (model, kind)
        return self._variant_names[variant_id]

    def requeue_running(self, sweep_id: int) -> int:
        """Jobs left `running` by a coordinator that died go back to `pending`; returns how many. A running job that
        has its result (a store from before sweeps had one driver) is done, once."""
        with self.session() as session:
            session.execute(text("UPDATE jobs SET state='done', error=NULL WHERE sweep_id=:sweep AND state='running' "
                                 "AND id IN (SELECT job_id FROM results)"), {"sweep": sweep_id})
            result = session.execute(
                text("UPDATE jobs SET state='pending' WHERE sweep_id=:sweep AND state='running'"), {"sweep": sweep_id}
            )
            return result.rowcount

    def retry_failed(self, sweep_id: int) -> int:
        """A sweep's failed jobs back to pending, each failure kept in the job's history; returns how many."""
        with self.session() as session:
            jobs = session.exec(select(JobRow).where(JobRow.sweep_id == sweep_id, JobRow.state == "failed")).all()
            for job in jobs:
                past = {"error": job.error, "attempts": job.attempts,
                        "started": job.started.isoformat() if job.started else None,
                        "finished": job.finished.isoformat() if job.finished else None}
                job.history = json.dumps([*json.loads(job.history or "[]"), past])
                job.state, job.error, job.attempts, job.started, job.finished = "pending", None, 0, None, None
            return len(jobs)

    def set_lease(self, name: str, sweep: str, pid: int, host: str, since: datetime) -> None:
        """Record a lease's holder: one atomic upsert (INSERT … ON CONFLICT), so writers never race on the row."""
        values = {"sweep": sweep, "pid": pid, "host": host, "since": since}
        dialect = self.engine.dialect.name
        if dialect not in ("sqlite", "postgresql"):
            with self.session() as session:
                session.merge(LeaseRow(name=name, **values))
            return
        insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
        statement = insert(LeaseRow).values(name=name, **values).on_conflict_do_update(index_elements=["name"],
                                                                                       set_=values)
        with self.session() as session:
            session.execute(statement)

    def leases(self) -> dict[str, tuple[str, int, str, datetime]]:
        """The last holder of every lease: (sweep, pid, host, since), by lease name."""
        with self.session() as session:
            rows = session.exec(select(LeaseRow)).all()
        return {row.name: (row.sweep, row.pid, row.host, row.since.replace(tzinfo=row.since.tzinfo or timezone.utc))
                for row in rows}

    def start_job(self, job_id: int) -> int:
        """Mark a job running and count the attempt; returns the attempt number."""
        with self.engine.begin() as connection:
            self.write_start(connection, job_id, now())
            return connection.execute(select(JobRow.attempts).where(JobRow.id == job_id)).scalar_one()

    def retry_job(self, job_id: int, error: str) -> None:
        self._end(job_id, "pending", error)

    def fail_job(self, job_id: int, error: str) -> None:
        self._end(job_id, "failed", error)

    def skip_job(self, job_id: int, reason: str) -> None:
        """A pending job the device turned out unable to run (what its probe said), kept with the reason."""
        self._end(job_id, "skipped", reason)

    def _end(self, job_id: int, state: str, error: str) -> None:
        with self.engine.begin() as connection:
            self.write_end(connection, job_id, state, error, now())

    def finish_job(self, job_id: int, result: dict, samples_us: list, ops: list[dict] | None = None) -> None:
        with self.engine.begin() as connection:
            self.write_result(connection, job_id, result, samples_us, ops, now())

    def write_start(self, connection: Connection, job_id: int, started: datetime) -> None:
        """A job running since `started`, its attempt counted."""
        connection.execute(_START, {"job": job_id, "at": started})

    def write_end(self, connection: Connection, job_id: int, state: str, error: str, at: datetime) -> None:
        """A job back to pending, failed (at `at`) or skipped, with why (one line: a device's words may hold anything,
        a NUL that PostgreSQL refuses included); a done job keeps its result and its state."""
        connection.execute(_FAIL if state == "failed" else _END, {"job": job_id, "new_state": state,
                                                                  "why": one_line(error, 4000), "at": at})

    def write_result(self, connection: Connection, job_id: int, result: dict, samples_us: list,
                     ops: list[dict] | None, finished: datetime) -> None:
        """The result row, its samples (one JSON array), its op profile and the job's `done` state: run in one
        transaction, as every write on one connection is."""
        if connection.execute(_DONE, {"job": job_id, "at": finished}).rowcount != 1:
            raise RuntimeError(f"job {job_id} is already done")  # never two results for one job
        result_id = connection.execute(_ADD_RESULT, {**_RESULT_DEFAULTS, **result, "job_id": job_id}
                                       ).inserted_primary_key[0]
        if samples_us:
            connection.execute(_ADD_SAMPLES, {"result_id": result_id, "latency_us": json.dumps(samples_us)})
        if ops:
            connection.execute(_ADD_OPS, [{**_OP_DEFAULTS, **op, "result_id": result_id} for op in ops])

    def counts(self, sweep_id: int) -> dict[str, int]:
        query = text("SELECT state, count(*) FROM jobs WHERE sweep_id=:sweep GROUP BY state")
        with self.session() as session:
            rows = session.execute(query, {"sweep": sweep_id}).all()
        return {state: 0 for state in JOB_STATES} | dict(rows)

    def update_agreement(self, sweep_id: int) -> None:
        """Fill results.agreement_with_fp32: per device, the share of eval predictions equal to the fp32 variant's."""
        from farm.stats import agreement  # numpy: imported by the runs that score, not by every command

        rows = self.report(sweep_id)
        references: dict[tuple, list] = {}
        for row in rows:
            if row["variant"] == "fp32" and row["predictions"]:
                references.setdefault((row["device"], row["model"], row["delegate"], row["threads"]), row["predictions"])
                references.setdefault((row["device"], row["model"]), row["predictions"])
        with self.session() as session:
            for row in rows:
                if not row["predictions"]:
                    continue
                reference = references.get((row["device"], row["model"], row["delegate"], row["threads"])) or references.get(
                    (row["device"], row["model"])
                )
                if reference is not None:
                    result = session.get(ResultRow, row["result_id"])
                    result.agreement_with_fp32 = agreement(row["predictions"], reference)

    # --- reading --------------------------------------------------------------------------------------------------

    def report(self, sweep_id: int, device: str | None = None) -> list[dict]:
        """A row per job of a sweep, with its result when it has one: the shape every report is made from."""
        query = """
            SELECT s.name AS sweep, j.device, m.name AS model, v.kind AS variant, j.delegate, j.threads, j.repeat,
                   j.state AS status, j.error, j.attempts, r.id AS result_id, r.init_ms, r.first_ms, r.warmup_ms,
                   r.count, r.mean_ms, r.std_ms, r.min_ms, r.max_ms, r.p50_ms, r.p90_ms, r.p95_ms, r.p99_ms,
                   r.peak_mb, r.memory_kind, r.peak_delta_mb, v.size AS size_bytes, v.gzip_size AS gzip_bytes,
                   r.accuracy, r.agreement_with_fp32, r.agreement_with_source, r.rmse, r.max_abs_error,
                   r.rmse_vs_source, r.max_abs_vs_source, r.delegate_outcome, r.delegated_nodes, r.total_nodes,
                   r.runtime, r.runtime_version, r.wall_ms, r.predictions, r.env_before, r.env_after
            FROM jobs j JOIN sweeps s ON s.id = j.sweep_id JOIN variants v ON v.id = j.variant_id
                 JOIN models m ON m.id = v.model_id LEFT JOIN results r ON r.job_id = j.id
            WHERE j.sweep_id = :sweep {device}
            ORDER BY j.device, m.name, j.id
        """.format(device="AND j.device = :device" if device else "")
        with self.session() as session:
            rows = session.execute(text(query), {"sweep": sweep_id, "device": device}).mappings().all()
        out = []
        for row in rows:
            row = dict(row)
            row["predictions"] = json.loads(row["predictions"]) if row["predictions"] else None
            out.append(row)
        return out

    def run_conditions(self, sweep_id: int) -> list[dict]:
        """What a sweep's results were measured under, per device and runtime: the runtime's version, and the host
        facts and the environment before the job of its first and its last result (a fact that changed during the
        sweep shows as two). Two rows a group, however many results: farm.compare reads them for every comparison."""
        query = """
            SELECT j.device, r.runtime, r.runtime_version, r.host, r.env_before
            FROM results r JOIN jobs j ON j.id = r.job_id
            WHERE r.id IN (SELECT {end}(r2.id) FROM results r2 JOIN jobs j2 ON j2.id = r2.job_id
                           WHERE j2.sweep_id = :sweep GROUP BY j2.device, r2.runtime, r2.runtime_version)
            ORDER BY r.id
        """
        rows = []
        with self.session() as session:
            for end in ("MIN", "MAX"):
                rows += session.execute(text(query.format(end=end)), {"sweep": sweep_id}).mappings().all()
        return [dict(row, host=json.loads(row["host"] or "{}"), env_before=json.loads(row["env_before"] or "{}"))
                for row in rows]

    def samples(self, result_id: int) -> list[float]:
        return self.samples_of([result_id]).get(result_id, [])

    def samples_of(self, result_ids: list[int]) -> dict[int, list[float]]:
        """The raw latencies (µs) of many results at once, by result id."""
        out: dict[int, list[float]] = {}
        for start in range(0, len(result_ids), 500):
            with self.session() as session:
                rows = session.exec(select(SampleRow).where(SampleRow.result_id.in_(result_ids[start:start + 500])))
                out.update({row.result_id: decode_samples(row.latency_us) for row in rows})
        return out
