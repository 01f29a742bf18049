"""farm.parse: raw results of both formats into measurements; a failed run, a crash or a delegate that took nothing
into a job failure with the reason. The phone logs are real benchmark_model output (tests/fixtures/benchmark_model/)."""
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import FIXTURES
from farm.inventory import parse_device
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


# --- replies from a device that is not trusted: every fault fails the job with the field named -----------------------

def hostile(text: str, exit_code: int = 0) -> RawResult:
    return RawResult(AGENT, text, "", exit_code)


def good(**overrides) -> dict:
    return json.loads(agent_reply(**overrides).stdout)


@pytest.mark.parametrize("reply, reason", [
    ({k: v for k, v in good().items() if k != "delegate"}, "agent reply: delegate: missing"),
    ({"ok": False, "error": "boom"}, "agent reply: error: "),
    (good(samples_us="fast"), "agent reply: samples_us: "),
    (good(samples_us={"a": 1}), "agent reply: samples_us: "),
    (good(samples_us=[10 ** 400]), "agent reply: samples_us[0]: not a number in range"),
    (good(samples_us=[100, 200, 300, -5]), "agent reply: samples_us[3]: not a positive number"),
    (good(samples_us=[100, True]), "agent reply: samples_us[1]: "),
    (good(samples_us=[]), "agent reply: samples_us: "),
    (good(init_ms="soon"), "agent reply: init_ms: not a"),
    (good(eval={"predictions": 5}), "agent reply: eval.predictions: "),
    (good(eval={"predictions": [1, -2]}), "agent reply: eval.predictions[1]: "),
    (good(eval={"predictions": [1], "outputs": [["0.5"]]}), "agent reply: eval.outputs[0][0]: not a number in range"),
    (good(eval={"predictions": [1], "outputs": [[True]]}), "agent reply: eval.outputs[0][0]: not a number in range"),
    (good(eval={"predictions": [1], "outputs": [[10 ** 400]]}), "agent reply: eval.outputs[0][0]: not a number in range"),
    (good(eval={"predictions": [1], "outputs": [0.5]}), "agent reply: eval.outputs[0]: not a list"),
    (good(eval={"predictions": [1], "outputs": [[0.5], [0.7]]}), "agent reply: eval: outputs: one per prediction"),
    (good(eval={"outputs": [[0.5]]}), "agent reply: eval: outputs: one per prediction"),
    (good(eval={"predictions": [0, 0], "outputs": [[0.0] * 600_000] * 2}), "agent reply: eval: outputs: more than 1048576"),
    (good(runtime={"name": "ai_edge_litert", "version": "x" * 20_000_000}), "agent reply: runtime.version: too long"),
    (good(host={"notes": "x" * 100_000}), "agent reply: host: more than 64 KB"),
    (good(delegate={"name": "xnnpack", "outcome": "sideways"}), "agent reply: delegate.outcome: "),
    ([1, 2, 3], "agent reply: expected an object"),
])
def test_a_malformed_reply_fails_its_job_naming_the_field(reply, reason):
    with pytest.raises(JobFailed) as error:
        parse_agent_result(hostile(json.dumps(reply)))
    assert str(error.value).startswith(reason), str(error.value)
    assert "\n" not in str(error.value) and len(str(error.value)) < 1000


def test_nan_deep_nesting_and_an_unclean_exit_are_refused():
    with pytest.raises(JobFailed, match="not JSON .*NaN is not a number"):
        parse_agent_result(hostile(json.dumps(good()).replace('"init_ms": 3.0', '"init_ms": NaN')))
    with pytest.raises(JobFailed, match="agent reply: nested too deeply"):
        parse_agent_result(hostile("[" * 200_000 + "]" * 200_000))
    # A result printed by an agent that was then killed is not a result.
    with pytest.raises(JobFailed, match="agent killed by SIGKILL after reporting a result"):
        parse_agent_result(hostile(json.dumps(good()), exit_code=-9))


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                    max_leaves=12)
FIELDS = ["ok", "runtime", "delegate", "init_ms", "first_ms", "warmup_ms", "samples_us", "memory", "eval", "host",
          "env_before", "env_after", "agent_ms", "warnings", "error"]


