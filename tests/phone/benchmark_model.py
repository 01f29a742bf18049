#!/usr/bin/env python3
"""TEST CODE, not part of tflite-farm: a stand-in for TensorFlow Lite's `benchmark_model` on the simulated phones.

No Android phone or emulator runs here, so the test inventory names this script (written out by
phone.write_benchmark_model with the venv's Python in its #! line) as the arm64-v8a `benchmark_model` binary. The
coordinator pushes it like the real one and runs it like the real one; it runs REAL LiteRT inference (ai_edge_litert)
on the pushed model, with real timings, and prints what the real tool prints (LiteRT's
tflite/tools/benchmark/benchmark_model.cc, benchmark_tflite_model.cc, command_line_flags.cc, tools/delegates/*):

  - INFO/WARN lines on stdout, ERROR/FATAL lines and the runtime's own messages (`Created TensorFlow Lite XNNPACK
    delegate for CPU.`, `VERBOSE: Replacing N out of M node(s) ...`) on stderr;
  - flags are `--name=value` only (`--use_gpu` without `=true` is not a flag); an argument no flag takes is only
    warned about (`WARN: Unconsumed cmdline flags: ...`) and the run goes on; a value that does not parse fails
    (`ERROR: Failed to parse flag 'num_runs' against argv '--num_runs=abc'`, usage, `Benchmarking failed.`, exit 1);
  - parameters given on the command line are echoed (`Min num runs: [20]`, `Use gpu: [1]`, ...);
  - a missing or broken model: `Could not open '...'.` / `The model is not a valid Flatbuffer buffer`,
    `Failed to load model ...`, `Benchmarking failed.`, exit 1; tensors that fail to allocate:
    the runtime's error, `Failed to allocate tensors!`, exit 1;
  - warm-up and timed loops as the real tool runs them (at least N runs and S seconds, at most M seconds), each
    followed by `count=.. first=.. curr=.. min=.. max=.. avg=.. std=.. p5=.. median=.. p95=..`, then
    `Inference timings in us: Init: .., First inference: .., Warmup (avg): .., Inference (avg): ..` and the memory
    footprint lines (`Overall peak memory footprint (MB) via periodic monitoring: ..` and the `Memory status at the
    end of exeution:` block with --report_peak_memory_footprint=true);
  - --input_layer_value_files=name:path (with --input_layer and --input_layer_shape, as the real tool requires; '::'
    escapes a ':' in a name) feeds raw tensor bytes, a size mismatch is FATAL (abort); --output_filepath=path writes
    the raw bytes of every output tensor, one after another.

What the phone's build "has" is the phone's file /system/etc/tflite_farm_standin.json ({"delegates": {...}}; the
env var BENCHMARK_MODEL_STANDIN_CONFIG names another file): a delegate provider missing from it is not compiled in
(its flags are unconsumed, the run is a CPU run), else its behaviour is
  "applied" / "partial"  SIMULATED: the delegate is reported to take every node / all but the last one (GPU, NNAPI,
                         Hexagon), while the model really runs on the CPU kernels: the numbers are CPU numbers
  "unsupported"          the provider warns it cannot create the delegate and the run is a CPU run
  "fail"                 the delegate fails to prepare: `Failed to apply X delegate.`, exit 1
  "load"                 external delegate only: really ai_edge_litert.load_delegate(path, options)
XNNPACK is always there, as in every real build (applied by the runtime unless --use_xnnpack is given).
With --enable_op_profiling=true it prints the op profile blocks as a 2024 build does (the INFO-prefixed titles, Run
Order / Top by Computation Time / Summary by node type tables, tab-separated, no [start] column). The nodes are the
model's REAL nodes in execution order (type and output tensor name), but their times are SIMULATED: LiteRT's Python API
has no per-op timer, so the run's real average is split over the nodes by the size of each node's output.
Not simulated: string inputs, signatures other than the default one.
"""
import json
import math
import os
import resource
import sys
import time

CONFIG = os.environ.get("BENCHMARK_MODEL_STANDIN_CONFIG", "/system/etc/tflite_farm_standin.json")
out, err = sys.stdout, sys.stderr


def info(msg):
    out.write("INFO: %s\n" % msg)


def warn(msg):
    out.write("WARN: %s\n" % msg)


def error(msg):
    out.flush()
    err.write("ERROR: %s\n" % msg)
    err.flush()


def runtime(level, msg):  # what the TFLite runtime itself logs (stderr)
    out.flush()
    err.write("%s: %s\n" % (level, msg))
    err.flush()


def num(value):
    """A number as C++'s ostream prints a double by default (6 significant digits)."""
    text = "%g" % value
    return text


# --------------------------------------------------------------------------------------------------------------------
# Flags: (name, type, default, description, log label or None). Types: int32, float, bool, string.

