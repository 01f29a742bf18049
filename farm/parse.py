"""Raw results → measurements. One parser per raw format; a raw result says its format, and PARSERS maps it."""
from __future__ import annotations

import json
from dataclasses import asdict

from farm.benchmark_model import BenchmarkModelParseError, parse_benchmark_model
from farm.errors import exit_reason
from farm.replies import AgentFailure, agent_reply, read_json
from farm.onnxruntime_perf_test import OnnxruntimePerfTestParseError, parse_onnxruntime_perf_test
from farm.results import AGENT, BENCHMARK_MODEL, ONNXRUNTIME_PERF_TEST, JobFailed, Measurement, RawResult
from farm.stats import summarize


# LiteRT's Python API (Interpreter) times only a whole invoke(): per-op times come from a benchmark_model build.
NO_OP_PROFILER = ("no op profile: LiteRT's Python API has no op profiler; name a benchmark_model build for this device "
                  "(benchmark_model: in its inventory entry) to profile its ops")


def _op_profile(raw: RawResult) -> tuple[list[dict] | None, str | None]:
    """The op profile of an agent's job (a benchmark_model run beside it, see the transports), or why there is none."""
    if not raw.extra.get("profile"):
        return None, None
    run = raw.extra.get("op_profile")
    if run is None:
        return None, NO_OP_PROFILER
    if "error" in run:
        return None, f"no op profile: benchmark_model: {run['error']}"
    try:
        log = parse_benchmark_model(run["stdout"], run["stderr"], run["exit_code"], requested_delegate=run["delegate"])
    except BenchmarkModelParseError as error:
        return None, f"no op profile: {error}"
    if log.delegate.outcome in ("failed", "not_applied"):
        return None, f"no op profile: benchmark_model's run: {log.delegate.message}"
    return _ops(log)


def _ops(log) -> tuple[list[dict] | None, str | None]:
    if not log.ops:
        return None, "no op profile: benchmark_model printed no operator table"
    return [asdict(op) for op in log.ops], None


def parse_agent_result(raw: RawResult) -> Measurement:
    """The agent's one JSON object → a Measurement; its error, a crash, a reply that breaks the schema
    (farm.replies) or a delegate that took nothing → JobFailed."""
    lines = [line for line in raw.stdout.strip().splitlines() if line.strip()]
    try:
        reply = read_json(lines[-1], "agent reply") if lines else None
    except JobFailed:
        if raw.exit_code == 0:
            raise  # the agent says it finished, yet its reply is broken: say how
        reply = None  # a crash mid-output: what ended it is the reason
    if reply is None:
        tail = (raw.stderr.strip().splitlines() or ["no output"])[-1][:300]
        raise JobFailed(f"agent {exit_reason(raw.exit_code)} without a result: {tail}")
    reply = agent_reply(reply)
    if isinstance(reply, AgentFailure):
        raise JobFailed(f"{reply.error.type}: {reply.error.message}")
    if raw.exit_code != 0:
        raise JobFailed(f"agent {exit_reason(raw.exit_code)} after reporting a result")

    delegate = reply.delegate
    if delegate.outcome in ("failed", "not_applied"):
        # Never report a CPU run under the delegate's name.
        nodes = f"{delegate.name} took {delegate.delegated_nodes} of {delegate.total_nodes} nodes"
        raise JobFailed(f"delegate not applied: {delegate.message or nodes}")
    warmup = reply.warmup_ms
    ops, no_ops = _op_profile(raw)
    result = {
        **summarize(reply.samples_us),
        "init_ms": reply.init_ms,
        "first_ms": reply.first_ms,
        "warmup_ms": sum(warmup) / len(warmup) if warmup else None,
        "peak_mb": reply.memory.peak_mb,
        "memory_kind": "peak_rss",  # the agent reads VmHWM (ru_maxrss where there is no /proc)
        "peak_delta_mb": reply.memory.peak_delta_mb,
        "delegate_outcome": delegate.outcome,
        "delegated_nodes": delegate.delegated_nodes,
        "total_nodes": delegate.total_nodes,
        "runtime": reply.runtime.name,
        "runtime_version": reply.runtime.version,
        "env_before": json.dumps(reply.env_before),
        "env_after": json.dumps(reply.env_after),
        "host": json.dumps(reply.host),
        "agent_ms": reply.agent_ms,
        "warnings": json.dumps(reply.warnings + ([no_ops] if no_ops else [])),
    }
    predictions = reply.eval.predictions if reply.eval else None
    outputs = reply.eval.outputs if reply.eval else None
    return Measurement(result=result, samples_us=reply.samples_us, predictions=predictions, ops=ops, outputs=outputs)


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
    ops, no_ops = _ops(log) if raw.extra.get("profile") else (None, None)
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
        "warnings": json.dumps(log.warnings + ([no_ops] if no_ops else [])),
    }
    return Measurement(result=result, samples_us=[], predictions=None, ops=ops)


def parse_onnxruntime_perf_test_result(raw: RawResult) -> Measurement:
    """onnxruntime_perf_test's output from a phone → a Measurement; a failed run → JobFailed with the tool's error.

    The tool prints aggregates (its percentiles in seconds, here in ms), no samples and no outputs: no predictions.
    What the job asked for and the tool cannot do is in the transport's warnings (raw.extra["warnings"])."""
    try:
        log = parse_onnxruntime_perf_test(raw.stdout, raw.stderr, raw.exit_code, raw.extra.get("provider"))
    except OnnxruntimePerfTestParseError as error:
        raise JobFailed(str(error)) from None
    said = [] if log.provider_outcome == "cpu" else [log.provider_message]
    result = {
        "count": log.count,
        "mean_ms": log.mean_ms,
        "std_ms": 0.0,  # not printed, as benchmark_model's builds without it
        "min_ms": log.min_ms if log.min_ms is not None else log.mean_ms,
        "max_ms": log.max_ms if log.max_ms is not None else log.mean_ms,
        "p50_ms": log.p50_ms,
        "p90_ms": log.p90_ms,
        "p95_ms": log.p95_ms,
        "p99_ms": log.p99_ms,
        "init_ms": log.init_ms if log.init_ms is not None else 0.0,  # session creation
        "first_ms": log.first_ms if log.first_ms is not None else log.mean_ms,
        "warmup_ms": log.first_ms,  # the tool's one warm-up run is its first inference
        "peak_mb": log.peak_mb,
        "memory_kind": "peak_rss" if log.peak_mb is not None else None,  # ru_maxrss of the tool's process
        "peak_delta_mb": None,
        "delegate_outcome": log.provider_outcome,
        "delegated_nodes": None,
        "total_nodes": None,
        "runtime": "onnxruntime_perf_test",
        "runtime_version": raw.extra.get("binary", "unknown"),  # the tool prints no ONNX Runtime version
        "env_before": json.dumps(raw.extra.get("env_before") or {}),
        "env_after": json.dumps(raw.extra.get("env_after") or {}),
        "host": json.dumps(raw.extra.get("host") or {}),
        "warnings": json.dumps(log.warnings + said + list(raw.extra.get("warnings") or [])),
    }
    return Measurement(result=result, samples_us=[], predictions=None)


PARSERS = {AGENT: parse_agent_result, BENCHMARK_MODEL: parse_benchmark_model_result,
           ONNXRUNTIME_PERF_TEST: parse_onnxruntime_perf_test_result}


def parse(raw: RawResult) -> Measurement:
    """The measurement in a raw result, read by the parser of its format."""
    return PARSERS[raw.format](raw)
