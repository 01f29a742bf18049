"""The one place that knows what TensorFlow Lite's `benchmark_model` prints. Pure functions, no I/O.

`parse_benchmark_model(stdout, stderr, exit_code, requested_delegate=...)` turns one run's output into a
`BenchmarkLog` (times in ms, memory in MB, None for what the run did not print) or raises
`BenchmarkModelParseError` (with a `kind`) carrying a one-line message that says what went wrong.

Formats handled (fixtures in shared/fixtures/benchmark_model/; the rest from the tool's sources:
tensorflow/lite/tools/benchmark/benchmark_model.cc, benchmark_tflite_model.cc, tools/delegates/*_provider.cc,
profiling/memory_info.cc and the Stat printer of stats_calculator.h):

Line prefixes, stripped before anything else (stdout and stderr are both read: INFO/WARN go to stdout,
ERROR lines and the runtime's own messages to stderr, and old builds printed everything to stderr):
  - none (old builds: v2018_cpu_old_format.txt, v2.4_cpu_peak_memory.txt, gpu_full_delegation.txt)
  - `INFO: ` / `WARN: ` / `ERROR: ` / `VERBOSE: ` (v2024_info_prefixed_xnnpack.txt, android_aarch64_nightly_*.txt,
    linux_x86_64_gpu_flag_unconsumed.txt, nnapi_delegate_failure.txt)
  - logcat, threadtime (`05-30 15:16:46.366  3380  3380 I tflite  : `, also with a year) or brief (`I/tflite( 3380): `),
    as written by the Android benchmark APK
  - absl/glog (`I0000 00:00:1789784532.427623    1234 file.cc:42] `)
Timing summary (required: a run without it raises `no_timings`; all values printed in microseconds, large
ones possibly in scientific notation such as `2.95034e+06`):
  - `Inference timings in us: Init: I, First inference: F, Warmup (avg): W, Inference (avg): A` (every
    fixture with timings except the next one)
  - `Average inference timings in us: Warmup: W, Init: I, no stats: A` (v2018_cpu_old_format.txt), or with
    `Inference: A` (op_profiling_readme_mobilenet_v1.txt); no first
    inference, so first_ms comes from the warm-up `count=` line when that line is in the log, else None)
Run statistics (the steady-state line is the `count=` line whose avg equals the summary's average; the
warm-up line is the one before it whose avg equals the warm-up average):
  - `count=N first=F curr=C min=m max=M avg=A std=S` with optional ` p5=… median=… p95=…`
    (android_aarch64_nightly_xnnpack_percentiles.txt, linux_x86_64_gpu_flag_unconsumed.txt)
  - `count=N curr=C` / `count=N curr=C(all same)` (every run took the same time: min = max = avg = C, std 0)
  - `count=0` (nothing ran); profiler lines such as `Timings (microseconds): count=…` are not run statistics
Memory (MB, `memory_report` says which style was printed):
  - "footprint_delta": `Memory footprint delta from the start of the tool (MB): init=… overall=…`
    (android_aarch64_nightly_xnnpack_percentiles.txt, linux_x86_64_gpu_flag_unconsumed.txt)
  - "peak_footprint": `Peak memory footprint (MB): init=… overall=…` (v2.4_cpu_peak_memory.txt; the same
    max-RSS delta under its TF 2.x name)
  - "max_rss": `[Init Phase] - Memory usage: max resident set size = X MB, total malloc-ed size = …` and
    `[Overall] - Memory usage: …` (early builds; absolute max RSS, also the `…/physical footprint = X MB` form)
  - peak_mb: `Overall peak memory footprint (MB) via periodic monitoring: X` (--report_peak_memory_footprint)
Delegates (see `_resolve` for the outcome rules):
  - `Replacing N out of M node(s) with delegate (Kernel) node, yielding K partitions[ for subgraph S]` and the
    older `Replacing N node(s) with delegate (Kernel) node, …` (android_aarch64_nightly_*.txt)
  - `Explicitly applied X delegate, and the model graph will be completely executed by the delegate.`
    (gpu_full_delegation.txt), `… partially executed by the delegate w/ N delegate kernels.`,
    `Though X delegate is explicitly applied, the model graph will not be executed by the delegate.`
  - `Failed to apply X delegate.` (nnapi_delegate_failure.txt), `Node number N (Kernel) failed to prepare.`,
    `Restored original execution plan after delegate application failure.`, `Disallowed CPU fallback detected.`
  - `Created TensorFlow Lite XNNPACK delegate for CPU.` (v2024_info_prefixed_xnnpack.txt),
    `Created TensorFlow Lite delegate for GPU.`, `X delegate created.`, `Created N GPU delegate kernels.`,
    `N operations will run on the GPU, and the remaining M operations will run on the CPU.`
  - silent fallbacks: `GPU acceleration is unsupported on this platform.`, `NNAPI acceleration is unsupported …`,
    `Could not create Hexagon delegate: …`
  - `WARN: Unconsumed cmdline flags: --use_gpu=true` (linux_x86_64_gpu_flag_unconsumed.txt): the build does not
    know the flag, ignores it and exits 0 after a CPU run, so that delegate comes out "not_applied"
  - parameter echoes `Use gpu: [1]`, `Use NNAPI: [1]`, `Use xnnpack: [0]`, `External delegate path: [...]`
Op profile (--enable_op_profiling=true; op_profiling_*.txt, see _op_profile): `log.ops`, a row per node.
Failures (raise, see KINDS): `Failed to parse flag …`, `Could not open '…'.`, `The model is not a valid
Flatbuffer buffer`, `Failed to load model …`, `Failed to mmap model …`, `Failed to apply X delegate.`,
`Failed to allocate tensors!` (android_aarch64_nightly_allocate_failure.txt), `… failed to invoke.`,
`Benchmarking failed.`, a non-zero exit code or a signal, empty output, output without the timing summary.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from farm.errors import exit_reason, one_line

__all__ = [
    "KINDS",
    "BenchmarkLog",
    "BenchmarkModelParseError",
    "DelegateInfo",
    "OpTiming",
    "parse_benchmark_model",
    "parse_op_profile",
]

# Outcomes of a delegate, as in the Python agent's contract (agents/litert_agent.py):
#   applied      the delegate took every node; partial: some of them
#   not_applied  requested (or mentioned) but it took nothing: the model ran without it, never that delegate's speed
#   failed       the delegate failed (or, for a run that asked for no delegate, one was applied anyway)
#   cpu          no delegate: the built-in CPU kernels ran the model
#   unknown      the delegate was created but the log does not say how many nodes it took

# Kinds of BenchmarkModelParseError.
KINDS = (
    "empty",             # nothing on stdout or stderr
    "bad_flag",          # the command line was rejected (Failed to parse flag ...)
    "model_failed",      # the model could not be opened, mapped or parsed
    "delegate_failed",   # Failed to apply X delegate. / Disallowed CPU fallback detected.
    "allocate_failed",   # Failed to allocate tensors!
    "invoke_failed",     # a node or the interpreter failed to invoke
    "benchmark_failed",  # Benchmarking failed. with no more specific cause
    "crashed",           # killed by a signal, or a non-zero exit the log does not explain
    "no_timings",        # the run printed no (usable) timing summary: truncated, dry run, ...
)

_US_PER_MS = 1000.0
_MAX_MESSAGE = 500


class BenchmarkModelParseError(Exception):
    """benchmark_model's output holds no usable result; str(error) is one line saying why.

    kind: one of KINDS. tool_error: the tool's own error line, when it printed one. delegate: what the log says
    about the delegate (a DelegateInfo), when it mentions one. exit_code: as given to the parser.
    """

    def __init__(self, kind: str, message: str, *, tool_error: str | None = None,
                 delegate: "DelegateInfo | None" = None, exit_code: int | None = None):
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.tool_error = tool_error
        self.delegate = delegate
        self.exit_code = exit_code


@dataclass(frozen=True)
class DelegateInfo:
    """What the log says about one delegate. Node counts are those of the `Replacing N out of M node(s)` line
    (subgraph 0 when several are printed) or of the GPU delegate's own count; kernels: DELEGATE kernels."""

    outcome: str
    name: str
    delegated_nodes: int | None = None
    total_nodes: int | None = None
    delegate_kernels: int | None = None
    partitions: int | None = None
    message: str = ""