BENCHMARK_FLAGS = [
    ("num_runs", "int32", 50, "expected number of runs, see also min_secs, max_secs", "Min num runs"),
    ("min_secs", "float", 1.0, "minimum number of seconds to rerun for, potentially making the actual number of runs "
                               "to be greater than num_runs", "Min runs duration (seconds)"),
    ("max_secs", "float", 150.0, "maximum number of seconds to rerun for, potentially making the actual number of "
                                 "runs to be less than num_runs", "Max runs duration (seconds)"),
    ("run_delay", "float", -1.0, "delay between runs in seconds", "Inter-run delay (seconds)"),
    ("run_frequency", "float", -1.0, "Execute at a fixed frequency, instead of a fixed delay.",
     "Number of prorated runs per second"),
    ("num_threads", "int32", -1, "number of threads", "Num threads"),
    ("use_caching", "bool", False, "Enable caching of prepacked weights matrices in matrix multiplication routines.",
     "Use caching"),
    ("benchmark_name", "string", "", "benchmark name", "Benchmark name"),
    ("output_prefix", "string", "", "benchmark output prefix", "Output prefix"),
    ("warmup_runs", "int32", 1, "minimum number of runs performed on initialization, to allow performance "
                                "characteristics to settle, see also warmup_min_secs", "Min warmup runs"),
    ("warmup_min_secs", "float", 0.5, "minimum number of seconds to rerun for, potentially making the actual number "
                                      "of warm-up runs to be greater than warmup_runs",
     "Min warmup runs duration (seconds)"),
    ("verbose", "bool", False, "Whether to log parameters whose values are not set. By default, only log those "
                               "parameters that are set by parsing their values from the commandline flags.", None),
    ("dry_run", "bool", False, "Whether to run the tool just with simply loading the model, allocating tensors etc. "
                               "but without actually invoking any op kernels.", "Run w/o invoking kernels"),
    ("report_peak_memory_footprint", "bool", False, "Report the peak memory footprint by periodically checking the "
                                                    "memory footprint. Internally, a separate thread will be spawned "
                                                    "for this periodic check. Therefore, the performance benchmark "
                                                    "result could be affected.", "Report the peak memory footprint"),
    ("memory_footprint_check_interval_ms", "int32", 50, "The interval in millisecond between two consecutive memory "
                                                        "footprint checks. This is only used when "
                                                        "--report_peak_memory_footprint is set to true.",
     "Memory footprint check interval (ms)"),
    ("graph", "string", "", "graph file name", "Graph"),
    ("signature_to_run_for", "string", "", "If the model contains multiple signatures, use this flag to specify the "
                                           "signature to benchmark.", "Signature to run"),
    ("list_signatures", "bool", False, "Displays all signatures present in the model and then terminates the "
                                       "program.", None),
    ("input_layer", "string", "", "input layer names", "Input layers"),
    ("input_layer_shape", "string", "", "input layer shape", "Input shapes"),
    ("input_layer_value_range", "string", "", "A map-like string representing value range for *integer* input "
                                              "layers.", "Input value ranges"),
    ("input_layer_value_files", "string", "", "A map-like string representing value file. Each item is separated by "
                                              "',', and the item value consists of input layer name and value file "
                                              "path separated by ':', e.g. input1:file_path1,input2:file_path2.",
     "Input value files"),
    ("allow_fp16", "bool", False, "allow fp16", "Allow fp16"),
    ("require_full_delegation", "bool", False, "require delegate to run the entire graph", "Require full delegation"),
    ("enable_op_profiling", "bool", False, "enable op profiling", "Enable op profiling"),
    ("op_profiling_output_mode", "string", "stdout", "Output mode for op profiling results.",
     "Op profiling output mode."),
    ("op_profiling_output_file", "string", "", "Output file for op profiling results.", "Op profiling output file."),
    ("max_profiling_buffer_entries", "int32", 1024, "max initial profiling buffer entries",
     "Max initial profiling buffer entries"),
    ("allow_dynamic_profiling_buffer_increase", "bool", False, "allow dynamic increase on profiling buffer entries",
     "Allow dynamic increase on profiling buffer entries"),
    ("profiling_output_csv_file", "string", "", "File path to export profile data as CSV, if not set prints to "
                                                "stdout.", "CSV File to export profiling data to"),
    ("export_model_runtime_info", "bool", False, "Enable Model Runtime Info Export",
     "Enable Model Runtime Info Export"),
    ("model_runtime_info_output_file", "string", "", "Proto File to export model runtime info to",
     "Proto File to export model runtime info to"),
    ("print_preinvoke_state", "bool", False, "print out the interpreter internals just before calling Invoke.",
     "Print pre-invoke interpreter state"),
    ("print_postinvoke_state", "bool", False, "print out the interpreter internals just before benchmark completes.",
     "Print post-invoke interpreter state"),
    ("release_dynamic_tensors", "bool", False, "Ensure dynamic tensor's memory is released when they are not used.",
     "Release dynamic tensor memory"),
    ("optimize_memory_for_large_tensors", "int32", 0, "Optimize memory usage for large tensors with sacrificing "
                                                      "latency.", "Optimize memory usage for large tensors"),
    ("disable_delegate_clustering", "bool", False, "Disable delegate clustering.", "Disable delegate clustering"),
    ("enable_builtin_cast_constant_cache", "bool", False, "Cache the output of the builtin cast operation when its "
                                                          "input is a constant tensor.", "Constant CAST output cache"),
    ("output_filepath", "string", "", "File path to export outputs layer as binary data.",
     "File path to export outputs layer to"),
    ("output_proto_filepath", "string", "", "File path to export outputs layer as tf example proto.",
     "File path to export outputs layer as tf example to"),
    ("result_file_path", "string", "", "Path to save the benchmark result in binary proto format.",
     "File path to save the benchmark result in binary proto format"),
    ("tensor_name_display_length", "int32", 25, "The number of characters to show for the tensor's name when "
                                                "printing the interpeter's state, defaults to 25.",
     "Tensor name display length"),
    ("tensor_type_display_length", "int32", 15, "The number of characters to show for the tensor's type when "
                                                "printing the interpeter's state, defaults to 15.",
     "Tensor type display length"),
    ("alloc_type_display_length", "int32", 18, "The number of characters to show for the tensor's allocation type "
                                               "when printing the interpeter's state, defaults to 18.",
     "Tensor allocation type display length"),
    # default execution provider
    ("max_delegated_partitions", "int32", 0, "Max number of partitions to be delegated.",
     "Max number of delegated partitions"),
    ("min_nodes_per_partition", "int32", 0, "The minimal number of TFLite graph nodes of a partition that has to be "
                                            "reached for it to be delegated.", "Min nodes per partition"),
    ("delegate_serialize_dir", "string", "", "Directory to be used by delegates for serializing any model data.",
     "Directory for delegate serialization"),
    ("delegate_serialize_token", "string", "", "Model-specific token acting as a namespace for delegate "
                                               "serialization.", "Model-specific token/key for delegate serialization."),
    ("help", "bool", False, "Print out all supported flags if true.", None),
    # XNNPACK provider (every build has it)
    ("use_xnnpack", "bool", False, "explicitly apply the XNNPACK delegate. Note the XNNPACK delegate could be "
                                   "implicitly applied by the TF Lite runtime regardless the value of this parameter. "
                                   "To disable this implicit application, set the value to false explicitly.",
     "Use xnnpack"),
    ("xnnpack_force_fp16", "bool", False, "enforce float16 inference.", "Force fp16 inference"),
]
PROVIDER_FLAGS = {
    "gpu": [
        ("use_gpu", "bool", False, "use gpu", "Use gpu"),
        ("gpu_precision_loss_allowed", "bool", True, "Allow to process computation in lower precision than FP32 in "
                                                     "GPU. By default, it's enabled.", "Allow lower precision in gpu"),
        ("gpu_experimental_enable_quant", "bool", True, "Whether to enable the GPU delegate to run quantized models "
                                                        "or not. By default, it's enabled.",
         "Enable running quant models in gpu"),
        ("gpu_inference_for_sustained_speed", "bool", False, "Whether to prefer maximizing the throughput. This mode "
                                                             "will help when the same delegate will be used "
                                                             "repeatedly on multiple inputs.",
         "Prefer maximizing the throughput in gpu"),
        ("gpu_backend", "string", "", "Force the GPU delegate to use a particular backend for execution, and fail if "
                                      "unsuccessful. Should be one of: cl, gl", "GPU backend"),
        ("gpu_invoke_loop_times", "int32", 1, "Number of GPU delegate invoke loop iterations.",
         "Number of GPU delegate invoke loop iterations"),
    ],
    "nnapi": [
        ("use_nnapi", "bool", False, "use nnapi delegate api", "Use NNAPI"),
        ("nnapi_execution_preference", "string", "", "execution preference for nnapi delegate. Should be one of the "
                                                     "following: fast_single_answer, sustained_speed, low_power, "
                                                     "undefined", "NNAPI execution preference"),
        ("nnapi_execution_priority", "string", "", "The model execution priority in nnapi, and it should be one of "
                                                   "the following: default, low, medium and high.",
         "Model execution priority in nnapi"),
        ("nnapi_accelerator_name", "string", "", "the name of the nnapi accelerator to use (requires Android Q+)",
         "NNAPI accelerator name"),
        ("disable_nnapi_cpu", "bool", True, "Disable the NNAPI CPU device", "Disable NNAPI cpu"),
        ("nnapi_allow_fp16", "bool", False, "Allow fp32 computation to be run in fp16", "Allow fp16 in NNAPI"),
        ("nnapi_allow_dynamic_dimensions", "bool", False, "Whether to allow dynamic dimension sizes without "
                                                          "re-compilation.", "Allow dynamic dimensions in NNAPI"),
        ("nnapi_use_burst_mode", "bool", False, "use NNAPI Burst mode if supported.", "Use burst mode in NNAPI"),
    ],
    "hexagon": [
        ("use_hexagon", "bool", False, "Use Hexagon delegate", "Use Hexagon"),
        ("hexagon_lib_path", "string", "/data/local/tmp", "The library path for the underlying Hexagon libraries.",
         "Hexagon lib path"),
        ("hexagon_profiling", "bool", False, "Enables Hexagon profiling", "Hexagon profiling"),
    ],
    "external": [
        ("external_delegate_path", "string", "", "The library path for the underlying external.",
         "External delegate path"),
        ("external_delegate_options", "string", "", "A list of comma-separated options to be passed to the external "
                                                    "delegate. Each option is a colon-separated key-value pair, e.g. "
                                                    "option_name:option_value.", "External delegate options"),
    ],
}
PROVIDER_NAME = {"gpu": "GPU", "nnapi": "NNAPI", "hexagon": "Hexagon", "external": "EXTERNAL", "xnnpack": "XNNPACK"}
KERNEL_NAME = {"gpu": "TfLiteGpuDelegateV2", "nnapi": "TfLiteNnapiDelegate", "hexagon": "TfLiteHexagonDelegate"}
ENABLING_FLAG = {"gpu": "use_gpu", "nnapi": "use_nnapi", "hexagon": "use_hexagon"}


