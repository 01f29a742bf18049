"""What a device sends back for a job, and the ways a job on a device can go wrong.

The transports produce these and the parsers read them; both import this module, and neither imports the other.
"""
from __future__ import annotations

from dataclasses import dataclass, field


class DeviceLost(Exception):
    """The device stopped answering (dropped link, killed server, lost phone): the job may be retried after reconnecting."""


class DeviceRefused(Exception):
    """The device cannot be used as configured (unknown or changed host key, login refused): no retry can fix it."""


class JobFailed(Exception):
    """The job ran and failed (the agent's error, a crash, a bad model, a failed command): retrying would fail the same way."""


# Timeouts are the builtin TimeoutError everywhere: transports turn asyncio's and asyncssh's into it (on Python 3.10
# asyncio.TimeoutError is another class, and the builtin one is an OSError, so one type keeps the reasons apart).


AGENT = "agent"  # the agent's one JSON object on stdout
BENCHMARK_MODEL = "benchmark_model"  # TensorFlow Lite's benchmark_model log
ONNXRUNTIME_PERF_TEST = "onnxruntime_perf_test"  # ONNX Runtime's onnxruntime_perf_test output (phones' onnx models)


@dataclass
class RawResult:
    """What a device sent back for one job, before parsing; `format` says which parser reads it."""

    format: str
    stdout: str
    stderr: str
    exit_code: int | None
    # What the transport learned beside the output (phones: requested delegate, battery/thermals, tool name).
    extra: dict = field(default_factory=dict)


@dataclass
class Measurement:
    """One job's measured values, ready for the store (accuracy and agreement are scored by the coordinator)."""

    result: dict
    samples_us: list
    predictions: list[int] | None
    ops: list[dict] | None = None  # the op profile (farm.benchmark_model.OpTiming fields), when the job asked for one
    outputs: list[list[float]] | None = None  # each eval sample's first output, flattened, when the job asked for them