@dataclass(frozen=True)
class OpTiming:
    """One row of the op profile (--enable_op_profiling=true): a node of the regular runs' Run Order table."""

    position: int  # its row in run order
    node: int | None  # the node index printed after the name (`[name]:12`); builds before 2020 print none
    op: str  # the node type: a builtin (CONV_2D), a delegate's kernel (TfLiteXNNPackDelegate) or an XNNPACK operator
    name: str
    first_ms: float | None
    avg_ms: float  # per call
    pct: float | None  # its share of the run's time, all its calls together
    times_called: int | None  # per run; old builds print 0


@dataclass
class BenchmarkLog:
    """One successful benchmark_model run. Times in ms, memory in MB; None when the run did not print it."""

    init_ms: float | None
    first_ms: float | None
    warmup_avg_ms: float | None
    mean_ms: float
    std_ms: float | None = None
    min_ms: float | None = None
    max_ms: float | None = None
    count: int | None = None
    p5_ms: float | None = None
    median_ms: float | None = None
    p95_ms: float | None = None
    memory_init_mb: float | None = None
    memory_overall_mb: float | None = None
    peak_mb: float | None = None
    memory_report: str | None = None  # "footprint_delta" | "peak_footprint" | "max_rss" | None
    model_size_mb: float | None = None
    delegate: DelegateInfo = field(default_factory=lambda: DelegateInfo("cpu", "CPU"))
    requested_delegate: str | None = None
    delegates: dict[str, DelegateInfo] = field(default_factory=dict)  # every delegate the log mentions
    use_flags: dict[str, bool] = field(default_factory=dict)  # `Use gpu: [1]` echoes, by delegate name
    unconsumed_flags: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    runtime_version: str | None = None
    summary_format: str = "current"  # "current" (Inference timings in us: ...) | "legacy" (Average inference ...)
    ops: list[OpTiming] = field(default_factory=list)  # the op profile, when the run printed one


def _re(pattern: str, flags: int = 0) -> re.Pattern:
    # ASCII: the tool prints ASCII digits; \\d must not accept other scripts' digits.
    return re.compile(pattern, flags | re.ASCII)


# ---------------------------------------------------------------------------------------------------------------
# Lines: strip the prefixes, keep the level.

