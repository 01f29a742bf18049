"""farm.benchmark_model against real benchmark_model output (tests/fixtures/benchmark_model/) and a fuzzer.

Every expected number below was read from the fixture file named in the test. A few tests derive a variant of a
fixture (logcat prefixes, stdout/stderr split, a truncation, scientific notation): each says how, and the
values asserted are the fixture's own.
"""
from __future__ import annotations

import math
import re
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import FIXTURES
from farm.benchmark_model import (
    KINDS,
    BenchmarkLog,
    BenchmarkModelParseError,
    OpTiming,
    parse_benchmark_model,
    parse_op_profile,
)


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


# What a job that asked for a delegate learns: the run did not execute on it when the outcome is one of these.
ABSENT = ("not_applied", "failed")
OUTCOMES = ("applied", "partial", "not_applied", "failed", "cpu", "unknown")


def asked(text: str, delegate: str, stderr: str = "", exit_code: int | None = 0):
    """The delegate outcome of a log for a job that asked for `delegate`."""
    return parse_benchmark_model(text, stderr, exit_code, requested_delegate=delegate).delegate


def approx(value):
    return pytest.approx(value, rel=1e-12, abs=1e-12)


# ---------------------------------------------------------------------------------------------------------------
# One expectation per fixture file, values as printed (µs → ms, MB as is).

TIMINGS = ("init_ms", "first_ms", "warmup_avg_ms", "mean_ms", "std_ms", "min_ms", "max_ms", "count",
           "p5_ms", "median_ms", "p95_ms", "memory_init_mb", "memory_overall_mb", "peak_mb", "memory_report",
           "model_size_mb", "summary_format")

