"""farm.onnxruntime_perf_test against real onnxruntime_perf_test output (tests/fixtures/onnxruntime_perf_test, with
SOURCES.md), every figure exact, and against hostile output."""
from pathlib import Path

import pytest

from farm.onnxruntime_perf_test import OnnxruntimePerfTestParseError, PerfTestLog, parse_onnxruntime_perf_test

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "onnxruntime_perf_test"


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


def test_every_fixture_is_listed_in_sources():
    listed = (FIXTURES / "SOURCES.md").read_text()
    for path in FIXTURES.glob("*.txt"):
        assert f"| {path.name} |" in listed, path.name


def test_v1_23_android_run_with_statistics():
    log = parse_onnxruntime_perf_test(fixture("v1.23.2_android_arm64_cpu_times_stats.txt"), "", 0, "cpu")
    assert log == PerfTestLog(
        count=5, mean_ms=98.961997, init_ms=217.932, first_ms=196.0, total_ms=494.81, run_ms=494.854,
        min_ms=95.8204, max_ms=101.519, p50_ms=99.5086, p90_ms=101.519, p95_ms=101.519, p99_ms=101.519,
        p999_ms=101.519, peak_bytes=271122432, peak_mb=258.5625, cpu_usage_pct=11, intra_op_threads=1,
        provider="cpu", provider_outcome="cpu", provider_message="the CPU execution provider ran every node",
        warnings=[])


def test_2025_run_with_generated_inputs():
    log = parse_onnxruntime_perf_test(fixture("main2025_linux_arm64_cpu_times_generated_inputs.txt"))
    assert (log.count, log.mean_ms, log.init_ms, log.first_ms, log.total_ms, log.run_ms) == (
        100, 1.85739, 10.2016, 2.0, 185.739, 185.81)
    assert (log.min_ms, log.p50_ms, log.p90_ms, log.p95_ms, log.p99_ms, log.p999_ms, log.max_ms) == (
        1.83404, 1.85674, 1.87215, 1.87393, 1.90312, 1.90312, 1.90312)
    assert (log.peak_bytes, log.peak_mb, log.cpu_usage_pct, log.intra_op_threads) == (36696064, 34.996094, 96, None)


def test_v1_3_run_with_a_result_file_has_no_percentiles():
    log = parse_onnxruntime_perf_test(fixture("v1.3.1_arm_acl_times_result_file.txt"), "", 0, "cpu")
    assert (log.count, log.mean_ms, log.init_ms, log.first_ms, log.total_ms, log.run_ms) == (
        10, 144.871, 127.918, None, 1448.71, 1449.16)
    assert (log.min_ms, log.max_ms, log.p50_ms, log.p90_ms, log.p99_ms) == (None, None, None, None, None)
    assert (log.peak_bytes, log.peak_mb, log.cpu_usage_pct) == (158171136, 150.84375, 68)


def test_early_2020_lines_without_spaces_and_an_onnxruntime_warning():
    log = parse_onnxruntime_perf_test(fixture("v2020-01_windows_times_no_space.txt"))
    assert (log.count, log.mean_ms, log.init_ms, log.total_ms, log.run_ms, log.intra_op_threads) == (
        1, 734.606, 1841.49, 734.606, 734.761, 0)
    assert log.peak_mb is None and log.first_ms is None
    assert log.warnings == ["onnxruntime: Removing initializer 'gpu_0/imagenet1k_blobs_queue_f22e83c9-22cd-4a8b-a66d-"
                            "113af6b832b4_0'. It is not used by any node and should be removed from the model."]


def test_duration_mode():
    log = parse_onnxruntime_perf_test(fixture("v2020-06_arm_linux_duration_600s.txt"))
    assert (log.count, log.mean_ms, log.init_ms, log.total_ms, log.run_ms) == (7160, 83.8059, 133.189, 600051.0,
                                                                              600102.0)


def test_2019_format_latencies_in_sec():
    log = parse_onnxruntime_perf_test(fixture("v2019_readme_sample_statistics.txt"))
    assert (log.count, log.mean_ms, log.total_ms, log.run_ms, log.init_ms) == (1000, 58.8053, 58805.3, 58810.2, None)
    assert (log.min_ms, log.p50_ms, log.p90_ms, log.p95_ms, log.p99_ms, log.max_ms) == (
        55.9777, 58.7108, 59.9845, 60.5676, 61.9517, 62.3472)
    assert log.p999_ms is None  # the README's line ends "se": not a time


def test_missing_test_data_names_the_tool_error_line():
    with pytest.raises(OnnxruntimePerfTestParseError) as caught:
        parse_onnxruntime_perf_test(fixture("v2019_no_test_input_data.txt"), "", 255, "cpu")
    error = caught.value
    assert (error.kind, error.exit_code) == ("model_failed", 255)
    assert error.tool_error == "there is no test input data for input input.1 and model resnet50"
    assert str(error) == ("onnxruntime_perf_test: there is no test input data for input input.1 and model resnet50 "
                          "(Run failed:failed to initialize.); exited with code 255")


