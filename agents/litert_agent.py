#!/usr/bin/env python3
"""tflite-farm benchmark agent: one LiteRT / TFLite (or ONNX Runtime) benchmark, one process.

The coordinator copies this single file to a host (Raspberry Pi, Coral,
Jetson, a workstation) and runs it with that host's Python (3.8 or newer):

    python litert_agent.py < request.json > result.json
    python litert_agent.py --request request.json > result.json
    python litert_agent.py --probe > facts.json     # what this host is and can run
    python litert_agent.py --serve                  # a warm agent: many requests, see "Serve"

The probe's facts include "onnxruntime": {"version", "providers": [str]} where
it is importable, else {"version": null, "providers": [], "error"}.

A one-shot run handles exactly one request and exits, so every benchmark
starts in a fresh process (cold caches, its own memory high-water mark).
The coordinator runs it with --serve instead: it imports numpy and the
runtimes once, then forks a fresh child per request, which is the same
fresh process for the benchmark without paying the imports again. It imports only
the standard library, numpy and the first TFLite runtime it finds, in this
order: ``ai_edge_litert.interpreter``, ``tflite_runtime.interpreter``,
``tensorflow.lite``; for a .onnx model, ``onnxruntime`` instead (optional: only
hosts that run ONNX models need it; see "ONNX models" below).

Request (one JSON object on stdin, or in the file given by --request)
--------------------------------------------------------------------
    model        str, required. Path of the .tflite file on this host (or of
                 a .onnx file: run with onnxruntime, see "ONNX models")
    delegate     object (or a bare name string), default {"name": "xnnpack"}:
                   name     "xnnpack"  runtime's default op resolver; XNNPACK
                                       is applied by the runtime itself
                            "none"     plain CPU kernels, default delegates off
                                       (OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
                            "edgetpu"  load_delegate(library or "libedgetpu.so.1", options)
                            anything else ("gpu", "nnapi", "hexagon", "external", ...)
                                       load_delegate(library, options); library required
                   library  str, optional: shared library of an external delegate
                   options  object of str -> str|number|bool, optional: passed
                            to the delegate library (e.g. {"device": "usb:0"})
    threads      int >= 1, default 1 (num_threads of the interpreter)
    warmup_runs  int >= 0, default 5
    runs         int >= 1, default 50: minimum number of steady-state samples
    min_secs     number >= 0, default 0.0: keep sampling until this much time
                 has passed, even after `runs` samples
    max_secs     number > 0, default 150.0: stop sampling after this much time,
                 even before `runs` samples (like benchmark_model --max_secs)
    eval         str, optional: .npz with "x" (inputs, leading sample axis)
                 and optionally "y" (integer labels, one per sample)
    eval_limit   int >= 1, optional: evaluate at most this many samples
    eval_outputs bool, default false (needs eval): the eval result carries
                 each sample's first output too, for tasks other than
                 classification (e.g. regression); "y" is then not read
                 (targets are scored by the coordinator)
    seed         int, default 0: seed of the random benchmark inputs
    timeout_s    number > 0, optional (--serve): the child is killed past it
    max_reply_bytes  int >= 1, optional (--serve): the child is killed once
                 its stdout passes this many bytes, and none of it is sent
    exit_with_coordinator  bool, default false: the coordinator keeps stdin
                 open for as long as it wants the result, so its end (the
                 coordinator killed, its SSH connection gone) ends the agent
                 at once: a benchmark nobody waits for never runs on beside
                 the next one. The request is then the first line of stdin.
Unknown keys are ignored and listed in the result's "warnings".

Result (exactly one JSON object on stdout; exit code 0)
-------------------------------------------------------
    ok             true
    agent_version  1
    runtime        {"name": "ai_edge_litert" | "tflite_runtime" | "tensorflow"
                    | "onnxruntime", "version": str}
    model          {"path", "size_bytes", "inputs": [{"name", "shape", "dtype"}],
                    "outputs": [...same...]}
    delegate       {"name", "outcome", "delegated_nodes", "total_nodes",
                    "delegate_kernels", "message", "library",
                    "fallback_nodes", "cpu_ops"}
                   outcome: "applied" (every node delegated), "partial",
                   "not_applied" (delegate present, took 0 nodes; everything
                   ran on CPU - never read it as that delegate's speed),
                   "cpu" (delegate "none"), "unknown" (this runtime does not
                   expose the execution plan). "failed" is never in an ok
                   result: a delegate that cannot be loaded or applied is an
                   error (see below).
                   total_nodes: operators of the model's main subgraph;
                   delegated_nodes: how many of those the requested delegate
                   replaced; delegate_kernels: how many DELEGATE kernels it
                   put in their place; fallback_nodes: nodes that the
                   runtime's default XNNPACK delegate took from what an
                   external delegate left (0 otherwise); cpu_ops: op name ->
                   count of nodes left on the CPU kernels (none of the above).
                   message: one line; when the runtime's default XNNPACK
                   took no node, it says why, as far as the runtime shows
                   it: no XNNPACK delegate created for the model; or the
                   graph has a tensor sized at run time (the ops computing
                   its shape, e.g. SHAPE -> STRIDED_SLICE -> PACK -> RESHAPE
                   from Keras Flatten on an unfixed batch) and this runtime's
                   XNNPACK takes no node of such a graph (asked of the runtime
                   with a probe graph); or XNNPACK turned every node down.
    threads        int
    init_ms        float: delegate load + Interpreter construction +
                   allocate_tensors (the runtime's default delegate is applied
                   inside allocate_tensors, so it is included)
    init_breakdown_ms {"delegate_load", "interpreter", "allocate_tensors"}
    first_ms       float: the first invoke()
    warmup_ms      [float]: the warmup invokes
    samples_us     [float]: every steady-state invoke() latency, microseconds
    stats          {"count", "median_us", "mean_us", "min_us", "max_us"}
    measure        {"wall_secs", "stopped_by": "runs" | "min_secs" | "max_secs"}
    memory         {"baseline_mb": RSS right after importing the runtime,
                    "peak_mb": peak RSS at the end of the latency measurement
                    (before eval, so eval data does not count),
                    "peak_delta_mb": peak - baseline,
                    "source": "proc" | "getrusage"}
    eval           null | {"count", "predictions": [int] (argmax of the first
                   output), "accuracy": float|null, "outputs": [[float]]
                   (only with eval_outputs: per sample, the first output
                   flattened, int8/int16 outputs dequantized with their scale
                   and zero point, 9 significant digits; at most 1048576
                   values in all, else an "eval_error")}
    host           {"hostname", "platform", "machine", "os_release",
                    "python_version", "python_executable", "numpy_version",
                    "cpu_model", "board", "cores", "cpus_allowed" (the CPUs it may run
                    on: an affinity mask shows here), "governor", "temps_c"}
    env_before     {"temps_c": {zone type: deg C}, "governor", "cpu0_freq_khz"}
    env_after      same, taken right after the latency measurement
    seed           int
    agent_ms       float: this process's run time so far (start-up included), for the coordinator's overhead
    warnings       [str]

Errors (exactly one JSON object on stdout; exit code 2)
-------------------------------------------------------
    {"ok": false, "agent_version": 1,
     "error": {"type": str, "message": one line saying what failed and where},
     "delegate": {...} (only for delegate failures, with outcome "failed")}
    type is one of: "bad_request", "model_not_found", "invalid_model",
    "eval_error", "delegate_failed", "runtime_missing", "runtime_error",
    "internal" (a bug in this agent), "interrupted".
A process killed by a native abort (some reference kernels do that) prints
nothing on stdout: the coordinator has only the exit status then.

ONNX models (request.model ending in .onnx)
-------------------------------------------
The same request and result, run with onnxruntime (without it: error
"runtime_missing"). Where it differs:
    delegate     "none": providers ["CPUExecutionProvider"], outcome "cpu".
                 "xnnpack": ["XnnpackExecutionProvider" (its own thread pool,
                 intra_op_num_threads = threads), "CPUExecutionProvider"],
                 only where this onnxruntime build has it; else
                 "delegate_failed" listing the providers it has (never a CPU
                 run under XNNPACK's name). Any other name is a TFLite
                 delegate: "delegate_failed".
    threads      SessionOptions.intra_op_num_threads (inter_op_num_threads 1)
    model        inputs and outputs as numpy dtype names; a dynamic dimension
                 (symbolic or None) of an input is fed, and shown, as 1, and
                 named in "warnings" unless it is the leading (batch) one;
                 output shapes are the ones the runs produced
    delegate     counts are of the graph onnxruntime runs, after its graph
                 optimizations (fused nodes count once), from its graph
                 assignment record (onnxruntime 1.24+): delegate_kernels is
                 the subgraphs assigned to XNNPACK, fallback_nodes 0, cpu_ops
                 the op types on CPUExecutionProvider. An older onnxruntime
                 records none: the counts (and cpu_ops) are null, and the
                 outcome is "cpu" for "none", "unknown" for "xnnpack".
    init_breakdown_ms  "interpreter" is the InferenceSession's creation
                 (model load, graph optimization, provider assignment, memory
                 planning: all of it happens there); "delegate_load" and
                 "allocate_tensors" are 0.
    runtime      {"name": "onnxruntime", "version": onnxruntime.__version__}
A model onnxruntime cannot load is "invalid_model", with its message.

Serve (--serve [--idle-exit SECONDS])
-------------------------------------
Reads requests, one JSON object per line on stdin ({"probe": true} is the
probe), and answers each in turn from a child process forked for it, until
stdin ends (a running child is then killed: nobody waits for it) or no
request came for SECONDS (default 600: a coordinator that vanished without
closing the stream). Before serving it imports numpy, the TFLite runtime and
onnxruntime where installed, so memory.baseline_mb is this warm process's
RSS (numpy and every runtime it has) and agent_ms counts from the fork.
Each answer, on stdout:
    a header of 128 bytes: one line of JSON padded with spaces,
        {"exit": the child's exit code, or minus the signal that killed it,
         "out": how many bytes of its stdout follow (its one JSON object),
         "err": how many bytes of the tail of its stderr follow those,
         "why": null | "timeout" (killed past timeout_s)
                     | "too_large" (its stdout passed max_reply_bytes: it
                       was killed, and "out" is 0)}
    then those stdout bytes, then those stderr bytes (at most 64 KiB).
"""

