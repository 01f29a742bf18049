"""The device agent (agents/litert_agent.py), run as the coordinator runs it.

Everything here is real: small Keras models converted to .tflite, the agent
started as a subprocess with a JSON request on stdin, real inference and
real timings. Expected values are computed independently in the test with
the runtime's own Interpreter or from the model's flatbuffer.
"""
import json
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from conftest import TFLITE_RUNTIME_PYTHON

REPO = Path(__file__).resolve().parent.parent
AGENT = REPO / "agents" / "litert_agent.py"


def run_agent(request=None, args=(), timeout=120, env=None, python=sys.executable):
    """Runs the agent; asserts stdout is exactly one JSON object and returns (rc, obj)."""
    stdin = json.dumps(request) if isinstance(request, dict) else (request or "")
    proc = subprocess.run([str(python), str(AGENT), *map(str, args)], input=stdin,
                          capture_output=True, text=True, timeout=timeout, env=env)
    out = proc.stdout
    obj, end = json.JSONDecoder().raw_decode(out.lstrip())
    assert out.lstrip()[end:].strip() == "", "stdout has more than one JSON object: %r" % out
    assert isinstance(obj, dict)
    assert "Traceback" not in out
    return proc.returncode, obj


def flatbuffer_op_count(path):
    from ai_edge_litert import schema_py_generated as schema
    model = schema.Model.GetRootAs(Path(path).read_bytes(), 0)
    return model.Subgraphs(0).OperatorsLength()


def reference_predictions(model_path, x):
    """Top-1 of each sample with the runtime's Interpreter, independent of the agent."""
    return [int(np.argmax(out)) for out in reference_outputs(model_path, x)]


def reference_outputs(model_path, x):
    """Each sample's first output (dequantized) with the runtime's Interpreter, independent of the agent."""
    from ai_edge_litert.interpreter import Interpreter
    it = Interpreter(model_path=str(model_path), num_threads=1)
    it.allocate_tensors()
    d_in, d_out = it.get_input_details()[0], it.get_output_details()[0]
    outputs = []
    for sample in x:
        v = sample.reshape(d_in["shape"])
        if d_in["dtype"] == np.int8 and v.dtype != np.int8:
            scale, zp = d_in["quantization"]
            v = np.clip(np.round(v.astype(np.float64) / scale) + zp, -128, 127).astype(np.int8)
        it.set_tensor(d_in["index"], v.astype(d_in["dtype"]))
        it.invoke()
        out = it.get_tensor(d_out["index"]).astype(np.float64)
        if d_out["dtype"] == np.int8:
            scale, zp = d_out["quantization"]
            out = (out - zp) * scale
        outputs.append(out.reshape(-1))
    return outputs


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A tiny CNN on 8x8x1 inputs with 10 classes, as fp32 and as full-int8 .tflite; and the same CNN with an unfixed
    batch, whose Flatten the converter leaves as SHAPE -> STRIDED_SLICE -> PACK -> RESHAPE, as fp32 and int16x8."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    d = tmp_path_factory.mktemp("agent-models")
    tf.keras.utils.set_random_seed(7)
    model = tf.keras.Sequential([
        tf.keras.Input((8, 8, 1), batch_size=1),
        tf.keras.layers.Conv2D(4, 3, activation="relu"),
        tf.keras.layers.MaxPool2D(),
        tf.keras.layers.Flatten(),
        tf.keras.layers.Dense(10),
        tf.keras.layers.Softmax(),
    ])
    fp32 = d / "cnn_fp32.tflite"
    fp32.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())

    def representative():
        rng = np.random.default_rng(0)
        for _ in range(32):
            yield [rng.random((1, 8, 8, 1), dtype=np.float32)]

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = representative
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    int8 = d / "cnn_int8.tflite"
    with warnings.catch_warnings():
        # "Statistics for quantized inputs were expected": int8 in/out is the point here.
        warnings.simplefilter("ignore", UserWarning)
        int8.write_bytes(conv.convert())

    loose = tf.keras.Sequential([tf.keras.Input((8, 8, 1))] + model.layers)
    fp32_loose = d / "cnn_fp32_loose_batch.tflite"
    fp32_loose.write_bytes(tf.lite.TFLiteConverter.from_keras_model(loose).convert())
    conv = tf.lite.TFLiteConverter.from_keras_model(loose)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = representative
    conv.target_spec.supported_ops = [tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8]
    int16x8_loose = d / "cnn_int16x8_loose_batch.tflite"
    int16x8_loose.write_bytes(conv.convert())
    return {"dir": d, "fp32": fp32, "int8": int8, "fp32_loose": fp32_loose, "int16x8_loose": int16x8_loose}