EXPECTED = {
    "android_aarch64_nightly_xnnpack_percentiles.txt": dict(
        # Inference timings in us: Init: 119515, First inference: 87112, Warmup (avg): 58147.4, Inference (avg): 63743.2
        init_ms=119.515, first_ms=87.112, warmup_avg_ms=58.1474, mean_ms=63.7432,
        # count=1000 first=52162 curr=49785 min=49088 max=686105 avg=63743.2 std=60716 p5=49620 median=51891 p95=68628
        std_ms=60.716, min_ms=49.088, max_ms=686.105, count=1000, p5_ms=49.62, median_ms=51.891, p95_ms=68.628,
        # Memory footprint delta from the start of the tool (MB): init=55.4961 overall=55.4961
        memory_init_mb=55.4961, memory_overall_mb=55.4961, peak_mb=None, memory_report="footprint_delta",
        model_size_mb=24.6229, summary_format="current",
        # VERBOSE: Replacing 2168 out of 2168 node(s) with delegate (TfLiteXNNPackDelegate) node, yielding 1 partitions
        delegate=dict(outcome="applied", name="XNNPACK", delegated_nodes=2168, total_nodes=2168, partitions=1,
                      delegate_kernels=None),
        warnings=[],
    ),
    "gpu_full_delegation.txt": dict(
        # Inference timings in us: Init: 870557, First inference: 130565, Warmup (avg): 122373, Inference (avg): 119375
        init_ms=870.557, first_ms=130.565, warmup_avg_ms=122.373, mean_ms=119.375,
        # count=50 first=119212 curr=118055 min=113737 max=124776 avg=119375 std=1948
        std_ms=1.948, min_ms=113.737, max_ms=124.776, count=50, p5_ms=None, median_ms=None, p95_ms=None,
        memory_init_mb=None, memory_overall_mb=None, peak_mb=None, memory_report=None,
        model_size_mb=7.07479, summary_format="current",
        # Created 1 GPU delegate kernels. / Explicitly applied GPU delegate, ... completely executed by the delegate.
        delegate=dict(outcome="applied", name="GPU", delegated_nodes=None, total_nodes=None, partitions=None,
                      delegate_kernels=1),
        warnings=[],
    ),
    "linux_x86_64_gpu_flag_unconsumed.txt": dict(
        # Inference timings in us: Init: 908, First inference: 46, Warmup (avg): 6.60573, Inference (avg): 8.45
        init_ms=0.908, first_ms=0.046, warmup_avg_ms=0.00660573, mean_ms=0.00845,
        # count=20 first=35 curr=7 min=6 max=35 avg=8.45 std=6 p5=6 median=7 p95=35
        std_ms=0.006, min_ms=0.006, max_ms=0.035, count=20, p5_ms=0.006, median_ms=0.007, p95_ms=0.035,
        # Memory footprint delta from the start of the tool (MB): init=4.46484 overall=5.93359
        memory_init_mb=4.46484, memory_overall_mb=5.93359, peak_mb=None, memory_report="footprint_delta",
        model_size_mb=0.157296, summary_format="current",
        # WARN: Unconsumed cmdline flags: --use_gpu=true — a CPU run, never a GPU result
        delegate=dict(outcome="not_applied", name="GPU", delegated_nodes=0, total_nodes=None, partitions=None,
                      delegate_kernels=None),
        warnings=["Unconsumed cmdline flags: --use_gpu=true"],
    ),
    "v2.4_cpu_peak_memory.txt": dict(
        # Inference timings in us: Init: 16242, First inference: 360262, Warmup (avg): 304586, Inference (avg): 249684
        init_ms=16.242, first_ms=360.262, warmup_avg_ms=304.586, mean_ms=249.684,
        # count=50 first=249042 curr=250889 min=247067 max=254474 avg=249684 std=1442
        std_ms=1.442, min_ms=247.067, max_ms=254.474, count=50, p5_ms=None, median_ms=None, p95_ms=None,
        # Peak memory footprint (MB): init=4.92969 overall=138.809
        memory_init_mb=4.92969, memory_overall_mb=138.809, peak_mb=None, memory_report="peak_footprint",
        model_size_mb=None, summary_format="current",
        delegate=dict(outcome="cpu", name="CPU", delegated_nodes=None, total_nodes=None, partitions=None,
                      delegate_kernels=None),
        warnings=[],
    ),
    "v2018_cpu_old_format.txt": dict(
        # Average inference timings in us: Warmup: 76605.9, Init: 9933, no stats: 66767.6 (no first inference;
        # the only count= line is the steady-state one, so first_ms stays None)
        init_ms=9.933, first_ms=None, warmup_avg_ms=76.6059, mean_ms=66.7676,
        # count=15 first=66753 curr=66800 min=66699 max=66838 avg=66767.6 std=39
        std_ms=0.039, min_ms=66.699, max_ms=66.838, count=15, p5_ms=None, median_ms=None, p95_ms=None,
        memory_init_mb=None, memory_overall_mb=None, peak_mb=None, memory_report=None,
        model_size_mb=None, summary_format="legacy",
        delegate=dict(outcome="cpu", name="CPU", delegated_nodes=None, total_nodes=None, partitions=None,
                      delegate_kernels=None),
        warnings=[],
    ),
    "v2024_info_prefixed_xnnpack.txt": dict(
        # INFO: Inference timings in us: Init: 12750, First inference: 14744, Warmup (avg): 13764.3, Inference (avg): 13520.2
        init_ms=12.75, first_ms=14.744, warmup_avg_ms=13.7643, mean_ms=13.5202,
        # INFO: count=74 first=14850 curr=13315 min=13105 max=15765 avg=13520.2 std=470
        std_ms=0.47, min_ms=13.105, max_ms=15.765, count=74, p5_ms=None, median_ms=None, p95_ms=None,
        memory_init_mb=None, memory_overall_mb=None, peak_mb=None, memory_report=None,
        model_size_mb=16.9008, summary_format="current",
        # INFO: Created TensorFlow Lite XNNPACK delegate for CPU. — and no Replacing line: node counts unknown
        delegate=dict(outcome="unknown", name="XNNPACK", delegated_nodes=None, total_nodes=None, partitions=None,
                      delegate_kernels=None),
        warnings=[],
    ),
}

