"""The fine-tuned variants (qat, pruned, pruned-int8: real tfmot training in tf-keras) and the ONNX variant (real
tf2onnx), converted from the demo's digits CNN and scored here with LiteRT and ONNX Runtime on its held-out digits;
then the whole pipeline in one `farm sweep run`, every variant scored against the source model."""
import csv
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO, farm, refused

from farm.convert import convert_model
from farm.optimize import Pruning
from farm.store import Store

LOCAL = REPO / "inventory" / "local.yaml"

KINDS = ["fp32", "int8", "qat", "pruned", "pruned-int8", "onnx"]


def top1(variant, x: np.ndarray, y: np.ndarray) -> float:
    """Top-1 accuracy of a variant on (x, y), run here by the runtime its kind needs."""
    if variant.kind == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(variant.path), providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        predictions = [session.run(None, {name: sample[None]})[0].argmax() for sample in x]
        return float(np.mean(np.array(predictions) == y))
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(variant.path))
    interp.allocate_tensors()
    d_in, d_out = interp.get_input_details()[0], interp.get_output_details()[0]
    predictions = []
    for sample in x:
        value = sample[None]
        if d_in["dtype"] == np.int8:
            scale, zero = d_in["quantization"]
            value = np.clip(np.round(value / scale) + zero, -128, 127).astype(np.int8)
        interp.set_tensor(d_in["index"], value)
        interp.invoke()
        predictions.append(interp.get_tensor(d_out["index"]).argmax())
    return float(np.mean(np.array(predictions) == y))


@pytest.fixture(scope="module")
def cache(farm_cache) -> Path:
    """The run's shared cache, which the `farm` sweeps of other tests convert into too: these conversions are theirs."""
    return farm_cache


@pytest.fixture(scope="module")
def digits(digits_dir, cache):
    variants = convert_model(digits_dir / "digits.keras", KINDS, calibration=digits_dir / "digits_calib.npz",
                             train=digits_dir / "digits_train.npz", cache=cache)
    assert [v.kind for v in variants] == KINDS
    assert [v.error for v in variants] == [None] * len(KINDS)
    with np.load(digits_dir / "digits_eval.npz") as data:
        x, y = data["x"], data["y"]
    return {v.kind: v for v in variants}, {v.kind: top1(v, x, y) for v in variants}


def test_qat_is_full_int8_within_two_points_of_fp32(digits):
    variants, accuracy = digits
    qat = variants["qat"]
    assert [t["dtype"] for t in qat.description["inputs"] + qat.description["outputs"]] == ["int8", "int8"]
    assert qat.size < variants["fp32"].size / 3
    assert accuracy["fp32"] > 0.95
    assert abs(accuracy["qat"] - accuracy["fp32"]) <= 0.02, accuracy


def test_pruning_reaches_its_sparsity_and_pays_off_compressed(digits):
    variants, accuracy = digits
    fp32, pruned, pruned_int8 = variants["fp32"], variants["pruned"], variants["pruned-int8"]
    for v in (pruned, pruned_int8):
        assert v.description["target_sparsity"] == 0.5
        assert 0.49 <= v.description["sparsity"] <= 0.51
    # The zeros cost as much as any weight in the plain file; compressed, half of them are nearly free.
    assert abs(pruned.size - fp32.size) < 0.02 * fp32.size
    assert pruned.gzip_size < 0.7 * fp32.gzip_size
    assert pruned_int8.gzip_size < variants["int8"].gzip_size
    assert pruned_int8.description["inputs"][0]["dtype"] == "int8"
    assert accuracy["pruned"] > accuracy["fp32"] - 0.03 and accuracy["pruned-int8"] > accuracy["fp32"] - 0.03


