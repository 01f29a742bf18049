"""The stored format: the tables of the store, their schema version, and how an older store is upgraded.

Only farm.store reads and writes them; other modules use these rows as the records the store hands back.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import Column, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

SCHEMA_VERSION = 6
JOB_STATES = ("pending", "running", "done", "failed", "skipped")
# interrupted: its driver was stopped (Ctrl-C, SIGTERM) and put its running jobs back to pending; resume carries on.
SWEEP_STATES = ("pending", "running", "interrupted", "done")
# What a result's peak_mb is: the agent's peak RSS (VmHWM), or what benchmark_model printed (its peak footprint, or
# only the footprint's rise over the tool's start).
MEMORY_KINDS = ("peak_rss", "peak_footprint", "footprint_delta", "max_rss")

# How a store of an older schema becomes this one: statements per version, run in one transaction by a writer.
MIGRATIONS = {
    1: [  # one name per metric (agreement_with_fp32), the facts that explain a number (memory_kind, warnings),
          # and no column that nothing reads (devices.connection, models.task)
        "ALTER TABLE results RENAME COLUMN agreement TO agreement_with_fp32",
        "ALTER TABLE results ADD COLUMN memory_kind VARCHAR",
        "ALTER TABLE results ADD COLUMN warnings TEXT NOT NULL DEFAULT '[]'",
        "UPDATE results SET memory_kind = 'peak_rss' WHERE runtime <> 'benchmark_model'",
        "ALTER TABLE devices DROP COLUMN connection",
        "ALTER TABLE models DROP COLUMN task",
    ],
    2: [  # who holds each lease (farm.leases), so a waiting coordinator can say whom it waits for
        "CREATE TABLE leases (name VARCHAR NOT NULL PRIMARY KEY, sweep VARCHAR NOT NULL, pid INTEGER NOT NULL, "
        "host VARCHAR NOT NULL, since TIMESTAMP NOT NULL)",
    ],
    3: [  # op profiles (profile: true): a row per node of a result's benchmark_model Run Order table
        "CREATE TABLE ops (result_id INTEGER NOT NULL REFERENCES results (id), position INTEGER NOT NULL, "
        "node INTEGER, op VARCHAR NOT NULL, name VARCHAR NOT NULL, first_ms FLOAT, avg_ms FLOAT NOT NULL, pct FLOAT, "
        "times_called INTEGER, PRIMARY KEY (result_id, position))",
    ],
    4: [  # validation against the source model, regression scores, and the compressed size of a variant
        "ALTER TABLE variants ADD COLUMN gzip_size INTEGER",
        "ALTER TABLE results ADD COLUMN agreement_with_source FLOAT",
        "ALTER TABLE results ADD COLUMN rmse FLOAT",
        "ALTER TABLE results ADD COLUMN max_abs_error FLOAT",
        "ALTER TABLE results ADD COLUMN rmse_vs_source FLOAT",
        "ALTER TABLE results ADD COLUMN max_abs_vs_source FLOAT",
        "CREATE TABLE source_outputs (model_id INTEGER NOT NULL REFERENCES models (id), eval_sha256 VARCHAR NOT NULL, "
        "eval_limit INTEGER NOT NULL, task VARCHAR NOT NULL, outputs TEXT NOT NULL, "
        "PRIMARY KEY (model_id, eval_sha256, eval_limit))",
    ],
    5: [  # a job's earlier failures, kept when `farm sweep resume --retry-failed` runs it again
        "ALTER TABLE jobs ADD COLUMN history TEXT NOT NULL DEFAULT '[]'",
    ],
}
TASKS = ("classification", "regression")


def now() -> datetime:
    return datetime.now(timezone.utc)


def _json() -> Any:
    return Field(default="{}", sa_column=Column(Text, nullable=False))


class Meta(SQLModel, table=True):
    key: str = Field(primary_key=True)
    value: str


class DeviceRow(SQLModel, table=True):
    __tablename__ = "devices"
    name: str = Field(primary_key=True)
    kind: str
    tags: str = Field(default="[]", sa_column=Column(Text, nullable=False))
    delegates: str = Field(default="[]", sa_column=Column(Text, nullable=False))
    facts: str = _json()
    last_seen: datetime | None = None


class ModelRow(SQLModel, table=True):
    __tablename__ = "models"
    __table_args__ = (UniqueConstraint("name", "source_sha"),)
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(index=True)
    source: str
    source_sha: str


class VariantRow(SQLModel, table=True):
    __tablename__ = "variants"
    __table_args__ = (UniqueConstraint("model_id", "kind", "sha256"),)
    id: int | None = Field(default=None, primary_key=True)
    model_id: int = Field(foreign_key="models.id", index=True)
    kind: str
    sha256: str
    size: int
    gzip_size: int | None = None  # what it ships at compressed: pruning pays off here, not in `size`
    path: str
    description: str = _json()  # inputs/outputs (dtype, shape, quantization), ops, op_count; sparsity when pruned
    needs_flex: bool = False
    error: str | None = None  # why this variant cannot be benchmarked (validation failure)


class SourceOutputRow(SQLModel, table=True):
    """The source model's own outputs on a sweep's eval set, computed once by the coordinator (TensorFlow): top-1
    predictions for a classification, output values for a regression. eval_limit 0: the whole set."""

    __tablename__ = "source_outputs"
    model_id: int = Field(foreign_key="models.id", primary_key=True)
    eval_sha256: str = Field(primary_key=True)
    eval_limit: int = Field(primary_key=True)
    task: str  # TASKS
    outputs: str = Field(sa_column=Column(Text, nullable=False))  # JSON: [int] or [[float]]


class SweepRow(SQLModel, table=True):
    __tablename__ = "sweeps"
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True)
    spec: str = _json()
    created: datetime = Field(default_factory=now)
    finished: datetime | None = None
    state: str = "pending"  # SWEEP_STATES


class LeaseRow(SQLModel, table=True):
    """The last holder of a lease; whether it still holds it, only the lease's lock can tell (farm.leases)."""

    __tablename__ = "leases"
    name: str = Field(primary_key=True)
    sweep: str
    pid: int
    host: str
    since: datetime


