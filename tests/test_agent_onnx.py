"""The device agent (agents/litert_agent.py) on .onnx models, run with onnxruntime as the coordinator runs it.

The models are small real ONNX graphs built with onnx.helper, with weights chosen so that their outputs are known
independently (numpy computes them here); the agent runs them with the onnxruntime of this venv.
"""
import asyncio
import json
import os
import sys

import numpy as np
import onnx  # the convert extra's: every test venv has them
import onnxruntime as ort
import pytest

from test_agent import _expect_error, run_agent

CLASSES = 10
W_REG = np.array([[1.5], [-2.0], [0.25], [3.0], [-0.5], [1.0], [0.0], [-4.0]], np.float32)


def save(graph, path):
    from onnx import helper

    # Opset 13 and IR 8: what boards' older onnxruntime builds load too.
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope="module")
def onnx_models(tmp_path_factory):
    """A classifier (MatMul+Add+Softmax over a (batch, 64) input: class c scores x[c]), a regression (8 -> 1, weights
    W_REG, bias 0.5), and a model with a symbolic inner dimension."""
    from onnx import TensorProto, helper, numpy_helper

    d = tmp_path_factory.mktemp("onnx-models")
    weights = np.zeros((64, CLASSES), np.float32)
    weights[np.arange(CLASSES), np.arange(CLASSES)] = 4.0
    classifier = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["logits"]), helper.make_node("Add", ["logits", "b"], ["z"]),
         helper.make_node("Softmax", ["z"], ["probs"], axis=-1)],
        "classifier", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 64])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["batch", CLASSES])],
        [numpy_helper.from_array(weights, "W"), numpy_helper.from_array(np.zeros(CLASSES, np.float32), "b")])
    regression = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["xw"]), helper.make_node("Add", ["xw", "b"], ["y"])],
        "regression", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 1])],
        [numpy_helper.from_array(W_REG, "w"), numpy_helper.from_array(np.array([0.5], np.float32), "b")])
    sequence = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])], "sequence",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "seq", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", "seq", 4])])
    return {"classifier": save(classifier, d / "classifier.onnx"),
            "regression": save(regression, d / "regression.onnx"), "sequence": save(sequence, d / "sequence.onnx")}


def nodes_onnxruntime_runs(model):
    """The op types of the graph onnxruntime runs on the CPU for `model`, read from its own assignment record."""
    options = ort.SessionOptions()
    options.add_session_config_entry("session.record_ep_graph_assignment_info", "1")
    session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
    return sorted(node.op_type for subgraph in session.get_provider_graph_assignment_info()
                  for node in subgraph.get_nodes())


def test_a_benchmark_runs_on_onnxruntime_and_passes_the_coordinators_checks(onnx_models):
    from farm.parse import parse_agent_result
    from farm.replies import agent_reply
    from farm.results import AGENT as AGENT_FORMAT
    from farm.results import RawResult

    model = onnx_models["classifier"]
    rc, r = run_agent({"model": str(model), "delegate": "none", "threads": 2, "warmup_runs": 3, "runs": 12})
    assert rc == 0 and r["ok"] is True, r
    assert r["runtime"] == {"name": "onnxruntime", "version": ort.__version__}
    assert r["model"]["path"] == str(model) and r["model"]["size_bytes"] == model.stat().st_size
    # The symbolic batch dimension is fed, and shown, as 1; the output's shape is the one the runs produced.
    assert r["model"]["inputs"] == [{"name": "x", "shape": [1, 64], "dtype": "float32"}]
    assert r["model"]["outputs"] == [{"name": "probs", "shape": [1, CLASSES], "dtype": "float32"}]
    assert r["warnings"] == [] and r["threads"] == 2

    assert len(r["samples_us"]) == 12 and all(0 < s < 1e6 for s in r["samples_us"])
    assert len(r["warmup_ms"]) == 3 and 0 < r["first_ms"] < 1000
    assert set(r["init_breakdown_ms"]) == {"delegate_load", "interpreter", "allocate_tensors"}
    assert r["init_breakdown_ms"]["interpreter"] > 0  # the session's creation is all of the init
    assert r["init_ms"] == pytest.approx(sum(r["init_breakdown_ms"].values()), abs=1e-3)
    assert r["measure"]["stopped_by"] == "runs" and r["stats"]["count"] == 12
    assert r["memory"]["peak_mb"] >= r["memory"]["baseline_mb"] > 0
    assert r["host"]["python_executable"] == sys.executable and r["host"]["cores"] == os.cpu_count()
    for env in (r["env_before"], r["env_after"]):
        assert isinstance(env["temps_c"], dict) and "governor" in env

    ops = nodes_onnxruntime_runs(model)
    dlg = r["delegate"]
    assert dlg["name"] == "none" and dlg["outcome"] == "cpu", dlg
    assert dlg["total_nodes"] == len(ops) and dlg["delegated_nodes"] == 0 and dlg["delegate_kernels"] == 0
    assert sorted(op for op, n in dlg["cpu_ops"].items() for _ in range(n)) == ops
    assert "Softmax" in ops  # the graph as it runs, after onnxruntime's fusions

    agent_reply(r)
    measurement = parse_agent_result(RawResult(AGENT_FORMAT, json.dumps(r), "", 0))
    assert measurement.result["runtime"] == "onnxruntime"
    assert measurement.result["delegate_outcome"] == "cpu" and measurement.result["total_nodes"] == len(ops)
    assert measurement.samples_us == r["samples_us"] and measurement.predictions is None and measurement.outputs is None