def test_xnnpack_fp32_real_measurement(models):
    rc, r = run_agent({"model": str(models["fp32"]), "delegate": {"name": "xnnpack"},
                       "threads": 1, "warmup_runs": 3, "runs": 12, "min_secs": 0.0})
    assert rc == 0 and r["ok"] is True, r
    import ai_edge_litert
    assert r["agent_version"] == 1
    assert r["runtime"] == {"name": "ai_edge_litert", "version": ai_edge_litert.__version__}
    assert r["model"]["path"] == str(models["fp32"])
    assert r["model"]["size_bytes"] == models["fp32"].stat().st_size
    assert r["model"]["inputs"] == [{"name": r["model"]["inputs"][0]["name"],
                                     "shape": [1, 8, 8, 1], "dtype": "float32"}]
    assert r["threads"] == 1

    assert len(r["samples_us"]) == 12
    assert all(0 < s < 1e6 for s in r["samples_us"])
    assert len(r["warmup_ms"]) == 3 and all(0 < w < 1000 for w in r["warmup_ms"])
    assert 0 < r["first_ms"] < 1000
    assert r["init_ms"] > 0
    assert r["init_ms"] == pytest.approx(sum(r["init_breakdown_ms"].values()), abs=1e-3)
    assert r["stats"]["count"] == 12
    assert r["stats"]["median_us"] == pytest.approx(float(np.median(r["samples_us"])))
    assert r["measure"]["stopped_by"] == "runs"

    ops = flatbuffer_op_count(models["fp32"])
    dlg = r["delegate"]
    assert dlg["name"] == "xnnpack"
    assert dlg["outcome"] == "applied", dlg
    assert dlg["total_nodes"] == ops
    assert dlg["delegated_nodes"] == ops > 0
    assert dlg["delegate_kernels"] >= 1
    assert dlg["cpu_ops"] == {}

    mem = r["memory"]
    assert mem["baseline_mb"] > 0
    assert mem["peak_mb"] >= mem["baseline_mb"]
    assert mem["peak_delta_mb"] == pytest.approx(mem["peak_mb"] - mem["baseline_mb"], abs=1e-2)
    assert r["eval"] is None

    host = r["host"]
    assert host["cores"] == os.cpu_count()
    assert host["python_version"] == "%d.%d.%d" % sys.version_info[:3]
    assert host["numpy_version"] == np.__version__
    for key in ("hostname", "platform", "machine", "os_release", "cpu_model", "governor",
                "temps_c"):
        assert key in host
    for env in (r["env_before"], r["env_after"]):
        assert isinstance(env["temps_c"], dict) and "governor" in env


def test_none_runs_every_node_on_cpu_kernels(models):
    rc, r = run_agent({"model": str(models["fp32"]), "delegate": {"name": "none"},
                       "warmup_runs": 1, "runs": 5})
    assert rc == 0 and r["ok"], r
    dlg = r["delegate"]
    ops = flatbuffer_op_count(models["fp32"])
    assert dlg["outcome"] == "cpu"
    assert dlg["delegated_nodes"] == 0 and dlg["delegate_kernels"] == 0
    assert dlg["total_nodes"] == ops
    assert sum(dlg["cpu_ops"].values()) == ops
    assert len(r["samples_us"]) == 5 and all(0 < s < 1e6 for s in r["samples_us"])