def load_build():
    try:
        with open(CONFIG) as f:
            delegates = json.load(f).get("delegates") or {}
    except (OSError, ValueError):
        delegates = {}
    return {k: v for k, v in delegates.items() if k in PROVIDER_FLAGS}


def parse_value(kind, text):
    if kind == "string":
        return text
    if kind == "bool":
        if text in ("true", "1"):
            return True
        if text in ("false", "0"):
            return False
        raise ValueError(text)
    if kind == "int32":
        value = int(text.strip()) if text.strip().lstrip("+-").isdigit() else None
        if value is None or not -2 ** 31 <= value < 2 ** 31:
            raise ValueError(text)
        return value
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(text)
    return value


def usage(argv0, flags):
    lines = ["usage: %s" % argv0, "Flags:"]
    for name, kind, default, description, _label in flags:
        shown = ("true" if default else "false") if kind == "bool" else ("%g" % default if kind == "float" else
                                                                         default)
        lines.append("\t--%s=%s\t%s\toptional\t%s" % (name, shown, kind, description))
    return "\n".join(lines)


def parse_flags(argv, flags):
    """(values, set_names, unconsumed args, errors) the way tflite::Flags::Parse goes: each flag takes the first
    argument starting with --name=; the rest is unconsumed."""
    values = {name: default for name, _k, default, _d, _l in flags}
    given = set()
    consumed = [False] * len(argv)
    errors = []
    seen = set()
    for name, kind, _default, _d, _l in flags:
        if name in seen:
            continue
        seen.add(name)
        prefix = "--%s=" % name
        for i, arg in enumerate(argv):
            if consumed[i] or not arg.startswith(prefix):
                continue
            consumed[i] = True
            try:
                values[name] = parse_value(kind, arg[len(prefix):])
                given.add(name)
            except ValueError:
                errors.append("Failed to parse flag '%s' against argv '%s'" % (name, arg))
            break
    unconsumed = [a for a, used in zip(argv, consumed) if not used]
    return values, given, unconsumed, errors