_LOGCAT_THREADTIME = _re(
    r"^(?:\d{4}-)?\d\d-\d\d\s+\d\d:\d\d:\d\d\.\d+\s+(?:\d+\s+){1,2}([VDIWEFA])\s+[^:]{0,100}?\s*:\s?")
_LOGCAT_BRIEF = _re(r"^([VDIWEFA])/[^(:]{0,100}\(\s*\d+\):\s?")
_ABSL = _re(r"^([IWEF])\d{4}\s+\d\d:\d\d:\d\d\.\d+\s+\d+\s+[^\]\s]{1,200}\]\s?")
_LEVEL = _re(r"^(INFO|WARN|WARNING|ERROR|VERBOSE|DEBUG|FATAL):\s?")
_LETTER = {"V": "VERBOSE", "D": "DEBUG", "I": "INFO", "W": "WARN", "E": "ERROR", "F": "FATAL", "A": "FATAL"}


def _split(text: str) -> list[tuple[str | None, str]]:
    """(level, message) for every non-empty line."""
    out = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        level = None
        if line[0].isdigit():
            m = _LOGCAT_THREADTIME.match(line)
            if m:
                level, line = _LETTER[m.group(1)], line[m.end():]
        elif len(line) > 1 and line[1] == "/":
            m = _LOGCAT_BRIEF.match(line)
            if m:
                level, line = _LETTER[m.group(1)], line[m.end():]
        elif line[0] in "IWEF" and len(line) > 4 and line[1].isdigit():
            m = _ABSL.match(line)
            if m:
                level, line = _LETTER[m.group(1)], line[m.end():]
        m = _LEVEL.match(line)
        if m:
            level = "WARN" if m.group(1) == "WARNING" else m.group(1)
            line = line[m.end():]
        line = line.strip()
        if line:
            out.append((level, line))
    return out


# ---------------------------------------------------------------------------------------------------------------
# Numbers: only finite, non-negative values come out; anything else is None.

_NUM = r"(?:[-+]?(?:nan|inf)|\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)"


def _float(text: str | None) -> float | None:
    if text is None or len(text) > 40:
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) and value >= 0 else None


def _int(text: str | None) -> int | None:
    if text is None or not text.isdigit() or len(text) > 18:
        return None
    try:
        return int(text)
    except ValueError:
        return None


def _ms(us: float | None) -> float | None:
    # The tool prints at most 6 significant digits of microseconds: 9 decimals of ms lose nothing.
    return None if us is None else round(us / _US_PER_MS, 9)


def _close(a: float | None, b: float | None) -> bool:
    return a is not None and b is not None and math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


# ---------------------------------------------------------------------------------------------------------------
# Patterns (applied to the message after its prefix).

_SUMMARY = _re(r"^(Average inference|Inference) timings in us:(.*)$", re.IGNORECASE)
_SUMMARY_ITEM = _re(r"([A-Za-z][A-Za-z ()]{0,40}?)\s*:\s*(" + _NUM + r")")
_SUMMARY_KEYS = {"init": "init", "first inference": "first", "warmup (avg)": "warmup", "warmup": "warmup",
                 "inference (avg)": "mean", "no stats": "mean", "inference": "mean"}
_COUNT = _re(r"^count=(\d+)(.*)$")
_KV = _re(r"\b(first|curr|min|max|avg|std|p5|median|p95)=(" + _NUM + r")")
_INIT_SESSION = _re(r"^Initialized session in (" + _NUM + r")\s*ms")
_MODEL_SIZE = _re(r"^The input model file size \(MB\):\s*(" + _NUM + r")")
_MEM_DELTA = _re(r"^(Memory footprint delta from the start of the tool|Peak memory footprint) \(MB\):"
                        r"\s*init=(" + _NUM + r")\s+overall=(" + _NUM + r")")
_MEM_RSS = _re(r"^\[(Init Phase|Overall)\]\s*-\s*Memory usage:\s*max resident set size"
                      r"(?:/physical footprint)?\s*=\s*(" + _NUM + r")\s*MB")
_MEM_PEAK = _re(r"^Overall peak memory footprint \(MB\) via periodic monitoring:\s*(" + _NUM + r")")
_VERSION = _re(r"^(?:TensorFlow Lite|TFLite|LiteRT)(?: runtime)? version:?\s+v?(\d+\.\d+[\w.\-+]*)\s*$", re.IGNORECASE)

_REPLACING = _re(r"^Replacing (\d+)(?: out of (\d+))? node\(s\) with delegate \(([^)]{0,100})\) node,"
                        r" yielding (\d+) partitions?(?: for (?:subgraph (\d+)|the whole graph))?")