def test_onnx_runs_in_onnx_runtime_like_the_source(digits, digits_dir):
    import keras
    import onnxruntime

    variants, accuracy = digits
    onnx = variants["onnx"]
    assert onnx.path.suffix == ".onnx" and onnx.path.name == f"{onnx.sha256}.onnx"
    assert onnx.validation.startswith("InferenceSession ok (onnxruntime ")
    assert onnx.description["inputs"][0]["shape"] == [1, 8, 8, 1]  # batch fixed to 1, like the TFLite variants
    assert onnx.description["opset"] == 17 and "Conv" in onnx.description["ops"]
    with np.load(digits_dir / "digits_eval.npz") as data:
        x = data["x"][:16]
    session = onnxruntime.InferenceSession(str(onnx.path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    ours = np.concatenate([session.run(None, {name: sample[None]})[0] for sample in x])
    theirs = keras.models.load_model(digits_dir / "digits.keras", compile=False).predict(x, verbose=0)
    assert np.abs(ours - theirs).max() < 1e-4
    assert accuracy["onnx"] == accuracy["fp32"]


def test_fine_tuned_variants_are_cached_by_training_data_and_budget(digits, digits_dir, cache, tmp_path):
    variants, _ = digits
    again = convert_model(digits_dir / "digits.keras", ["qat", "pruned"], train=digits_dir / "digits_train.npz",
                          cache=cache)
    assert [v.sha256 for v in again] == [variants["qat"].sha256, variants["pruned"].sha256]
    # Other training data, or another budget: another conversion.
    with np.load(digits_dir / "digits_train.npz") as data:
        np.savez(tmp_path / "half.npz", x=data["x"][::2], y=data["y"][::2])
    other = convert_model(digits_dir / "digits.keras", ["pruned"], train=tmp_path / "half.npz", cache=cache)[0]
    assert other.sha256 != variants["pruned"].sha256 and other.options["train_sha256"] != \
        variants["pruned"].options["train_sha256"]
    sparser = convert_model(digits_dir / "digits.keras", ["pruned"], train=digits_dir / "digits_train.npz",
                            pruning=Pruning(sparsity=0.8), cache=cache)[0]
    assert sparser.options["fine_tune"]["sparsity"] == 0.8 and 0.79 <= sparser.description["sparsity"] <= 0.81


def test_without_training_data_the_variant_is_unusable_with_the_reason(digits_dir, cache):
    [qat] = convert_model(digits_dir / "digits.keras", ["qat"], cache=cache)
    assert qat.path is None and qat.error.startswith("qat needs training data to fine-tune on: an .npz with x and y")


def test_a_layer_tfmot_cannot_quantize_gives_tfmots_reason(tmp_path, cache):
    import keras

    inputs = keras.Input((8,), name="x")
    hidden = keras.layers.LayerNormalization()(keras.layers.Dense(8)(inputs))
    keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(hidden)).save(tmp_path / "norm.keras")
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "train.npz", x=rng.random((64, 8), dtype=np.float32), y=np.arange(64) % 3)
    qat, pruned = convert_model(tmp_path / "norm.keras", ["qat", "pruned"], train=tmp_path / "train.npz", cache=cache)
    assert qat.error.startswith("qat: tfmot can't quantize this model: Layer layer_normalization:")
    assert "is not supported" in qat.error and "\n" not in qat.error
    assert pruned.error is None and pruned.description["sparsity"] > 0.4  # pruning takes it


def test_bad_training_data_is_a_one_line_error(digits_dir, tmp_path, cache):
    source = digits_dir / "digits.keras"
    refused(lambda: convert_model(source, ["qat"], train=tmp_path / "nope.npz", cache=cache),
            "nope.npz: training data not found")
    np.savez(tmp_path / "unlabelled.npz", x=np.zeros((4, 8, 8, 1), np.float32))
    refused(lambda: convert_model(source, ["qat"], train=tmp_path / "unlabelled.npz", cache=cache),
            "unlabelled.npz: training data needs labels or targets (y)")
    np.savez(tmp_path / "wrong.npz", x=np.zeros((4, 5, 5), np.float32), y=np.zeros(4, np.int64))
    refused(lambda: convert_model(source, ["pruned"], train=tmp_path / "wrong.npz", cache=cache),
            "wrong.npz: samples have shape (5, 5)")


def test_without_tfmot_the_variant_says_what_to_install(digits_dir, tmp_path, monkeypatch):
    """A real import failure: Python refuses to import a module whose sys.modules entry is None."""
    monkeypatch.setitem(sys.modules, "tensorflow_model_optimization", None)
    [qat] = convert_model(digits_dir / "digits.keras", ["qat"], train=digits_dir / "digits_train.npz",
                          cache=tmp_path / "cache")
    assert qat.path is None and qat.error.startswith(
        "qat: needs tf-keras and tensorflow-model-optimization (pip install --no-deps tf-keras==2.21.0 "
        "tensorflow-model-optimization==0.8.1): import of tensorflow_model_optimization halted")
    # Not remembered: installing tfmot is all it takes.
    assert not list((tmp_path / "cache").glob("conversions/*.json"))