FAILING = {
    "nnapi_delegate_failure.txt": dict(
        kind="delegate_failed", tool_error="Failed to apply NNAPI delegate.",
        message_has=["Failed to apply NNAPI delegate.", "Node number 248 (TfLiteNnapiDelegate) failed to prepare."],
        delegate=dict(outcome="failed", name="NNAPI", delegated_nodes=None, total_nodes=None),
    ),
    "android_aarch64_nightly_allocate_failure.txt": dict(
        kind="allocate_failed", tool_error="Failed to allocate tensors!",
        message_has=["Failed to allocate tensors!", "Node number 57 (BATCH_MATMUL) failed to prepare.",
                     "batch_matmul.cc:353"],
        # VERBOSE: Replacing 2136 out of 2168 node(s) with delegate (TfLiteXNNPackDelegate) node, yielding 65 partitions
        delegate=dict(outcome="partial", name="XNNPACK", delegated_nodes=2136, total_nodes=2168, partitions=65),
    ),
}


# Op profiles (--enable_op_profiling=true): rows of the regular runs' Run Order table, read from each fixture.
# Some are excerpts (no timing summary): those are read with parse_op_profile alone.
OP_PROFILES = {
    "op_profiling_readme_mobilenet_v1.txt": dict(
        rows=31, mean_ms=79.7609,  # Average inference timings in us: Warmup: 83235, Init: 38467, Inference: 79760.9
        # CONV_2D  0.000  4.269  4.269  0.107%  0.107%  0.000  0  [MobilenetV1/MobilenetV1/Conv2d_0/Relu6]
        first=OpTiming(0, None, "CONV_2D", "[MobilenetV1/MobilenetV1/Conv2d_0/Relu6]", 4.269, 4.269, 0.107, 0),
        last=OpTiming(30, None, "SOFTMAX", "[MobilenetV1/Predictions/Softmax]", 0.029, 0.029, 0.001, 0),
    ),
    "op_profiling_riscv64_qemu_mobilenet_v1.txt": dict(
        rows=31, mean_ms=2950.34,  # Inference (avg): 2.95034e+06 — not the init block's AllocateTensors row
        first=OpTiming(0, 0, "CONV_2D", "[MobilenetV1/MobilenetV1/Conv2d_0/Relu6]:0", 87.754, 60.957, 2.066, 1),
        last=OpTiming(30, 30, "SOFTMAX", "[MobilenetV1/Predictions/Reshape_1]:30", 0.23, 0.233, 0.008, 1),
    ),
    "op_profiling_x86_64_info_prefixed_xnnpack_efficientdet.txt": dict(
        rows=171, mean_ms=15.5176,  # INFO: ... Inference (avg): 15517.6; spaces, no [start], XNNPACK's own ops
        first=OpTiming(0, 0, "QUANTIZE", "[tfl.quantize]:0", 0.199, 0.203, 1.328, 1),
        # Convolution (NHWC, QC8) DWConv  0.428  0.051  4.317%  8.304%  0.000  13  Delegate/Convolution (NHWC, QC8) DWConv:1
        third=OpTiming(2, 1, "Convolution (NHWC, QC8) DWConv", "Delegate/Convolution (NHWC, QC8) DWConv:1",
                       0.428, 0.051, 4.317, 13),
        last=OpTiming(170, 19, "Max Pooling (NHWC, S8)", "Delegate/Max Pooling (NHWC, S8):19", 0.009, 0.006, 0.04, 1),
    ),
    "op_profiling_android_nnapi_yolov5s.txt": dict(
        rows=11, mean_ms=None,  # an excerpt: the profile only
        first=OpTiming(0, 0, "STRIDED_SLICE", "[model/tf.strided_slice/StridedSlice]:0", 2.167, 2.118, 1.335, 1),
        last=OpTiming(10, 233, "TfLiteNnapiDelegate", "[Identity, Identity_1, Identity_2]:233", 60.22, 56.058, 35.32,
                      1),
    ),
    "op_profiling_nnapi_deeplabv3_run_order_only.txt": dict(
        rows=8, mean_ms=None,  # cut by its author after the Run Order table
        first=OpTiming(0, 71, "TfLiteNnapiDelegate", "[MobilenetV2/expanded_conv_16/project/add_fold, aspp0/Relu]:71",
                       11.665, 11.422, 21.939, 1),
        last=OpTiming(7, 70, "ARG_MAX", "[ArgMax]:70", 15.44, 15.326, 29.438, 1),
    ),
}