def test_delegation_count_matches_the_interpreter(models):
    """Cross-check the agent's accounting with the runtime's own node list."""
    from ai_edge_litert.interpreter import Interpreter
    it = Interpreter(model_path=str(models["int8"]), num_threads=1)
    it.allocate_tensors()
    names = [it._interpreter.NodeName(i) for i in range(it._interpreter.NumNodes())]
    kernels = names.count("DELEGATE")

    rc, r = run_agent({"model": str(models["int8"]), "runs": 3})
    assert rc == 0 and r["ok"], r
    dlg = r["delegate"]
    ops = flatbuffer_op_count(models["int8"])
    assert dlg["total_nodes"] == ops == len(names) - kernels
    assert dlg["delegate_kernels"] == kernels
    assert 0 < dlg["delegated_nodes"] <= ops
    assert dlg["delegated_nodes"] + sum(dlg["cpu_ops"].values()) == ops
    expected = "applied" if dlg["delegated_nodes"] == ops else "partial"
    assert dlg["outcome"] == expected
    if expected == "partial":
        assert dlg["message"].count("on CPU kernels")


def test_min_secs_keeps_sampling_and_max_secs_stops(models):
    rc, r = run_agent({"model": str(models["fp32"]), "runs": 1, "warmup_runs": 0,
                       "min_secs": 0.3})
    assert rc == 0 and r["ok"], r
    assert len(r["samples_us"]) > 1
    assert r["measure"]["wall_secs"] >= 0.3
    assert r["measure"]["stopped_by"] == "min_secs"

    rc, r = run_agent({"model": str(models["fp32"]), "runs": 10 ** 9, "warmup_runs": 0,
                       "max_secs": 0.2})
    assert rc == 0 and r["ok"], r
    assert 1 <= len(r["samples_us"]) < 10 ** 9
    assert 0.2 <= r["measure"]["wall_secs"] < 5
    assert r["measure"]["stopped_by"] == "max_secs"


@pytest.mark.parametrize("kind", ["fp32", "int8"])
def test_eval_predictions_and_accuracy(models, tmp_path, kind):
    rng = np.random.default_rng(3)
    x = rng.random((40, 8, 8, 1), dtype=np.float32)
    preds = reference_predictions(models[kind], x)
    # Labels agree with the model on exactly 3 of every 4 samples: accuracy 0.75.
    y = np.array(preds)
    y[::4] = (y[::4] + 1) % 10
    npz = tmp_path / "eval.npz"
    np.savez(npz, x=x, y=y)

    rc, r = run_agent({"model": str(models[kind]), "runs": 2, "eval": str(npz)})
    assert rc == 0 and r["ok"], r
    assert r["eval"]["count"] == 40
    assert r["eval"]["predictions"] == preds
    assert r["eval"]["accuracy"] == pytest.approx(0.75)
    assert "outputs" not in r["eval"]  # only when asked for

    rc, r = run_agent({"model": str(models[kind]), "runs": 2, "eval": str(npz),
                       "eval_limit": 8})
    assert rc == 0 and r["ok"], r
    assert r["eval"]["count"] == 8 and r["eval"]["predictions"] == preds[:8]
    assert r["eval"]["accuracy"] == pytest.approx(6 / 8)


@pytest.mark.parametrize("kind", ["fp32", "int8"])
def test_eval_outputs_are_each_samples_first_output_dequantized(models, tmp_path, kind):
    from farm.parse import parse_agent_result
    from farm.results import AGENT, RawResult

    x = np.random.default_rng(11).random((6, 8, 8, 1), dtype=np.float32)
    npz = tmp_path / "eval.npz"
    np.savez(npz, x=x)
    rc, r = run_agent({"model": str(models[kind]), "runs": 2, "eval": str(npz), "eval_outputs": True})
    assert rc == 0 and r["ok"], r
    outputs = r["eval"]["outputs"]
    assert len(outputs) == 6 and all(len(o) == 10 for o in outputs)
    # 9 significant digits: the runtime's own (dequantized) values, to float32's precision.
    np.testing.assert_allclose(outputs, reference_outputs(models[kind], x), rtol=1e-7, atol=0)
    if kind == "int8":
        from ai_edge_litert.interpreter import Interpreter
        scale, zp = Interpreter(model_path=str(models[kind])).get_output_details()[0]["quantization"]
        steps = np.array(outputs) / scale + zp  # dequantized int8 values sit on the quantization grid
        np.testing.assert_allclose(steps, np.round(steps), atol=1e-3)
    assert parse_agent_result(RawResult(AGENT, json.dumps(r), "", 0)).outputs == outputs