_EXPLICIT = _re(r"^(?:Explicitly )?[Aa]pplied (.{1,60}?) delegate(?:[,.]|$)(.*)$")
_EXPLICIT_KERNELS = _re(r"w/ (\d+) delegate kernels")
_THOUGH = _re(r"^Though (.{1,60}?) delegate is explicitly applied, the model graph will not be executed")
_FAILED_APPLY = _re(r"^Failed to apply (.{1,60}?) delegate\b")
_DEFAULT_FAILED = _re(r"^Failed to apply the default TensorFlow Lite delegate")
_NODE_FAILED = _re(r"^Node number (\d+) \(([^)]{0,100})\) failed to (prepare|invoke)")
_RESTORED = "Restored original execution plan after delegate application failure"
_CREATED_RT = _re(r"^Created TensorFlow Lite (?:(\w+) )?delegate for (\w+)")
_CREATED_PROVIDER = _re(r"^(.{1,60}?) delegate created\.?$")
_GPU_KERNELS = _re(r"^Created (\d+) GPU delegate kernels")
_GPU_OPS = _re(r"^(?:First )?(\d+) operations will run on the GPU, and the remaining (\d+)")
_UNSUPPORTED = _re(r"^(.{1,60}?) acceleration is unsupported on this platform")
_COULD_NOT_CREATE = _re(r"^(?:Could not|Failed to) create (?:the )?(.{1,60}?) delegate\b")
_UNCONSUMED = _re(r"^Unconsumed cmdline flags:\s*(.*)$")
_USE_FLAG = _re(r"^Use (gpu|nnapi|xnnpack|hexagon|coreml|core ml)\s*:\s*\[(\d)\]", re.IGNORECASE)
_EXTERNAL_PATH = _re(r"^External delegate path\s*:\s*\[(.*)\]")

# Fatal markers, most specific first.
_FATAL = (
    ("bad_flag", _re(r"^(?:Failed to parse flag|Flag parsing failed)")),
    ("model_failed", _re(r"^(?:Could not open '|The model is not a valid Flatbuffer|Failed to load model"
                                r"|Failed to mmap model)")),
    ("delegate_failed", _re(r"^(?:Failed to apply (?!the default TensorFlow Lite delegate).{1,60}? delegate"
                                   r"|Disallowed CPU fallback detected)")),
    ("allocate_failed", _re(r"^Failed to allocate tensors")),
    ("invoke_failed", _re(r"(?:failed to invoke|^Failed to invoke)")),
    ("benchmark_failed", _re(r"^Benchmarking failed")),
)
_ERRORISH = _re(r"[Ff]ailed|[Ee]rror|not true|Could not|not a valid|not supported")

# Delegate names: the providers' GetName() and the kernels' custom names.
_CANON = {"gpu": "GPU", "nnapi": "NNAPI", "xnnpack": "XNNPACK", "hexagon": "Hexagon", "coreml": "CoreML",
          "core ml": "CoreML", "external": "External", "edgetpu": "External", "none": "CPU", "cpu": "CPU"}
_FLAG_DELEGATE = {"use_gpu": "GPU", "use_nnapi": "NNAPI", "use_xnnpack": "XNNPACK", "use_hexagon": "Hexagon",
                  "use_coreml": "CoreML", "external_delegate_path": "External"}


def _canon(name: str) -> str:
    name = name.strip()
    return _CANON.get(name.lower(), name)


def _kernel_delegate(kernel: str) -> str:
    low = kernel.lower()
    for needle, name in (("xnnpack", "XNNPACK"), ("nnapi", "NNAPI"), ("gpu", "GPU"), ("metal", "GPU"),
                         ("hexagon", "Hexagon"), ("coreml", "CoreML")):
        if needle in low:
            return name
    return kernel.strip() or "unknown"


def _truthy(value: str | None) -> bool:
    return value is None or value.strip().lower() not in ("false", "0", "no", "")


# ---------------------------------------------------------------------------------------------------------------
# Delegate evidence.

@dataclass
class _Evidence:
    created: bool = False
    explicit: str | None = None  # applied | partial | not_applied | unknown
    explicit_kernels: int | None = None
    failures: list = field(default_factory=list)  # the failure lines, `Failed to apply ...` first
    unconsumed: str | None = None
    silent: str | None = None
    requested_by_flag: bool = False
    replacing: tuple | None = None  # (nodes, total or None, partitions, subgraph or None, kernel)
    gpu_ops: tuple | None = None  # (on GPU, on CPU)
    created_kernels: int | None = None


def _describe(name: str, ev: _Evidence) -> DelegateInfo:
    nodes = total = partitions = None
    counted = ""
    if ev.replacing is not None:
        nodes, total, partitions = ev.replacing[0], ev.replacing[1], ev.replacing[2]
        counted = f"{nodes} of {total}" if total is not None else f"{nodes}"
        counted += f" nodes in {partitions} partition(s) ({ev.replacing[4]})"
    elif ev.gpu_ops is not None:
        nodes, total = ev.gpu_ops[0], ev.gpu_ops[0] + ev.gpu_ops[1]
        counted = f"{nodes} of {total} operations"
    kernels = ev.explicit_kernels if ev.explicit_kernels is not None else ev.created_kernels

    def info(outcome: str, message: str, **kw) -> DelegateInfo:
        values = dict(delegated_nodes=nodes, total_nodes=total, delegate_kernels=kernels, partitions=partitions)
        values.update(kw)
        return DelegateInfo(outcome, name, message=message, **values)

    if ev.failures:
        causes = list(dict.fromkeys(ev.failures))
        more = f" ({'; '.join(causes[1:4])})" if len(causes) > 1 else ""
        return info("failed", one_line(f"{name} delegate failed: {causes[0]}{more}", _MAX_MESSAGE))
    if ev.unconsumed is not None:
        return info("not_applied", f"this benchmark_model build does not know {ev.unconsumed} (WARN: Unconsumed "
                                   f"cmdline flags): the flag was ignored and the model ran without the {name} "
                                   "delegate", delegated_nodes=0)
    if ev.silent is not None:
        return info("not_applied", f"{ev.silent}: the model ran without the {name} delegate", delegated_nodes=0)
    if ev.explicit == "not_applied":
        said = f" (the log had replaced {counted})" if counted else ""
        return info("not_applied", f"{name} delegate was applied but took no part of the graph{said}: "
                                   f"the model ran without the {name} delegate", delegated_nodes=0)
    if ev.explicit == "applied":
        return info("applied", f"{name} delegate executes the whole graph" + (f": {counted}" if counted else ""))
    if ev.explicit == "partial":
        k = f" in {kernels} delegate kernel(s)" if kernels is not None else ""
        return info("partial", f"{name} delegate executes part of the graph{k}" + (f": {counted}" if counted else ""))
    if nodes is not None and total is not None:
        if nodes >= total > 0:
            return info("applied", f"{name} delegate took {counted}")
        if nodes > 0:
            return info("partial", f"{name} delegate took {counted}")
        return info("not_applied", f"{name} delegate took {counted}: the model ran without it")
    if nodes is not None:
        return info("unknown", f"{name} delegate took {counted}; the total node count was not printed")
    if ev.created or ev.explicit == "unknown":
        return info("unknown", f"{name} delegate created; the log does not say how many nodes it took")
    # Only a flag echo (`Use gpu: [1]`): requested, never seen.
    return info("not_applied", f"{name} delegate was requested but the log shows no {name} delegate: "
                               f"the model ran without the {name} delegate", delegated_nodes=0)