def test_eval_predictions_and_accuracy(onnx_models, tmp_path):
    x = np.random.default_rng(3).random((40, 64), dtype=np.float32)
    predictions = np.argmax(x[:, :CLASSES], axis=1)  # what the classifier's weights make it answer
    labels = predictions.copy()
    labels[::4] = (labels[::4] + 1) % CLASSES  # wrong on every 4th sample: accuracy 0.75
    npz = tmp_path / "eval.npz"
    np.savez(npz, x=x, y=labels)

    rc, r = run_agent({"model": str(onnx_models["classifier"]), "delegate": "none", "runs": 2, "eval": str(npz)})
    assert rc == 0 and r["ok"], r
    assert r["eval"]["count"] == 40 and r["eval"]["predictions"] == predictions.tolist()
    assert r["eval"]["accuracy"] == pytest.approx(0.75)
    assert "outputs" not in r["eval"]


def test_eval_outputs_of_a_regression_model_reach_the_coordinator(onnx_models, tmp_path):
    """Through the local transport, as a sweep runs it: the job's eval_outputs goes into the request, and the outputs
    come back in the Measurement."""
    from farm.inventory import parse_device
    from farm.parse import parse_agent_result
    from farm.transports import BenchmarkJob, Delegate, LocalFile
    from farm.transports.local import LocalTransport

    x = np.random.default_rng(4).normal(size=(25, 8)).astype(np.float32)
    expected = x.astype(np.float64) @ W_REG.astype(np.float64) + 0.5
    npz = tmp_path / "eval.npz"
    np.savez(npz, x=x)
    job = BenchmarkJob(model=LocalFile(onnx_models["regression"], "0" * 64), description={}, delegate=Delegate("none"),
                       threads=1, warmup_runs=1, runs=3, min_secs=0.0, max_secs=10.0, timeout_s=120.0,
                       eval=LocalFile(npz, "1" * 64), eval_limit=20, eval_outputs=True)
    transport = LocalTransport(parse_device({"name": "here", "kind": "local"}))
    measurement = parse_agent_result(asyncio.run(transport.run_job(job)))

    assert len(measurement.outputs) == 20 and all(len(values) == 1 for values in measurement.outputs)
    np.testing.assert_allclose(measurement.outputs, expected[:20], rtol=5e-6, atol=1e-6)
    assert measurement.predictions == [0] * 20  # the argmax of one value


def test_a_dynamic_inner_dimension_is_fed_as_1_and_said(onnx_models):
    rc, r = run_agent({"model": str(onnx_models["sequence"]), "delegate": "none", "runs": 2})
    assert rc == 0 and r["ok"], r
    assert r["model"]["inputs"] == [{"name": "x", "shape": [1, 1, 4], "dtype": "float32"}]
    assert r["model"]["outputs"] == [{"name": "y", "shape": [1, 1, 4], "dtype": "float32"}]
    assert r["warnings"] == ["input 'x': dynamic dimension(s) seq fed as 1"]


