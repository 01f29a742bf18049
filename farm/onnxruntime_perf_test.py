"""The one place that knows what ONNX Runtime's `onnxruntime_perf_test` prints, and how phones run it. Pure functions.

`parse_onnxruntime_perf_test(stdout, stderr, exit_code, requested_provider)` turns one run's output into a
`PerfTestLog` (times in ms, memory in MB, None for what the run did not print) or raises
`OnnxruntimePerfTestParseError` (with a `kind`) naming the tool's own error line.

Formats (fixtures in tests/fixtures/onnxruntime_perf_test/, with SOURCES.md; the rest from the tool's sources,
onnxruntime/test/perftest/performance_runner.cc, main.cc, command_args_parser.cc and ort_test_session.cc):
  - `Session creation time cost: 0.217932 s`, `First inference time cost: 196 ms`,
    `Total inference time cost: 0.49481 s`, `Total inference requests: 5`,
    `Average inference time cost total: 98.961997 ms` (`Average inference time cost:` before 2025),
    `Total inference run time: 0.494854 s`, `Avg CPU usage: 11 %`, `Peak working set size: N bytes`
    (v1.23.2_android_arm64_cpu_times_stats.txt, main2025_..., v1.3.1_...); no space after the colons in early 2020
    (v2020-01_..., v2020-06_...); then, with no result file, `Avg CPU usage:11`, `Peak working set size:N`, `Runs:5`;
  - latencies in seconds: `Min Latency: 0.0958204 s`, `Max ...`, `P50 ...`, `P90`, `P95`, `P99`, `P999`; in 2019
    `Min Latency is 0.0559777sec` after `Total time cost:58.8053`, `Total iterations:1000`, `Average time cost:... ms`
    (v2019_readme_sample_statistics.txt);
  - ONNX Runtime's log lines (`2020-01-08 11:14:46.9047758 [W:onnxruntime:, graph.cc:2412 ...] message`): warnings;
  - failures (see _FAILURES): `there is no test input data for ...` then `Run failed:failed to initialize.`
    (v2019_no_test_input_data.txt), `...TestCase.cc:705 OnnxTestCase::OnnxTestCase test case dir doesn't exist`
    (v1.18.0_...), `NNAPI is not supported in this build`, `See 'onnxruntime_perf_test --help'.`, a non-zero exit.
The tool prints no ONNX Runtime version, and no outputs of the model.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from farm.errors import exit_reason, one_line

__all__ = ["EXECUTION_PROVIDERS", "KINDS", "OnnxruntimePerfTestParseError", "PerfTestLog",
           "parse_onnxruntime_perf_test", "perf_test_flags"]

# The farm's delegates that an ONNX model can run with on a phone, as onnxruntime_perf_test's `-e` execution providers.
EXECUTION_PROVIDERS = {"none": "cpu", "nnapi": "nnapi", "xnnpack": "xnnpack"}

KINDS = (
    "empty",                 # nothing on stdout or stderr
    "bad_flag",              # the command line was rejected (an unknown -e name, a bad value or flag)
    "provider_unavailable",  # the execution provider is not compiled into this build
    "model_failed",          # the model or its inputs could not be loaded
    "run_failed",            # `Run failed:` or an inference that returned an error
    "crashed",               # killed by a signal, or a non-zero exit the output does not explain
    "no_timings",            # no average inference time printed
    "bad_value",             # a number out of range or inconsistent with the others
)

# Device output is untrusted: only the tail of each stream is read (the summary and any error are at its end), in
# bounded lines.
MAX_STREAM_CHARS = 1 << 20
MAX_LINES = 5000
MAX_LINE = 1000
MAX_SECONDS = 1e6  # about 11 days: any time beyond is not a measurement
MAX_COUNT = 10**9
MAX_BYTES = 1 << 50
MAX_WARNINGS = 20


class OnnxruntimePerfTestParseError(Exception):
    """onnxruntime_perf_test's output holds no usable result; str(error) is one line saying why.

    kind: one of KINDS. tool_error: the tool's own error line, when it printed one. exit_code: as given."""

    def __init__(self, kind: str, message: str, *, tool_error: str | None = None, exit_code: int | None = None):
        super().__init__(message)
        self.kind = kind
        self.tool_error = tool_error
        self.exit_code = exit_code