def test_int8_eval_passes_quantized_inputs_through(models, tmp_path):
    from ai_edge_litert.interpreter import Interpreter
    it = Interpreter(model_path=str(models["int8"]))
    scale, zp = it.get_input_details()[0]["quantization"]
    rng = np.random.default_rng(5)
    xf = rng.random((16, 8, 8, 1), dtype=np.float32)
    xq = np.clip(np.round(xf / scale) + zp, -128, 127).astype(np.int8)
    npz = tmp_path / "eval_int8.npz"
    np.savez(npz, x=xq)  # no labels

    rc, r = run_agent({"model": str(models["int8"]), "runs": 2, "eval": str(npz)})
    assert rc == 0 and r["ok"], r
    assert r["eval"]["accuracy"] is None
    assert r["eval"]["predictions"] == reference_predictions(models["int8"], xq)
    # Float inputs quantized by the agent give the same top-1 as pre-quantized ones.
    assert r["eval"]["predictions"] == reference_predictions(models["int8"], xf)


def test_request_from_file(models, tmp_path):
    req = tmp_path / "request.json"
    req.write_text(json.dumps({"model": str(models["fp32"]), "runs": 4, "warmup_runs": 0}))
    rc, r = run_agent(args=["--request", req])
    assert rc == 0 and r["ok"], r
    assert len(r["samples_us"]) == 4 and r["warmup_ms"] == []