def test_an_onnx_file_is_taken_as_given(digits, tmp_path, cache):
    variants, _ = digits
    given = tmp_path / "mine.onnx"
    given.write_bytes(variants["onnx"].path.read_bytes())
    [v] = convert_model(given, [], cache=cache)
    assert (v.kind, v.model, v.sha256, v.error) == ("onnx", "mine", variants["onnx"].sha256, None)
    refused(lambda: convert_model(given, ["int8"], cache=cache), "mine.onnx: a .onnx file is benchmarked as given")
    (tmp_path / "broken.onnx").write_bytes(b"\x08\x07garbage" * 10)
    refused(lambda: convert_model(tmp_path / "broken.onnx", [], cache=cache), "broken.onnx: corrupt ONNX file")


# --- the whole pipeline in one sweep, as a user types it; its conversions are the `digits` fixture's, from the cache --

@pytest.fixture(scope="module")
def pipeline(tmp_path_factory, digits_dir):
    """The issue's sweep, as a user types it (default delegate: xnnpack)."""
    tmp = tmp_path_factory.mktemp("pipeline")
    run = farm("sweep", "run", "--model", digits_dir / "digits.keras", "--name", "pipeline",
               "--variants", "fp32,int8,qat,pruned-int8,onnx", "--calibration", digits_dir / "digits_calib.npz",
               "--train", digits_dir / "digits_train.npz", "--eval", digits_dir / "digits_eval.npz",
               "--inventory", LOCAL, "--repeats", "1", "--runs", "20", "--db", tmp / "farm.db")
    store = Store(tmp / "farm.db", create=False)
    return run, store, store.report(store.sweep("pipeline").id), tmp


def test_every_variant_is_measured_and_scored(pipeline):
    run, _, rows, _ = pipeline
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    done = {row["variant"]: row for row in rows if row["status"] == "done"}
    assert sorted(done) == ["fp32", "int8", "onnx", "pruned-int8", "qat"], [(r["variant"], r["error"]) for r in rows]
    for row in done.values():
        assert row["accuracy"] is not None and row["agreement_with_source"] is not None, row
    assert done["fp32"]["accuracy"] > 0.95
    assert abs(done["qat"]["accuracy"] - done["fp32"]["accuracy"]) <= 0.02
    # fp32 TFLite and ONNX compute what Keras computes: the same top-1 on every held-out digit.
    assert done["fp32"]["agreement_with_source"] == done["onnx"]["agreement_with_source"] == 1.0
    assert (done["onnx"]["runtime"], done["onnx"]["delegate"]) == ("onnxruntime", "none")
    assert done["int8"]["runtime"] == "ai_edge_litert"
    assert done["pruned-int8"]["gzip_bytes"] < done["int8"]["gzip_bytes"] < done["fp32"]["gzip_bytes"]


def test_onnx_on_xnnpack_is_skipped_with_what_the_device_has(pipeline):
    _, _, rows, _ = pipeline
    [onnx_xnnpack] = [row for row in rows if (row["variant"], row["delegate"]) == ("onnx", "xnnpack")]
    assert onnx_xnnpack["status"] == "skipped"
    assert "has no XnnpackExecutionProvider (it has: " in onnx_xnnpack["error"]
    assert "CPUExecutionProvider" in onnx_xnnpack["error"]


def test_the_csv_carries_runtime_sizes_and_scores(pipeline):
    _, _, _, tmp = pipeline
    export = farm("export", "--db", tmp / "farm.db", "--sweep", "pipeline", "--out", tmp / "reports")
    assert export.returncode == 0, export.stderr
    with open(tmp / "reports" / "pipeline-local.csv", newline="") as f:
        rows = {(row["variant"], row["delegate"]): row for row in csv.DictReader(f)}
    onnx = rows[("onnx", "none")]
    assert onnx["runtime"] == "onnxruntime" and float(onnx["agreement_with_source"]) == 1.0
    assert float(rows[("qat", "xnnpack")]["gzip_kb"]) < float(rows[("qat", "xnnpack")]["size_kb"])
    assert rows[("fp32", "xnnpack")]["rmse"] == ""  # a classification has no RMSE