@dataclass
class PerfTestLog:
    """One successful run. Times in ms, memory in MB; None when the run did not print it."""

    count: int
    mean_ms: float
    init_ms: float | None = None  # session creation
    first_ms: float | None = None  # the first inference: the tool's one warm-up run
    total_ms: float | None = None  # the requests' times summed
    run_ms: float | None = None  # wall time of the measured runs
    min_ms: float | None = None
    max_ms: float | None = None
    p50_ms: float | None = None
    p90_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None
    p999_ms: float | None = None
    peak_bytes: int | None = None
    peak_mb: float | None = None  # the process's peak RSS (getrusage ru_maxrss on Linux and Android)
    cpu_usage_pct: int | None = None
    intra_op_threads: int | None = None  # `Setting intra_op_num_threads to N`
    provider: str | None = None  # the requested -e provider
    provider_outcome: str = "cpu"  # cpu | partial | unknown (the tool does not print where nodes ran)
    provider_message: str = ""
    warnings: list[str] = field(default_factory=list)


def perf_test_flags(model: str, *, runs: int, threads: int, provider: str) -> list[str]:
    """The tool's arguments for `runs` timed inferences of `model` (a path on the device) with generated inputs (-I:
    the farm pushes no test_data_set folders), the latency statistics (-s) and no result file."""
    return ["-e", provider, "-m", "times", "-r", str(runs), "-x", str(threads), "-I", "-s", model]


def _re(pattern: str) -> re.Pattern:
    return re.compile(pattern, re.ASCII)  # the tool prints ASCII digits; \d must not take other scripts'


_NUM = r"([-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?|[-+]?(?:nan|inf)\w*)"
# Figure name -> (pattern, unit of the printed number). The first line that matches a figure wins: the summary comes
# before the per-shape blocks that newer builds add after it (only with --data_shape, which phones are not given).
_FIGURES = {
    "init_ms": (_re(r"^Session creation time cost:\s*" + _NUM + r"\s*s$"), "s"),
    "first_ms": (_re(r"^First inference time cost:\s*" + _NUM + r"\s*ms$"), "ms"),
    "total_ms": (_re(r"^Total (?:inference )?time cost:\s*" + _NUM + r"(?:\s*s)?$"), "s"),
    "mean_ms": (_re(r"^Average (?:inference )?time cost(?: total)?:\s*" + _NUM + r"\s*ms$"), "ms"),
    "run_ms": (_re(r"^Total (?:inference )?run time:\s*" + _NUM + r"\s*s$"), "s"),
}
_LATENCY = _re(r"^(Min|Max|P50|P90|P95|P99|P999) Latency(?::\s*| is\s*)" + _NUM + r"\s*(?:s|sec)$")
# Whole numbers; the first line that matches wins (`Total inference requests: 5` comes before `Runs:5`).
_INTEGERS = (
    ("count", _re(r"^(?:Total inference requests|Total iterations|Runs):\s*(\d{1,12})$")),
    ("peak", _re(r"^Peak working set size:\s*(\d{1,20})(?:\s*bytes)?$")),
    ("cpu", _re(r"^Avg CPU usage:\s*(-?\d{1,6})(?:\s*%)?$")),
    ("threads", _re(r"^Setting intra_op_num_threads to (\d{1,6})$")),
)
# ONNX Runtime's own log line: an optional timestamp, [severity:logger:id, file:line function] message.
_ORT_LOG = _re(r"^(?:\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+ )?\[([VIWEF]):onnxruntime:[^\]]{0,500}\]\s*(.*)$")
_WARNING = _re(r"^(?:\[WARNING\]|WARNING):\s*(.*)$")
_NOT_ON_PREFERRED = "Some nodes were not assigned to the preferred execution providers"