def _collect_delegates(lines: list[tuple[str | None, str]]):
    evidence: dict[str, _Evidence] = {}
    use_flags: dict[str, bool] = {}
    unconsumed: list[str] = []
    pending_prepare: list[tuple[str, str]] = []

    def ev(name: str) -> _Evidence:
        return evidence.setdefault(name, _Evidence())

    for _level, msg in lines:
        c = msg[0]
        if c == "R":
            m = _REPLACING.match(msg)
            if m:
                name = _kernel_delegate(m.group(3))
                rec = (_int(m.group(1)), _int(m.group(2)), _int(m.group(4)), _int(m.group(5)), m.group(3))
                if rec[0] is None or rec[2] is None:
                    continue
                e = ev(name)
                # Keep the main subgraph's count when several subgraphs are reported, else the first line.
                if e.replacing is None or (rec[3] == 0 and e.replacing[3] not in (0, None)):
                    e.replacing = rec
                continue
            if msg.startswith(_RESTORED):
                for name, detail in pending_prepare:
                    ev(name).failures += [detail, _RESTORED]
                pending_prepare.clear()
                continue
        elif c in "EA":
            m = _EXPLICIT.match(msg)
            if m:
                name = _canon(m.group(1))
                tail = m.group(2)
                e = ev(name)
                if "completely" in tail:
                    e.explicit = "applied"
                elif "partially" in tail:
                    e.explicit = "partial"
                    k = _EXPLICIT_KERNELS.search(tail)
                    e.explicit_kernels = _int(k.group(1)) if k else None
                elif e.explicit is None:
                    e.explicit = "unknown"
                continue
            m = _EXTERNAL_PATH.match(msg)
            if m:
                if m.group(1).strip():
                    ev("External").requested_by_flag = True
                continue
        elif c == "T":
            m = _THOUGH.match(msg)
            if m:
                ev(_canon(m.group(1))).explicit = "not_applied"
                continue
        elif c == "F":
            if _DEFAULT_FAILED.match(msg):
                ev("XNNPACK").failures.insert(0, msg)
                continue
            m = _FAILED_APPLY.match(msg)
            if m:
                name = _canon(m.group(1))
                for other, detail in pending_prepare:
                    ev(other).failures.append(detail)
                pending_prepare.clear()
                ev(name).failures.insert(0, msg)
                continue
            m = _COULD_NOT_CREATE.match(msg)
            if m:
                ev(_canon(m.group(1))).silent = msg.rstrip(".")
                continue
        elif c == "N":
            m = _NODE_FAILED.match(msg)
            if m and "delegate" in m.group(2).lower():
                pending_prepare.append((_kernel_delegate(m.group(2)), msg))
                continue
        elif c == "C":
            m = _CREATED_RT.match(msg)
            if m:
                ev("XNNPACK" if (m.group(1) or "").upper() == "XNNPACK" else _canon(m.group(2))).created = True
                continue
            m = _GPU_KERNELS.match(msg)
            if m:
                e = ev("GPU")
                e.created = True
                e.created_kernels = _int(m.group(1))
                continue
            m = _COULD_NOT_CREATE.match(msg)
            if m:
                ev(_canon(m.group(1))).silent = msg.rstrip(".")
                continue
        elif c == "U":
            m = _UNCONSUMED.match(msg)
            if m:
                for flag in m.group(1).split():
                    if flag in unconsumed or len(unconsumed) >= 50:
                        continue
                    unconsumed.append(flag)
                    key, _, value = flag.lstrip("-").partition("=")
                    name = _FLAG_DELEGATE.get(key)
                    if name and _truthy(value if "=" in flag else None):
                        ev(name).unconsumed = flag
                continue
            m = _USE_FLAG.match(msg)
            if m:
                name = _canon(m.group(1))
                use_flags[name] = m.group(2) != "0"
                if use_flags[name]:
                    ev(name).requested_by_flag = True
                continue
        m = _CREATED_PROVIDER.match(msg)
        if m and not msg.startswith(("Created", "Though", "Failed")):
            ev(_canon(m.group(1))).created = True
            continue
        m = _GPU_OPS.match(msg)
        if m:
            a, b = _int(m.group(1)), _int(m.group(2))
            if a is not None and b is not None:
                ev("GPU").gpu_ops = (a, b)
            continue
        m = _UNSUPPORTED.match(msg)
        if m:
            ev(_canon(m.group(1))).silent = msg.rstrip(".")
            continue
    # A prepare failure with no `Failed to apply` / `Restored` line after it (truncated log): still a failure.
    for name, detail in pending_prepare:
        ev(name).failures.append(detail)
    delegates = {name: _describe(name, e) for name, e in evidence.items()}
    return delegates, use_flags, unconsumed