def test_a_provider_missing_from_the_build_is_said_in_the_tool_s_words():
    # ORT_THROW's what() (ort_test_session.cc) as main's catch prints it: location, then the sentence
    thrown = ("/build/onnxruntime/test/perftest/ort_test_session.cc:409 onnxruntime::perftest::OnnxRuntimeTestSession::"
              "OnnxRuntimeTestSession(Ort::Env&, std::random_device&, const PerformanceTestConfig&, const "
              "TestModelInfo&) NNAPI is not supported in this build\n\n")
    with pytest.raises(OnnxruntimePerfTestParseError) as caught:
        parse_onnxruntime_perf_test("Setting intra_op_num_threads to 2\n", thrown, 255, "nnapi")
    assert caught.value.kind == "provider_unavailable" and caught.value.tool_error == thrown.strip()
    assert str(caught.value) == "onnxruntime_perf_test: NNAPI is not supported in this build; exited with code 255"


def test_an_exception_on_stderr_fails_the_run():
    text = fixture("v1.18.0_generated_inputs_test_case_dir_error.txt")
    with pytest.raises(OnnxruntimePerfTestParseError) as caught:
        parse_onnxruntime_perf_test("", text, 255, "cpu")
    assert caught.value.kind == "model_failed"
    assert caught.value.tool_error == text.strip()


@pytest.mark.parametrize("stdout, stderr, code, kind, says", [
    ("", "", 0, "empty", "printed nothing (exited with code 0)"),
    ("", "", None, "empty", "printed nothing (no exit status)"),
    ("", "See 'onnxruntime_perf_test --help'.", 255, "bad_flag", "See 'onnxruntime_perf_test --help'."),
    ("Setting intra_op_num_threads to 1\n", "/src/ort_test_session.cc:478 OnnxRuntimeTestSession(...) NNAPI is not "
     "supported in this build\n\n", 255, "provider_unavailable", "NNAPI is not supported in this build"),
    ("Session creation time cost: 0.1 s\n", "", -9, "crashed", "killed by SIGKILL"),
    ("Session creation time cost: 0.1 s\n", "", 0, "no_timings", "no average inference time"),
    ("Average inference time cost: 1 ms\n", "", 0, "no_timings", "no inference count"),
    ("Total inference requests: 0\nAverage inference time cost: nan ms\n", "", 0, "bad_value", "'Average inference"),
    ("Total inference requests: 0\nAverage inference time cost: 1 ms\n", "", 0, "bad_value", "0 inference count"),
    ("Total inference requests: 2\nAverage inference time cost: 1e300 ms\n", "", 0, "bad_value", "not a time"),
    ("Total inference requests: 2\nAverage inference time cost: 1 ms\nMin Latency: -0.001 s\n", "", 0, "bad_value",
     "not a time"),
    ("Total inference requests: 2\nAverage inference time cost: 1 ms\nMin Latency: 0.002 s\nMax Latency: 0.003 s\n",
     "", 0, "bad_value", "min 2 ms above mean 1 ms"),
    ("Total inference requests: 2\nAverage inference time cost: 1 ms\nP50 Latency: 0.002 s\nP90 Latency: 0.001 s\n",
     "", 0, "bad_value", "p50 2 ms above p90 1 ms"),
    ("Total inference requests: 2\nAverage inference time cost: 1 ms\nPeak working set size: 99999999999999999 bytes\n",
     "", 0, "bad_value", "peak working set"),
])
def test_failures_and_hostile_output(stdout, stderr, code, kind, says):
    with pytest.raises(OnnxruntimePerfTestParseError) as caught:
        parse_onnxruntime_perf_test(stdout, stderr, code, "cpu")
    assert caught.value.kind == kind and says in str(caught.value), str(caught.value)
    assert "\n" not in str(caught.value) and len(str(caught.value)) <= 500


def test_output_is_read_within_bounds():
    summary = "Total inference requests: 3\nAverage inference time cost: 2.5 ms\n"
    flood = "[W:onnxruntime:, x.cc:1 f] noise\n" * 200_000  # 6.6 MB of warnings before the summary
    log = parse_onnxruntime_perf_test(summary, flood, 0, "cpu")
    assert (log.count, log.mean_ms) == (3, 2.5)
    assert log.warnings == ["onnxruntime: noise"]
    long = "x" * 5_000_000 + "\n" + summary  # one giant line, then the summary
    assert parse_onnxruntime_perf_test(long, "", 0, "cpu").mean_ms == 2.5
    assert parse_onnxruntime_perf_test("Runs:4\nAverage time cost:1 ms\nAvg CPU usage:-1\n").cpu_usage_pct is None


def test_provider_outcome():
    text = fixture("v1.23.2_android_arm64_cpu_times_stats.txt")
    assert parse_onnxruntime_perf_test(text, "", 0, "xnnpack").provider_outcome == "unknown"
    placed = ("2026-08-14 09:16:51.827199 [W:onnxruntime:, session_state.cc:1327 VerifyEachNodeIsAssignedToAnEp] Some "
              "nodes were not assigned to the preferred execution providers which may or may not have an negative "
              "impact on performance. e.g. ORT explicitly assigns shape related ops to CPU to improve perf.\n")
    log = parse_onnxruntime_perf_test(text, placed, 0, "nnapi")
    assert (log.provider, log.provider_outcome) == ("nnapi", "partial")
    assert log.warnings[0].startswith("onnxruntime: Some nodes were not assigned to the preferred execution providers")
