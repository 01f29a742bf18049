"""farm.parse: raw results of both formats into measurements; a failed run, a crash or a delegate that took nothing
into a job failure with the reason. The phone logs are real benchmark_model output (tests/fixtures/benchmark_model/)."""
import json

import pytest

from conftest import FIXTURES
from farm.parse import parse, parse_agent_result, parse_benchmark_model_result
from farm.results import AGENT, BENCHMARK_MODEL, JobFailed, RawResult


def raw(fixture: str, delegate: str, exit_code: int = 0) -> RawResult:
    return RawResult(BENCHMARK_MODEL, (FIXTURES / fixture).read_text(), "", exit_code, {"delegate": delegate, "binary": "bm"})


def test_a_phone_log_becomes_a_result():
    measurement = parse_benchmark_model_result(raw("android_aarch64_nightly_xnnpack_percentiles.txt", "xnnpack"))
    result = measurement.result
    assert result["count"] == 1000 and result["mean_ms"] == pytest.approx(63.7432)
    assert result["p50_ms"] == pytest.approx(51.891) and result["p95_ms"] == pytest.approx(68.628)
    assert result.get("p90_ms") is None and result.get("p99_ms") is None  # not printed by the tool: never invented
    assert result["init_ms"] == pytest.approx(119.515) and result["first_ms"] == pytest.approx(87.112)
    assert result["delegate_outcome"] == "applied" and result["delegated_nodes"] == result["total_nodes"] == 2168
    assert measurement.samples_us == []  # benchmark_model prints aggregates only


def test_an_unknown_delegate_flag_is_delegate_not_applied():
    with pytest.raises(JobFailed, match="delegate not applied: .*--use_gpu=true"):
        parse_benchmark_model_result(raw("linux_x86_64_gpu_flag_unconsumed.txt", "gpu"))


def test_a_failed_run_is_a_failed_job_with_the_tools_reason():
    with pytest.raises(JobFailed, match="benchmark_model: .*allocate"):
        parse_benchmark_model_result(raw("android_aarch64_nightly_allocate_failure.txt", "xnnpack", exit_code=1))


def agent_reply(**overrides) -> RawResult:
    reply = {"ok": True, "init_ms": 3.0, "first_ms": 2.0, "warmup_ms": [1.0], "samples_us": [900, 1000, 1100],
             "runtime": {"name": "ai_edge_litert", "version": "2.3.0"}, "memory": {"peak_mb": 40.0, "peak_delta_mb": 5.0},
             "delegate": {"name": "xnnpack", "outcome": "applied", "delegated_nodes": 4, "total_nodes": 4},
             "warnings": ["ignored unknown request key 'colour'"], **overrides}
    return RawResult(AGENT, json.dumps(reply), "", 0)


def test_an_agent_reply_keeps_the_facts_that_explain_its_numbers():
    measurement = parse_agent_result(agent_reply())
    result = measurement.result
    assert result["p50_ms"] == 1.0 and measurement.samples_us == [900, 1000, 1100]
    assert (result["peak_mb"], result["memory_kind"], result["peak_delta_mb"]) == (40.0, "peak_rss", 5.0)
    assert json.loads(result["warnings"]) == ["ignored unknown request key 'colour'"]


def test_a_phone_result_says_which_memory_figure_it_is():
    result = parse_benchmark_model_result(raw("android_aarch64_nightly_xnnpack_percentiles.txt", "xnnpack")).result
    assert result["memory_kind"] == "footprint_delta"  # this build prints only the footprint's rise
    old = parse_benchmark_model_result(raw("v2.4_cpu_peak_memory.txt", "none")).result
    assert (old["peak_mb"], old["memory_kind"]) == (138.809, "peak_footprint")


def test_the_format_picks_the_parser():
    assert parse(agent_reply()).result["runtime"] == "ai_edge_litert"
    assert parse(raw("v2.4_cpu_peak_memory.txt", "none")).result["runtime"] == "benchmark_model"


def test_an_agent_that_took_no_node_is_delegate_not_applied():
    with pytest.raises(JobFailed, match="delegate not applied: xnnpack took 0 of 4 nodes"):
        parse_agent_result(agent_reply(delegate={"name": "xnnpack", "outcome": "not_applied", "delegated_nodes": 0,
                                                 "total_nodes": 4}))