_RAN = ("applied", "partial", "unknown")


def _resolve(delegates: dict[str, DelegateInfo], use_flags: dict[str, bool], unconsumed: list[str],
             requested: str | None) -> DelegateInfo:
    """The delegate outcome of a log for a job that asked for `requested` (None: describe what the log shows).

    requested: a farm delegate name ("xnnpack", "none", "gpu", "nnapi", "hexagon", "edgetpu", "external") or the
    tool's ("GPU", "NNAPI", ...). Rules, first match wins, for the requested delegate X:
      - `Failed to apply X delegate.`, or one of X's nodes failed to prepare        -> failed
      - X's enabling flag (--use_gpu=true, ...) is in `Unconsumed cmdline flags:`   -> not_applied (flag named)
      - `X acceleration is unsupported on this platform` / `Could not create X ...` -> not_applied
      - `Though X delegate is explicitly applied, ... will not be executed`         -> not_applied
      - `Explicitly applied X delegate, ... completely` / `... partially`           -> applied / partial
      - `Replacing N out of M node(s) with delegate (X kernel)`                     -> applied (N = M), partial,
                                                                                       not_applied (N = 0)
      - X was only created (e.g. `Created TensorFlow Lite XNNPACK delegate for CPU.`) -> unknown
      - no line about X at all (or only `Use X: [1]`)                                -> not_applied
    For "none"/"cpu": any delegate that ran, or an unconsumed --use_xnnpack=false -> failed; else cpu.
    With requested=None: the first failed delegate, else the first non-XNNPACK delegate mentioned, else XNNPACK,
    else cpu.
    """
    if requested is None:
        infos = list(delegates.values())
        for info in infos:
            if info.outcome == "failed":
                return info
        for info in infos:
            if info.name != "XNNPACK":
                return info
        if "XNNPACK" in delegates:
            return delegates["XNNPACK"]
        why = " (--use_xnnpack=false)" if use_flags.get("XNNPACK") is False else ""
        return DelegateInfo("cpu", "CPU", message=f"no delegate in the log: built-in CPU kernels{why}")

    name = _canon(requested)
    if name == "CPU":
        ignored = [f for f in unconsumed if f.lstrip("-").partition("=")[0] == "use_xnnpack"
                   and not _truthy(f.partition("=")[2] if "=" in f else None)]
        if ignored:
            return DelegateInfo("failed", "CPU", message=f"this benchmark_model build does not know {ignored[0]} "
                                                         "(WARN: Unconsumed cmdline flags): the runtime's default "
                                                         "delegates stayed on")
        ran = [i for i in delegates.values() if i.outcome in _RAN]
        if ran:
            took = ", ".join(f"{i.name} ({i.delegated_nodes} of {i.total_nodes} nodes)"
                             if i.delegated_nodes is not None else f"{i.name} (created)" for i in ran)
            return DelegateInfo("failed", "CPU", message=f"no delegate was requested but the log shows {took}: "
                                                         "not a built-in-kernels run")
        return DelegateInfo("cpu", "CPU", message="no delegate: built-in CPU kernels")

    info = delegates.get(name)
    if info is None:
        for key in delegates:
            if key.lower() == name.lower():
                info = delegates[key]
                break
    if info is None and name == "External":
        known = set(_CANON.values())
        info = next((i for k, i in delegates.items() if k not in known), None)
    if info is not None:
        return info
    others = [i for i in delegates.values() if i.outcome in _RAN]
    ran = "; the log shows " + ", ".join(i.message for i in others) if others else ""
    off = f" (the tool echoed `Use {name.lower()}: [0]`)" if use_flags.get(name) is False else ""
    return DelegateInfo("not_applied", name, delegated_nodes=0,
                        message=one_line(f"{name} delegate was requested but the log shows no {name} delegate{off}: "
                                         f"the model ran without the {name} delegate{ran}", _MAX_MESSAGE))


# ---------------------------------------------------------------------------------------------------------------
# The op profile (--enable_op_profiling=true): the Run Order table of "Operator-wise Profiling Info for Regular
# Benchmark Runs" (op_profiling_*.txt). It follows "Profiling Info for Benchmark Initialization", whose own Run Order
# (AllocateTensors, ModifyGraphWithDelegate) is not the model's ops. Each field is a tab then a right-aligned value
# (a quote may have the tabs expanded to spaces); old builds print a [start] column, newer ones do not.

MAX_OPS = 10_000  # rows kept per run: far more nodes than a mobile model has
_OPS_TITLE = "Operator-wise Profiling Info for Regular Benchmark Runs"
_INIT_TITLE = "Profiling Info for Benchmark Initialization"
_RUN_ORDER = _re(r"^=+ Run Order =+$")
_NODE_INDEX = _re(r":(\d{1,9})$")