@pytest.fixture(scope="module")
def store_for_fuzz(tmp_path_factory):
    """A real store with enough pending jobs for every fuzzed reply that passes the schema."""
    from farm.store import Store
    from test_store import FakeVariantRecord

    store = Store(tmp_path_factory.mktemp("fuzz") / "farm.db")
    store.upsert_device(parse_device({"name": "board", "kind": "local"}))
    variant = store.add_variant(FakeVariantRecord("m", "fp32", "a" * 64))
    sweep = store.create_sweep("fuzz", {}, [{"device": "board", "variant_id": variant, "delegate": "xnnpack",
                                            "threads": 1, "repeat": r} for r in range(700)])
    return store, [job.id for job in store.jobs(sweep.id)]


@settings(max_examples=600, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(changes=st.dictionaries(st.sampled_from(FIELDS), JSON, max_size=4), dropped=st.sets(st.sampled_from(FIELDS)),
       exit_code=st.sampled_from([0, 0, 1, -9, 137]))
def test_fuzzed_replies_fail_only_as_job_failures_and_what_passes_is_storable(changes, dropped, exit_code, store_for_fuzz):
    reply = {k: v for k, v in {**good(), **changes}.items() if k not in dropped}
    try:
        measurement = parse_agent_result(hostile(json.dumps(reply), exit_code))
    except JobFailed as error:
        assert str(error) and "\n" not in str(error)
        return
    assert all(isinstance(s, float) and 0 < s < 1e12 for s in measurement.samples_us)
    store, job_ids = store_for_fuzz
    job_id = job_ids.pop()
    store.start_job(job_id)
    store.finish_job(job_id, measurement.result, measurement.samples_us)  # what passed the schema, the store takes


@pytest.mark.parametrize("facts", [None, [1, 2, 3], "pi", {"notes": "x" * 100_000}])
def test_a_probe_reply_must_be_a_bounded_object(facts):
    from farm.replies import probe_facts

    with pytest.raises(JobFailed, match="probe reply: "):
        probe_facts(facts)


def test_an_agent_replys_eval_outputs_are_kept_as_sent():
    outputs = [[0.5, -1e30, 3], [1e-12, 0, -7.25]]
    measurement = parse_agent_result(agent_reply(eval={"count": 2, "predictions": [0, 2], "outputs": outputs}))
    assert measurement.outputs == outputs and measurement.predictions == [0, 2]
    assert parse_agent_result(agent_reply(eval={"count": 1, "predictions": [0]})).outputs is None


@pytest.mark.parametrize("onnxruntime, reason", [
    ("1.32.0", "probe reply: onnxruntime: not an object"),
    ({"version": 1.32, "providers": []}, "probe reply: onnxruntime.version: not a string"),
    ({"version": "1.32.0", "providers": "CPUExecutionProvider"}, "probe reply: onnxruntime.providers: not a list"),
    ({"version": "1.32.0", "providers": ["CPUExecutionProvider", 7]}, "probe reply: onnxruntime.providers[1]: not a string"),
    ({"version": "1.32.0", "providers": ["P"] * 65}, "probe reply: onnxruntime.providers: too long"),
    ({"version": None, "providers": [], "error": "e" * 2001}, "probe reply: onnxruntime.error: too long"),
])
def test_a_probes_onnxruntime_facts_are_checked(onnxruntime, reason):
    from farm.replies import probe_facts

    with pytest.raises(JobFailed) as error:
        probe_facts({"cores": 4, "onnxruntime": onnxruntime})
    assert str(error.value) == reason


def test_a_probes_onnxruntime_facts_are_kept_as_their_schema_says():
    from farm.replies import probe_facts

    facts = probe_facts({"cores": 4, "onnxruntime": {"version": "1.32.0", "providers": ["CPUExecutionProvider"],
                                                     "colour": "blue"}})
    assert facts == {"cores": 4, "onnxruntime": {"version": "1.32.0", "providers": ["CPUExecutionProvider"],
                                                 "error": None}}
    assert probe_facts({"cores": 4}) == {"cores": 4}  # a probe from an agent that predates it