# The tool's failure lines, most specific first (its sources: ort_test_session.cc, performance_runner.cc, main.cc,
# command_args_parser.cc, TestCase.cc, and ONNX Runtime's own load errors).
_FAILURES = (
    # ORT_THROW puts ONNX Runtime's `file:line function` before these (a C++ signature, on Linux and Android): the
    # reason is the sentence itself
    ("provider_unavailable", _re(r"\w+ is not supported (?:in this build|on this platform)"
                                 r"|This backend is not included in perf test runner")),
    ("model_failed", _re(r"Load model from .{0,500} failed|there is no test (?:input )?data for|test case dir doesn't"
                         r" exist|input path is not a valid model|Protobuf parsing failed|INVALID_PROTOBUF"
                         r"|NO_SUCHFILE|INVALID_GRAPH")),
    ("run_failed", _re(r"^Run failed:|Non-zero status code returned while running|^Error creating environment:")),
    ("bad_flag", _re(r"^See 'onnxruntime_perf_test --help'|^ERROR: Unknown command line flag"
                     r"|^(?:onnxruntime_)?perf_test \[options\.\.\.\]")),
)


def _lines(text: str | None) -> list[str]:
    tail = (text or "")[-MAX_STREAM_CHARS:]
    stripped = (line.strip() for line in tail.splitlines()[-MAX_LINES:])
    return [line[:MAX_LINE] for line in stripped if line]


def _fail(kind: str, message: str, exit_code: int | None, tool_error: str | None = None):
    return OnnxruntimePerfTestParseError(kind, one_line(message, 500), tool_error=tool_error, exit_code=exit_code)


def _failure(lines: list[str], exit_code: int | None) -> OnnxruntimePerfTestParseError | None:
    """The run's failure from its most specific error line, with the other error lines as its detail."""
    found = []  # (rank, index, kind, line)
    for index, line in enumerate(lines):
        for rank, (kind, pattern) in enumerate(_FAILURES):
            if pattern.search(line):
                found.append((rank, index, kind, line))
                break
    if not found:
        return None
    _rank, index, kind, line = min(found)
    tool_error = one_line(line, 300)
    said = _FAILURES[0][1].search(line).group(0) if kind == "provider_unavailable" else tool_error
    others = [one_line(other, 200) for _r, i, _k, other in sorted(found, key=lambda f: f[1]) if i != index][:3]
    detail = f" ({'; '.join(others)})" if others else ""
    status = "" if exit_code in (None, 0) else f"; {exit_reason(exit_code)}"
    return _fail(kind, f"onnxruntime_perf_test: {said}{detail}{status}", exit_code, tool_error)


def _number(text: str, unit: str, line: str, exit_code: int | None) -> float:
    """A printed time as ms: finite, non-negative and at most MAX_SECONDS. Decimal keeps the printed digits exact
    (0.0958204 s is 95.8204 ms, not 95.82040000000001)."""
    try:
        value = Decimal(text) * (1000 if unit == "s" else 1)
    except InvalidOperation:
        value = Decimal("NaN")
    ms = float(value)
    if not math.isfinite(ms) or ms < 0 or ms > MAX_SECONDS * 1000:
        raise _fail("bad_value", f"onnxruntime_perf_test printed {line!r}: not a time between 0 and "
                                 f"{MAX_SECONDS:g} s", exit_code)
    return ms


def _check_order(log: PerfTestLog, exit_code: int | None) -> None:
    """min <= p50 <= ... <= max and min <= mean <= max, within the tool's 6 printed significant digits."""
    names = ("min_ms", "p50_ms", "p90_ms", "p95_ms", "p99_ms", "p999_ms", "max_ms")
    chain = [(name, getattr(log, name)) for name in names if getattr(log, name) is not None]
    pairs = list(zip(chain, chain[1:]))
    if log.min_ms is not None and log.max_ms is not None:
        mean = ("mean_ms", log.mean_ms)
        pairs += [(("min_ms", log.min_ms), mean), (mean, ("max_ms", log.max_ms))]
    for (low_name, low), (high_name, high) in pairs:
        if low > high * (1 + 1e-5) + 1e-6:
            raise _fail("bad_value", f"onnxruntime_perf_test printed {low_name[:-3]} {low:g} ms above {high_name[:-3]} "
                                     f"{high:g} ms", exit_code)