def test_xnnpack_runs_only_where_this_onnxruntime_has_it(onnx_models):
    from farm.parse import parse_agent_result
    from farm.results import AGENT as AGENT_FORMAT
    from farm.results import JobFailed, RawResult

    providers = ort.get_available_providers()
    request = {"model": str(onnx_models["classifier"]), "delegate": "xnnpack", "runs": 3}
    if "XnnpackExecutionProvider" in providers:
        rc, r = run_agent(request)
        assert rc == 0 and r["ok"], r
        assert r["delegate"]["outcome"] in ("applied", "partial") and r["delegate"]["delegated_nodes"] > 0
        return
    # The pip wheel has none: a CPU run is never reported under XNNPACK's name.
    r = _expect_error(request, "delegate_failed", "XnnpackExecutionProvider", ort.__version__, *providers)
    assert r["delegate"]["name"] == "xnnpack" and r["delegate"]["outcome"] == "failed"
    with pytest.raises(JobFailed, match="delegate_failed: .*no XnnpackExecutionProvider"):
        parse_agent_result(RawResult(AGENT_FORMAT, json.dumps(r), "", 2))


def test_a_tflite_delegate_on_an_onnx_model_fails_naming_the_providers(onnx_models):
    r = _expect_error({"model": str(onnx_models["classifier"]), "delegate": "gpu"},
                      "delegate_failed", "'gpu' is a TFLite delegate", *ort.get_available_providers())
    assert r["delegate"]["outcome"] == "failed"


def test_a_model_onnxruntime_cannot_load_is_invalid_model(onnx_models, tmp_path):
    garbage = tmp_path / "garbage.onnx"
    garbage.write_text("this is not\nan ONNX model\n")
    _expect_error({"model": str(garbage), "delegate": "none"}, "invalid_model", str(garbage), "onnxruntime")
    data = onnx_models["classifier"].read_bytes()
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(data[:len(data) // 2])
    _expect_error({"model": str(truncated), "delegate": "none"}, "invalid_model", str(truncated))


@pytest.fixture
def without_onnxruntime(tmp_path):
    """The environment of a Python whose `import onnxruntime` fails, as on a host without it: a module of that name
    first on the path that raises ImportError."""
    hidden = tmp_path / "hidden"
    hidden.mkdir()
    (hidden / "onnxruntime.py").write_text('raise ImportError("onnxruntime hidden by the test")\n')
    return {**os.environ, "PYTHONPATH": str(hidden)}


def test_onnxruntime_missing_is_runtime_missing(onnx_models, without_onnxruntime):
    rc, r = run_agent({"model": str(onnx_models["classifier"]), "delegate": "none"}, env=without_onnxruntime)
    assert rc == 2 and r["ok"] is False
    assert r["error"]["type"] == "runtime_missing"
    message = r["error"]["message"]
    assert "\n" not in message and sys.executable in message and "farm provision --onnxruntime" in message


def test_the_probe_reports_onnxruntime(without_onnxruntime):
    from farm.replies import probe_facts

    rc, facts = run_agent(args=["--probe"])
    assert rc == 0 and facts["ok"], facts
    assert facts["onnxruntime"] == {"version": ort.__version__, "providers": ort.get_available_providers()}
    assert probe_facts(facts)["onnxruntime"]["providers"] == ort.get_available_providers()

    rc, facts = run_agent(args=["--probe"], env=without_onnxruntime)
    assert rc == 0 and facts["ok"], facts
    missing = facts["onnxruntime"]
    assert missing["version"] is None and missing["providers"] == []
    assert sys.executable in missing["error"] and "hidden by the test" in missing["error"]
    assert probe_facts(facts)["onnxruntime"]["version"] is None


def test_probed_onnxruntime_facts_are_stored_and_shown(tmp_path):
    import yaml

    from conftest import farm
    from farm.store import Store

    lab = tmp_path / "lab.yaml"
    lab.write_text(yaml.safe_dump({"devices": [{"name": "here", "kind": "local"}]}))
    db = tmp_path / "farm.db"
    probed = farm("inventory", "probe", "--inventory", lab, "--db", db)
    assert probed.returncode == 0, probed.stdout + probed.stderr
    providers = ", ".join(ort.get_available_providers())
    assert f"onnxruntime {ort.__version__} ({providers})" in probed.stdout
    (device,) = Store(db).devices()
    assert json.loads(device.facts)["onnxruntime"] == {"version": ort.__version__,
                                                       "providers": ort.get_available_providers(), "error": None}
    shown = farm("inventory", "show", "--db", db)
    assert shown.returncode == 0 and f"onnxruntime={ort.__version__}" in shown.stdout, shown.stdout + shown.stderr

