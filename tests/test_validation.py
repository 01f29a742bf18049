"""Validation against the source model beyond classification: a regression model scored by RMSE on this machine (real
TensorFlow, tfmot, tf2onnx, LiteRT and ONNX Runtime) and on a simulated phone; and what a device's probe says it cannot
run. The classification pipeline's sweep is tests/test_optimize.py's."""

import numpy as np
import pytest
from conftest import REPO, farm

from farm.plan import PlannedVariant, SweepSpec, plan_jobs
from farm.inventory import load_inventory
from farm.run import onnx_skip_reason
from farm.store import Store

LOCAL = REPO / "inventory" / "local.yaml"


@pytest.fixture(scope="module")
def regression(tmp_path_factory):
    """A small Keras regression model (6 features → 1 value), its training and eval sets, and its own eval RMSE."""
    import keras

    tmp = tmp_path_factory.mktemp("regression")
    keras.utils.set_random_seed(3)
    rng = np.random.default_rng(3)
    x = rng.random((300, 6), dtype=np.float32)
    y = (x @ rng.normal(size=(6, 1)).astype(np.float32) + 0.5).astype(np.float32)
    model = keras.Sequential([keras.Input((6,), name="features"), keras.layers.Dense(32, activation="relu"),
                              keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="mse")
    model.fit(x[:200], y[:200], epochs=80, batch_size=32, verbose=0)
    model.save(tmp / "linear.keras")
    np.savez(tmp / "train.npz", x=x[:200], y=y[:200])
    np.savez(tmp / "eval.npz", x=x[200:], y=y[200:])
    return tmp, float(np.sqrt(np.mean((model.predict(x[200:], verbose=0) - y[200:]) ** 2)))


def test_a_regression_model_is_scored_by_its_errors(regression, tmp_path):
    data, keras_rmse = regression
    run = farm("sweep", "run", "--model", data / "linear.keras", "--variants", "fp32,int8,qat,onnx",
               "--calibration", data / "train.npz", "--train", data / "train.npz", "--eval", data / "eval.npz",
               "--inventory", LOCAL, "--repeats", "1", "--runs", "10", "--db", tmp_path / "farm.db")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    store = Store(tmp_path / "farm.db", create=False)
    done = {row["variant"]: row for row in store.report(store.sweep().id) if row["status"] == "done"}
    assert sorted(done) == ["fp32", "int8", "onnx", "qat"]
    for row in done.values():
        assert row["accuracy"] is None and row["agreement_with_source"] is None and row["predictions"] is None
        assert row["max_abs_error"] >= row["rmse"] > 0 and row["max_abs_vs_source"] >= row["rmse_vs_source"]
    for exact in ("fp32", "onnx"):
        assert done[exact]["rmse"] == pytest.approx(keras_rmse, rel=1e-3)
        assert done[exact]["rmse_vs_source"] < 1e-5
    assert 1e-5 < done["int8"]["rmse_vs_source"] < 0.1  # quantization moves the outputs, a little


def test_a_phone_scores_a_regression_from_its_pulled_outputs(regression, tmp_path, adb_lab, benchmark_model_binary):
    """A simulated phone (tests/phone: TEST CODE speaking the real ADB protocol; its benchmark_model stand-in runs real
    LiteRT inference and writes the real output bytes) beside this machine, on the same variants."""
    import yaml

    data, _ = regression
    with np.load(data / "eval.npz") as full:  # the stand-in runs once per sample: 6 keep it short
        np.savez(tmp_path / "eval.npz", x=full["x"][:6], y=full["y"][:6])
    inventory = tmp_path / "farm.yaml"
    inventory.write_text(yaml.safe_dump({"devices": [
        {"name": "pixel", "kind": "android", "serial": adb_lab["pixel"].serial,
         "adb_server": f"127.0.0.1:{adb_lab.port}", "binaries": {"arm64-v8a": str(benchmark_model_binary)}},
        {"name": "local", "kind": "local"}]}))
    run = farm("sweep", "run", "--model", data / "linear.keras", "--variants", "int8", "--calibration",
               data / "train.npz", "--eval", tmp_path / "eval.npz", "--inventory", inventory, "--repeats", "1",
               "--runs", "5", "--db", tmp_path / "farm.db")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    store = Store(tmp_path / "farm.db", create=False)
    done = {(row["device"], row["variant"]): row for row in store.report(store.sweep().id)
            if row["status"] == "done"}
    assert sorted(done) == [("local", "int8"), ("pixel", "int8")]
    phone, here = done[("pixel", "int8")], done[("local", "int8")]
    assert phone["runtime"] == "benchmark_model" and 1e-5 < phone["rmse_vs_source"] < 0.1
    # The same model and inputs: the same dequantized outputs, whoever ran them (to float32's rounding).
    for score in ("rmse", "max_abs_error", "rmse_vs_source", "max_abs_vs_source"):
        assert phone[score] == pytest.approx(here[score], abs=1e-6)


def test_onnx_variants_are_planned_on_onnx_runtimes_default_too():
    spec = SweepSpec.model_validate({"models": [{"source": "m.keras"}], "delegates": ["xnnpack"], "repeats": 1})
    [local] = load_inventory(LOCAL).devices
    jobs = plan_jobs(spec, [local], [PlannedVariant(1, "m", "int8"), PlannedVariant(2, "m", "onnx")])
    assert [(job["variant_id"], job["delegate"]) for job in jobs] == [(1, "xnnpack"), (2, "xnnpack"), (2, "none")]


@pytest.mark.parametrize("facts, kind, delegate, reason", [
    ({"onnxruntime": {"version": "1.32.0", "providers": ["CPUExecutionProvider"]}}, "onnx", "none", None),
    ({"onnxruntime": {"version": "1.32.0", "providers": ["CPUExecutionProvider"]}}, "int8", "xnnpack", None),
    ({"onnxruntime": {"version": "1.32.0", "providers": ["XnnpackExecutionProvider", "CPUExecutionProvider"]}},
     "onnx", "xnnpack", None),
    ({"onnxruntime": {"version": "1.32.0", "providers": ["CPUExecutionProvider"]}}, "onnx", "xnnpack",
     "this device's onnxruntime 1.32.0 has no XnnpackExecutionProvider (it has: CPUExecutionProvider)"),
    ({"onnxruntime": {"version": None, "providers": [], "error": "No module named 'onnxruntime'"}}, "onnx", "none",
     "no onnxruntime on the device to run onnx models (install it: farm provision --onnxruntime)"),
    ({"onnxruntime": {"version": "1.32.0", "providers": ["CPUExecutionProvider"]}}, "onnx", "gpu",
     "gpu is a TFLite delegate; ONNX Runtime runs onnx models with delegate none"),
    ({"battery": {"level": 80}}, "onnx", "nnapi", None),  # a phone: no agent probe, its plan decided
])
def test_what_a_devices_probe_says_it_cannot_run(facts, kind, delegate, reason):
    found = onnx_skip_reason(facts, kind, delegate)
    assert found == reason if reason is None else found.startswith(reason)