# Runs the agent with ai_edge_litert unimportable, as on a host that only has
# TensorFlow (tflite_runtime is not installed here either).
WITHOUT_LITERT = r"""
import runpy, sys
class Block(object):
    def find_spec(self, name, path=None, target=None):
        if name == "ai_edge_litert" or name.startswith("ai_edge_litert."):
            raise ImportError("hidden by the test")
        return None
sys.meta_path.insert(0, Block())
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def test_falls_back_to_tensorflow_lite(models, tmp_path):
    pytest.importorskip("tensorflow")
    if __import__("importlib").util.find_spec("tflite_runtime") is not None:
        pytest.skip("tflite_runtime installed: it would be picked before tensorflow")
    rng = np.random.default_rng(9)
    x = rng.random((10, 8, 8, 1), dtype=np.float32)
    npz = tmp_path / "eval.npz"
    np.savez(npz, x=x)
    request = {"model": str(models["int8"]), "delegate": "none", "runs": 4, "eval": str(npz)}
    proc = subprocess.run([sys.executable, "-c", WITHOUT_LITERT, str(AGENT)],
                          input=json.dumps(request), capture_output=True, text=True,
                          timeout=120)
    r = json.loads(proc.stdout)
    assert proc.returncode == 0 and r["ok"], r
    import tensorflow as tf
    assert r["runtime"] == {"name": "tensorflow", "version": tf.__version__}
    assert r["delegate"]["outcome"] == "cpu"
    assert r["delegate"]["total_nodes"] == flatbuffer_op_count(models["int8"])
    assert len(r["samples_us"]) == 4
    assert r["eval"]["predictions"] == reference_predictions(models["int8"], x)


def _expect_error(request, kind, *needles):
    rc, r = run_agent(request)
    assert rc == 2, r
    assert r["ok"] is False
    assert r["error"]["type"] == kind, r
    msg = r["error"]["message"]
    assert msg and "\n" not in msg
    for needle in needles:
        assert needle in msg, msg
    return r


def test_missing_model(tmp_path):
    path = tmp_path / "nope.tflite"
    _expect_error({"model": str(path)}, "model_not_found", str(path), "not found")


def test_text_file_named_tflite(tmp_path):
    path = tmp_path / "notes.tflite"
    path.write_text("this is not a model\n")
    _expect_error({"model": str(path)}, "invalid_model", str(path))


@pytest.mark.parametrize("keep", [0.5, 0.05])
def test_truncated_model(models, tmp_path, keep):
    data = models["fp32"].read_bytes()
    path = tmp_path / "truncated.tflite"
    path.write_bytes(data[:int(len(data) * keep)])
    _expect_error({"model": str(path)}, "invalid_model", str(path))


def test_eval_with_wrong_shape(models, tmp_path):
    npz = tmp_path / "wrong.npz"
    np.savez(npz, x=np.zeros((5, 3, 3), np.float32), y=np.zeros(5, np.int64))
    _expect_error({"model": str(models["fp32"]), "runs": 2, "eval": str(npz)},
                  "eval_error", str(npz), "[3, 3]", "[1, 8, 8, 1]")


def test_eval_file_missing(models, tmp_path):
    npz = tmp_path / "absent.npz"
    _expect_error({"model": str(models["fp32"]), "eval": str(npz)}, "eval_error", str(npz))


def test_unloadable_external_delegate(models, tmp_path):
    missing = tmp_path / "libmissing_delegate.so"
    r = _expect_error({"model": str(models["fp32"]),
                       "delegate": {"name": "external", "library": str(missing)}},
                      "delegate_failed", str(missing))
    assert r["delegate"]["outcome"] == "failed"
    not_elf = tmp_path / "libfake_delegate.so"
    not_elf.write_text("not a shared library")
    r = _expect_error({"model": str(models["fp32"]),
                       "delegate": {"name": "gpu", "library": str(not_elf)}},
                      "delegate_failed", str(not_elf))
    assert r["delegate"]["name"] == "gpu" and r["delegate"]["outcome"] == "failed"


def test_bad_requests(models):
    _expect_error("{not json", "bad_request", "JSON")
    _expect_error({"runs": 3}, "bad_request", "model")
    _expect_error({"model": str(models["fp32"]), "runs": 0}, "bad_request", "runs")
    _expect_error({"model": str(models["fp32"]), "delegate": {"name": "gpu"}},
                  "bad_request", "library")
    _expect_error({"model": str(models["fp32"]), "eval_outputs": True}, "bad_request", "eval_outputs", "eval")
    _expect_error({"model": str(models["fp32"]), "eval": "x.npz", "eval_outputs": "yes"},
                  "bad_request", "eval_outputs")


# Mirrors TfLiteDelegate (tensorflow/lite/core/c/common.h). Prepare returns OK
# without claiming any node: a delegate that loads fine and takes nothing.
IDLE_DELEGATE_C = r"""
#include <stdint.h>
#include <stdlib.h>
typedef struct TfLiteDelegate {
  void* data_;
  int (*Prepare)(void* context, struct TfLiteDelegate* delegate);
  void* CopyFromBufferHandle;
  void* CopyToBufferHandle;
  void* FreeBufferHandle;
  int64_t flags;
  void* opaque_delegate_builder;
} TfLiteDelegate;
static int prepare(void* context, TfLiteDelegate* d) { (void)context; (void)d; return 0; }
TfLiteDelegate* tflite_plugin_create_delegate(char** keys, char** values, size_t n,
                                              void (*report)(const char*)) {
  TfLiteDelegate* d = (TfLiteDelegate*)calloc(1, sizeof(TfLiteDelegate) + 64);
  d->Prepare = prepare;
  return d;
}
void tflite_plugin_destroy_delegate(TfLiteDelegate* d) { free(d); }
"""


def test_delegate_that_takes_no_nodes_is_not_applied(models, tmp_path):
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler to build the idle test delegate")
    src = tmp_path / "idle_delegate.c"
    src.write_text(IDLE_DELEGATE_C)
    lib = tmp_path / "libidle_delegate.so"
    subprocess.run([cc, "-shared", "-fPIC", "-o", str(lib), str(src)], check=True)

    rc, r = run_agent({"model": str(models["fp32"]), "runs": 3,
                       "delegate": {"name": "external", "library": str(lib),
                                    "options": {"some": "option"}}})
    assert rc == 0 and r["ok"], r
    dlg = r["delegate"]
    ops = flatbuffer_op_count(models["fp32"])
    assert dlg["outcome"] == "not_applied"
    assert dlg["delegated_nodes"] == 0 and dlg["delegate_kernels"] == 0
    assert dlg["total_nodes"] == ops
    # What the idle delegate left, the runtime's default XNNPACK picked up:
    # reported apart, never as the external delegate's nodes.
    assert dlg["fallback_nodes"] == ops
    assert "took 0 of %d" % ops in dlg["message"]


SHAPE_CHAIN = "SHAPE -> STRIDED_SLICE -> PACK -> RESHAPE"


def test_why_xnnpack_takes_nothing_on_tflite_runtime(models, tflite_runtime_python):
    """tflite-runtime 2.14's XNNPACK takes no node of a graph with tensors sized at run time (its log says nothing of
    it): the reason names the ops that size one, and the conversion that removes them."""
    rc, r = run_agent({"model": str(models["fp32_loose"]), "runs": 3}, python=TFLITE_RUNTIME_PYTHON)
    assert rc == 0 and r["ok"], r
    assert r["runtime"]["name"] == "tflite_runtime"
    dlg = r["delegate"]
    ops = flatbuffer_op_count(models["fp32_loose"])
    assert (dlg["outcome"], dlg["delegated_nodes"], dlg["total_nodes"]) == ("not_applied", 0, ops)
    message = dlg["message"]
    assert "\n" not in message
    assert message.startswith(
        "XNNPACK (runtime default) took 0 of %d nodes: tflite_runtime %s's XNNPACK takes no node of a graph with "
        "tensors sized at run time, and here %s computes one's shape from the input's, [-1, 8, 8, 1], not fixed: "
        "convert the model with a static one (farm convert --static-shapes); that tensor: '"
        % (ops, r["runtime"]["version"], SHAPE_CHAIN)), message
    assert "' [-1, 36]; on CPU kernels: " in message  # Flatten's output: 3x3x4 values a sample

    # The same CNN with its batch fixed: no SHAPE ops, and XNNPACK takes every node.
    rc, r = run_agent({"model": str(models["fp32"]), "runs": 3}, python=TFLITE_RUNTIME_PYTHON)
    assert rc == 0 and r["ok"], r
    ops = flatbuffer_op_count(models["fp32"])
    assert (r["delegate"]["outcome"], r["delegate"]["delegated_nodes"]) == ("applied", ops)

    # An int8 model has no float32 tensor: this runtime creates no XNNPACK delegate for it at all.
    rc, r = run_agent({"model": str(models["int8"]), "runs": 3}, python=TFLITE_RUNTIME_PYTHON)
    assert rc == 0 and r["ok"], r
    assert r["delegate"]["outcome"] == "not_applied"
    assert ("took 0 of %d nodes: tflite_runtime %s created no XNNPACK delegate for this model (it logs one when it "
            "does; tensor types here: int32, int8)" % (flatbuffer_op_count(models["int8"]), r["runtime"]["version"])
            in r["delegate"]["message"]), r["delegate"]["message"]


def test_xnnpack_reason_does_not_blame_shapes_a_runtime_takes(models):
    """ai_edge_litert's XNNPACK takes graphs with tensors sized at run time: around the shape ops of the CNN with an
    unfixed batch; and where it takes no node (int16 activations), the reason is the nodes, not the shapes."""
    rc, r = run_agent({"model": str(models["fp32_loose"]), "runs": 3})
    assert rc == 0 and r["ok"], r
    assert r["delegate"]["outcome"] == "partial"
    assert r["delegate"]["cpu_ops"] == {"SHAPE": 1, "STRIDED_SLICE": 1, "PACK": 1, "RESHAPE": 1}

    rc, r = run_agent({"model": str(models["int16x8_loose"]), "runs": 3})
    assert rc == 0 and r["ok"], r
    message = r["delegate"]["message"]
    assert r["delegate"]["outcome"] == "not_applied"
    assert ("took 0 of %d nodes: ai_edge_litert %s's XNNPACK turned every node down: an op, a tensor type or a "
            "parameter it does not take (tensor types here: " % (flatbuffer_op_count(models["int16x8_loose"]),
                                                                 r["runtime"]["version"])) in message, message
    assert "int16" in message and "run time" not in message and "static" not in message


def test_xnnpack_reason_where_the_runtime_cannot_be_asked(models):
    """A runtime that cannot load the probe graph: the reason says what the graph has, that the runtime could not be
    asked, and what the runtime logged beyond INFO."""
    import runpy
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    class Unaskable:
        name, version = "some_runtime", "0.1"

        def Interpreter(self, **kwargs):
            raise ValueError("Didn't find op for builtin opcode 'ADD' version '9'")

    interp = Interpreter(model_path=str(models["fp32_loose"]),
                         experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    interp.allocate_tensors()
    why = runpy.run_path(str(AGENT))["why_xnnpack_took_nothing"](
        Unaskable(), interp, "INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\nWARNING: a word\n")
    assert why.startswith("the graph has tensors sized at run time (whether some_runtime 0.1's XNNPACK takes such a "
                          "graph could not be asked), and here %s" % SHAPE_CHAIN), why
    assert why.endswith("; the runtime said: WARNING: a word"), why


def test_run_time_shapes_probe_is_the_graph_it_says(tmp_path):
    """The probe the agent asks a runtime with: SHAPE -> STRIDED_SLICE -> PACK -> RESHAPE, then an ADD, on an input
    with an unfixed batch; ai_edge_litert's XNNPACK takes its ADD."""
    import base64
    import runpy
    import zlib
    from ai_edge_litert import schema_py_generated as schema

    agent = runpy.run_path(str(AGENT))
    data = zlib.decompress(base64.b64decode(agent["RUN_TIME_SHAPES_PROBE"]))
    model = schema.Model.GetRootAs(data, 0)
    sub = model.Subgraphs(0)
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    ops = [names[model.OperatorCodes(sub.Operators(i).OpcodeIndex()).BuiltinCode()]
           for i in range(sub.OperatorsLength())]
    assert " -> ".join(ops) == SHAPE_CHAIN + " -> ADD"
    assert list(sub.Tensors(sub.Inputs(0)).ShapeSignatureAsNumpy()) == [-1, 2, 2]
    assert agent["xnnpack_takes_run_time_shapes"](agent["import_runtime"]()) is True


def test_delegate_message_is_bounded():
    """A model with many op types left on the CPU kernels: the message stays within what the coordinator accepts
    (farm/replies.py: 2000 characters), the result with it."""
    import runpy

    classify = runpy.run_path(str(AGENT))["classify"]
    names = ["CUSTOM_OP_NUMBER_%03d" % i for i in range(300)]
    info = classify("xnnpack", None, (len(names), {}, names))
    assert info["outcome"] == "not_applied" and info["cpu_ops"] == dict.fromkeys(names, 1)
    assert len(info["message"]) == 1000 and info["message"].endswith("...")


def test_agent_is_python38_compatible():
    vermin = Path(sys.executable).with_name("vermin")
    cmd = [str(vermin)] if vermin.exists() else [sys.executable, "-m", "vermin"]
    # The second run also checks annotations (e.g. list[int]), which vermin
    # skips by default.
    for extra in ([], ["--eval-annotations"]):
        proc = subprocess.run(cmd + ["--target=3.8-", "--no-tips", "--violations", *extra,
                                     str(AGENT)], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "Target versions not met" not in proc.stdout, proc.stdout
