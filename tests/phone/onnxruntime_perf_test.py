#!/usr/bin/env python3
"""TEST CODE, not part of tflite-farm: a stand-in for ONNX Runtime's `onnxruntime_perf_test` on the simulated phones.

No Android phone runs here, so the test inventory names this script (written out by phone.write_onnxruntime_perf_test
with the venv's Python in its #! line) as the arm64-v8a `onnxruntime_perf_test`. The coordinator pushes it and runs it
like the real one; it runs REAL ONNX Runtime inference (the venv's onnxruntime package, its CPU execution provider)
on the pushed .onnx file, with real timings, and prints what the real tool prints: the lines and their order from
onnxruntime/test/perftest (command_args_parser.cc, ort_test_session.cc, performance_runner.cc, main.cc), their format
as in the real outputs of tests/fixtures/onnxruntime_perf_test (v1.23.2_android_arm64_cpu_times_stats.txt):

  - flags as absl parses them: -e -m -r -t -x -y -S -p take a value (`-r 10` or `-r=10`), -I -s -Z -v are switches;
    an unknown flag: `ERROR: Unknown command line flag 'q'` on stderr, exit 1 (absl);
  - a value ParseArguments refuses (an -e name it does not know, -m other than duration/times, -r 0, -t 0, -x or -y
    below 0, no model or more than two positional arguments): `See 'onnxruntime_perf_test --help'.` on stderr (no
    newline), exit 255 (main returns -1);
  - an execution provider the phone's build lacks: ORT_THROW's `<source file>:<line> <function> NNAPI is not supported
    in this build` on stderr (main's catch), exit 255; the location prefix is this stand-in's rendering of ONNX
    Runtime's (file, line, __PRETTY_FUNCTION__), its line number not the real one;
  - a model ONNX Runtime cannot load: ONNX Runtime's own message (`Load model from ... failed:...`) on stderr, exit
    255; a file not named .onnx or .ort: `<path> is not supported`;
  - `Setting intra_op_num_threads to N` (-x N, N > 0) and `Disabling intra-op thread spinning between runs` (-Z), on
    stdout, during session creation;
  - inputs generated (-I: free dimensions 1, random values, seeded by -S when given) or read from the
    test_data_set_*/input_*.pb folders beside the model; none of either: `there is no test data for model <name>`,
    `Run failed:failed to initialize.`, exit 255;
  - one warm-up run (`First inference time cost: N ms`, whole ms), then -r N runs (-m times) or runs for -t seconds
    (-m duration; `-r` makes it times, `-t` duration, as in the real parser), each timed; the summary with the
    average as std::to_string prints it (`Average inference time cost total: 98.961997 ms`), every other number as
    C++ streams print a double (6 significant digits); the peak working set is ru_maxrss * 1024, the CPU usage the
    process's CPU time over the wall time over the cores; with no result file, `Avg CPU usage:N`,
    `Peak working set size:N`, `Runs:N` and the latencies (in seconds); with one, a CSV line per run appended to it and
    the latencies only with -s;
  - -p FILE: ONNX Runtime's own profiler writes its JSON trace there.
What the phone's build "has" is the phone's /system/etc/tflite_farm_standin.json ({"onnxruntime_providers": [...]};
the env var ONNXRUNTIME_PERF_TEST_STANDIN_CONFIG names another file); "cpu" is always there. SIMULATED: an NNAPI,
XNNPACK or QNN provider "in the build" runs the model on ONNX Runtime's CPU execution provider (this machine has none
of them), so its numbers are CPU numbers; the real tool says nothing about where nodes ran, and neither does this.
Not simulated: openvino and nvtensorrtrtx (refused like unknown names), -c (concurrent runs) and the other flags.
"""
import glob
import json
import os
import random
import re
import resource
import sys
import time

CONFIG = os.environ.get("ONNXRUNTIME_PERF_TEST_STANDIN_CONFIG", "/system/etc/tflite_farm_standin.json")
VALUE_FLAGS = {"e": "cpu", "m": "duration", "r": "1000", "t": "600", "x": "0", "y": "0", "S": "-1", "p": ""}
SWITCHES = ("I", "s", "Z", "v")
# -e names ParseArguments knows, and ORT_THROW's words for each when its build lacks it (ort_test_session.cc).
PROVIDERS = {
    "cpu": None, "cuda": "CUDA", "dnnl": "DNNL", "tensorrt": "TensorRT", "qnn": "QNN", "snpe": "SNPE",
    "nnapi": "NNAPI", "vsinpu": "VSINPU", "coreml": "COREML", "dml": "DML", "acl": "Acl", "migraphx": "MIGraphX",
    "xnnpack": "Xnnpack", "vitisai": "VitisAI", "webgpu": "WebGPU",
}
WHERE = ("onnxruntime/test/perftest/ort_test_session.cc:203 onnxruntime::perftest::OnnxRuntimeTestSession::"
         "OnnxRuntimeTestSession(Ort::Env&, std::random_device&, const onnxruntime::perftest::PerformanceTestConfig&, "
         "const TestModelInfo&)")