def parse_onnxruntime_perf_test(stdout: str, stderr: str = "", exit_code: int | None = 0,
                                requested_provider: str | None = "cpu") -> PerfTestLog:
    """Parse one onnxruntime_perf_test run; OnnxruntimePerfTestParseError when it holds no usable result.

    exit_code: the process's, None when unknown (the output alone decides). requested_provider: the `-e` name the job
    asked for; the tool never prints where nodes ran, so only "cpu" is known for certain."""
    lines = _lines(stdout) + _lines(stderr)
    if not lines:
        raise _fail("empty", f"onnxruntime_perf_test printed nothing ({exit_reason(exit_code)})", exit_code)
    failure = _failure(lines, exit_code)
    if failure is not None:
        raise failure
    errors = [match.group(2) for match in map(_ORT_LOG.match, lines) if match and match.group(1) in "EF"]
    said = f" (ONNX Runtime: {one_line(errors[-1], 300)})" if errors else ""
    if exit_code not in (None, 0):
        raise _fail("crashed", f"onnxruntime_perf_test {exit_reason(exit_code)}{said}; last line: {lines[-1]}",
                    exit_code, errors[-1] if errors else None)

    figures: dict[str, float] = {}
    integers: dict[str, int] = {}
    for line in lines:
        for name, (pattern, unit) in _FIGURES.items():
            match = pattern.match(line)
            if match and name not in figures:
                figures[name] = _number(match.group(1), unit, line, exit_code)
        match = _LATENCY.match(line)
        if match and f"{match.group(1).lower()}_ms" not in figures:
            figures[f"{match.group(1).lower()}_ms"] = _number(match.group(2), "s", line, exit_code)
        for name, pattern in _INTEGERS:
            match = pattern.match(line)
            if match and name not in integers:
                integers[name] = int(match.group(1))
    count, peak, cpu = integers.get("count"), integers.get("peak"), integers.get("cpu")

    if "mean_ms" not in figures:
        raise _fail("no_timings", f"onnxruntime_perf_test printed no average inference time in {len(lines)} line(s)"
                                  f"{said}; last line: {lines[-1]}", exit_code)
    if count is None or not 1 <= count <= MAX_COUNT:
        raise _fail("bad_value" if count is not None else "no_timings",
                    f"onnxruntime_perf_test printed {'no' if count is None else count} inference count "
                    f"(expected 1 to {MAX_COUNT})", exit_code)
    if peak is not None and peak > MAX_BYTES:
        raise _fail("bad_value", f"onnxruntime_perf_test printed a peak working set of {peak} bytes", exit_code)

    provider = requested_provider or "cpu"
    warnings = _warnings(lines)
    if provider == "cpu":
        outcome, message = "cpu", "the CPU execution provider ran every node"
    elif any(_NOT_ON_PREFERRED in line for line in lines):
        outcome, message = "partial", f"ONNX Runtime put some nodes on the CPU instead of {provider}"
    else:
        outcome, message = "unknown", (f"{provider} requested; onnxruntime_perf_test does not print which nodes it "
                                       "ran (ONNX Runtime runs what it cannot take on the CPU)")
    log = PerfTestLog(count=count, **figures, peak_bytes=peak,
                      peak_mb=None if peak is None else round(peak / (1 << 20), 6),
                      # -1 is the tool's word for a CPU clock that overflowed
                      cpu_usage_pct=cpu if cpu is not None and 0 <= cpu <= 100_000 else None,
                      intra_op_threads=integers.get("threads"), provider=provider, provider_outcome=outcome,
                      provider_message=message, warnings=warnings)
    _check_order(log, exit_code)
    return log


def _warnings(lines: list[str]) -> list[str]:
    """ONNX Runtime's warning lines and the tool's own WARNING lines, once each, at most MAX_WARNINGS."""
    warnings: list[str] = []
    for line in lines:
        match = _ORT_LOG.match(line)
        if match and match.group(1) == "W":
            text = one_line(f"onnxruntime: {match.group(2)}", 300)
        elif match := _WARNING.match(line):
            text = one_line(match.group(1), 300)
        else:
            continue
        if text not in warnings:
            warnings.append(text)
            if len(warnings) == MAX_WARNINGS:
                break
    return warnings