def assert_log(log: BenchmarkLog, expected: dict) -> None:
    for name in TIMINGS:
        want, got = expected[name], getattr(log, name)
        if isinstance(want, float):
            assert got == approx(want), name
        else:
            assert got == want, name
    for name, want in expected["delegate"].items():
        assert getattr(log.delegate, name) == want, f"delegate.{name}"
    assert log.warnings == expected["warnings"]


def test_every_fixture_has_an_expectation():
    names = {p.name for p in FIXTURES.glob("*.txt")}
    assert names == set(EXPECTED) | set(FAILING) | set(OP_PROFILES)


@pytest.mark.parametrize("name", sorted(OP_PROFILES))
def test_op_profile_fixture_gives_its_run_order_rows(name):
    expected = OP_PROFILES[name]
    ops = parse_op_profile(fixture(name))
    assert len(ops) == expected["rows"]
    assert ops[0] == expected["first"] and ops[-1] == expected["last"]
    if "third" in expected:
        assert ops[2] == expected["third"]
    assert [op.position for op in ops] == list(range(len(ops)))
    if expected["mean_ms"] is not None:
        log = parse_benchmark_model(fixture(name), "", 0)
        assert log.mean_ms == approx(expected["mean_ms"]) and log.ops == ops
        # Each node's per-call time times its calls adds up to about one inference (the profiler's own cost aside).
        total = sum(op.avg_ms * max(op.times_called, 1) for op in ops)
        assert total == pytest.approx(log.mean_ms, rel=0.05)


def test_a_run_without_op_profiling_has_no_ops_and_the_init_block_alone_is_not_a_profile():
    assert all(parse_benchmark_model(fixture(name), "", 0).ops == [] for name in EXPECTED)
    riscv = fixture("op_profiling_riscv64_qemu_mobilenet_v1.txt")
    init_only = riscv[:riscv.index("Operator-wise Profiling Info")]
    assert parse_op_profile(init_only) == []


def test_an_op_profile_is_bounded_and_its_names_are_one_line():
    header = "\t[node type]\t[first]\t[avg ms]\t[%]\t[cdf%]\t[mem KB]\t[times called]\t[Name]\n"
    row = "\tADD\t0.010\t0.010\t0.001%\t0.001%\t0.000\t1\t[{}]:{}\n"
    text = ("Operator-wise Profiling Info for Regular Benchmark Runs:\n"
            "============================== Run Order ==============================\n" + header
            + "".join(row.format("x" * 1000 if i == 0 else f"add_{i}", i) for i in range(12_000)))
    ops = parse_op_profile(text)
    assert len(ops) == 10_000
    assert len(ops[0].name) <= 300 and ops[1].name == "[add_1]:1" and ops[1].node == 1


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_parses_to_its_printed_values(name):
    assert_log(parse_benchmark_model(fixture(name), "", 0), EXPECTED[name])