import gc
import json
import os
import platform
import socket
import sys
import time
import traceback
import zipfile

AGENT_VERSION = 1
_T0 = time.time()


def process_age_s():
    """Seconds since this process started (interpreter start-up included), from /proc; 0 where unreadable."""
    stat = _read_text("/proc/self/stat")
    uptime = _read_text("/proc/uptime")
    try:
        # Field 22 (starttime, in clock ticks since boot) follows the parenthesised command name.
        start_ticks = int(stat.rsplit(")", 1)[1].split()[19])
        return max(0.0, float(uptime.split()[0]) - start_ticks / float(os.sysconf("SC_CLK_TCK")))
    except (AttributeError, IndexError, ValueError, OSError):
        return 0.0


def _read_text(path):
    try:
        with open(path) as f:
            return f.read()
    except (OSError, IOError):
        return None


_AGE_AT_T0 = process_age_s()


def restart_clock():
    """A child of --serve counts its run time from its fork: its start-up is the fork."""
    global _T0, _AGE_AT_T0
    _T0, _AGE_AT_T0 = time.time(), 0.0


def agent_ms():
    """The agent's own run time so far: the process's start-up before _T0 plus everything since."""
    return round((_AGE_AT_T0 + time.time() - _T0) * 1000.0, 3)

DEFAULTS = {
    "delegate": {"name": "xnnpack"},
    "threads": 1,
    "warmup_runs": 5,
    "runs": 50,
    "min_secs": 0.0,
    "max_secs": 150.0,
    "eval": None,
    "eval_limit": None,
    "eval_outputs": False,
    "seed": 0,
    "exit_with_coordinator": False,
    "timeout_s": None,
    "max_reply_bytes": None,
}
KNOWN_KEYS = set(DEFAULTS) | {"model"}
EDGETPU_LIBRARY = "libedgetpu.so.1"
# Values of eval outputs one reply may carry (farm/replies.py refuses more).
MAX_EVAL_OUTPUT_VALUES = 1 << 20
# Characters of a delegate's message (farm/replies.py refuses a reply with more than 2000): a model with many op types
# on the CPU kernels would otherwise cost its whole result.
MAX_DELEGATE_MESSAGE = 1000


class AgentError(Exception):
    """A failure the coordinator should see as a typed, one-line error."""

    def __init__(self, kind, message, delegate=None):
        Exception.__init__(self, message)
        self.kind = kind
        self.message = message
        self.delegate = delegate


def bounded_message(text):
    """A delegate's message cut to MAX_DELEGATE_MESSAGE characters."""
    return text if len(text) <= MAX_DELEGATE_MESSAGE else text[:MAX_DELEGATE_MESSAGE - 3] + "..."


def one_line(text):
    # Runtime messages are often multi-line; the contract promises one line.
    parts = [p.strip() for p in str(text).replace("\r", "\n").split("\n")]
    return "; ".join(p for p in parts if p) or "(no message)"


# --------------------------------------------------------------------------
# request


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v):
    return (isinstance(v, (int, float)) and not isinstance(v, bool)
            and v == v and v not in (float("inf"), float("-inf")))


def parse_request(raw):
    try:
        req = json.loads(raw)
    except ValueError as e:
        raise AgentError("bad_request", "request is not valid JSON: %s" % e)
    if not isinstance(req, dict):
        raise AgentError("bad_request", "request must be a JSON object, got %s"
                         % type(req).__name__)
    out = dict(DEFAULTS)
    out.update(req)
    warnings = ["ignored unknown request key %r" % k
                for k in sorted(set(req) - KNOWN_KEYS)]

    model = out.get("model")
    if not isinstance(model, str) or not model:
        raise AgentError("bad_request", "request.model must be a non-empty path string")

    d = out["delegate"]
    if isinstance(d, str):
        d = {"name": d}
    if not isinstance(d, dict) or not isinstance(d.get("name"), str) or not d["name"]:
        raise AgentError("bad_request", "request.delegate must be an object with a "
                         "non-empty string 'name'")
    name = d["name"].strip().lower()
    library = d.get("library")
    options = d.get("options") or {}
    if library is not None and (not isinstance(library, str) or not library):
        raise AgentError("bad_request", "request.delegate.library must be a path string")
    if not isinstance(options, dict):
        raise AgentError("bad_request", "request.delegate.options must be an object")
    for k, v in options.items():
        if not (isinstance(v, (str, int, float, bool))):
            raise AgentError("bad_request", "request.delegate.options[%r] must be a "
                             "string, number or bool" % k)
    if name in ("xnnpack", "none") and (library or options):
        # Silently dropping them would label a run with settings it never had.
        raise AgentError("bad_request", "delegate %r takes no library or options "
                         "(XNNPACK here is the runtime's built-in default)" % name)
    # An ONNX model takes no delegate library: any name but xnnpack and none fails
    # later, as a TFLite delegate onnxruntime does not have.
    if name == "edgetpu" and not library and not is_onnx(model):
        library = EDGETPU_LIBRARY
    if name not in ("xnnpack", "none", "edgetpu") and not library and not is_onnx(model):
        raise AgentError("bad_request", "delegate %r needs request.delegate.library "
                         "(path of its shared library)" % name)
    out["delegate"] = {"name": name, "library": library, "options": options}

    for key, lo in (("threads", 1), ("warmup_runs", 0), ("runs", 1)):
        if not _is_int(out[key]) or out[key] < lo:
            raise AgentError("bad_request", "request.%s must be an integer >= %d, got %r"
                             % (key, lo, out[key]))
    if not _is_number(out["min_secs"]) or out["min_secs"] < 0:
        raise AgentError("bad_request", "request.min_secs must be a number >= 0")
    if not _is_number(out["max_secs"]) or out["max_secs"] <= 0:
        raise AgentError("bad_request", "request.max_secs must be a number > 0")
    if out["min_secs"] > out["max_secs"]:
        raise AgentError("bad_request", "request.min_secs (%s) exceeds max_secs (%s)"
                         % (out["min_secs"], out["max_secs"]))
    if out["eval"] is not None and (not isinstance(out["eval"], str) or not out["eval"]):
        raise AgentError("bad_request", "request.eval must be a path string or null")
    if out["eval_limit"] is not None and (not _is_int(out["eval_limit"])
                                          or out["eval_limit"] < 1):
        raise AgentError("bad_request", "request.eval_limit must be an integer >= 1 or null")
    if not isinstance(out["eval_outputs"], bool):
        raise AgentError("bad_request", "request.eval_outputs must be true or false")
    if out["eval_outputs"] and out["eval"] is None:
        raise AgentError("bad_request", "request.eval_outputs needs request.eval (the samples to run)")
    if not _is_int(out["seed"]):
        raise AgentError("bad_request", "request.seed must be an integer")
    if not isinstance(out["exit_with_coordinator"], bool):
        raise AgentError("bad_request", "request.exit_with_coordinator must be true or false")
    if out["timeout_s"] is not None and (not _is_number(out["timeout_s"]) or out["timeout_s"] <= 0):
        raise AgentError("bad_request", "request.timeout_s must be a number > 0 or null")
    if out["max_reply_bytes"] is not None and (not _is_int(out["max_reply_bytes"]) or out["max_reply_bytes"] < 1):
        raise AgentError("bad_request", "request.max_reply_bytes must be an integer >= 1 or null")
    out["warnings"] = warnings
    return out


# --------------------------------------------------------------------------
# runtime


class Runtime(object):
    def __init__(self, name, version, interpreter_cls, load_delegate, resolver_type):
        self.name = name
        self.version = version
        self.Interpreter = interpreter_cls
        self.load_delegate = load_delegate
        self.OpResolverType = resolver_type  # None on runtimes too old to have it


def _dist_version(*names):
    try:
        from importlib import metadata
    except ImportError:
        return None
    for n in names:
        try:
            return metadata.version(n)
        except Exception:
            pass
    return None


def import_runtime():
    reasons = []
    try:
        import ai_edge_litert
        from ai_edge_litert import interpreter as m
        version = (getattr(ai_edge_litert, "__version__", None)
                   or _dist_version("ai-edge-litert", "ai-edge-litert-nightly"))
        return Runtime("ai_edge_litert", version, m.Interpreter, m.load_delegate,
                       getattr(m, "OpResolverType", None))
    except Exception as e:  # a broken install can raise more than ImportError
        reasons.append("ai_edge_litert: %s" % one_line(e))
    try:
        import tflite_runtime
        from tflite_runtime import interpreter as m
        version = (getattr(tflite_runtime, "__version__", None)
                   or _dist_version("tflite-runtime", "tflite_runtime"))
        return Runtime("tflite_runtime", version, m.Interpreter, m.load_delegate,
                       getattr(m, "OpResolverType", None))
    except Exception as e:
        reasons.append("tflite_runtime: %s" % one_line(e))
    try:
        import tensorflow as tf
        exp = tf.lite.experimental
        return Runtime("tensorflow", tf.__version__, tf.lite.Interpreter,
                       exp.load_delegate, getattr(exp, "OpResolverType", None))
    except Exception as e:
        reasons.append("tensorflow: %s" % one_line(e))
    raise AgentError("runtime_missing", "no TFLite runtime importable by %s (%s)"
                     % (sys.executable, " | ".join(reasons)))


# --------------------------------------------------------------------------
# host facts