class JobRow(SQLModel, table=True):
    __tablename__ = "jobs"
    __table_args__ = (UniqueConstraint("sweep_id", "device", "variant_id", "delegate", "threads", "repeat"),)
    id: int | None = Field(default=None, primary_key=True)
    sweep_id: int = Field(foreign_key="sweeps.id", index=True)
    device: str = Field(foreign_key="devices.name", index=True)
    variant_id: int = Field(foreign_key="variants.id")
    delegate: str
    threads: int
    repeat: int
    state: str = Field(default="pending", index=True)
    attempts: int = 0
    error: str | None = None
    started: datetime | None = None
    finished: datetime | None = None
    # Earlier runs that failed, oldest first ({"error", "attempts", "started", "finished"}): a retried job keeps them.
    history: str = Field(default="[]", sa_column=Column(Text, nullable=False, server_default="[]"))


class ResultRow(SQLModel, table=True):
    __tablename__ = "results"
    id: int | None = Field(default=None, primary_key=True)
    job_id: int = Field(foreign_key="jobs.id", unique=True)
    init_ms: float
    first_ms: float
    warmup_ms: float | None = None
    count: int
    mean_ms: float
    std_ms: float
    min_ms: float
    max_ms: float
    # None where the device's tool printed no such figure (benchmark_model on a phone reports aggregates, not samples).
    p50_ms: float | None = None
    p90_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None
    peak_mb: float | None = None
    memory_kind: str | None = None  # which figure peak_mb is (MEMORY_KINDS)
    peak_delta_mb: float | None = None
    accuracy: float | None = None
    agreement_with_fp32: float | None = None  # share of eval predictions equal to the fp32 variant's, same device
    agreement_with_source: float | None = None  # share equal to the source model's own (Keras/SavedModel) predictions
    # A regression model's eval scores (its outputs are values, not a class vector): against the targets y, and
    # against the source model's outputs.
    rmse: float | None = None
    max_abs_error: float | None = None
    rmse_vs_source: float | None = None
    max_abs_vs_source: float | None = None
    predictions: str | None = Field(default=None, sa_column=Column(Text))
    delegate_outcome: str  # applied, partial, not_applied, cpu
    delegated_nodes: int | None = None
    total_nodes: int | None = None
    runtime: str
    runtime_version: str
    env_before: str = _json()
    env_after: str = _json()
    host: str = _json()
    wall_ms: float | None = None  # the coordinator's view: job start to result, transport included
    agent_ms: float | None = None  # the agent's own run time on the device, its start-up included
    warnings: str = Field(default="[]", sa_column=Column(Text, nullable=False, server_default="[]"))


class SampleRow(SQLModel, table=True):
    """Every steady-state latency of a result, in µs, as one JSON array (portable, and one read per result)."""

    __tablename__ = "samples"
    result_id: int = Field(foreign_key="results.id", primary_key=True)
    latency_us: str = Field(sa_column=Column(Text, nullable=False))


class OpRow(SQLModel, table=True):
    """One node of a result's op profile (benchmark_model --enable_op_profiling), in run order."""

    __tablename__ = "ops"
    result_id: int = Field(foreign_key="results.id", primary_key=True)
    position: int = Field(primary_key=True)
    node: int | None = None  # the node index the tool printed, when it did
    op: str  # node type: CONV_2D, a delegate kernel such as TfLiteXNNPackDelegate, or an XNNPACK operator
    name: str
    first_ms: float | None = None
    avg_ms: float  # per call
    pct: float | None = None  # share of the run's time
    times_called: int | None = None