@pytest.mark.parametrize("name", sorted(FAILING))
@pytest.mark.parametrize("exit_code", [1, 0, None])
def test_failing_fixture_raises_with_the_tools_error(name, exit_code):
    want = FAILING[name]
    with pytest.raises(BenchmarkModelParseError) as info:
        parse_benchmark_model(fixture(name), "", exit_code)
    error = info.value
    assert error.kind == want["kind"]
    assert error.tool_error == want["tool_error"]
    assert "\n" not in str(error)
    for text in want["message_has"]:
        assert text in str(error)
    for field_name, value in want["delegate"].items():
        assert getattr(error.delegate, field_name) == value, field_name


# ---------------------------------------------------------------------------------------------------------------
# The unconsumed --use_gpu flag: a CPU run that must never be recorded as a GPU result.

def test_unconsumed_gpu_flag_is_not_applied_when_gpu_was_requested():
    log = parse_benchmark_model(fixture("linux_x86_64_gpu_flag_unconsumed.txt"), "", 0, requested_delegate="gpu")
    assert log.delegate.outcome == "not_applied"
    assert log.delegate.name == "GPU"
    assert "--use_gpu=true" in log.delegate.message
    assert log.unconsumed_flags == ["--use_gpu=true"]
    assert log.delegate.outcome in ABSENT
    # What did run: the runtime's default XNNPACK, node counts not printed by this build.
    assert log.delegates["XNNPACK"].outcome == "unknown"
    text = fixture("linux_x86_64_gpu_flag_unconsumed.txt")
    assert asked(text, "xnnpack").outcome == "unknown"
    assert asked(text, "xnnpack").outcome not in ABSENT
    # Asking for no delegate at all: XNNPACK was on, so that is not a built-in-kernels run either.
    assert asked(text, "none").outcome == "failed"


def test_unconsumed_flag_fixture_split_like_the_real_tool():
    # The real build prints INFO/WARN on stdout, ERROR lines and the runtime's XNNPACK line on stderr.
    text = fixture("linux_x86_64_gpu_flag_unconsumed.txt").splitlines()
    to_stderr = [line for line in text if "Created TensorFlow Lite XNNPACK" in line or line.startswith("ERROR")]
    stdout = "\n".join(line for line in text if line not in to_stderr)
    log = parse_benchmark_model(stdout, "\n".join(to_stderr), 0, requested_delegate="gpu")
    assert_log(log, EXPECTED["linux_x86_64_gpu_flag_unconsumed.txt"])
    assert log.delegates["XNNPACK"].outcome == "unknown"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_gpu_requested_without_any_gpu_line_is_not_applied(name):
    log = parse_benchmark_model(fixture(name), "", 0, requested_delegate="gpu")
    if name == "gpu_full_delegation.txt":
        assert log.delegate.outcome == "applied" and log.delegate.outcome not in ABSENT
    else:
        assert log.delegate.outcome == "not_applied" and log.delegate.name == "GPU"
        assert log.delegate.outcome in ABSENT


def test_xnnpack_and_none_requests_against_the_nightly_log():
    log = parse_benchmark_model(fixture("android_aarch64_nightly_xnnpack_percentiles.txt"), "", 0,
                                requested_delegate="xnnpack")
    assert (log.delegate.outcome, log.delegate.delegated_nodes, log.delegate.total_nodes) == ("applied", 2168, 2168)
    assert log.delegate.outcome not in ABSENT
    none = asked(fixture("android_aarch64_nightly_xnnpack_percentiles.txt"), "none")
    assert none.outcome == "failed" and "2168 of 2168" in none.message
    # Logs without any delegate line: a CPU run for "none", nothing for "xnnpack".
    old = parse_benchmark_model(fixture("v2018_cpu_old_format.txt"), "", 0, requested_delegate="none")
    assert old.delegate.outcome == "cpu"
    assert asked(fixture("v2018_cpu_old_format.txt"), "xnnpack").outcome in ABSENT


# ---------------------------------------------------------------------------------------------------------------
# Variants of the real text.

