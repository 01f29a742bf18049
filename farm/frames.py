"""The store's reads as DataFrames, for the dashboard and the exports: SQL run in the database, filters in WHERE,
aggregates in GROUP BY. Part of the store (farm.store.Store inherits them): they read the tables farm.tables defines,
over the store's engine."""
from __future__ import annotations

import json
from typing import TYPE_CHECKING, NamedTuple

from sqlalchemy import bindparam, text

from farm.tables import JOB_STATES, ResultRow

if TYPE_CHECKING:  # pandas is imported by these reads, not by every command that opens a store
    import pandas as pd
    from sqlalchemy.engine import Engine


def decode_samples(latency_us: str) -> list[float]:
    """A result's raw latencies (µs) as stored in samples.latency_us."""
    return json.loads(latency_us)


class FrameReads:
    """Mixed into farm.store.Store, which provides `engine`."""

    engine: "Engine"

    def _frame(self, sql: str, params: dict | None = None, filters: "Filters | None" = None) -> pd.DataFrame:
        """One SELECT as a DataFrame: `{filters}` becomes AND clauses over aliases m, v, j and r (a query with filters
        joins results as r: the runtime is a result's); a list feeds `IN :name`."""
        import pandas as pd

        params = dict(params or {})
        clauses = []
        for name, column in (("models", "m.name"), ("variants", "v.kind"), ("delegates", "j.delegate"),
                             ("devices", "j.device"), ("runtimes", "r.runtime")):
            values = getattr(filters, name) if filters else None
            if values is not None:
                clauses.append(f"AND {column} IN :{name}")
                params[name] = list(values)
        query = text(sql.replace("{filters}", " ".join(clauses)))
        expanding = [bindparam(name, expanding=True) for name, value in params.items()
                     if isinstance(value, (list, tuple))]
        if expanding:
            query = query.bindparams(*expanding)
        with self.engine.connect() as connection:
            result = connection.execute(query, params)
            return pd.DataFrame(result.fetchall(), columns=list(result.keys()))

    def sweep_overview(self) -> pd.DataFrame:
        """Every sweep, oldest first, with its job count per state and the times of its first and latest activity."""
        counts = ",\n".join(f"SUM(CASE WHEN j.state = '{state}' THEN 1 ELSE 0 END) AS {state}" for state in JOB_STATES)
        frame = self._frame(f"""
            SELECT s.id, s.name, s.state, s.created, s.finished, COUNT(j.id) AS jobs, {counts},
                   MIN(j.started) AS first_started, MAX(j.started) AS last_started, MAX(j.finished) AS last_finished
            FROM sweeps s LEFT JOIN jobs j ON j.sweep_id = s.id
            GROUP BY s.id, s.name, s.state, s.created, s.finished
            ORDER BY s.id""")
        for column in ("created", "finished", "first_started", "last_started", "last_finished"):
            frame[column] = _utc(frame[column])
        for state in (*JOB_STATES, "jobs"):
            frame[state] = frame[state].fillna(0).astype(int)
        frame["last_activity"] = frame[["last_started", "last_finished"]].max(axis=1)
        return frame

    def problem_reasons(self, sweep_id: int) -> pd.DataFrame:
        """The reasons of a sweep's failed and skipped jobs, most frequent first, with how many jobs and devices each."""
        return self._frame("""
            SELECT j.state, COALESCE(j.error, '(no reason recorded)') AS reason, COUNT(*) AS jobs,
                   COUNT(DISTINCT j.device) AS devices
            FROM jobs j WHERE j.sweep_id = :sweep AND j.state IN ('failed', 'skipped')
            GROUP BY j.state, j.error ORDER BY jobs DESC, j.state, reason""", {"sweep": sweep_id})

    def jobs_in(self, sweep_id: int, states: tuple[str, ...], limit: int = 5000) -> pd.DataFrame:
        """A sweep's jobs in the given states with their configuration, attempts and last error (at most `limit`)."""
        frame = self._frame("""
            SELECT j.state, j.device, m.name AS model, v.kind AS variant, j.delegate, j.threads, j.repeat, j.attempts,
                   j.error AS reason, j.started, j.finished
            FROM jobs j JOIN variants v ON v.id = j.variant_id JOIN models m ON m.id = v.model_id
            WHERE j.sweep_id = :sweep AND j.state IN :states
            ORDER BY j.state, j.device, m.name, v.kind, j.delegate, j.threads, j.repeat
            LIMIT :limit""", {"sweep": sweep_id, "states": list(states), "limit": limit})
        for column in ("started", "finished"):
            frame[column] = _utc(frame[column])
        return frame

    def choices(self) -> dict[str, list[str]]:
        """The models, variants, delegates and runtimes in the store, for pickers."""
        return {
            "model": self._frame("SELECT DISTINCT name FROM models ORDER BY name")["name"].tolist(),
            "variant": self._frame("SELECT DISTINCT kind FROM variants ORDER BY kind")["kind"].tolist(),
            "delegate": self._frame("SELECT DISTINCT delegate FROM jobs ORDER BY delegate")["delegate"].tolist(),
            "runtime": self._frame("SELECT DISTINCT runtime FROM results ORDER BY runtime")["runtime"].tolist(),
        }

    def device_table(self) -> pd.DataFrame:
        """Every device with its tags, delegates and probed facts (decoded), by name."""
        frame = self._frame("SELECT name, kind, tags, delegates, facts, last_seen FROM devices ORDER BY name")
        for column in ("tags", "delegates", "facts"):
            frame[column] = [json.loads(value) if value else None for value in frame[column]]
        frame["last_seen"] = _utc(frame["last_seen"])
        return frame

    def sweep_devices(self, sweep_id: int) -> list[str]:
        """The devices a sweep has jobs on, by name."""
        return self._frame("SELECT DISTINCT device FROM jobs WHERE sweep_id = :sweep ORDER BY device",
                          {"sweep": sweep_id})["device"].tolist()

    def configs(self, sweep_id: int, filters: "Filters", metrics: list[str]) -> pd.DataFrame:
        """Per device, configuration and runtime of a sweep: `metrics` (results columns) averaged over repeats, the
        variant's size, gzip size and sparsity (pruned variants), the repeats."""
        unknown = set(metrics) - set(ResultRow.model_fields)
        if unknown:
            raise ValueError(f"not a results column: {sorted(unknown)}")
        averages = ", ".join(f"AVG(r.{column}) AS {column}" for column in metrics)
        # The runtime (and its version) is part of the group: a board whose runtime was upgraded mid-sweep measured
        # two things, and the same variant on two boards may run on two runtimes.
        frame = self._frame(f"""
            SELECT j.device, m.name AS model, v.kind AS variant, j.delegate, j.threads, r.runtime, r.runtime_version,
                   COUNT(*) AS repeats, {averages}, MAX(v.size) AS size_bytes, MAX(v.gzip_size) AS gzip_bytes,
                   MAX(v.id) AS variant_id
            FROM results r JOIN jobs j ON j.id = r.job_id JOIN variants v ON v.id = j.variant_id
                 JOIN models m ON m.id = v.model_id
            WHERE j.sweep_id = :sweep {{filters}}
            GROUP BY j.device, m.name, v.kind, j.delegate, j.threads, r.runtime, r.runtime_version
            ORDER BY j.device, m.name, v.kind, j.delegate, j.threads, r.runtime, r.runtime_version""",
                            {"sweep": sweep_id}, filters)
        variant_ids = frame.pop("variant_id")
        frame["sparsity"] = variant_ids.map(self._sparsities(variant_ids.unique().tolist()))
        return frame

    def _sparsities(self, variant_ids: list[int]) -> dict[int, float]:
        """The sparsity a pruned variant's description records, by variant id (JSON decoded here, not in SQL: SQLite
        and PostgreSQL spell it differently, and there are few variants)."""
        descriptions = self._frame("SELECT id, description FROM variants WHERE id IN :ids", {"ids": variant_ids})
        sparsities = {}
        for variant_id, description in zip(descriptions["id"], descriptions["description"]):
            value = json.loads(description or "{}").get("sparsity")
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                sparsities[variant_id] = float(value)
        return sparsities

    def device_results(self, sweep_id: int, device: str, filters: "Filters") -> pd.DataFrame:
        """One device's results in a sweep, in the order they ran, with the environment before and after (decoded)."""
        frame = self._frame("""
            SELECT r.id AS result_id, m.name AS model, v.kind AS variant, j.delegate, j.threads, j.repeat, r.count,
                   r.p50_ms, r.p90_ms, r.p95_ms, r.p99_ms, r.mean_ms, r.std_ms, r.min_ms, r.max_ms, r.init_ms,
                   r.first_ms, r.peak_mb, r.memory_kind, r.peak_delta_mb, r.delegate_outcome, r.delegated_nodes,
                   r.total_nodes, r.runtime, r.runtime_version, r.env_before, r.env_after, j.started, j.finished
            FROM results r JOIN jobs j ON j.id = r.job_id JOIN variants v ON v.id = j.variant_id
                 JOIN models m ON m.id = v.model_id
            WHERE j.sweep_id = :sweep AND j.device = :device {filters}
            ORDER BY j.started, j.id""", {"sweep": sweep_id, "device": device}, filters)
        for when in ("env_before", "env_after"):
            frame[when] = [json.loads(value) if value else {} for value in frame[when]]
        for column in ("started", "finished"):
            frame[column] = _utc(frame[column])
        return frame

    def op_profiles(self, sweep_id: int, device: str) -> pd.DataFrame:
        """Every op-profile row of one device's results in a sweep, with its configuration and repeat."""
        return self._frame("""
            SELECT m.name AS model, v.kind AS variant, j.delegate, j.threads, r.runtime, j.repeat, o.result_id,
                   o.position, o.node, o.op, o.name, o.first_ms, o.avg_ms, o.pct, o.times_called
            FROM ops o JOIN results r ON r.id = o.result_id JOIN jobs j ON j.id = r.job_id
                 JOIN variants v ON v.id = j.variant_id JOIN models m ON m.id = v.model_id
            WHERE j.sweep_id = :sweep AND j.device = :device
            ORDER BY m.name, v.kind, j.delegate, j.threads, j.repeat, o.position""",
                           {"sweep": sweep_id, "device": device})

    def latency_samples(self, sweep_id: int, filters: "Filters", device: str | None = None) -> pd.DataFrame:
        """Every raw latency sample (µs, as an array per result) of a sweep's results, with the job they belong to."""
        frame = self._frame("""
            SELECT j.device, m.name AS model, v.kind AS variant, j.delegate, j.threads, r.runtime, r.runtime_version,
                   j.repeat, r.id AS result_id, s.latency_us
            FROM samples s JOIN results r ON r.id = s.result_id JOIN jobs j ON j.id = r.job_id
                 JOIN variants v ON v.id = j.variant_id JOIN models m ON m.id = v.model_id
            WHERE j.sweep_id = :sweep {device} {filters}
            ORDER BY j.device, m.name, v.kind, j.delegate, j.threads, j.repeat
            """.replace("{device}", "AND j.device = :device" if device else ""),
            {"sweep": sweep_id, "device": device}, filters)
        frame["latency_us"] = [decode_samples(value) for value in frame["latency_us"]]
        return frame


class Filters(NamedTuple):
    """What a reader narrows results to; None means no restriction on that field."""

    models: tuple[str, ...] | None = None
    variants: tuple[str, ...] | None = None
    delegates: tuple[str, ...] | None = None
    devices: tuple[str, ...] | None = None
    runtimes: tuple[str, ...] | None = None  # results.runtime: ai_edge_litert, onnxruntime, benchmark_model, ...


def _utc(values: pd.Series) -> pd.Series:  # SQLite hands datetimes back as text; naive ones are UTC
    import pandas as pd

    return pd.to_datetime(values, utc=True, format="mixed")