def _op_row(header: str) -> re.Pattern:
    start = _NUM + r"\s+" if "[start]" in header else ""
    return _re(r"^(.{1,200}?)\s+" + start + r"(" + _NUM + r")\s+(" + _NUM + r")\s+(" + _NUM + r")%\s+" + _NUM
               + r"%\s+" + _NUM + r"\s+(\d{1,12})\s+(\S.*)$")


def parse_op_profile(stdout: str, stderr: str = "") -> list[OpTiming]:
    """The op profile in a run's output (also in an excerpt that holds only the profile); [] when there is none."""
    return _op_profile(_split(stdout or "") + _split(stderr or ""))


def _op_profile(lines: list[tuple[str | None, str]]) -> list[OpTiming]:
    """The regular runs' Run Order table, a row per node in run order; [] when the log has none."""
    tables: list[list[OpTiming]] = []
    rows: list[OpTiming] | None = None
    row: re.Pattern | None = None
    section = None
    for _level, msg in lines:
        if rows is not None:
            if row is None:
                row = _op_row(msg) if msg.startswith("[node type]") else None
                if row is None:
                    rows = None
                continue
            m = row.match(msg)
            if m:
                avg = _float(m.group(3))
                if avg is not None and len(rows) < MAX_OPS:
                    name = one_line(m.group(6), 300)
                    index = _NODE_INDEX.search(name)
                    rows.append(OpTiming(position=len(rows), node=int(index.group(1)) if index else None,
                                         op=one_line(m.group(1), 100), name=name, first_ms=_float(m.group(2)),
                                         avg_ms=avg, pct=_float(m.group(4)), times_called=_int(m.group(5))))
                continue
            tables.append(rows)
            rows = None
        if msg.startswith(_INIT_TITLE):
            section = "init"
        elif msg.startswith(_OPS_TITLE):
            section = "runs"
        elif section != "init" and _RUN_ORDER.match(msg):
            rows, row = [], None
    if rows:
        tables.append(rows)
    return next((table for table in reversed(tables) if table), [])


# ---------------------------------------------------------------------------------------------------------------
# The parser.

def _fail(kind: str, message: str, exit_code: int | None, *, tool_error: str | None = None,
          delegate: DelegateInfo | None = None) -> BenchmarkModelParseError:
    return BenchmarkModelParseError(kind, one_line(message, _MAX_MESSAGE), tool_error=tool_error, delegate=delegate,
                                    exit_code=exit_code)


def _fatal(lines: list[tuple[str | None, str]]) -> tuple[str, int] | None:
    """(kind, line index) of the most specific fatal marker in the log."""
    best = None
    for i, (_level, msg) in enumerate(lines):
        if not ("ail" in msg or "ould not" in msg or "not a valid" in msg or "isallowed" in msg):
            continue
        for rank, (kind, pattern) in enumerate(_FATAL):
            if pattern.search(msg):
                if best is None or rank < best[0]:
                    best = (rank, kind, i)
                break
    return None if best is None else (best[1], best[2])


def _causes(lines: list[tuple[str | None, str]], before: int) -> list[str]:
    out: list[str] = []
    for level, msg in lines[:before]:
        if level in ("ERROR", "FATAL") or (level is None and _ERRORISH.search(msg)):
            if any(p.search(msg) for _k, p in _FATAL) or msg in out:
                continue
            out.append(one_line(msg, 200))
            if len(out) == 3:
                break
    return out