LOGCAT = "05-30 15:16:46.366  3380  3380 {level} tflite  : "


def as_logcat(text: str) -> str:
    """The Android benchmark APK's form: the same messages, in logcat with the level as a letter."""
    out = []
    for line in text.splitlines():
        level = "I"
        for prefix, letter in (("INFO: ", "I"), ("VERBOSE: ", "V"), ("WARN: ", "W"), ("ERROR: ", "E")):
            if line.startswith(prefix):
                line, level = line[len(prefix):], letter
        out.append(LOGCAT.format(level=level) + line if line else "")
    return "\n".join(out)


@pytest.mark.parametrize("name", ["android_aarch64_nightly_xnnpack_percentiles.txt",
                                  "linux_x86_64_gpu_flag_unconsumed.txt", "gpu_full_delegation.txt"])
def test_logcat_prefixed_fixture_gives_the_same_values(name):
    text = as_logcat(fixture(name))
    assert text.splitlines()[0].startswith("05-30 15:16:46.366  3380  3380 ")
    assert_log(parse_benchmark_model(text, "", 0), EXPECTED[name])


def test_logcat_prefixed_allocate_failure_still_raises():
    with pytest.raises(BenchmarkModelParseError) as info:
        parse_benchmark_model(as_logcat(fixture("android_aarch64_nightly_allocate_failure.txt")), "", 1)
    assert info.value.kind == "allocate_failed"


def test_scientific_notation_is_read():
    # The tool prints doubles with 6 significant digits, so an average of 2950340 µs comes out `2.95034e+06`.
    # Rewrite the gpu fixture's steady-state average that way (both places it is printed).
    text = fixture("gpu_full_delegation.txt").replace("avg=119375", "avg=2.95034e+06")
    text = text.replace("Inference (avg): 119375", "Inference (avg): 2.95034e+06")
    log = parse_benchmark_model(text, "", 0)
    assert log.mean_ms == approx(2950.34)
    assert (log.count, log.std_ms, log.min_ms) == (50, approx(1.948), approx(113.737))


def test_all_same_count_line():
    # Stat::OutputToStream prints `count=N curr=C(all same)` when min == max (e.g. --num_runs=1 prints count=1 curr=C).
    text = fixture("v2.4_cpu_peak_memory.txt").replace(
        "count=50 first=249042 curr=250889 min=247067 max=254474 avg=249684 std=1442",
        "count=50 curr=249684(all same)")
    log = parse_benchmark_model(text, "", 0)
    assert (log.count, log.mean_ms, log.min_ms, log.max_ms, log.std_ms) == (50, approx(249.684), approx(249.684),
                                                                          approx(249.684), 0.0)


def test_legacy_format_takes_first_inference_from_the_warmup_line():
    # Early builds printed the warm-up stats first; its `first=` is the first inference. Put a warm-up line
    # in front of the 2018 fixture's steady-state line, with the summary's warm-up average.
    text = fixture("v2018_cpu_old_format.txt").replace(
        "Running benchmark", "count=3 first=90001 curr=70000 min=69908 max=90001 avg=76605.9 std=9000\n\nRunning benchmark")
    log = parse_benchmark_model(text, "", 0)
    assert log.first_ms == approx(90.001)
    assert (log.count, log.mean_ms) == (15, approx(66.7676))


# ---------------------------------------------------------------------------------------------------------------
# Failures that carry no usable result.

NIGHTLY = "android_aarch64_nightly_xnnpack_percentiles.txt"


@pytest.mark.parametrize("stdout,stderr", [("", ""), ("\n \n", "  ")])
def test_empty_output(stdout, stderr):
    with pytest.raises(BenchmarkModelParseError) as info:
        parse_benchmark_model(stdout, stderr, 0)
    assert info.value.kind == "empty"