def _read(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except (OSError, IOError, ValueError):
        return None


def _proc_status_kb(field):
    text = _read("/proc/self/status")
    if not text:
        return None
    for line in text.splitlines():
        if line.startswith(field + ":"):
            try:
                return int(line.split()[1])
            except (IndexError, ValueError):
                return None
    return None


def _maxrss_mb():
    try:
        import resource
    except ImportError:
        return None
    v = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # ru_maxrss is KiB on Linux but bytes on macOS.
    return v / (1024.0 * 1024.0) if sys.platform == "darwin" else v / 1024.0


def rss_now():
    kb = _proc_status_kb("VmRSS")
    if kb is not None:
        return kb / 1024.0, "proc"
    # getrusage has no current RSS; the high-water mark so far is the best bound.
    return _maxrss_mb(), "getrusage"


def rss_peak():
    kb = _proc_status_kb("VmHWM")
    if kb is not None:
        return kb / 1024.0, "proc"
    return _maxrss_mb(), "getrusage"


def _thermal_zones():
    """(folder, key) of each of the device's thermal zones, in order: the key is the zone's type, or the type and the
    folder's name when an earlier zone has that type. None when the device has no thermal class."""
    # A board whose zones live elsewhere (or a test board) names their folder in FARM_THERMAL_ROOT.
    base = os.environ.get("FARM_THERMAL_ROOT") or "/sys/class/thermal"
    try:
        names = [z for z in sorted(os.listdir(base)) if z.startswith("thermal_zone")]
    except OSError:
        return []
    zones, seen = [], set()
    for name in names:
        kind = _read(os.path.join(base, name, "type")) or name
        zones.append((os.path.join(base, name), kind if kind not in seen else "%s (%s)" % (kind, name)))
        seen.add(kind)
    return zones


def temperatures():
    temps = {}
    for zone, key in _thermal_zones():
        try:
            celsius = int(_read(os.path.join(zone, "temp")) or "") / 1000.0
        except ValueError:
            continue
        temps[key] = round(celsius, 1)
    return temps


def throttling_trips():
    """Each zone's lowest passive trip point (°C): where the kernel starts throttling. Keyed as temperatures()."""
    trips = {}
    for zone, key in _thermal_zones():
        lowest = None
        for i in range(32):
            if _read(os.path.join(zone, "trip_point_%d_type" % i)) != "passive":
                continue
            try:
                celsius = int(_read(os.path.join(zone, "trip_point_%d_temp" % i)) or "") / 1000.0
            except ValueError:
                continue
            lowest = celsius if lowest is None else min(lowest, celsius)
        if lowest is not None:
            trips[key] = round(lowest, 1)
    return trips


def _cpu(path):
    # A board whose cpufreq lives elsewhere (or a test board) names the folder in FARM_CPU_ROOT.
    return os.path.join(os.environ.get("FARM_CPU_ROOT") or "/sys/devices/system/cpu", path)


def governor():
    return _read(_cpu("cpu0/cpufreq/scaling_governor"))


def env_snapshot():
    freq = _read(_cpu("cpu0/cpufreq/scaling_cur_freq"))
    try:
        freq = int(freq) if freq is not None else None
    except ValueError:
        freq = None
    return {"temps_c": temperatures(), "trips_c": throttling_trips(), "governor": governor(), "cpu0_freq_khz": freq}


def cpu_model():
    text = _read("/proc/cpuinfo") or ""
    found = {}
    for line in text.splitlines():
        if ":" in line:
            k, v = line.split(":", 1)
            k, v = k.strip(), v.strip()
            if k in ("model name", "Hardware", "Model", "cpu model") and v:
                found.setdefault(k, v)
    for k in ("model name", "Model", "Hardware", "cpu model"):
        if k in found:
            return found[k]
    return platform.processor() or None


def host_facts(np):
    board = _read("/proc/device-tree/model")
    if board:
        board = board.replace("\x00", "").strip() or None
    return {
        "hostname": socket.gethostname(),
        "platform": platform.system(),
        "machine": platform.machine(),
        "os_release": platform.release(),
        "python_version": platform.python_version(),
        "python_executable": sys.executable,
        "numpy_version": np.__version__ if np is not None else None,
        "cpu_model": cpu_model(),
        "board": board,
        "cores": os.cpu_count(),
        "cpus_allowed": sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "governor": governor(),
        "temps_c": temperatures(),
    }


# Coral USB accelerator before and after its firmware is loaded.
EDGETPU_USB_IDS = (("1a6e", "089a"), ("18d1", "9302"))


def edgetpu_facts():
    usb = []
    base = "/sys/bus/usb/devices"
    try:
        entries = sorted(os.listdir(base))
    except OSError:
        entries = []
    for entry in entries:
        ids = (_read(os.path.join(base, entry, "idVendor")), _read(os.path.join(base, entry, "idProduct")))
        if ids in EDGETPU_USB_IDS:
            usb.append("%s:%s" % ids)
    try:
        pci = sorted(d for d in os.listdir("/dev") if d.startswith("apex_"))
    except OSError:
        pci = []
    import ctypes.util
    library = ctypes.util.find_library("edgetpu")
    if library is None:
        for folder in ("/usr/lib", "/usr/lib/aarch64-linux-gnu", "/usr/lib/arm-linux-gnueabihf",
                       "/usr/lib/x86_64-linux-gnu", "/usr/local/lib"):
            if os.path.exists(os.path.join(folder, EDGETPU_LIBRARY)):
                library = os.path.join(folder, EDGETPU_LIBRARY)
                break
    return {"usb": usb, "pci": pci, "library": library, "present": bool(usb or pci)}


def probe():
    """What this host is and can run: the facts the coordinator stores with the device."""
    # Installed versions come from package metadata: importing the runtime costs ~0.1 s (more on a Pi) per device,
    # and every benchmark result reports the runtime it really imported anyway.
    runtime = {"name": None, "version": None, "error": "no TFLite runtime installed for %s" % sys.executable}
    for name, dists in (("ai_edge_litert", ("ai-edge-litert", "ai-edge-litert-nightly")),
                        ("tflite_runtime", ("tflite-runtime",)),
                        ("tensorflow", ("tensorflow", "tensorflow-cpu", "tensorflow-aarch64"))):
        version = _dist_version(*dists)
        if version:
            runtime = {"name": name, "version": version}
            break

    class _Numpy(object):
        __version__ = _dist_version("numpy")

    facts = host_facts(_Numpy)
    mem_kb = None
    for line in (_read("/proc/meminfo") or "").splitlines():
        if line.startswith("MemTotal:"):
            mem_kb = int(line.split()[1])
    tegra = _read("/etc/nv_tegra_release")
    facts.update({
        "ok": True,
        "agent_version": AGENT_VERSION,
        "runtime": runtime,
        "ram_mb": None if mem_kb is None else round(mem_kb / 1024.0),
        "jetson": tegra.splitlines()[0] if tegra else None,
        "edgetpu": edgetpu_facts(),
        "onnxruntime": onnxruntime_facts(),
        "thermal_zones": sorted(facts["temps_c"]),
    })
    return facts


# --------------------------------------------------------------------------
# model and eval files


def check_model_file(path):
    path = os.path.abspath(path)
    if not os.path.exists(path):
        raise AgentError("model_not_found", "model file not found: %s" % path)
    if os.path.isdir(path):
        raise AgentError("model_not_found", "model path is a directory: %s" % path)
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except (OSError, IOError) as e:
        raise AgentError("model_not_found", "cannot read model %s: %s" % (path, e))
    # Every TFLite flatbuffer carries the file identifier "TFL3" at byte 4, and
    # the runtime's own verifier requires it; checking here gives a clear message.
    # (An ONNX protobuf has no such mark: onnxruntime itself says what is wrong.)
    if not is_onnx(path) and (len(head) < 8 or head[4:8] != b"TFL3"):
        raise AgentError("invalid_model", "not a TFLite model (no 'TFL3' flatbuffer "
                         "identifier at byte 4): %s" % path)
    return path, os.path.getsize(path)


class NpyStream(object):
    """Reads one array of an .npz sample by sample, without loading it whole.

    Eval sets can be far larger than the model (1000 images of 224x224x3 fp32
    are 600 MB): streaming keeps them off the memory figures and out of a
    small board's RAM.
    """

    def __init__(self, np, path, member):
        self.np = np
        self.path = path
        try:
            self.zip = zipfile.ZipFile(path)
        except (OSError, IOError, zipfile.BadZipfile) as e:
            raise AgentError("eval_error", "cannot open eval npz %s: %s" % (path, one_line(e)))
        name = member + ".npy"
        if name not in self.zip.namelist():
            self.zip.close()
            raise AgentError("eval_error", "eval npz %s has no array %r (has: %s)"
                             % (path, member, ", ".join(n[:-4] for n in self.zip.namelist())))
        self.fh = self.zip.open(name)
        fmt = np.lib.format
        try:
            version = fmt.read_magic(self.fh)
            if version == (1, 0):
                shape, fortran, dtype = fmt.read_array_header_1_0(self.fh)
            else:
                shape, fortran, dtype = fmt.read_array_header_2_0(self.fh)
        except Exception as e:
            raise AgentError("eval_error", "eval npz %s: array %r is not a readable .npy: %s"
                             % (path, member, one_line(e)))
        if dtype.hasobject:
            raise AgentError("eval_error", "eval npz %s: array %r holds Python objects"
                             % (path, member))
        if len(shape) < 1:
            raise AgentError("eval_error", "eval npz %s: array %r needs a leading sample axis"
                             % (path, member))
        self.shape = tuple(shape)
        self.dtype = dtype
        self.fortran = fortran
        self.sample_shape = self.shape[1:]
        n = 1
        for s in self.sample_shape:
            n *= s
        self.sample_size = n
        self._all = None

    def __len__(self):
        return self.shape[0]

    def sample(self, i):
        np = self.np
        if self.fortran:
            # Column-major rows are not contiguous on disk; rare enough to load once.
            if self._all is None:
                self._all = np.load(self.path, allow_pickle=False)["x"]
            return np.asarray(self._all[i])
        nbytes = self.sample_size * self.dtype.itemsize
        buf = self.fh.read(nbytes)
        if len(buf) != nbytes:
            raise AgentError("eval_error", "eval npz %s: array x ends early at sample %d"
                             % (self.path, i))
        return np.frombuffer(buf, dtype=self.dtype).reshape(self.sample_shape)

    def close(self):
        self.fh.close()
        self.zip.close()


def load_labels(np, path):
    try:
        with np.load(path, allow_pickle=False) as z:
            if "y" not in z.files:
                return None
            y = np.asarray(z["y"])
    except AgentError:
        raise
    except Exception as e:
        raise AgentError("eval_error", "cannot read labels y from %s: %s" % (path, one_line(e)))
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1 or not (np.issubdtype(y.dtype, np.integer) or y.dtype == np.bool_):
        raise AgentError("eval_error", "eval npz %s: y must be 1-D integer labels, got "
                         "shape %s dtype %s" % (path, list(y.shape), y.dtype))
    return y.astype(np.int64)


# --------------------------------------------------------------------------
# interpreter, delegate and the execution plan


def graph_nodes(interp):
    """(op name, [input tensor indices], [output tensor indices]) of each node of the main subgraph, DELEGATE nodes
    included, or None if this runtime does not expose the node list."""
    # The node accessors exist only on the private wrapper (same in
    # ai_edge_litert, tflite_runtime and tf.lite). Holding a reference to it
    # past this call would make allocate_tensors()/invoke() refuse to run
    # (Interpreter._ensure_safe counts references), so it stays local.
    w = getattr(interp, "_interpreter", None)
    if w is None or not all(hasattr(w, a) for a in
                            ("NumNodes", "NodeName", "NodeInputs", "NodeOutputs")):
        return None
    return [(str(w.NodeName(i)), [int(t) for t in w.NodeInputs(i)], [int(t) for t in w.NodeOutputs(i)])
            for i in range(w.NumNodes())]


def count_delegation(interp):
    """How the runtime rewrote the main subgraph: which nodes were delegated.

    The interpreter keeps every original operator as a node, and each
    delegate partition becomes one extra node (op name "DELEGATE") appended
    after them; the execution plan then runs the DELEGATE nodes instead of
    the nodes they replaced. The Python API does not expose the execution
    plan itself, but each DELEGATE node's inputs and outputs are exactly its
    partition's boundary tensors. Walking backwards from its outputs through
    the producers of tensors, stopping at its inputs, visits exactly the
    original nodes it replaced. Nodes visited by no DELEGATE node still run
    on the CPU kernels.

    Only the main subgraph is counted: the bodies of control-flow ops
    (WHILE, IF) live in other subgraphs the Python API cannot list.

    Returns (original node count, {delegate node index: set of original node
    indices it replaced}, [op name of each original node]), or None if this
    runtime does not expose the node list.
    """
    nodes = graph_nodes(interp)
    if nodes is None:
        return None
    originals = [i for i, node in enumerate(nodes) if node[0] != "DELEGATE"]
    producer = {}
    for i in originals:
        for t in nodes[i][2]:
            if t >= 0:
                producer[t] = i
    replaced = {}
    for d, (name, inputs, outputs) in enumerate(nodes):
        if name != "DELEGATE":
            continue
        boundary = set(inputs)
        seen = set()
        stack = list(outputs)
        while stack:
            t = stack.pop()
            if t in boundary or t not in producer:
                continue
            node = producer[t]
            if node in seen:
                continue
            seen.add(node)
            stack.extend(x for x in nodes[node][1] if x >= 0)
        replaced[d] = seen
    return len(originals), replaced, [nodes[i][0] for i in originals]


def _union(parts, keys):
    out = set()
    for k in keys:
        out |= parts[k]
    return out


class NativeLog(object):
    """Tees what native code writes to fds 1 and 2 while it is active.

    TFLite often reports why something failed only in its log, raising an
    empty exception (e.g. a delegate refusing a graph with dynamic tensors),
    and logs some warnings only once per process, so the text has to be
    caught the first time. It is passed straight on to the real stderr by a
    thread rather than held back, so the last words of native code that
    aborts the process still have a good chance to reach the coordinator.
    """

    def __init__(self):
        self.text = ""
        self._chunks = []
        self._saved = []
        self._thread = None

    def __enter__(self):
        import threading
        try:
            sys.stdout.flush()
            sys.stderr.flush()
            real = os.dup(2)
            r, w = os.pipe()
            for fd in (1, 2):
                self._saved.append((fd, os.dup(fd)))
                os.dup2(w, fd)
            os.close(w)
        except (OSError, ValueError, AttributeError):
            self._restore()
            return self

        def pump():
            while True:
                try:
                    data = os.read(r, 65536)
                except OSError:
                    break
                if not data:
                    break
                self._chunks.append(data)
                try:
                    view = memoryview(data)
                    while view:
                        view = view[os.write(real, view):]
                except OSError:
                    pass
            os.close(r)
            os.close(real)

        self._thread = threading.Thread(target=pump, name="native-log")
        self._thread.daemon = True
        self._thread.start()
        return self

    def _restore(self):
        for fd, saved in self._saved:
            os.dup2(saved, fd)
            os.close(saved)
        self._saved = []

    def __exit__(self, *exc):
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except (OSError, ValueError):
            pass
        self._restore()
        if self._thread is not None:
            # EOF arrives once fds 1 and 2 no longer point at the pipe; a
            # library that kept its own copy of the fd would hold it open.
            self._thread.join(2.0)
        self.text = b"".join(self._chunks).decode("utf-8", "replace")
        return False

    def why(self, exc):
        """The exception's text, or the log's last lines if it has none."""
        msg = one_line(exc)
        if msg != "(no message)":
            return msg
        lines = [l.strip() for l in self.text.splitlines()
                 if l.strip() and not l.startswith("INFO:")]
        return one_line("\n".join(lines[-3:])) if lines else "(no message from the runtime)"


def build_interpreter(rt, model_path, req):
    """Loads the delegate, builds the interpreter, allocates; times each step."""
    spec = req["delegate"]
    name = spec["name"]
    threads = req["threads"]
    delegate_info = {"name": name, "library": spec["library"]}
    t = {"delegate_load": 0.0, "interpreter": 0.0, "allocate_tensors": 0.0}
    kwargs = {"model_path": model_path, "num_threads": threads}
    delegate_obj = None

    def failed(stage, why):
        info = dict(delegate_info, outcome="failed", delegated_nodes=0, total_nodes=None,
                    delegate_kernels=0, message="%s failed: %s" % (stage, why))
        return AgentError("delegate_failed", "delegate %r (%s) %s failed on %s: %s"
                          % (name, spec["library"], stage, model_path, why), info)

    if name == "none":
        if rt.OpResolverType is not None:
            kwargs["experimental_op_resolver_type"] = \
                rt.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        # else: an old runtime that cannot switch default delegates off; the
        # node count below still tells whether anything got delegated.
    elif name != "xnnpack":
        error = None
        with NativeLog() as log:
            t0 = time.perf_counter_ns()
            try:
                delegate_obj = rt.load_delegate(spec["library"], spec["options"])
            except Exception as e:
                error = e
            t["delegate_load"] = (time.perf_counter_ns() - t0) / 1e6
        if error is not None:
            raise failed("load", log.why(error))
        kwargs["experimental_delegates"] = [delegate_obj]

    error = None
    with NativeLog() as construct_log:
        t0 = time.perf_counter_ns()
        try:
            interp = rt.Interpreter(**kwargs)
        except Exception as e:
            error = e
        t["interpreter"] = (time.perf_counter_ns() - t0) / 1e6
    if error is not None:
        why = construct_log.why(error)
        if delegate_obj is not None and model_loads_without_delegates(rt, model_path):
            raise failed("apply", why)
        raise AgentError("invalid_model", "cannot load model %s with %s: %s"
                         % (model_path, rt.name, why))

    # An explicitly given delegate is applied inside the constructor, so the
    # DELEGATE nodes present now are its own. The runtime's default XNNPACK
    # delegate is applied lazily inside allocate_tensors() (and only to what
    # is left when an explicit delegate did not take everything), so any
    # DELEGATE nodes that appear after allocation are XNNPACK's.
    before = count_delegation(interp)

    with NativeLog() as log:
        t0 = time.perf_counter_ns()
        try:
            interp.allocate_tensors()
        except Exception as e:
            error = e
        t["allocate_tensors"] = (time.perf_counter_ns() - t0) / 1e6
    if error is not None:
        raise AgentError("runtime_error", "allocate_tensors failed for %s (delegate %r): %s"
                         % (model_path, name, log.why(error)))

    after = count_delegation(interp)
    why = None
    if name == "xnnpack" and after is not None and not after[1]:
        # Outside the timed steps: the job fails anyway, and its reason is what the user needs.
        why = why_xnnpack_took_nothing(rt, interp, construct_log.text + log.text)
    delegate_info.update(classify(name, before, after, why))
    if delegate_info["outcome"] == "failed":
        raise AgentError("delegate_failed", "delegate %r on %s: %s"
                         % (name, model_path, delegate_info["message"]), delegate_info)
    return interp, delegate_obj, delegate_info, t


def model_loads_without_delegates(rt, model_path):
    """Only on the error path: tells a refused delegate from a broken model."""
    kwargs = {"model_path": model_path}
    if rt.OpResolverType is not None:
        kwargs["experimental_op_resolver_type"] = \
            rt.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    try:
        rt.Interpreter(**kwargs)
        return True
    except Exception:
        return False


def classify(name, before, after, why=None):
    """The delegate fields of the result from the node counts before and after allocate_tensors; `why` says why a
    delegate that took no node took none, where that is known."""
    if after is None:
        return {"outcome": "unknown", "delegated_nodes": None, "total_nodes": None,
                "delegate_kernels": None, "fallback_nodes": None, "cpu_ops": None,
                "message": "this runtime does not expose the node list; "
                           "delegation cannot be verified"}
    total, parts, op_names = after
    all_kernels = sorted(parts)
    if name == "xnnpack":
        mine = all_kernels
        fallback = []
    else:
        mine = sorted(before[1]) if before is not None else all_kernels
        fallback = [k for k in all_kernels if k not in set(mine)]
    mine_nodes = _union(parts, mine)
    fallback_nodes = _union(parts, fallback) - mine_nodes
    cpu = [i for i in range(total) if i not in mine_nodes and i not in fallback_nodes]
    cpu_ops = {}
    for i in cpu:
        cpu_ops[op_names[i]] = cpu_ops.get(op_names[i], 0) + 1
    n = len(mine_nodes)
    info = {"delegated_nodes": n, "total_nodes": total, "delegate_kernels": len(mine),
            "fallback_nodes": len(fallback_nodes), "cpu_ops": cpu_ops}
    cpu_text = ", ".join("%s x%d" % kv for kv in sorted(cpu_ops.items())) or "none"
    if name == "none":
        if all_kernels:
            info.update(outcome="failed", message=(
                "default delegates could not be disabled on this runtime: %d "
                "kernels took %d of %d nodes" % (len(all_kernels), n, total)))
        else:
            info.update(outcome="cpu", message="all %d nodes on the built-in CPU "
                        "kernels, no delegate" % total)
        return info
    label = "XNNPACK (runtime default)" if name == "xnnpack" else "delegate %r" % name
    if n == 0:
        outcome = "not_applied"
        msg = "%s took 0 of %d nodes: %s" % (label, total, why or "the whole model ran on the CPU")
    elif n == total:
        outcome = "applied"
        msg = "%s took all %d nodes in %d kernel(s)" % (label, total, len(mine))
    else:
        outcome = "partial"
        msg = "%s took %d of %d nodes in %d kernel(s)" % (label, n, total, len(mine))
    if n < total:
        if fallback_nodes:
            msg += ("; of the other %d, the runtime's default XNNPACK took %d"
                    % (total - n, len(fallback_nodes)))
        msg += "; on CPU kernels: %s" % cpu_text
    info.update(outcome=outcome, message=bounded_message(msg))
    return info


# A graph that sizes a tensor at run time the way Keras Flatten does on an input with a dynamic batch (SHAPE ->
# STRIDED_SLICE -> PACK -> RESHAPE), then an ADD, which every XNNPACK takes: a .tflite, zlib-compressed, in base64.
# Whether a runtime's default XNNPACK takes that ADD tells whether it takes any node of a graph with tensors sized at
# run time: tflite_runtime 2.14's takes none (and logs nothing about it), ai_edge_litert 2.3's does. Converted by
# TensorFlow 2.21 from
#     @tf.function(input_signature=[tf.TensorSpec([None, 2, 2], tf.float32)])
#     def probe(x):
#         y = tf.reshape(x, tf.stack([tf.shape(x)[0], 4]))
#         return y + y
RUN_TIME_SHAPES_PROBE = (
    "eNptVE1oE0EUfrvZNGmTxkBDDJJDDh482LSpgqAeDG2FQtNKU3pNQ7LQxXZbklVa8CDiwZsePHjwWMRDT+JRRDz34MmThyIiehcR"
    "/Bm/N/OynYbO8jFvZ+b73pv3ZqZMRKs3Fy8VqEJlKlGB8pTFWJo82IQxgwjYdYgeAQdJogSZ5gKXAQ/4pJTKiD0BzC4vrc2vNBeW"
    "l1qN+dX6XH21Dt2s1k5jfsxauxWErd6dMAq2/NZdv9cPtkMdB8HfL3RfgA/AG+A1cADsA8+BpxIfa139pxT360BeYkxTLvbJY+f1"
    "6IgeGxEet2y8f0/7/v44+2o8ufckIfv0NItopjpTq04TvRBfrFmr1vTYoK3/VqoLbACbwA7wUdZ7Zlv01frn9tP6Z+yD8xI4A7ux"
    "uLBSmd0OkZvI71Y1v6BZuThq3k9Oxrlm97DoPvDQMXpb7SBkBspHFzF2yGu4/qdoZSwttExebNa5/kcpR+fV5CUl4IoO4hjT+TS5"
    "Sch+U7KeJI/vcV7K5vca95V4/rg2rnAHdlL+OdZzQ7GaulKF+wvWunRcFbPOESStXLsSZ0I4RR37sXbJCFwpSW5NjCkdF9Mdq65y"
    "bLXfwf8o5xxOjqQec0DWMWf6GXBL+DmcAabZd29U9sYxImX6jLz7qxTrL3R9XJpoj6xc8fzaKTppK8cDnTTWcV1W/P5Ge8c/ofHZ"
    "0ijENSaX7RuY4/z1o3bntnCYW1QnOYP86DcEnHHN6QVdv9vqbwYdX/KzNMRLWr4OxFdTR2h8cZ0eDHE8y9cROFy3di+INqqd7RCB"
    "htFx7d8OceU9czk/ZcxNDMc5ZXbqxDUt6vfyrJx401L63Ni6rrWPSJlca6WpmnCMDsUvL+lzZetUBI70CamfK/qHytzHXeuuudZ9"
    "WQSmhZuXc+Dpz7zZ4qv4DXbT2M0fsCeNPZnV98DcH46wYcYb/wHgXt9Y"
)
# Characters of a tensor's name in a reason: Keras names can join a dozen layer names.
MAX_TENSOR_NAME = 80


def xnnpack_takes_run_time_shapes(rt):
    """Whether this runtime's default XNNPACK takes nodes of a graph that has tensors sized at run time, asked of the
    runtime itself with RUN_TIME_SHAPES_PROBE; None when it cannot be asked (the probe does not load here, or the
    runtime does not expose its nodes)."""
    import base64
    import zlib

    try:
        probe = rt.Interpreter(model_content=zlib.decompress(base64.b64decode(RUN_TIME_SHAPES_PROBE)), num_threads=1)
        probe.allocate_tensors()
    except Exception:
        return None
    counted = count_delegation(probe)
    return None if counted is None else bool(counted[1])


def sized_at_run_time(interp, nodes, details):
    """(node index, tensor index) of the first node output, in node order, that allocate_tensors left without memory:
    the runtime sizes that tensor only when the model runs (a dynamic tensor). None if there is none."""
    for i, (name, _, outputs) in enumerate(nodes):
        if name == "DELEGATE":
            continue
        for t in outputs:
            if t < 0 or 0 in [int(n) for n in details.get(t, {}).get("shape", [1])]:
                continue  # an empty tensor may have no memory at any time
            try:
                interp.tensor(t)()  # a view of its memory, dropped at once: nothing copied, nothing kept
            except ValueError:  # "Tensor data is null"
                return i, t
    return None


def shape_chain(nodes, end):
    """The op names from the nearest SHAPE node upstream of node `end` to `end` (e.g. SHAPE, STRIDED_SLICE, PACK,
    RESHAPE: a shape computed at run time), or None when no SHAPE node feeds it."""
    producer = {}
    for i, (name, _, outputs) in enumerate(nodes):
        if name != "DELEGATE":
            for t in outputs:
                producer[t] = i
    parent = {end: None}
    queue = [end]
    for i in queue:  # breadth first: the queue grows while it is read
        if nodes[i][0] == "SHAPE":
            chain = []
            while i is not None:
                chain.append(nodes[i][0])
                i = parent[i]
            return chain
        # An op's shape operands come after its data (RESHAPE's shape is its second input): looked at first.
        for t in reversed(nodes[i][1]):
            j = producer.get(t)
            if j is not None and j not in parent:
                parent[j] = i
                queue.append(j)
    return None


def _signature(d):
    """A tensor's shape with -1 where it is not fixed, as the runtime gives it."""
    return [int(n) for n in d.get("shape_signature", d.get("shape", []))]


def why_xnnpack_took_nothing(rt, interp, log_text):
    """Why the runtime's default XNNPACK took no node of the model, as far as the runtime shows it (what it logged
    while building the interpreter, the tensors it left to size at run time, whether its XNNPACK takes a graph with
    such tensors at all): a clause of the delegate's message."""
    said = [l.strip() for l in log_text.splitlines() if l.strip() and not l.startswith("INFO:")]
    return (_xnnpack_refusal(rt, interp, "XNNPACK" in log_text)
            + ("; the runtime said: %s" % one_line("\n".join(said[-2:]))[:200] if said else ""))


def _xnnpack_refusal(rt, interp, created):
    """why_xnnpack_took_nothing's clause from the interpreter; `created`: the runtime logged creating its XNNPACK."""
    runtime = "%s %s" % (rt.name, rt.version)
    nodes = graph_nodes(interp)
    details = dict((d["index"], d) for d in interp.get_tensor_details())
    types = ", ".join(sorted(set(getattr(d["dtype"], "__name__", str(d["dtype"])) for d in details.values())))
    if not created:
        # tflite_runtime 2.14 (TFLite's interpreter builder of its age) applies its default delegates only to a model
        # with float32 tensors: the types show it.
        return ("%s created no XNNPACK delegate for this model (it logs one when it does; tensor types here: %s)"
                % (runtime, types))
    found = sized_at_run_time(interp, nodes, details)
    takes = xnnpack_takes_run_time_shapes(rt) if found is not None else None
    if found is None or takes:
        # Nothing held the graph back as a whole, so XNNPACK looked at each node and took none.
        return ("%s's XNNPACK turned every node down: an op, a tensor type or a parameter it does not take (tensor "
                "types here: %s)" % (runtime, types))
    node, tensor = found
    chain = " -> ".join(shape_chain(nodes, node) or [nodes[node][0]])
    d = details.get(tensor, {})
    tensor_text = "'%s' %s" % (one_line(d.get("name", tensor))[:MAX_TENSOR_NAME], _signature(d))
    loose = [i for i in interp.get_input_details() if -1 in _signature(i)]
    if chain.startswith("SHAPE") and loose:
        # The converter computes such a shape once the input's is fixed: the chain is gone from the graph. The fix is
        # said before the tensor's name, which can be long: a job's reason is kept to 400 characters.
        sized = ("%s computes one's shape from the input's, %s, not fixed: convert the model with a static one "
                 "(farm convert --static-shapes); that tensor: %s" % (chain, _signature(loose[0]), tensor_text))
    else:
        sized = "%s sizes %s at run time" % (chain, tensor_text)
    if takes is None:
        return ("the graph has tensors sized at run time (whether %s's XNNPACK takes such a graph could not be "
                "asked), and here %s" % (runtime, sized))
    return "%s's XNNPACK takes no node of a graph with tensors sized at run time, and here %s" % (runtime, sized)


def tensor_desc(d):
    return {"name": d["name"], "shape": [int(s) for s in d["shape"]],
            "dtype": getattr(d["dtype"], "__name__", str(d["dtype"]))}


def random_inputs(np, details, seed):
    rng = np.random.RandomState(seed)  # RandomState: also on old numpy of boards
    arrays = []
    for d in details:
        dtype = np.dtype(d["dtype"])
        shape = tuple(int(s) for s in d["shape"])
        if dtype in (np.dtype(np.int8), np.dtype(np.uint8), np.dtype(np.int16),
                     np.dtype(np.uint16)):
            info = np.iinfo(dtype)
            a = rng.randint(int(info.min), int(info.max) + 1, size=shape).astype(dtype)
        elif dtype.kind in "iu":
            # Wider ints are usually indices or lengths; full range would index
            # out of bounds, so keep them small like benchmark_model does.
            a = rng.randint(0, 100, size=shape).astype(dtype)
        elif dtype.kind == "b":
            a = rng.randint(0, 2, size=shape).astype(dtype)
        elif dtype.kind == "f":
            a = rng.uniform(-1.0, 1.0, size=shape).astype(dtype)
        elif dtype.kind == "c":
            a = (rng.uniform(-1.0, 1.0, size=shape)
                 + 1j * rng.uniform(-1.0, 1.0, size=shape)).astype(dtype)
        else:
            a = np.zeros(shape, dtype=dtype)
        arrays.append(a)
    return arrays


def measure(invoke, runs, min_secs, max_secs):
    """Steady-state sampling; the loop is kept plain so it adds almost nothing."""
    clock = time.perf_counter_ns
    samples = []
    append = samples.append
    start = clock()
    min_end = start + int(min_secs * 1e9)
    max_end = start + int(max_secs * 1e9)
    n = 0
    while True:
        t0 = clock()
        invoke()
        t1 = clock()
        append(t1 - t0)
        n += 1
        if t1 >= max_end or (n >= runs and t1 >= min_end):
            break
    if n < runs or t1 >= max_end:
        stopped = "max_secs"
    elif min_secs > 0 and n > runs:
        stopped = "min_secs"
    else:
        stopped = "runs"
    return samples, (clock() - start) / 1e9, stopped


# --------------------------------------------------------------------------
# onnxruntime (.onnx models)


ORT_CPU = "CPUExecutionProvider"
ORT_XNNPACK = "XnnpackExecutionProvider"
# The tensor types onnxruntime reports, by the numpy dtype that feeds them.
ORT_DTYPES = {
    "tensor(float)": "float32", "tensor(double)": "float64", "tensor(float16)": "float16",
    "tensor(int8)": "int8", "tensor(uint8)": "uint8", "tensor(int16)": "int16",
    "tensor(uint16)": "uint16", "tensor(int32)": "int32", "tensor(uint32)": "uint32",
    "tensor(int64)": "int64", "tensor(uint64)": "uint64", "tensor(bool)": "bool",
}


def is_onnx(path):
    return path.lower().endswith(".onnx")


def import_onnxruntime():
    try:
        import onnxruntime
    except Exception as e:  # a broken install can raise more than ImportError
        raise AgentError("runtime_missing", "onnxruntime not importable by %s (%s); "
                         "`farm provision --onnxruntime` installs it"
                         % (sys.executable, one_line(e)))
    return onnxruntime


def onnxruntime_facts():
    """The probe's view of onnxruntime: its version and execution providers, or why it is not importable."""
    # The providers are known only to the imported module, so this costs the import (~0.2 s) once per probe.
    try:
        import onnxruntime
        return {"version": str(onnxruntime.__version__),
                "providers": [str(p) for p in onnxruntime.get_available_providers()]}
    except Exception as e:
        return {"version": None, "providers": [],
                "error": "onnxruntime not importable by %s: %s" % (sys.executable, one_line(e))}


class OrtInterpreter(object):
    """An onnxruntime session behind the part of TFLite's Interpreter API this agent uses, so one timing and eval
    path serves both runtimes. Tensor indices are the inputs in order, then the outputs."""

    def __init__(self, np, session, warnings):
        self.session = session
        self.inputs = []
        for i, arg in enumerate(session.get_inputs()):
            dtype = ORT_DTYPES.get(arg.type)
            if dtype is None:
                raise AgentError("runtime_error", "input %r is %s: the agent feeds numeric and bool "
                                 "tensors only" % (arg.name, arg.type))
            shape, dynamic = [], []
            for k, dim in enumerate(arg.shape or []):
                if isinstance(dim, int) and dim >= 0:
                    shape.append(dim)
                else:
                    # A symbolic or unknown dimension is fed as 1, like benchmark_model does.
                    shape.append(1)
                    if k > 0:
                        dynamic.append(str(dim))
            if dynamic:
                warnings.append("input %r: dynamic dimension(s) %s fed as 1" % (arg.name, ", ".join(dynamic)))
            self.inputs.append({"name": arg.name, "index": i, "shape": shape, "dtype": np.dtype(dtype).type})
        self.outputs = []
        for i, arg in enumerate(session.get_outputs()):
            dtype = ORT_DTYPES.get(arg.type)
            self.outputs.append({
                "name": arg.name, "index": len(self.inputs) + i,
                "shape": [d if isinstance(d, int) and d >= 0 else -1 for d in (arg.shape or [])],
                # A non-tensor output (a sequence, a map) keeps onnxruntime's name for its type.
                "dtype": np.dtype(dtype).type if dtype else arg.type})
        self.feeds = {}
        self.results = []

    def get_input_details(self):
        return self.inputs

    def get_output_details(self):
        # Output shapes may depend on the inputs: once the model ran, they are the ones it produced.
        for d, value in zip(self.outputs, self.results):
            if hasattr(value, "shape"):
                d["shape"] = [int(s) for s in value.shape]
        return self.outputs

    def set_tensor(self, index, value):
        self.feeds[self.inputs[index]["name"]] = value

    def get_tensor(self, index):
        if index < len(self.inputs):
            return self.feeds[self.inputs[index]["name"]]
        return self.results[index - len(self.inputs)]

    def invoke(self):
        self.results = self.session.run(None, self.feeds)


def build_session(np, ort, model_path, req):
    """Creates the onnxruntime session for the requested delegate; times it like build_interpreter."""
    spec = req["delegate"]
    name = spec["name"]
    available = [str(p) for p in ort.get_available_providers()]
    delegate_info = {"name": name, "library": spec["library"]}
    t = {"delegate_load": 0.0, "interpreter": 0.0, "allocate_tensors": 0.0}

    def failed(why):
        info = dict(delegate_info, outcome="failed", delegated_nodes=0, total_nodes=None,
                    delegate_kernels=0, message=why)
        return AgentError("delegate_failed", "delegate %r on %s: %s" % (name, model_path, why), info)

    if name == "none":
        providers = [ORT_CPU]
    elif name == "xnnpack":
        if ORT_XNNPACK not in available:
            # onnxruntime would only warn and run on the CPU: never measured under XNNPACK's name.
            raise failed("this onnxruntime %s build has no %s (its providers: %s)"
                         % (ort.__version__, ORT_XNNPACK, ", ".join(available)))
        # XNNPACK runs its own thread pool, beside the session's.
        providers = [(ORT_XNNPACK, {"intra_op_num_threads": str(req["threads"])}), ORT_CPU]
    else:
        raise failed("%r is a TFLite delegate; onnxruntime runs an ONNX model with delegate 'none' (%s) "
                     "or 'xnnpack' (%s); this onnxruntime %s has: %s"
                     % (name, ORT_CPU, ORT_XNNPACK, ort.__version__, ", ".join(available)))

    def create(providers):
        options = ort.SessionOptions()
        options.intra_op_num_threads = req["threads"]
        options.inter_op_num_threads = 1
        # Where each node runs, read back by ort_assignment (onnxruntime 1.24+; an older one ignores the key).
        options.add_session_config_entry("session.record_ep_graph_assignment_info", "1")
        return ort.InferenceSession(model_path, sess_options=options, providers=providers)

    error = None
    with NativeLog() as log:
        t0 = time.perf_counter_ns()
        try:
            session = create(providers)
        except Exception as e:
            error = e
        t["interpreter"] = (time.perf_counter_ns() - t0) / 1e6
    if error is not None:
        why = log.why(error)
        if name == "xnnpack":
            try:
                create([ORT_CPU])  # only on the error path: tells a refusing provider from a broken model
            except Exception:
                pass
            else:
                raise failed("session creation failed: %s" % why)
        raise AgentError("invalid_model", "cannot load model %s with onnxruntime %s: %s"
                         % (model_path, ort.__version__, why))
    if name == "xnnpack" and ORT_XNNPACK not in session.get_providers():
        raise failed("onnxruntime dropped %s from the session (it runs on: %s)"
                     % (ORT_XNNPACK, ", ".join(session.get_providers())))
    delegate_info.update(classify_ort(name, ort_assignment(session)))
    if delegate_info["outcome"] == "failed":
        raise AgentError("delegate_failed", "delegate %r on %s: %s"
                         % (name, model_path, delegate_info["message"]), delegate_info)
    return OrtInterpreter(np, session, req["warnings"]), delegate_info, t


def ort_assignment(session):
    """[(provider, [op type of each node])] for the graph the session runs, or None where onnxruntime does not
    record it (before 1.24, or an empty record)."""
    try:
        found = [(str(s.ep_name), [str(n.op_type) for n in s.get_nodes()])
                 for s in session.get_provider_graph_assignment_info()]
    except Exception:
        return None
    return found or None


def classify_ort(name, subgraphs):
    """The delegate fields for an onnxruntime session, as classify() gives them for a TFLite interpreter."""
    provider = ORT_XNNPACK if name == "xnnpack" else None
    if subgraphs is None:
        unknown = {"delegated_nodes": None, "total_nodes": None, "delegate_kernels": None,
                   "fallback_nodes": None, "cpu_ops": None}
        if provider is None:
            # The session was given the CPU provider alone, so no node ran anywhere else.
            return dict(unknown, outcome="cpu", delegated_nodes=0, delegate_kernels=0, fallback_nodes=0,
                        message="every node on %s, no delegate (this onnxruntime does not "
                                "report node counts)" % ORT_CPU)
        return dict(unknown, outcome="unknown", message="%s registered; this onnxruntime does not "
                    "report which nodes it took" % ORT_XNNPACK)
    strangers = sorted(set(ep for ep, _ in subgraphs) - set([ORT_CPU, provider]))
    mine = [ops for ep, ops in subgraphs if ep == provider]
    n = sum(len(ops) for ops in mine)
    total = sum(len(ops) for _, ops in subgraphs)
    cpu_ops = {}
    for ep, ops in subgraphs:
        if ep == ORT_CPU:
            for op in ops:
                cpu_ops[op] = cpu_ops.get(op, 0) + 1
    info = {"delegated_nodes": n, "total_nodes": total, "delegate_kernels": len(mine),
            "fallback_nodes": 0, "cpu_ops": cpu_ops}
    if strangers:
        info.update(outcome="failed", message="nodes ran on %s, which was not requested"
                    % ", ".join(strangers))
        return info
    if provider is None:
        info.update(outcome="cpu", message="all %d nodes on %s, no delegate" % (total, ORT_CPU))
        return info
    cpu_text = ", ".join("%s x%d" % kv for kv in sorted(cpu_ops.items())) or "none"
    if n == 0:
        outcome = "not_applied"
        msg = "%s took 0 of %d nodes: the whole model ran on %s" % (provider, total, ORT_CPU)
    elif n == total:
        outcome = "applied"
        msg = "%s took all %d nodes in %d subgraph(s)" % (provider, total, len(mine))
    else:
        outcome = "partial"
        msg = "%s took %d of %d nodes in %d subgraph(s); on %s: %s" % (
            provider, n, total, len(mine), ORT_CPU, cpu_text)
    info.update(outcome=outcome, message=bounded_message(msg))
    return info


# --------------------------------------------------------------------------
# eval


def quant_params(d):
    qp = d.get("quantization_parameters") or {}
    scales = qp.get("scales")
    zps = qp.get("zero_points")
    if scales is not None and len(scales) == 1:
        return float(scales[0]), int(zps[0])
    if scales is not None and len(scales) > 1:
        return None  # per-axis on an activation: not something we can handle
    scale, zp = d.get("quantization", (0.0, 0))
    return float(scale), int(zp)


def prepare_eval(np, req, in_details):
    """Opens the eval set and checks it fits the model, before any timing."""
    path = os.path.abspath(req["eval"])
    if not os.path.isfile(path):
        raise AgentError("eval_error", "eval file not found: %s" % path)
    if len(in_details) != 1:
        raise AgentError("eval_error", "eval needs a single-input model; %s has %d inputs"
                         % (req["model"], len(in_details)))
    d = in_details[0]
    xs = NpyStream(np, path, "x")
    need = 1
    for s in d["shape"]:
        need *= int(s)
    if xs.sample_size != need:
        xs.close()
        raise AgentError("eval_error", "eval npz %s: per-sample shape %s (%d values) does "
                         "not fit model input %r shape %s (%d values)"
                         % (path, list(xs.sample_shape), xs.sample_size, d["name"],
                            [int(s) for s in d["shape"]], need))
    model_dt = np.dtype(d["dtype"])
    if xs.dtype != model_dt:
        if model_dt.kind in "iu" and xs.dtype.kind != "f":
            xs.close()
            raise AgentError("eval_error", "eval npz %s: x is %s but model input is %s; give "
                             "float values (quantized with the input's scale and zero "
                             "point) or %s values" % (path, xs.dtype, model_dt, model_dt))
        if model_dt.kind in "iu":
            q = quant_params(d)
            if q is None or q[0] == 0.0:
                xs.close()
                raise AgentError("eval_error", "eval npz %s: model input is %s without "
                                 "per-tensor quantization parameters, so float x cannot "
                                 "be quantized; give %s values" % (path, model_dt, model_dt))
    # With eval_outputs the coordinator scores the values itself (a regression's y holds targets, not labels).
    labels = None if req["eval_outputs"] else load_labels(np, path)
    count = len(xs)
    if req["eval_limit"] is not None:
        count = min(count, req["eval_limit"])
    if labels is not None and len(labels) < count:
        xs.close()
        raise AgentError("eval_error", "eval npz %s: %d labels for %d samples"
                         % (path, len(labels), count))
    return xs, labels, count


def output_values(np, y, i):
    """One sample's output as the eval result carries it: flattened, finite, 9 significant digits."""
    flat = np.asarray(y, dtype=np.float64).reshape(-1)
    if not np.all(np.isfinite(flat)):
        raise AgentError("eval_error", "eval_outputs: the output for sample %d is not finite "
                         "(NaN or infinity), which a JSON reply cannot carry" % i)
    # 9 significant digits give a float32 back exactly: an exact model's error against its source stays ~0, not the
    # rounding's (6 digits would add up to 5e-7 of every value).
    return [float("%.9g" % v) for v in flat.tolist()]


def run_eval(np, interp, xs, labels, count, with_outputs=False):
    d_in = interp.get_input_details()[0]
    d_out = interp.get_output_details()[0]
    in_dt = np.dtype(d_in["dtype"])
    in_shape = tuple(int(s) for s in d_in["shape"])
    quantize = None
    if xs.dtype != in_dt and in_dt.kind in "iu":
        scale, zp = quant_params(d_in)
        info = np.iinfo(in_dt)
        quantize = (scale, zp, int(info.min), int(info.max))
    out_dt = np.dtype(d_out["dtype"])
    dequant = None
    if out_dt.kind in "iu":
        q = quant_params(d_out)
        if q is not None and q[0] != 0.0:
            dequant = q
    preds = []
    outputs = [] if with_outputs else None
    for i in range(count):
        x = xs.sample(i).reshape(in_shape)
        if quantize is not None:
            scale, zp, lo, hi = quantize
            x = np.clip(np.round(x.astype(np.float64) / scale) + zp, lo, hi)
        interp.set_tensor(d_in["index"], np.ascontiguousarray(x, dtype=in_dt))
        interp.invoke()
        y = interp.get_tensor(d_out["index"])
        if dequant is not None:
            # Affine dequantization keeps the order, but doing it keeps
            # argmax right for any sign of scale and makes intent explicit.
            y = (y.astype(np.float64) - dequant[1]) * dequant[0]
        preds.append(int(np.argmax(y.reshape(-1))))
        if outputs is not None:
            values = output_values(np, y, i)
            if count * len(values) > MAX_EVAL_OUTPUT_VALUES:
                raise AgentError("eval_error", "eval_outputs: %d samples of %d values exceed the %d "
                                 "values a reply carries; lower eval_limit"
                                 % (count, len(values), MAX_EVAL_OUTPUT_VALUES))
            outputs.append(values)
    accuracy = None
    if labels is not None and count > 0:
        correct = sum(1 for p, t in zip(preds, labels[:count]) if p == int(t))
        accuracy = correct / float(count)
    result = {"count": count, "predictions": preds, "accuracy": accuracy}
    if outputs is not None:
        result["outputs"] = outputs
    return result


# --------------------------------------------------------------------------
# main


def run(req):
    try:
        import numpy as np
    except Exception as e:
        raise AgentError("runtime_missing", "numpy not importable by %s: %s"
                         % (sys.executable, one_line(e)))
    model_path, size = check_model_file(req["model"])
    ort = import_onnxruntime() if is_onnx(model_path) else None
    rt = import_runtime() if ort is None else None
    runtime = ({"name": rt.name, "version": rt.version} if ort is None
               else {"name": "onnxruntime", "version": ort.__version__})
    baseline_mb, mem_source = rss_now()
    host = host_facts(np)

    env_before = env_snapshot()
    if ort is None:
        # The delegate object must outlive the interpreter that runs its kernels.
        interp, delegate_obj, delegate_info, init_t = build_interpreter(rt, model_path, req)
    else:
        interp, delegate_info, init_t = build_session(np, ort, model_path, req)
    in_details = interp.get_input_details()

    eval_set = prepare_eval(np, req, in_details) if req["eval"] else None

    for d, a in zip(in_details, random_inputs(np, in_details, req["seed"])):
        interp.set_tensor(d["index"], a)

    invoke = interp.invoke
    clock = time.perf_counter_ns
    try:
        t0 = clock()
        invoke()
        first_ms = (clock() - t0) / 1e6
        warmup = []
        for _ in range(req["warmup_runs"]):
            t0 = clock()
            invoke()
            warmup.append((clock() - t0) / 1e6)
        # Start the timed loop with no garbage pending; the loop itself only
        # appends ints (not GC-tracked), so no collection can start inside it.
        gc.collect()
        samples_ns, wall, stopped = measure(invoke, req["runs"], req["min_secs"],
                                            req["max_secs"])
    except AgentError:
        raise
    except Exception as e:
        raise AgentError("runtime_error", "invoke failed on %s (delegate %r): %s"
                         % (model_path, delegate_info["name"], one_line(e)))
    peak_mb, peak_source = rss_peak()
    env_after = env_snapshot()

    eval_result = None
    if eval_set is not None:
        xs, labels, count = eval_set
        try:
            eval_result = run_eval(np, interp, xs, labels, count, req["eval_outputs"])
        except AgentError:
            raise
        except Exception as e:
            raise AgentError("eval_error", "eval on %s failed: %s"
                             % (req["eval"], one_line(e)))
        finally:
            xs.close()

    samples_us = [round(ns / 1000.0, 3) for ns in samples_ns]
    ordered = sorted(samples_us)
    mid = len(ordered) // 2
    median = ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2.0
    result = {
        "ok": True,
        "agent_version": AGENT_VERSION,
        "runtime": runtime,
        "model": {"path": model_path, "size_bytes": size,
                  "inputs": [tensor_desc(d) for d in in_details],
                  "outputs": [tensor_desc(d) for d in interp.get_output_details()]},
        "delegate": delegate_info,
        "threads": req["threads"],
        "init_ms": round(sum(init_t.values()), 4),
        "init_breakdown_ms": dict((k, round(v, 4)) for k, v in init_t.items()),
        "first_ms": round(first_ms, 4),
        "warmup_ms": [round(w, 4) for w in warmup],
        "samples_us": samples_us,
        "stats": {"count": len(ordered), "median_us": median,
                  "mean_us": round(sum(ordered) / len(ordered), 3),
                  "min_us": ordered[0], "max_us": ordered[-1]},
        "measure": {"wall_secs": round(wall, 6), "stopped_by": stopped},
        "memory": {"baseline_mb": round(baseline_mb, 3) if baseline_mb is not None else None,
                   "peak_mb": round(peak_mb, 3) if peak_mb is not None else None,
                   "peak_delta_mb": (round(peak_mb - baseline_mb, 3)
                                     if None not in (peak_mb, baseline_mb) else None),
                   "source": peak_source if peak_source == mem_source else
                   "%s/%s" % (mem_source, peak_source)},
        "eval": eval_result,
        "host": host,
        "env_before": env_before,
        "env_after": env_after,
        "seed": req["seed"],
        "agent_ms": agent_ms(),
        "warnings": req["warnings"],
    }
    return result


def read_request(stream):
    """The request on stdin: its first line when that is a whole JSON object (a coordinator that keeps stdin open
    sends one line), else everything up to the end of the stream."""
    first = stream.readline()
    try:
        json.loads(first)
        return first
    except ValueError:
        return first + stream.read()


def exit_with_coordinator(stream):
    """End this process when stdin ends: the coordinator that holds it open is gone."""
    import threading

    def watch():
        try:
            while stream.read(1 << 16):
                pass
            # Said where someone may still read it; a dead coordinator's stderr is a broken pipe, so best effort.
            sys.stderr.write("litert_agent: stdin closed: the coordinator is gone; stopping\n")
            sys.stderr.flush()
        except BaseException:  # noqa: BLE001 - nothing may keep this process from ending
            pass
        os._exit(3)

    threading.Thread(target=watch, name="coordinator-watch", daemon=True).start()


# --------------------------------------------------------------------------
# serve: a warm agent, one forked child per request


SERVE_HEADER_BYTES = 128
SERVE_IDLE_EXIT_S = 600.0
SERVE_STDERR_TAIL = 64 << 10
MAX_REQUEST_BYTES = 1 << 20


def warm_imports():
    """What every job would import: numpy (with numpy.random, for the benchmark inputs), the TFLite runtime and
    onnxruntime, where this host has them. A missing one is not this process's error: the job that needs it reports
    it, as a one-shot run does."""
    import select  # noqa: F401 - and the standard modules a job imports on its way
    import threading  # noqa: F401

    for load in (lambda: __import__("numpy.random"), import_runtime, import_onnxruntime):
        try:
            load()
        except BaseException:  # noqa: BLE001 - any failure to import is the job's to report
            pass


class Requests(object):
    """Request lines from stdin (fd 0), read without Python's buffering, so select() sees what is pending."""

    def __init__(self):
        self.buffer = b""
        self.closed = False

    def fill(self):
        """Read what stdin has; False once it has ended (the coordinator is gone)."""
        chunk = os.read(0, 1 << 16)
        if not chunk:
            self.closed = True
        self.buffer += chunk
        return not self.closed

    def next(self, idle_s):
        """The next request line, or None at the end of stdin or after idle_s seconds without one."""
        import select

        deadline = time.monotonic() + idle_s
        while b"\n" not in self.buffer and len(self.buffer) < MAX_REQUEST_BYTES and not self.closed:
            wait = deadline - time.monotonic()
            if wait <= 0 or not select.select([0], [], [], wait)[0]:
                return None
            self.fill()
        if not self.buffer:
            return None
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line


def _serve_limits(line):
    """(probe, timeout_s, max_reply_bytes) of a request line; anything malformed is left to the child to report."""
    try:
        req = json.loads(line)
    except ValueError:
        return False, None, None
    if not isinstance(req, dict):
        return False, None, None
    timeout, limit = req.get("timeout_s"), req.get("max_reply_bytes")
    return (req.get("probe") is True, timeout if _is_number(timeout) and timeout > 0 else None,
            limit if _is_int(limit) and limit > 0 else None)


def serve(argv):
    """Answer requests, one JSON line each on stdin, until stdin ends: each in a child forked from this process, so
    numpy and the runtimes are imported once per device while every benchmark still runs in a process of its own
    (a crash of the runtime ends that child, not this one). Each reply is a header of SERVE_HEADER_BYTES bytes, one
    line of JSON padded with spaces: {"exit": the child's exit code, or minus the signal that killed it, "out": bytes
    of its stdout (its one JSON result) that follow, "err": bytes of the tail of its stderr that follow those, "why":
    null, or "timeout" (the child was killed past the request's timeout_s) or "too_large" (its stdout passed the
    request's max_reply_bytes: it was killed and nothing of it is sent)}. A request {"probe": true} is the probe."""
    idle_s = SERVE_IDLE_EXIT_S
    if argv[:1] == ["--idle-exit"] and len(argv) == 2:
        idle_s = float(argv[1])
    out_fd = private_stdout()
    if out_fd is None:
        sys.stderr.write("litert_agent: --serve needs a stdout it can keep to itself\n")
        os._exit(2)
    warm_imports()
    # Objects alive now stay untouched by the collector, so the children's pages stay shared with this process.
    gc.collect()
    if hasattr(gc, "freeze"):
        gc.freeze()
    requests = Requests()
    while True:
        line = requests.next(idle_s)
        if line is None:
            os._exit(0)
        probe_, timeout, limit = _serve_limits(line)
        code, out, err, why = _child(None if probe_ else line.decode("utf-8", "replace"), requests, timeout, limit)
        header = json.dumps({"exit": code, "out": len(out), "err": len(err), "why": why}).encode()
        _write_all(out_fd, header.ljust(SERVE_HEADER_BYTES - 1) + b"\n" + out + err)


def _child(raw, requests, timeout, limit):
    """Fork a child that answers `raw` (None: the probe) and collect (exit, stdout, stderr tail, why)."""
    import select
    import signal

    r_out, w_out = os.pipe()
    r_err, w_err = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        code = 70
        try:
            os.close(r_out)
            os.close(r_err)
            null = os.open(os.devnull, os.O_RDONLY)
            os.dup2(null, 0)  # stdin is the serving process's: a child never reads it
            os.dup2(w_err, 1)
            os.dup2(w_err, 2)
            restart_clock()
            result, code = answer(raw)
            code = write_reply(result, code, w_out)
        finally:
            os._exit(code)
    os.close(w_out)
    os.close(w_err)
    deadline = None if timeout is None else time.monotonic() + timeout
    out, size, err, why, status = [], 0, b"", None, None
    open_fds = [r_out, r_err]
    while open_fds and why is None:
        wait = 1.0 if deadline is None else min(1.0, deadline - time.monotonic())
        if wait <= 0:
            why = "timeout"
            break
        watched = open_fds + ([] if requests.closed else [0])
        ready = select.select(watched, [], [], wait)[0]
        if not ready:
            # A process the child started may hold its pipes open after the child ended: the child's end is the end.
            ended, status = os.waitpid(pid, os.WNOHANG)
            if ended:
                break
            status = None
        for fd in ready:
            if fd == 0:
                if not requests.fill():  # the coordinator is gone: so is its job
                    os.kill(pid, signal.SIGKILL)
                    os.waitpid(pid, 0)
                    os._exit(0)
                continue
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                open_fds.remove(fd)
            elif fd == r_err:
                err = (err + chunk)[-SERVE_STDERR_TAIL:]
            else:
                size += len(chunk)
                out.append(chunk)
                if limit is not None and size > limit:
                    why, out = "too_large", []
    if why is not None:
        os.kill(pid, signal.SIGKILL)
    os.close(r_out)
    os.close(r_err)
    if status is None:
        status = os.waitpid(pid, 0)[1]
    code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
    return code, b"".join(out), err, why


def answer(raw, watch_stdin=False):
    """(result, exit code) for one request: its JSON text, or None for the probe. Never raises: the contract is JSON,
    never a bare traceback."""
    try:
        if raw is None:
            return probe(), 0
        req = parse_request(raw)
        if watch_stdin and req.get("exit_with_coordinator"):
            exit_with_coordinator(sys.stdin)
        return run(req), 0
    except AgentError as e:
        result = {"ok": False, "agent_version": AGENT_VERSION,
                  "error": {"type": e.kind, "message": one_line(e.message)}}
        if e.delegate is not None:
            result["delegate"] = e.delegate
        return result, 2
    except BaseException as e:  # noqa: BLE001
        tb = traceback.extract_tb(sys.exc_info()[2])
        where = ("%s:%d in %s" % (os.path.basename(tb[-1][0]), tb[-1][1], tb[-1][2])
                 if tb else "?")
        sys.stderr.write("litert_agent: unexpected error\n")
        traceback.print_exc(limit=6, file=sys.stderr)
        kind = "interrupted" if isinstance(e, KeyboardInterrupt) else "internal"
        return {"ok": False, "agent_version": AGENT_VERSION,
                "error": {"type": kind, "message": one_line(
                    "%s: %s (at %s)" % (type(e).__name__, e, where))}}, 2


def write_reply(result, code, out_fd):
    """The result as one line of JSON on `out_fd` (None: sys.stdout); returns the exit code (2 if unserialisable)."""
    try:
        text = json.dumps(result, allow_nan=False, default=_json_default)
    except (TypeError, ValueError) as e:
        code = 2
        text = json.dumps({"ok": False, "agent_version": AGENT_VERSION,
                           "error": {"type": "internal", "message": one_line(
                               "result not serialisable as JSON: %s" % e)}})
    data = (text + "\n").encode("utf-8")
    try:
        if out_fd is None:
            sys.stdout.write(data.decode("utf-8"))
            sys.stdout.flush()
        else:
            _write_all(out_fd, data)
    finally:
        sys.stderr.flush()
    return code


def _write_all(fd, data):
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def private_stdout():
    """Native libraries (delegates, vendor runtimes) sometimes print to fd 1. Point fd 1 at stderr and return a
    private handle on the real stdout, so it receives nothing but what this agent writes there (None if fd 1 can't
    be moved)."""
    try:
        sys.stdout.flush()
        out_fd = os.dup(1)
        os.dup2(2, 1)
        return out_fd
    except (OSError, AttributeError, ValueError):
        return None


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--serve"]:
        serve(argv[1:])
    out_fd = private_stdout()
    raw, code = None, 2
    try:
        if len(argv) == 2 and argv[0] == "--request":
            raw = _request_file(argv[1])
        elif len(argv) == 1 and argv[0].startswith("--request="):
            raw = _request_file(argv[0].split("=", 1)[1])
        elif argv == ["--probe"]:
            raw = None
        elif not argv:
            raw = read_request(sys.stdin)
        else:
            raise AgentError("bad_request", "usage: litert_agent.py [--request FILE | --probe | --serve] "
                             "(or the request JSON on stdin); got %s" % " ".join(argv))
        result, code = answer(raw, watch_stdin=not argv)
    except AgentError as e:
        result = {"ok": False, "agent_version": AGENT_VERSION,
                  "error": {"type": e.kind, "message": one_line(e.message)}}
    code = write_reply(result, code, out_fd)
    # Skip interpreter teardown: some delegates crash while being destroyed
    # at exit, which would turn a complete, printed result into a failure.
    os._exit(code)


def _request_file(path):
    try:
        with open(path) as f:
            return f.read()
    except (OSError, IOError) as e:
        raise AgentError("bad_request", "cannot read request file %s: %s" % (path, e))


def _json_default(o):
    # numpy scalars and arrays leak in from runtime metadata.
    if hasattr(o, "tolist"):
        return o.tolist()
    return str(o)


if __name__ == "__main__":
    main()