DTYPES = {"tensor(float)": "float32", "tensor(double)": "float64", "tensor(float16)": "float16",
          "tensor(int8)": "int8", "tensor(uint8)": "uint8", "tensor(int16)": "int16", "tensor(int32)": "int32",
          "tensor(int64)": "int64", "tensor(bool)": "bool"}
out, err = sys.stdout, sys.stderr


class Exit(Exception):
    def __init__(self, code):
        super().__init__(code)
        self.code = code


def refuse():
    """ParseArguments returned false: main's words, exit -1."""
    out.flush()
    err.write("See 'onnxruntime_perf_test --help'.")
    raise Exit(255)


def throw(message):
    """An exception out of the runner: main's catch prints it on stderr, exit -1."""
    out.flush()
    err.write(message + "\n")
    raise Exit(255)


def num(value):
    """A double as a C++ stream prints it by default (6 significant digits)."""
    return "%g" % value


def parse_args(argv):
    """(values, switches, positional) as absl's ParseCommandLine reads them: `-f v`, `-f=v`, `--f v`, `--f=v`."""
    values, switches, given, positional = dict(VALUE_FLAGS), set(), set(), []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            positional += argv[i + 1:]
            break
        if not arg.startswith("-") or arg == "-":
            positional.append(arg)
            i += 1
            continue
        name, eq, value = arg.lstrip("-").partition("=")
        if name in SWITCHES:
            if eq and value not in ("true", "false", "1", "0"):
                out.flush()
                err.write("ERROR: Illegal value '%s' specified for flag '%s'\n" % (value, name))
                raise Exit(1)
            if not eq or value in ("true", "1"):
                switches.add(name)
        elif name in VALUE_FLAGS:
            if not eq:
                if i + 1 >= len(argv):
                    out.flush()
                    err.write("ERROR: Missing the value for the flag '%s'\n" % name)
                    raise Exit(1)
                i += 1
                value = argv[i]
            values[name] = value
            given.add(name)
        else:
            out.flush()
            err.write("ERROR: Unknown command line flag '%s'\n" % name)
            raise Exit(1)
        i += 1
    for name in ("r", "t", "x", "y", "S"):
        if not re.fullmatch(r"[-+]?\d+", values[name]) or (name in "rt" and values[name].startswith("-")):
            out.flush()
            err.write("ERROR: Illegal value '%s' specified for flag '%s'\n" % (values[name], name))
            raise Exit(1)
    return values, switches, given, positional


def config(argv):
    values, switches, given, positional = parse_args(argv)
    if values["m"] not in ("duration", "times") or values["e"] not in PROVIDERS:
        refuse()
    mode = values["m"]
    if "r" in given:
        if int(values["r"]) == 0:
            refuse()
        mode = "times"
    if "t" in given:
        if int(values["t"]) <= 0:
            refuse()
        mode = "duration"
    if int(values["x"]) < 0 or int(values["y"]) < 0 or len(positional) not in (1, 2):
        refuse()
    return {"provider": values["e"], "mode": mode, "runs": int(values["r"]), "seconds": int(values["t"]),
            "intra": int(values["x"]), "inter": int(values["y"]), "seed": int(values["S"]), "profile": values["p"],
            "generate": "I" in switches, "spin_stop": "Z" in switches,
            # no result file: statistics on, as ParseArguments sets them
            "statistics": "s" in switches or len(positional) == 1, "verbose": "v" in switches,
            "model": positional[0], "result_file": positional[1] if len(positional) == 2 else ""}


def build_providers():
    try:
        with open(CONFIG) as f:
            providers = json.load(f).get("onnxruntime_providers") or []
    except (OSError, ValueError):
        providers = []
    return set(providers) | {"cpu"}


def ort_message(exc):
    """What Ort::Exception::what() says: the Python binding's `[ONNXRuntimeError] : 7 : INVALID_PROTOBUF : ` off."""
    return re.sub(r"^\[ONNXRuntimeError\] : \d+ : \w+ : ", "", str(exc))