# --------------------------------------------------------------------------------------------------------------------
# Numbers

class Stat(object):
    """tensorflow/core/util/stats_calculator.h Stat<int64_t>, printed the same way."""

    def __init__(self):
        self.values = []

    def add(self, us):
        self.values.append(int(us))

    @property
    def avg(self):
        return float(sum(self.values)) / len(self.values) if self.values else 0.0

    @property
    def first(self):
        return self.values[0] if self.values else 0

    def std(self):
        n = len(self.values)
        if n == 0 or min(self.values) == max(self.values):
            return 0
        mean = self.avg
        var = sum(float(v) * v for v in self.values) / n - mean * mean
        return int(math.sqrt(max(var, 0.0)))

    def percentile(self, p):
        ordered = sorted(self.values)
        return ordered[min(len(ordered) - 1, len(ordered) * p // 100)]

    def line(self):
        v = self.values
        if not v:
            return "count=0"
        if min(v) == max(v):
            return "count=%d curr=%d%s" % (len(v), v[-1], "(all same)" if len(v) > 1 else "")
        return ("count=%d first=%d curr=%d min=%d max=%d avg=%s std=%d p5=%d median=%d p95=%d"
                % (len(v), v[0], v[-1], min(v), max(v), num(self.avg), self.std(), self.percentile(5),
                   self.percentile(50), self.percentile(95)))


def maxrss_kb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def proc_status_kb():
    found = {}
    try:
        with open("/proc/self/status") as f:
            for line in f:
                key, _, rest = line.partition(":")
                parts = rest.split()
                if parts and parts[0].isdigit():
                    found[key] = int(parts[0])
    except OSError:
        pass
    return found


# --------------------------------------------------------------------------------------------------------------------
# Delegation, read from the interpreter (as agents/litert_agent.py count_delegation)

def delegation(interp):
    """(original node count, [(delegate node, set of nodes it replaced)]) of the main subgraph, or None."""
    w = getattr(interp, "_interpreter", None)
    if w is None or not all(hasattr(w, a) for a in ("NumNodes", "NodeName", "NodeInputs", "NodeOutputs")):
        return None
    n = w.NumNodes()
    names = [str(w.NodeName(i)) for i in range(n)]
    originals = [i for i in range(n) if names[i] != "DELEGATE"]
    producer = {}
    for i in originals:
        for t in w.NodeOutputs(i):
            if int(t) >= 0:
                producer[int(t)] = i
    parts = []
    for d in (i for i in range(n) if names[i] == "DELEGATE"):
        boundary = set(int(t) for t in w.NodeInputs(d))
        seen, stack = set(), [int(t) for t in w.NodeOutputs(d)]
        while stack:
            t = stack.pop()
            if t in boundary or t not in producer or producer[t] in seen:
                continue
            seen.add(producer[t])
            stack.extend(int(x) for x in w.NodeInputs(producer[t]) if int(x) >= 0)
        parts.append((d, seen))
    return len(originals), parts


def explicit_outcome(provider, nodes, total, kernels):
    name = PROVIDER_NAME[provider]
    if kernels == 1 and nodes == total:
        info("Explicitly applied %s delegate, and the model graph will be completely executed by the delegate."
             % name)
    elif kernels > 0:
        info("Explicitly applied %s delegate, and the model graph will be partially executed by the delegate w/ %d "
             "delegate kernels." % (name, kernels))
    else:
        info("Though %s delegate is explicitly applied, the model graph will not be executed by the delegate."
             % name)


# --------------------------------------------------------------------------------------------------------------------
# The benchmark

class Failed(Exception):
    """Benchmarking failed (the messages are already printed)."""


def fatal(msg):
    out.flush()
    err.write("FATAL: %s\n" % msg)
    err.flush()
    os.abort()


def split_name_file(item):
    """tflite SplitInputLayerNameAndValueFile: the first ':' not doubled splits; '::' stands for ':'."""
    delim = -1
    i = 0
    while i < len(item) - 1:
        if item[i] == ":":
            if item[i + 1] == ":":
                i += 1
            elif delim == -1:
                delim = i
            else:
                error("%s contains more than one delimiter." % item)
                return None
        i += 1
    if delim == -1:
        error("%s doesn't contain any delimiter." % item)
        return None
    return item[:delim].replace("::", ":"), item[delim + 1:].replace("::", ":")


def input_layer_info(p):
    names = [n for n in p["input_layer"].split(",")] if p["input_layer"] else []
    shapes = p["input_layer_shape"].split(":") if p["input_layer_shape"] else []
    if len(names) != len(shapes):
        error("The number of items in --input_layer_shape (%s, with %d items) must match the number of items in "
              "--input_layer (%s, with %d items). For example --input_layer=input1,input2 "
              "--input_layer_shape=1,224,224,4:1,20" % (p["input_layer_shape"], len(shapes), p["input_layer"],
                                                       len(names)))
        raise Failed()
    layers = []
    for name, shape in zip(names, shapes):
        try:
            dims = [int(x) for x in shape.split(",")] if shape else []
        except ValueError:
            fatal("Incorrect size string specified: %s" % shape)
        if -1 in dims:
            error("Any unknown sizes in the shapes (-1's) must be replaced with the size you want to benchmark with.")
            raise Failed()
        layers.append({"name": name, "shape": dims, "file": None})
    for item in (p["input_layer_value_files"].split(",") if p["input_layer_value_files"] else []):
        pair = split_name_file(item)
        if pair is None:
            error("Wrong input value file item specified: %s" % item)
            raise Failed()
        match = [layer for layer in layers if layer["name"] == pair[0]]
        if not match:
            fatal("Cannot find the corresponding input_layer name(%s) in --input_layer as %s"
                  % (pair[0], p["input_layer"]))
        match[0]["file"] = pair[1]
    return layers


def run_loop(interp, set_inputs, min_runs, min_secs, max_secs, delay):
    info("Running benchmark for at least %d iterations and at least %s seconds but terminate if exceeding %s "
         "seconds." % (min_runs, num(min_secs), num(max_secs)))
    stat = Stat()
    clock = time.perf_counter_ns
    now = clock() // 1000
    min_finish, max_finish = now + int(min_secs * 1e6), now + int(max_secs * 1e6)
    run = 0
    failure = None
    while (run < min_runs or now < min_finish) and now <= max_finish:
        set_inputs()
        start = clock()
        try:
            interp.invoke()
        except RuntimeError as exc:
            failure = exc
        stat.add((clock() - start) // 1000)
        if delay > 0:
            time.sleep(delay)
        now = clock() // 1000
        run += 1
        if failure is not None:
            break
    out.write("INFO: %s\n\n" % stat.line())
    if failure is not None:
        for line in str(failure).splitlines():
            if line.strip():
                error(line.strip())
        raise Failed()
    return stat


def benchmark(p, given, build):
    from ai_edge_litert import interpreter as litert  # the real runtime
    import numpy as np

    graph = p["graph"]
    if not graph:
        error("Please specify the name of your TF Lite input file with --graph")
        raise Failed()
    layers = input_layer_info(p)

    requested = [d for d in ("gpu", "nnapi", "hexagon") if d in build and p.get(ENABLING_FLAG[d])]
    external = "external" in build and bool(p.get("external_delegate_path"))
    model_size_mb = os.path.getsize(graph) / 1e6 if os.path.isfile(graph) else -1
    start_rss = maxrss_kb()
    t0 = time.perf_counter_ns()

    # LoadModel
    try:
        with open(graph, "rb") as f:
            head = f.read(8)
    except OSError:
        error("Could not open '%s'." % graph)
        error("Failed to load model %s" % graph)
        raise Failed()
    if len(head) < 8 or head[4:8] != b"TFL3":
        error("The model is not a valid Flatbuffer buffer")
        error("Failed to load model %s" % graph)
        raise Failed()
    info("Loaded model %s" % graph)
    runtime("INFO", "Initialized TensorFlow Lite runtime.")

    # delegate providers
    simulated = []   # (provider, behaviour)
    delegates = []
    created = []
    for d in requested:
        behaviour = build[d]
        if behaviour in ("applied", "partial", "fail"):
            if d == "gpu":
                runtime("INFO", "Created TensorFlow Lite delegate for GPU.")
            elif d == "nnapi":
                runtime("INFO", "Created TensorFlow Lite delegate for NNAPI.")
            simulated.append((d, behaviour))
            created.append(d)
        elif d == "gpu":
            warn("GPU acceleration is unsupported on this platform.")
        elif d == "nnapi":
            warn("NNAPI acceleration is unsupported on this platform.")
        else:
            warn("Could not create Hexagon delegate: platform may not support delegate or required libraries are "
                 "missing")
    if external:
        path = p["external_delegate_path"]
        options = {}
        for item in filter(None, p["external_delegate_options"].split(";")):
            key, _, value = item.partition(":")
            options[key] = value
        try:
            delegates.append(litert.load_delegate(path, options))
            created.append("external")
        except (ValueError, OSError, RuntimeError) as exc:
            error(" ".join(str(exc).split()))
            warn("Could not create EXTERNAL delegate from %s" % path)
    if p["use_xnnpack"] and "use_xnnpack" in given:
        created.insert(0, "xnnpack")
    if created:
        if len(created) >= 2:
            info("Going to apply %d delegates one after another." % len(created))
        for d in created:
            info("%s delegate created." % PROVIDER_NAME[d])
    elif p["require_full_delegation"]:
        error("Disallowed CPU fallback detected.")
        raise Failed()

    # InitInterpreter: as the real tool, an explicit --use_xnnpack (either value) drops the runtime's default
    # delegates; a simulated delegate that "takes" the graph runs it on the built-in kernels.
    resolver = litert.OpResolverType.AUTO
    if "use_xnnpack" in given and not p["use_xnnpack"]:
        resolver = litert.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    if any(b in ("applied", "partial") for _d, b in simulated):
        resolver = litert.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    threads = p["num_threads"] if p["num_threads"] > 0 else None
    try:
        interp = litert.Interpreter(model_path=graph, num_threads=threads, experimental_delegates=delegates or None,
                                    experimental_op_resolver_type=resolver)
    except ValueError as exc:
        for line in str(exc).splitlines():
            error(line)
        error("Failed to load model %s" % graph)
        raise Failed()

    inputs = interp.get_input_details()
    if layers:
        if len(layers) != len(inputs):
            fatal("Check failed: inputs_.size() == runner_inputs.size() (%d vs. %d) Inputs mismatch: Model inputs "
                  "#:%d expected: %d" % (len(layers), len(inputs), len(layers), len(inputs)))
        for layer, d in zip(layers, inputs):
            if layer["name"] != d["name"]:
                warn("Tensor # %d is named %s but flags call it %s" % (d["index"], d["name"], layer["name"]))
            if len(layer["shape"]) != len(d["shape"]):
                error("Input tensor #%d should have %d dimensions!" % (d["index"], len(d["shape"])))
                raise Failed()
        for layer, d in zip(layers, inputs):
            if list(d["shape"]) != layer["shape"]:
                interp.resize_tensor_input(d["index"], layer["shape"])

    # explicit delegates: outcome lines (simulated ones take what their behaviour says)
    plan = delegation(interp)
    total = plan[0] if plan else 0
    for d, behaviour in simulated:
        if behaviour == "fail":
            runtime("ERROR", "Node number %d (%s) failed to prepare." % (total, KERNEL_NAME[d]))
            runtime("ERROR", "Restored original execution plan after delegate application failure.")
            error("Failed to apply %s delegate." % PROVIDER_NAME[d])
            raise Failed()
        nodes = total if behaviour == "applied" else max(total - 1, 0)
        if d == "gpu":
            runtime("INFO", "Initialized OpenCL-based API.")
            runtime("INFO", "Created 1 GPU delegate kernels.")
        if nodes:
            runtime("VERBOSE", "Replacing %d out of %d node(s) with delegate (%s) node, yielding 1 partitions for "
                               "subgraph 0." % (nodes, total, KERNEL_NAME[d]))
        if p["require_full_delegation"] and nodes != total:
            error("Disallowed CPU fallback detected.")
            raise Failed()
        explicit_outcome(d, nodes, total, 1 if nodes else 0)

    try:
        interp.allocate_tensors()
    except RuntimeError as exc:
        for line in str(exc).splitlines():
            if line.strip():
                error(line.strip())
        error("Failed to allocate tensors!")
        raise Failed()

    # what the runtime's own delegates (XNNPACK, a loaded external one) took, known after allocation
    plan = delegation(interp)
    if plan and plan[1] and not any(b in ("applied", "partial") for _d, b in simulated):
        total, parts = plan
        nodes = len(set().union(*[s for _n, s in parts]))
        kernel = "TfLiteXNNPackDelegate" if not delegates else "external delegate"
        runtime("VERBOSE", "Replacing %d out of %d node(s) with delegate (%s) node, yielding %d partitions for "
                           "subgraph 0." % (nodes, total, kernel, len(parts)))
        explicit = "external" if delegates else ("xnnpack" if "xnnpack" in created else None)
        if explicit:
            if p["require_full_delegation"] and not (len(parts) == 1 and nodes == total):
                error("Disallowed CPU fallback detected.")
                raise Failed()
            explicit_outcome(explicit, nodes, total, len(parts))
    elif "xnnpack" in created or delegates:
        explicit_outcome("external" if delegates else "xnnpack", 0, total, 0)

    init_us = (time.perf_counter_ns() - t0) // 1000
    init_rss = maxrss_kb()
    if model_size_mb > 0:
        info("The input model file size (MB): %s" % num(model_size_mb))
    info("Initialized session in %sms." % num(init_us / 1e3))

    # PrepareInputData
    data = []
    rng = np.random.default_rng()
    for i, d in enumerate(interp.get_input_details()):
        dtype, shape = np.dtype(d["dtype"]), tuple(int(s) for s in d["shape"])
        nbytes = int(np.prod(shape)) * dtype.itemsize
        path = layers[i]["file"] if layers else None
        if path:
            try:
                with open(path, "rb") as f:
                    raw = f.read()
            except OSError:
                fatal("Failed to read the input_layer_value_file:%s" % path)
            if len(raw) != nbytes:
                fatal("The size of %s is %d bytes. It should be %d bytes." % (path, len(raw), nbytes))
            data.append(np.frombuffer(raw, dtype=dtype).reshape(shape))
        elif dtype.kind == "f":
            data.append(rng.uniform(-1.0, 1.0, shape).astype(dtype))
        elif dtype.kind in "iu":
            lim = np.iinfo(dtype)
            data.append(rng.integers(lim.min, lim.max, size=shape, endpoint=True, dtype=dtype))
        elif dtype.kind == "b":
            data.append(rng.integers(0, 1, size=shape, endpoint=True).astype(dtype))
        else:
            data.append(np.zeros(shape, dtype=dtype))
    details = interp.get_input_details()

    def set_inputs():
        for d, a in zip(details, data):
            interp.set_tensor(d["index"], a)

    if p["dry_run"]:
        return
    delay = p["run_delay"] if p["run_delay"] > 0 else 0.0
    warmup = run_loop(interp, set_inputs, p["warmup_runs"], p["warmup_min_secs"], p["max_secs"], delay)
    regular = run_loop(interp, set_inputs, p["num_runs"], p["min_secs"], p["max_secs"], delay)
    overall_rss = maxrss_kb()

    info("Inference timings in us: Init: %d, First inference: %d, Warmup (avg): %s, Inference (avg): %s"
         % (init_us, warmup.first, num(warmup.avg), num(regular.avg)))
    info("Note: as the benchmark tool itself affects memory footprint, the following is only APPROXIMATE to the "
         "actual memory footprint of the model at runtime. Take the information at your discretion.")
    info("Memory footprint delta from the start of the tool (MB): init=%s overall=%s"
         % (num((init_rss - start_rss) / 1024.0), num((overall_rss - start_rss) / 1024.0)))
    if p["report_peak_memory_footprint"]:
        status = proc_status_kb()
        info("Overall peak memory footprint (MB) via periodic monitoring: %s"
             % num(status.get("VmHWM", overall_rss) / 1024.0))
        info("Memory status at the end of exeution:")
        info("- VmRSS              : %s MB" % num(status.get("VmRSS", 0) / 1024.0))
        info("+ RssAnnon           : %s MB" % num(status.get("RssAnon", 0) / 1024.0))
        info("+ RssFile + RssShmem : %s MB" % num((status.get("RssFile", 0) + status.get("RssShmem", 0)) / 1024.0))

    if p["enable_op_profiling"]:
        op_profile(interp, init_us, regular.avg / 1000.0)

    # OutputSaver
    if p["output_filepath"]:
        try:
            with open(p["output_filepath"], "wb") as f:
                for d in interp.get_output_details():
                    f.write(np.ascontiguousarray(interp.get_tensor(d["index"])).tobytes())
        except OSError:
            pass


def profile_table(title, rows, total_ms):
    """One profiler block as tflite/profiling/profile_summary_formatter.cc prints it (each field a tab, then padded)."""
    header = "\t%40s\t%15s\t%15s\t%15s\t%15s\t%15s\t%20s\t%s" % (
        "[node type]", "[first]", "[avg ms]", "[%]", "[cdf%]", "[mem KB]", "[times called]", "[Name]")

    def table(name, ordered):
        out.write("============================== %s ==============================\n%s\n" % (name, header))
        cdf = 0.0
        for kind, label, ms in ordered:
            pct = 100.0 * ms / total_ms if total_ms > 0 else 0.0
            cdf += pct
            out.write("\t%40s\t%15.3f\t%15.3f\t%14.3f%%\t%14.3f%%\t%15.3f\t%20d\t%s\n"
                      % (kind, ms, ms, pct, cdf, 0.0, 1, label))
        out.write("\n")

    info(title)
    table("Run Order", rows)
    table("Top by Computation Time", sorted(rows, key=lambda r: -r[2])[:10])
    out.write("Number of nodes executed: %d\n" % len(rows))
    out.write("Timings (microseconds): count=1 curr=%d\nMemory (bytes): count=0\n%d nodes observed\n\n\n\n"
              % (int(total_ms * 1000), len(rows)))


def op_profile(interp, init_us, avg_ms):
    """--enable_op_profiling=true: the model's real nodes; their times SIMULATED (see the module docstring)."""
    import numpy as np
    tensors = {t["index"]: t for t in interp.get_tensor_details()}
    plan = delegation(interp)
    replaced = set().union(*[nodes for _d, nodes in plan[1]]) if plan and plan[1] else set()
    nodes = []
    for op in interp._get_ops_details():  # the runtime's own node list, in execution order
        if op["index"] in replaced:
            continue  # run by a delegate node: the execution plan holds the delegate's node instead
        if op["op_name"] == "DELEGATE":
            op = dict(op, op_name="TfLiteXNNPackDelegate")
        outputs = [tensors[i] for i in op["outputs"] if i in tensors]
        weight = sum(max(1, int(np.prod(t["shape"]))) for t in outputs) or 1
        name = "[%s]:%d" % (", ".join(t["name"] for t in outputs), op["index"])
        nodes.append((op["op_name"], name, weight))
    total = float(sum(w for _k, _n, w in nodes)) or 1.0
    profile_table("Profiling Info for Benchmark Initialization:",
                  [("AllocateTensors", "AllocateTensors/0", init_us / 1000.0)], init_us / 1000.0)
    profile_table("Operator-wise Profiling Info for Regular Benchmark Runs:",
                  [(kind, name, avg_ms * w / total) for kind, name, w in nodes], avg_ms)


def main(argv):
    argv0, args = argv[0], argv[1:]
    info("STARTING!")
    build = load_build()
    flags = list(BENCHMARK_FLAGS)
    for provider in ("gpu", "nnapi", "hexagon", "external"):
        if provider in build:
            flags.extend(PROVIDER_FLAGS[provider])
    p, given, unconsumed, errors = parse_flags(args, flags)
    if errors or p["help"] or (unconsumed and unconsumed[0] == "--help"):
        for e in errors:
            error(e)
        error(usage(argv0, flags))
        error("Benchmarking failed.")
        return 1
    if unconsumed:
        warn("Unconsumed cmdline flags: %s" % " ".join(unconsumed))
    info("Log parameter values verbosely: [%d]" % (1 if p["verbose"] else 0))
    always = {"graph", "signature_to_run_for"}
    for name, kind, _default, _d, label in flags:
        if label is None or not (p["verbose"] or name in given or name in always):
            continue
        value = p[name]
        shown = (1 if value else 0) if kind == "bool" else (num(value) if kind == "float" else value)
        info("%s: [%s]" % (label, shown))
    if "num_threads" in given or p["verbose"]:
        info("#threads used for CPU inference: [%d]" % p["num_threads"])
    try:
        benchmark(p, given, build)
    except Failed:
        error("Benchmarking failed.")
        return 1
    out.flush()
    return 0


if __name__ == "__main__":
    # ai_edge_litert's Delegate.__del__ raises (and Python prints a traceback) when load_delegate failed; the real
    # tool prints no such thing
    sys.unraisablehook = lambda unraisable: None
    code = main(sys.argv)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # skip interpreter teardown, as agents/litert_agent.py does
