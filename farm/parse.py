"""Raw results → measurements. One parser per raw format; a raw result says its format, and PARSERS maps it."""
from __future__ import annotations

import json

from farm.benchmark_model import BenchmarkModelParseError, parse_benchmark_model
from farm.errors import exit_reason
from farm.results import AGENT, BENCHMARK_MODEL, JobFailed, Measurement, RawResult
from farm.stats import summarize


def parse_agent_result(raw: RawResult) -> Measurement:
    """The agent's one JSON object → a Measurement; its error, a crash or a delegate that took nothing → JobFailed."""
    lines = [line for line in raw.stdout.strip().splitlines() if line.strip()]
    try:
        reply = json.loads(lines[-1]) if lines else None
    except json.JSONDecodeError:
        reply = None
    if not isinstance(reply, dict):
        tail = (raw.stderr.strip().splitlines() or ["no output"])[-1][:300]
        raise JobFailed(f"agent {exit_reason(raw.exit_code)} without a result: {tail}")
    if not reply.get("ok"):
        error = reply.get("error") or {}
        raise JobFailed(f"{error.get('type', 'AgentError')}: {error.get('message', 'unknown error')}")
    if raw.exit_code != 0:
        raise JobFailed(f"agent {exit_reason(raw.exit_code)} after reporting a result")

    delegate = reply["delegate"]
    outcome = delegate["outcome"]
    if outcome in ("failed", "not_applied"):
        # Never report a CPU run under the delegate's name.
        nodes = f"{delegate['name']} took {delegate.get('delegated_nodes')} of {delegate.get('total_nodes')} nodes"
        raise JobFailed(f"delegate not applied: {delegate.get('message') or nodes}")
    samples = reply["samples_us"]
    warmup = reply.get("warmup_ms") or []
    memory = reply.get("memory") or {}
    eval_part = reply.get("eval") or {}
    result = {
        **summarize(samples),
        "init_ms": float(reply["init_ms"]),
        "first_ms": float(reply["first_ms"]),
        "warmup_ms": float(sum(warmup) / len(warmup)) if warmup else None,
        "peak_mb": memory.get("peak_mb"),
        "memory_kind": "peak_rss",  # the agent reads VmHWM (ru_maxrss where there is no /proc)
        "peak_delta_mb": memory.get("peak_delta_mb"),
        "delegate_outcome": outcome,
        "delegated_nodes": delegate.get("delegated_nodes"),
        "total_nodes": delegate.get("total_nodes"),
        "runtime": reply["runtime"]["name"],
        "runtime_version": reply["runtime"]["version"],
        "env_before": json.dumps(reply.get("env_before") or {}),
        "env_after": json.dumps(reply.get("env_after") or {}),
        "host": json.dumps(reply.get("host") or {}),
        "agent_ms": reply.get("agent_ms"),
        "warnings": json.dumps(reply.get("warnings") or []),
    }
    return Measurement(result=result, samples_us=samples, predictions=eval_part.get("predictions"))


def parse_benchmark_model_result(raw: RawResult) -> Measurement:
    """benchmark_model's log from a phone → a Measurement; a failed run or a delegate that did not apply → JobFailed.

    The tool prints aggregates, not every sample: the percentiles it did not print stay None, and no samples are stored.
    Its predictions on the eval set come from a second step (the transport's eval_predictions).
    """
    requested = raw.extra.get("delegate")
    try:
        log = parse_benchmark_model(raw.stdout, raw.stderr, raw.exit_code, requested_delegate=requested)
    except BenchmarkModelParseError as error:
        raise JobFailed(f"benchmark_model: {error}") from None
    delegate = log.delegate
    if delegate.outcome in ("failed", "not_applied"):
        raise JobFailed(f"delegate not applied: {delegate.message or f'{requested}: {delegate.outcome}'}")
    result = {
        "count": log.count or 0,
        "mean_ms": log.mean_ms,
        "std_ms": log.std_ms if log.std_ms is not None else 0.0,
        "min_ms": log.min_ms if log.min_ms is not None else log.mean_ms,
        "max_ms": log.max_ms if log.max_ms is not None else log.mean_ms,
        "p50_ms": log.median_ms,
        "p95_ms": log.p95_ms,
        "init_ms": log.init_ms if log.init_ms is not None else 0.0,
        "first_ms": log.first_ms if log.first_ms is not None else log.mean_ms,
        "warmup_ms": log.warmup_avg_ms,
        "peak_mb": log.peak_mb if log.peak_mb is not None else log.memory_overall_mb,
        # Which figure that is: the periodic peak footprint when asked for, else what the build's memory line says.
        "memory_kind": "peak_footprint" if log.peak_mb is not None else log.memory_report,
        "peak_delta_mb": log.memory_overall_mb,
        "delegate_outcome": delegate.outcome,
        "delegated_nodes": delegate.delegated_nodes,
        "total_nodes": delegate.total_nodes,
        "runtime": "benchmark_model",
        "runtime_version": log.runtime_version or raw.extra.get("binary", "unknown"),
        "env_before": json.dumps(raw.extra.get("env_before") or {}),
        "env_after": json.dumps(raw.extra.get("env_after") or {}),
        "host": json.dumps(raw.extra.get("host") or {}),
        "warnings": json.dumps(log.warnings),
    }
    return Measurement(result=result, samples_us=[], predictions=None)


PARSERS = {AGENT: parse_agent_result, BENCHMARK_MODEL: parse_benchmark_model_result}


def parse(raw: RawResult) -> Measurement:
    """The measurement in a raw result, read by the parser of its format."""
    return PARSERS[raw.format](raw)
