"""Android phones over adb: flags per delegate, parsing a phone's log into a result, and (with the simulated phones of
tests/phone) whole sweeps through a real adb server."""
from pathlib import Path

import pytest

from farm.inventory import Device
from farm.parse import parse_benchmark_model_result
from farm.transports import JobFailed, RawResult
from farm.transports.adb import _count_cpus, _to_input_dtype, _top1, delegate_flags, parse_battery

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "benchmark_model"

PHONE = Device(name="p", kind="android", serial="s", delegates=["xnnpack", "none", "gpu", "nnapi", "external"],
               binaries={"arm64-v8a": "benchmark_model"},
               delegate_options={"gpu": {"options": {"gpu_precision_loss_allowed": "true"}},
                                 "nnapi": {"options": {"nnapi_accelerator_name": "google-edgetpu"}},
                                 "external": {"library": "/data/local/tmp/libdelegate.so", "options": {"a": 1, "b": "x"}}})


@pytest.mark.parametrize("delegate, flags", [
    ("xnnpack", ["--use_xnnpack=true"]),
    ("none", ["--use_xnnpack=false"]),
    ("gpu", ["--use_gpu=true", "--gpu_precision_loss_allowed=true"]),
    ("nnapi", ["--use_nnapi=true", "--nnapi_accelerator_name=google-edgetpu"]),
    ("external", ["--external_delegate_path=/data/local/tmp/libdelegate.so", "--external_delegate_options=a:1;b:x"]),
])
def test_flags_per_delegate(delegate, flags):
    assert delegate_flags(PHONE, delegate) == flags


def raw(fixture: str, delegate: str, exit_code: int = 0) -> RawResult:
    return RawResult((FIXTURES / fixture).read_text(), "", exit_code, 1000.0, {"delegate": delegate, "binary": "bm"})


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


def test_battery_and_cpu_count():
    text = "Current Battery Service state:\n  AC powered: false\n  status: 2\n  level: 87\n  voltage: 4123\n  temperature: 312\n"
    assert parse_battery(text) == {"status": 2, "level": 87, "voltage": 4123, "temperature": 31.2}
    assert _count_cpus("0-7") == 8 and _count_cpus("0-3,6-7") == 6 and _count_cpus("0") == 1


def test_eval_tensors_and_top1():
    import numpy as np

    int8_input = {"dtype": "int8", "quantization": {"scale": 1 / 255, "zero_point": -128}, "shape": [1, 2]}
    assert _to_input_dtype(np.array([[0.0, 1.0]], np.float32), int8_input).tolist() == [[-128, 127]]
    outputs = [{"dtype": "int8", "shape": [1, 3]}, {"dtype": "float32", "shape": [1]}]
    data = b"".join(np.array(v, np.int8).tobytes() + np.array([0.5], np.float32).tobytes()
                    for v in ([1, 9, 2], [7, -3, 0]))
    assert _top1(data, outputs, 2) == [1, 0]
    with pytest.raises(JobFailed, match="output bytes"):
        _top1(data[:-1], outputs, 2)