def parse_benchmark_model(stdout: str, stderr: str = "", exit_code: int | None = 0, *,
                          requested_delegate: str | None = None) -> BenchmarkLog:
    """Parse one benchmark_model run. Raises BenchmarkModelParseError when there is no usable result.

    exit_code: the process's; None when unknown (the output alone decides). requested_delegate: what the job
    asked for (see _resolve); it decides `log.delegate`, so a run where "gpu" was requested and no GPU
    delegate line appears comes out "not_applied", never as a GPU result.
    """
    lines = _split(stdout or "") + _split(stderr or "")
    delegates, use_flags, unconsumed = _collect_delegates(lines) if lines else ({}, {}, [])
    delegate = _resolve(delegates, use_flags, unconsumed, requested_delegate)
    mentioned = delegate if (delegates or requested_delegate is not None) else None

    if not lines:
        raise _fail("empty", f"benchmark_model printed nothing ({exit_reason(exit_code)})", exit_code)

    fatal = _fatal(lines)
    if fatal is not None:
        kind, index = fatal
        marker = lines[index][1]
        causes = _causes(lines, index)
        failed = delegate
        if kind == "delegate_failed":
            m = _FAILED_APPLY.match(marker)
            if m:
                failed = delegates.get(_canon(m.group(1)), delegate)
        status = "" if exit_code in (None, 0) else f"; {exit_reason(exit_code)}"
        detail = f" ({'; '.join(causes)})" if causes else ""
        raise _fail(kind, f"benchmark_model: {marker}{detail}{status}", exit_code, tool_error=marker,
                    delegate=failed if kind == "delegate_failed" else mentioned)

    errors = _causes(lines, len(lines))
    tool_error = errors[0] if errors else None
    said = f" (ERROR: {tool_error})" if tool_error and tool_error != lines[-1][1] else ""
    if exit_code is not None and exit_code != 0:
        raise _fail("crashed", f"benchmark_model {exit_reason(exit_code)}{said}; last line: {lines[-1][1]}",
                    exit_code, tool_error=tool_error, delegate=mentioned)

    # Timings: the last summary line, and the run statistics printed before it.
    summary_at = None
    for i in range(len(lines) - 1, -1, -1):
        msg = lines[i][1]
        if "timings in us" in msg and _SUMMARY.match(msg):
            summary_at = i
            break
    if summary_at is None:
        counts = sum(1 for _l, msg in lines if msg.startswith("count="))
        raise _fail("no_timings", f"no 'Inference timings in us' summary in {len(lines)} line(s)"
                                  f" ({counts} 'count=' line(s)){said}; last line: {lines[-1][1]}", exit_code,
                    tool_error=tool_error, delegate=mentioned)
    m = _SUMMARY.match(lines[summary_at][1])
    legacy = m.group(1).lower().startswith("average")
    summary: dict[str, float | None] = {}
    for key, value in _SUMMARY_ITEM.findall(m.group(2)):
        key = _SUMMARY_KEYS.get(" ".join(key.lower().split()))
        if key is not None and key not in summary:
            summary[key] = _float(value)
    mean_us = summary.get("mean")
    if mean_us is None:
        raise _fail("no_timings", f"the timing summary has no steady-state average: {lines[summary_at][1]}",
                    exit_code, tool_error=tool_error, delegate=mentioned)

    stats: list[dict] = []
    for _level, msg in lines[:summary_at]:
        if not msg.startswith("count="):
            continue
        cm = _COUNT.match(msg)
        if not cm:
            continue
        values = {k: _float(v) for k, v in _KV.findall(cm.group(2))}
        values["count"] = _int(cm.group(1))
        if "avg" not in values and values.get("curr") is not None:
            # `count=N curr=C` / `count=N curr=C(all same)`: the tool prints this form only when min == max.
            c = values["curr"]
            values.update(first=c, min=c, max=c, avg=c, std=0.0)
        stats.append(values)
    regular_at = next((i for i in range(len(stats) - 1, -1, -1) if _close(stats[i].get("avg"), mean_us)), None)
    regular = stats[regular_at] if regular_at is not None else {}
    warmup_stat = {}
    if regular_at is not None:
        warmup_stat = next((stats[i] for i in range(regular_at - 1, -1, -1)
                            if _close(stats[i].get("avg"), summary.get("warmup"))), {})

    first_us = summary.get("first") if "first" in summary else warmup_stat.get("first")
    init_us = summary.get("init")
    init_ms = _ms(init_us)
    memory: dict[str, float | None] = {}
    memory_report = None
    peak = model_size = version = None
    for _level, msg in lines:
        c = msg[0]
        if c == "I" and init_ms is None:
            im = _INIT_SESSION.match(msg)
            if im:
                init_ms = _float(im.group(1))
        elif c in "MP":
            mm = _MEM_DELTA.match(msg)
            if mm:
                memory = {"init": _float(mm.group(2)), "overall": _float(mm.group(3))}
                memory_report = "footprint_delta" if mm.group(1).startswith("Memory") else "peak_footprint"
        elif c == "[":
            mm = _MEM_RSS.match(msg)
            if mm:
                if memory_report != "max_rss":
                    memory, memory_report = {}, "max_rss"
                memory["init" if mm.group(1) == "Init Phase" else "overall"] = _float(mm.group(2))
        elif c == "O":
            mm = _MEM_PEAK.match(msg)
            if mm:
                peak = _float(mm.group(1))
        elif c == "T":
            mm = _MODEL_SIZE.match(msg)
            if mm:
                model_size = _float(mm.group(1))
                continue
            mm = _VERSION.match(msg)
            if mm:
                version = mm.group(1)
        elif c == "L":
            mm = _VERSION.match(msg)
            if mm:
                version = mm.group(1)

    warnings: list[str] = []
    for level, msg in lines:
        if level == "WARN" or (level is None and (msg.startswith("Unconsumed cmdline flags")
                                                  or _UNSUPPORTED.match(msg) or _COULD_NOT_CREATE.match(msg))):
            text = one_line(msg, 300)
            if text not in warnings:
                warnings.append(text)
                if len(warnings) == 20:
                    break

    return BenchmarkLog(
        init_ms=init_ms,
        first_ms=_ms(first_us),
        warmup_avg_ms=_ms(summary.get("warmup")),
        mean_ms=_ms(mean_us),
        std_ms=_ms(regular.get("std")),
        min_ms=_ms(regular.get("min")),
        max_ms=_ms(regular.get("max")),
        count=regular.get("count"),
        p5_ms=_ms(regular.get("p5")),
        median_ms=_ms(regular.get("median")),
        p95_ms=_ms(regular.get("p95")),
        memory_init_mb=memory.get("init"),
        memory_overall_mb=memory.get("overall"),
        peak_mb=peak,
        memory_report=memory_report,
        model_size_mb=model_size,
        delegate=delegate,
        requested_delegate=requested_delegate,
        delegates=delegates,
        use_flags=use_flags,
        unconsumed_flags=unconsumed,
        warnings=warnings,
        runtime_version=version,
        summary_format="legacy" if legacy else "current",
        ops=_op_profile(lines) if any(msg.startswith("=") and "Run Order" in msg for _l, msg in lines) else [],
    )