def make_session(cfg, ort):
    if cfg["provider"] not in build_providers():
        name = PROVIDERS[cfg["provider"]]
        if cfg["provider"] == "coreml":
            throw("%s COREML is not supported on this platform.\n" % WHERE)
        throw("%s %s is not supported in this build\n" % (WHERE, name))
    options = ort.SessionOptions()
    options.log_severity_level = 0 if cfg["verbose"] else 2
    if cfg["intra"] > 0:
        out.write("Setting intra_op_num_threads to %d\n" % cfg["intra"])
        options.intra_op_num_threads = cfg["intra"]
    if cfg["inter"] > 0:
        options.inter_op_num_threads = cfg["inter"]
    if cfg["spin_stop"]:
        out.write("Disabling intra-op thread spinning between runs\n")
        options.add_session_config_entry("session.force_spinning_stop", "1")
    if cfg["profile"]:
        options.enable_profiling = True
        options.profile_file_prefix = cfg["profile"]
    try:
        return ort.InferenceSession(cfg["model"], options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # the runtime's own failure, whatever its type
        throw(ort_message(exc))


def inputs(cfg, session):
    """The feeds of every data set: generated (-I) or read from test_data_set_*/input_*.pb beside the model."""
    import numpy as np

    if cfg["generate"]:
        rng = np.random.default_rng(cfg["seed"] if cfg["seed"] >= 0 else None)
        feed = {}
        for spec in session.get_inputs():
            shape = [d if isinstance(d, int) and d > 0 else 1 for d in spec.shape]  # free dimensions: 1
            dtype = np.dtype(DTYPES.get(spec.type, "float32"))
            if dtype.kind == "f":
                feed[spec.name] = rng.random(shape, dtype=np.float64).astype(dtype)
            elif dtype.kind == "b":
                feed[spec.name] = rng.integers(0, 2, shape).astype(bool)
            else:
                feed[spec.name] = rng.integers(0, 10, shape).astype(dtype)
        return [feed]
    import onnx
    from onnx import numpy_helper

    feeds = []
    names = [spec.name for spec in session.get_inputs()]
    for folder in sorted(glob.glob(os.path.join(os.path.dirname(os.path.abspath(cfg["model"])), "test_data_set_*"))):
        files = sorted(glob.glob(os.path.join(folder, "input_*.pb")))
        if len(files) == len(names):
            feeds.append({name: numpy_helper.to_array(onnx.load_tensor(path)) for name, path in zip(names, files)})
    if not feeds:
        name = os.path.basename(os.path.dirname(os.path.abspath(cfg["model"])))
        out.write("there is no test data for model %s\n" % (name[5:] if name.startswith("test_") else name))
        out.write("Run failed:failed to initialize.\n")
        raise Exit(255)
    return feeds


def main(argv):
    cfg = config(argv)
    if not cfg["model"].endswith((".onnx", ".ort")):
        throw("%s is not supported" % cfg["model"])
    import onnxruntime as ort  # the real runtime

    start = time.perf_counter()
    session = make_session(cfg, ort)
    session_s = time.perf_counter() - start
    feeds = inputs(cfg, session)

    def run_once():
        feed = random.choice(feeds)
        began = time.perf_counter()
        try:
            session.run(None, feed)
        except Exception as exc:  # the runtime's own failure, whatever its type
            out.write("Run failed:%s\n" % ort_message(exc))
            raise Exit(255)
        return time.perf_counter() - began

    warm = time.perf_counter()
    run_once()
    first_ms = int((time.perf_counter() - warm) * 1000)  # duration_cast<milliseconds>: truncated
    cpu_start, wall_start = os.times(), time.perf_counter()
    costs = []
    if cfg["mode"] == "times":
        while len(costs) < cfg["runs"]:
            costs.append(run_once())
    else:
        while time.perf_counter() - wall_start < cfg["seconds"]:
            costs.append(run_once())
    wall = time.perf_counter() - wall_start
    cpu_end = os.times()
    used = (cpu_end.user - cpu_start.user) + (cpu_end.system - cpu_start.system)
    cpu_usage = int(100.0 * used / wall / (os.cpu_count() or 1)) if wall > 0 else -1
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    if cfg["profile"]:
        session.end_profiling()

    total = sum(costs)
    out.write("Session creation time cost: %s s\n" % num(session_s))
    out.write("First inference time cost: %d ms\n" % first_ms)
    out.write("Total inference time cost: %s s\n" % num(total))
    out.write("Total inference requests: %d\n" % len(costs))
    out.write("Average inference time cost total: %f ms\n" % (total / len(costs) * 1000 if costs else float("nan")))
    out.write("Total inference run time: %s s\n" % num(wall))
    out.write("Number of inferences per second: %s \n" % num(len(costs) / wall if wall > 0 else float("inf")))
    out.write("Avg CPU usage: %d %%\n" % cpu_usage)
    out.write("Peak working set size: %d bytes\n" % peak)

    statistics = cfg["statistics"]
    if cfg["result_file"]:
        try:
            with open(cfg["result_file"], "a") as f:
                for index, cost in enumerate(costs):
                    f.write("%s,%s,%d,%d,%d\n" % (os.path.basename(os.path.dirname(os.path.abspath(cfg["model"]))),
                                                  num(cost), peak, cpu_usage, index))
        except OSError:
            err.write("failed to open result file '%s'. will dump stats to output.\n" % cfg["result_file"])
            cfg["result_file"], statistics = "", True
    if not cfg["result_file"]:
        out.write("Avg CPU usage:%d\nPeak working set size:%d\nRuns:%d\n" % (cpu_usage, peak, len(costs)))
    if costs and statistics:
        ordered = sorted(costs)
        count = len(ordered)
        for label, index in (("Min", 0), ("Max", count - 1), ("P50", int(count * 0.5)), ("P90", int(count * 0.9)),
                             ("P95", int(count * 0.95)), ("P99", int(count * 0.99)), ("P999", int(count * 0.999))):
            out.write("%s Latency: %s s\n" % (label, num(ordered[index])))
    return 0


if __name__ == "__main__":
    try:
        code = main(sys.argv[1:])
    except Exit as done:
        code = done.code
    out.flush()
    err.flush()
    sys.exit(code)