def test_output_truncated_before_the_summary():
    text = fixture(NIGHTLY)
    cut = text[: text.index("INFO: Inference timings in us")]
    with pytest.raises(BenchmarkModelParseError) as info:
        parse_benchmark_model(cut, "", 0)
    assert info.value.kind == "no_timings"
    assert "2 'count=' line(s)" in str(info.value)


def test_output_truncated_inside_the_summary():
    text = fixture(NIGHTLY)
    cut = text[: text.index("Inference (avg)")]
    with pytest.raises(BenchmarkModelParseError) as info:
        parse_benchmark_model(cut, "", None)
    assert info.value.kind == "no_timings"


@pytest.mark.parametrize("exit_code,reason", [(1, "exited with code 1"), (-11, "killed by SIGSEGV"),
                                              (139, "exited with code 139")])
def test_complete_output_with_a_failing_exit_code_is_a_crash(exit_code, reason):
    with pytest.raises(BenchmarkModelParseError) as info:
        parse_benchmark_model(fixture(NIGHTLY), "", exit_code)
    assert info.value.kind == "crashed"
    assert reason in str(info.value)
    assert info.value.exit_code == exit_code


def test_unknown_exit_status_lets_the_output_decide():
    assert parse_benchmark_model(fixture(NIGHTLY), "", None).mean_ms == approx(63.7432)


def test_bad_flag_value():
    # SOURCES.md: a flag with a bad value is an error (then usage, exit 1).
    stderr = "ERROR: Failed to parse flag 'num_runs' against argv '--num_runs=abc'\n"
    with pytest.raises(BenchmarkModelParseError) as info:
        parse_benchmark_model("INFO: STARTING!\n", stderr, 1)
    assert info.value.kind == "bad_flag"
    assert "Failed to parse flag 'num_runs' against argv '--num_runs=abc'" in str(info.value)


def test_missing_model():
    # SOURCES.md: ERROR: Could not open '…'. / ERROR: Failed to load model …, ERROR: Benchmarking failed., exit 1.
    stderr = ("ERROR: Could not open 'missing.tflite'.\nERROR: Failed to load model missing.tflite\n"
              "ERROR: Benchmarking failed.\n")
    with pytest.raises(BenchmarkModelParseError) as info:
        parse_benchmark_model("INFO: STARTING!\nINFO: Graph: [missing.tflite]\n", stderr, 1)
    assert info.value.kind == "model_failed"
    assert "Could not open 'missing.tflite'." in str(info.value)


def test_benchmarking_failed_after_results_is_not_a_result():
    # A failed invoke in the timed loop: the summary is printed, then the tool reports the failure and exits 1.
    with pytest.raises(BenchmarkModelParseError) as info:
        parse_benchmark_model(fixture(NIGHTLY), "ERROR: Benchmarking failed.\n", 1)
    assert info.value.kind == "benchmark_failed"


# ---------------------------------------------------------------------------------------------------------------
# Fuzzing: whatever the text, the parser returns sane values or raises BenchmarkModelParseError.

FIXTURE_TEXTS = [p.read_text() for p in sorted(FIXTURES.glob("*.txt"))]
FIXTURE_LINES = sorted({line for text in FIXTURE_TEXTS for line in text.splitlines()})
NUMBER = re.compile(r"\d+(?:\.\d+)?(?:e[-+]\d+)?")
PREFIXES = ["", "INFO: ", "WARN: ", "ERROR: ", "VERBOSE: ", "WARNING: ", LOGCAT.format(level="I"),
            LOGCAT.format(level="E"), "I/tflite( 3380): ", "I0000 00:00:1789784532.427623    1234 x.cc:42] ",
            "2024-05-30 15:16:46.366  3380  3380 W tflite: ", "\t", "INFO: INFO: "]
NUMBERS = st.one_of(
    st.sampled_from(["0", "-1", "nan", "-nan", "inf", "1e+400", "2.95034e+06", "1e-300", "9" * 30, "9" * 5000,
                     "", "1.", ".5", "0x10", "1e", "١٢٣"]),
    st.integers(min_value=-(10 ** 20), max_value=10 ** 20).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
)


@st.composite
def mutated_fixture(draw) -> str:
    text = draw(st.sampled_from(FIXTURE_TEXTS))
    for _ in range(draw(st.integers(min_value=0, max_value=5))):
        op = draw(st.sampled_from(["truncate", "splice", "number", "prefix", "drop", "duplicate", "insert", "garbage"]))
        if op == "truncate":
            text = text[: draw(st.integers(min_value=0, max_value=len(text)))]
        elif op == "splice":
            other = draw(st.sampled_from(FIXTURE_TEXTS))
            a = draw(st.integers(min_value=0, max_value=len(other)))
            b = draw(st.integers(min_value=a, max_value=len(other)))
            at = draw(st.integers(min_value=0, max_value=len(text)))
            text = text[:at] + other[a:b] + text[at:]
        elif op == "number":
            spans = [m.span() for m in NUMBER.finditer(text)]
            if spans:
                a, b = spans[draw(st.integers(min_value=0, max_value=len(spans) - 1))]
                text = text[:a] + draw(NUMBERS) + text[b:]
        else:
            lines = text.splitlines()
            i = draw(st.integers(min_value=0, max_value=len(lines)))
            if op == "prefix" and i < len(lines):
                lines[i] = draw(st.sampled_from(PREFIXES)) + lines[i]
            elif op == "drop" and i < len(lines):
                del lines[i]
            elif op == "duplicate" and i < len(lines):
                lines.insert(i, lines[i])
            elif op == "insert":
                lines.insert(i, draw(st.sampled_from(PREFIXES)) + draw(st.sampled_from(FIXTURE_LINES)))
            elif op == "garbage":
                lines.insert(i, draw(st.text(max_size=40)))
            text = "\n".join(lines)
    return text


LINE_SOUP = st.lists(st.tuples(st.sampled_from(PREFIXES), st.sampled_from(FIXTURE_LINES)), max_size=30).map(
    lambda pairs: "\n".join(p + line for p, line in pairs))
OUTPUTS = st.one_of(mutated_fixture(), mutated_fixture(), LINE_SOUP, st.text(max_size=200))
FLOAT_FIELDS = ("init_ms", "first_ms", "warmup_avg_ms", "mean_ms", "std_ms", "min_ms", "max_ms", "p5_ms",
                "median_ms", "p95_ms", "memory_init_mb", "memory_overall_mb", "peak_mb", "model_size_mb")


@settings(max_examples=10_000, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(stdout=OUTPUTS, stderr=st.one_of(st.just(""), OUTPUTS),
       exit_code=st.sampled_from([0, 0, 0, 1, -11, 139, None]),
       requested=st.sampled_from([None, "gpu", "xnnpack", "none", "nnapi", "hexagon", "edgetpu", "external"]))
def test_fuzz_only_typed_errors_and_sane_values(stdout, stderr, exit_code, requested):
    try:
        log = parse_benchmark_model(stdout, stderr, exit_code, requested_delegate=requested)
    except BenchmarkModelParseError as error:
        assert error.kind in KINDS
        assert str(error) and "\n" not in str(error) and len(str(error)) <= 500
        return
    assert log.mean_ms is not None
    for name in FLOAT_FIELDS:
        value = getattr(log, name)
        assert value is None or (isinstance(value, float) and math.isfinite(value) and value >= 0), (name, value)
    assert log.count is None or (isinstance(log.count, int) and log.count >= 0)
    for info in [log.delegate, *log.delegates.values()]:
        assert info.outcome in OUTCOMES
        for count in (info.delegated_nodes, info.total_nodes, info.delegate_kernels, info.partitions):
            assert count is None or (isinstance(count, int) and count >= 0)
    assert all(isinstance(w, str) and "\n" not in w for w in log.warnings)
