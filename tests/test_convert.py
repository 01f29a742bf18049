"""farm.convert: real TensorFlow conversions of tiny models into content-addressed, validated variants."""
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import TFLITE_RUNTIME_PYTHON, refused

from farm import paths, tflite_file
from farm.cli import build_parser, main
from farm.commands.sweep import spec_from_args
from farm.convert import convert_model
from farm.sources import hash_source
from farm.tensorflow_logs import quiet_native_logs
from farm.tflite_file import describe_tflite
from farm.variants import ONNX_KINDS, TRAINED_KINDS, VARIANT_KINDS, Variant

REPO = Path(__file__).resolve().parent.parent
# The post-training kinds; the fine-tuned ones and ONNX (their own inputs and runtimes) are tests/test_optimize.py's.
ALL_KINDS = [k for k in VARIANT_KINDS if k not in TRAINED_KINDS + ONNX_KINDS]
HAVE_EDGETPU = shutil.which("edgetpu_compiler") is not None


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def litert(path: Path):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interp = Interpreter(model_path=str(path),
                         experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    interp.allocate_tensors()
    return interp


def leftovers(cache: Path) -> list[Path]:
    """Anything under the cache that is not a finished variant or conversion record."""
    bad = []
    for p in cache.rglob("*"):
        if p.is_dir():
            continue
        ok = (p.parent.name == "variants" and p.suffix == ".tflite" and p.stem == sha256(p)) or (
            p.parent.name == "conversions" and p.suffix == ".json" and json.loads(p.read_text())["key"] == p.stem)
        if not ok:
            bad.append(p)
    return bad


def run_python(code: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=300)


# --- fixtures: small real models ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    """digits.keras (8x8x1 -> 10, ~35k weights), its SavedModel and .h5, calibration data, a Flex model, and a
    model whose ReLU6 never fires on the calibration data (its int16x8 variant converts but can't be prepared)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import tensorflow as tf
    from PIL import Image

    work = tmp_path_factory.mktemp("convert")
    keras.utils.set_random_seed(7)
    inp = keras.Input((8, 8, 1), name="image")
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inp)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(64, activation="relu")(x)
    out = keras.layers.Dense(10, activation="softmax", name="probs")(x)
    digits = keras.Model(inp, out, name="digits")
    digits.save(work / "digits.keras")
    digits.save(work / "digits.h5")
    digits.export(str(work / "digits_savedmodel"), verbose=False)

    rng = np.random.default_rng(0)
    probe = rng.random((4, 8, 8, 1), dtype=np.float32)
    np.save(work / "probe.npy", probe)
    np.save(work / "probe_out.npy", digits.predict(probe, verbose=0))
    np.save(work / "n_params.npy", np.array(digits.count_params()))

    np.savez(work / "calib.npz", x=rng.random((12, 8, 8), dtype=np.float32), y=np.arange(12) % 10)
    np.savez(work / "calib_rgb.npz", x=rng.random((12, 8, 8, 3), dtype=np.float32))
    images = work / "calib_images"
    images.mkdir()
    for i in range(6):
        pixels = (rng.random((12, 10, 3)) * 255).astype(np.uint8)
        Image.fromarray(pixels, "RGB").save(images / f"img{i}.png")

    dead_in = keras.Input((8, 8, 1))
    y = keras.layers.Conv2D(4, 3, padding="same", activation="relu6",
                            bias_initializer=keras.initializers.Constant(-100.0))(dead_in)
    y = keras.layers.Dense(10)(keras.layers.Flatten()(y))
    keras.Model(dead_in, y).export(str(work / "dead_relu6"), verbose=False)

    class Inverse(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([1, 4, 4], tf.float32, name="m")])
        def __call__(self, m):
            return tf.linalg.inv(m) + 1.0  # MatrixInverse has no TFLite builtin: needs Flex

    inverse = Inverse()
    tf.saved_model.save(inverse, str(work / "inverse"), signatures=inverse.__call__.get_concrete_function())
    np.savez(work / "calib_4x4.npz", x=(np.eye(4) + rng.random((5, 4, 4)) * 0.1).astype(np.float32))
    return work


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def variants(work, cache) -> dict[str, Variant]:
    got = convert_model(work / "digits.keras", ALL_KINDS, calibration=work / "calib.npz", calibration_samples=8,
                        cache=cache)
    assert [v.kind for v in got] == ALL_KINDS
    return {v.kind: v for v in got}


# --- every kind ---------------------------------------------------------------------------------------------------

def test_every_kind_converts_and_allocates(variants):
    for kind in ("fp32", "fp16", "dynamic", "int8", "int16x8"):
        v = variants[kind]
        assert v.error is None, (kind, v.error)
        assert v.validation.startswith("allocate_tensors ok"), v.validation
        assert v.model == "digits"
        litert(v.path)  # and it really loads here


def test_edgetpu_needs_the_compiler(variants):
    v = variants["edgetpu"]
    if HAVE_EDGETPU:
        assert v.error is None and "edgetpu-custom-op" in v.description["ops"]
    else:
        assert v.error == "edgetpu_compiler not found on PATH"
        assert v.path is None and v.sha256 == "" and v.size == 0


def test_files_are_content_addressed(variants, work, cache):
    for v in variants.values():
        if v.path is None:
            continue
        assert v.path == cache / "variants" / f"{v.sha256}.tflite"
        assert sha256(v.path) == v.sha256
        assert v.size == v.path.stat().st_size
        assert v.source_sha == sha256(work / "digits.keras")
        assert v.source == str(work / "digits.keras")
    assert len({v.sha256 for v in variants.values() if v.path}) == 5


def test_fp32_description_and_outputs_match_keras(variants, work):
    v = variants["fp32"]
    d = v.description
    assert d["inputs"] == [{"name": "serving_default_image:0", "shape": [1, 8, 8, 1], "dtype": "float32",
                            "quantization": {"scale": 0.0, "zero_point": 0}}]
    assert len(d["outputs"]) == 1
    assert d["outputs"][0]["shape"] == [1, 10] and d["outputs"][0]["dtype"] == "float32"
    assert {"CONV_2D", "FULLY_CONNECTED", "SOFTMAX"} <= set(d["ops"])
    assert d["ops"] == sorted(set(d["ops"]))
    assert d["needs_flex"] is False

    interp = litert(v.path)
    node_ops = [op["op_name"] for op in interp._get_ops_details()]
    assert d["op_count"] == len(node_ops) and d["ops"] == sorted(set(node_ops))

    # the converted model computes what the Keras model computes
    probe, expected = np.load(work / "probe.npy"), np.load(work / "probe_out.npy")
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    for sample, want in zip(probe, expected):
        interp.set_tensor(inp["index"], sample[None])
        interp.invoke()
        np.testing.assert_allclose(interp.get_tensor(out["index"])[0], want, atol=1e-5)

    assert v.options == {"optimizations": [], "supported_ops": ["TFLITE_BUILTINS", "SELECT_TF_OPS"]}


def test_fp16_is_about_half_of_fp32(variants, work):
    n_params = int(np.load(work / "n_params.npy"))
    fp32, fp16 = variants["fp32"].size, variants["fp16"].size
    assert fp32 > 4 * n_params  # the float32 weights are in there
    assert 0.4 < fp16 / fp32 < 0.6, (fp16, fp32)
    assert "DEQUANTIZE" in variants["fp16"].description["ops"]
    weights = {t["dtype"] for t in litert(variants["fp16"].path).get_tensor_details()}
    assert np.float16 in weights


def test_dynamic_has_int8_weights_and_float_io(variants):
    v = variants["dynamic"]
    assert v.description["inputs"][0]["dtype"] == "float32"
    tensors = litert(v.path).get_tensor_details()
    int8_shapes = [tuple(t["shape"]) for t in tensors if t["dtype"] == np.int8]
    assert (64, 512) in int8_shapes  # the Dense(64) kernel over the flattened 8x8x8 conv output
    assert v.size < variants["fp32"].size / 3


def test_int8_has_int8_io_with_real_scales(variants):
    v = variants["int8"]
    for t in v.description["inputs"] + v.description["outputs"]:
        assert t["dtype"] == "int8"
        assert t["quantization"]["scale"] > 0
        assert -128 <= t["quantization"]["zero_point"] <= 127
    # calibration data in [0, 1): the input scale covers about 1/255 per step
    assert v.description["inputs"][0]["quantization"]["scale"] == pytest.approx(1 / 255, rel=0.05)
    assert v.options["inference_input_type"] == "int8"
    assert v.options["calibration_samples"] == 8
    assert v.options["supported_ops"] == ["TFLITE_BUILTINS_INT8"]
    dtypes = {t["dtype"] for t in litert(v.path).get_tensor_details()}
    assert np.float32 not in dtypes


def test_int16x8_has_int16_activations(variants):
    v = variants["int16x8"]
    dtypes = {t["dtype"] for t in litert(v.path).get_tensor_details()}
    assert np.int16 in dtypes and np.int8 in dtypes
    assert {"QUANTIZE", "DEQUANTIZE"} <= set(v.description["ops"])  # float io around int16 activations


# --- the conversion cache -----------------------------------------------------------------------------------------

def test_cached_conversion_never_imports_tensorflow(variants, work, cache):
    code = f"""
import json, sys, time
from pathlib import Path
from farm.convert import convert_model
from farm.sources import hash_source
t = time.perf_counter()
got = convert_model(Path({str(work / 'digits.keras')!r}), {ALL_KINDS!r}, calibration=Path({str(work / 'calib.npz')!r}),
                    calibration_samples=8, cache=Path({str(cache)!r}))
print(json.dumps({{"seconds": time.perf_counter() - t, "tensorflow": "tensorflow" in sys.modules,
                   "keras": "keras" in sys.modules, "variants": [v.to_dict() for v in got]}}))
"""
    run = run_python(code)
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout.strip().splitlines()[-1])
    assert out["tensorflow"] is False and out["keras"] is False
    assert out["seconds"] < 2
    assert out["variants"] == [variants[k].to_dict() for k in ALL_KINDS]  # errors come back from the cache too


def test_converting_keeps_stderr_clean(work, tmp_path):
    """TensorFlow's native start-up/converter log lines don't leak (the CLI's errors are one line)."""
    code = f"""
from farm.convert import convert_model
from farm.sources import hash_source
got = convert_model({str(work / 'digits.h5')!r}, ["fp32", "int8"], calibration={str(work / 'calib.npz')!r},
                    calibration_samples=4, cache={str(tmp_path / 'cache')!r})
print([v.error for v in got])
"""
    run = run_python(code)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[None, None]"
    assert run.stderr == ""


def test_only_tensorflow_chatter_is_hidden(capfd):
    with quiet_native_logs():
        os.write(2, b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
                    b"I0000 00:00:1795308785.795695   10113 port.cc:153] oneDNN custom operations are on.\n"
                    b"something real went wrong\n")
    assert capfd.readouterr().err == "something real went wrong\n"


def test_cache_key_follows_the_inputs(variants, work, cache):
    records = list((cache / "conversions").glob("*.json"))
    assert len(records) >= len(ALL_KINDS)
    # another calibration set is another int8 conversion; fp32 is untouched by calibration
    again = convert_model(work / "digits.keras", ["fp32", "int8"], calibration=work / "calib_images",
                          calibration_samples=4, cache=cache, name="digits-img")
    assert again[0].to_dict() == {**variants["fp32"].to_dict(), "model": "digits-img"}
    assert again[1].error is None
    assert again[1].options["calibration_sha256"] != variants["int8"].options["calibration_sha256"]
    assert again[1].description["inputs"][0]["dtype"] == "int8"
    assert len(list((cache / "conversions").glob("*.json"))) == len(records) + 1


def test_damaged_cached_file_is_converted_again(work, tmp_path):
    first = convert_model(work / "digits_savedmodel", ["dynamic"], cache=tmp_path)[0]
    first.path.write_bytes(b"TFL3 damaged")
    second = convert_model(work / "digits_savedmodel", ["dynamic"], cache=tmp_path)[0]
    assert second.error is None and second.sha256 == first.sha256 and sha256(second.path) == first.sha256


# --- other sources ------------------------------------------------------------------------------------------------

def test_savedmodel_and_h5_sources(variants, work, cache):
    sm = convert_model(work / "digits_savedmodel", ["fp32"], cache=cache)[0]
    assert sm.error is None and sm.model == "digits_savedmodel"
    assert sm.description["inputs"][0]["shape"] == [1, 8, 8, 1]
    assert sm.size == variants["fp32"].size  # same graph, same weights
    h5 = convert_model(work / "digits.h5", ["fp32"], cache=cache, name="digits")[0]
    assert h5.error is None and h5.source_sha == sha256(work / "digits.h5")
    assert h5.description["outputs"][0]["shape"] == [1, 10]


def test_savedmodel_sha_covers_every_file(work, tmp_path):
    copy = tmp_path / "sm"
    shutil.copytree(work / "digits_savedmodel", copy)
    before = hash_source(copy, "saved_model")
    assert before == hash_source(work / "digits_savedmodel", "saved_model")
    (copy / "assets").mkdir(exist_ok=True)
    (copy / "assets" / "vocab.txt").write_text("a\n")
    assert hash_source(copy, "saved_model") != before


def test_a_tflite_is_taken_as_given(variants, tmp_path, cache):
    for kind in ("fp32", "int8"):
        src = tmp_path / f"given_{kind}.tflite"
        shutil.copyfile(variants[kind].path, src)
        [v] = convert_model(src, [], cache=cache)
        assert v.kind == kind and v.error is None and v.sha256 == variants[kind].sha256
        assert v.source_sha == v.sha256 and v.model == f"given_{kind}" and v.description == variants[kind].description
        assert convert_model(src, [kind], cache=cache)[0].sha256 == v.sha256
    refused(lambda: convert_model(tmp_path / "given_fp32.tflite", ["fp16"], cache=cache),
            "given_fp32.tflite", "can't be converted further", "fp16")


def test_edgetpu_tflite_is_recognised(variants, tmp_path, cache):
    """A model carrying the edgetpu custom op (here: fp32 digits with one op re-coded) is an edgetpu variant."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    buf = variants["fp32"].path.read_bytes()
    model = schema.ModelT.InitFromObj(schema.Model.GetRootAs(buf, 0))
    custom = schema.BuiltinOperator.CUSTOM
    model.operatorCodes.append(schema.OperatorCodeT(deprecatedBuiltinCode=custom, builtinCode=custom,
                                                    customCode="edgetpu-custom-op"))
    model.subgraphs[0].operators[0].opcodeIndex = len(model.operatorCodes) - 1
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    src = tmp_path / "digits_edgetpu.tflite"
    src.write_bytes(builder.Output())

    [v] = convert_model(src, [], cache=cache)
    assert v.kind == "edgetpu" and "edgetpu-custom-op" in v.description["ops"]
    assert v.error is None and "Edge TPU runtime" in v.validation


STUB_COMPILER = """#!/bin/sh
# A stand-in for edgetpu_compiler that only exercises farm's plumbing (arguments, output name, errors).
if [ "$1" = "--version" ]; then echo "Edge TPU Compiler version {version}"; exit 0; fi
{body}
"""


def install_stub_compiler(folder: Path, version: str, body: str, monkeypatch):
    folder.mkdir()
    exe = folder / "edgetpu_compiler"
    exe.write_text(STUB_COMPILER.format(version=version, body=body))
    exe.chmod(0o755)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")


def test_edgetpu_compiler_is_run_on_the_int8_variant(variants, work, cache, tmp_path, monkeypatch):
    # "-s -o OUTDIR MODEL" -> OUTDIR/<stem>_edgetpu.tflite; this stub copies the model and appends a marker
    body = ('[ "$1" = "-s" ] && [ "$2" = "-o" ] || { echo "bad arguments: $*" >&2; exit 2; }\n'
            'out="$3/$(basename "$4" .tflite)_edgetpu.tflite"; cp "$4" "$out"; echo "Model compiled successfully."')
    install_stub_compiler(tmp_path / "bin", "0-copying-stub", body, monkeypatch)
    [v] = convert_model(work / "digits.keras", ["edgetpu"], calibration=work / "calib.npz", calibration_samples=8,
                        cache=cache)
    assert v.error is None, v.error
    assert v.sha256 == variants["int8"].sha256  # the stub's output, stored content-addressed
    assert v.options["edgetpu_compiler"] == "Edge TPU Compiler version 0-copying-stub"
    assert v.options["calibration_sha256"] == variants["int8"].options["calibration_sha256"]


def test_edgetpu_compiler_failure_is_reported(work, cache, tmp_path, monkeypatch):
    body = 'echo "Edge TPU Compiler version 0-failing-stub"; echo "ERROR: Model not quantized"; exit 1'
    install_stub_compiler(tmp_path / "bin", "0-failing-stub", body, monkeypatch)
    [v] = convert_model(work / "digits.keras", ["edgetpu"], calibration=work / "calib.npz", calibration_samples=8,
                        cache=cache)
    assert v.error == "edgetpu_compiler failed: ERROR: Model not quantized"
    assert v.path is None


# --- failures are reported, not dropped ---------------------------------------------------------------------------

def test_int16x8_that_cannot_be_prepared_is_reported(work, cache):
    int8, int16 = convert_model(work / "dead_relu6", ["int8", "int16x8"], calibration=work / "calib.npz",
                                calibration_samples=4, cache=cache)
    assert int8.error is None
    assert int16.path is not None and int16.path.is_file()  # it converted...
    assert "no_integer_overflow_from_quantization" in int16.error  # ...but the runtime can't prepare it
    assert "CONV_2D" in int16.error and "failed to prepare" in int16.error and "\n" not in int16.error
    assert int16.validation == "allocate_tensors failed (ai_edge_litert)"
    with pytest.raises(RuntimeError, match="failed to prepare"):
        litert(int16.path)
    cached = convert_model(work / "dead_relu6", ["int16x8"], calibration=work / "calib.npz",
                           calibration_samples=4, cache=cache)[0]
    assert cached.to_dict() == int16.to_dict()


def test_flex_model_is_flagged(work, cache):
    fp32, dynamic, int8 = convert_model(work / "inverse", ["fp32", "dynamic", "int8"],
                                        calibration=work / "calib_4x4.npz", cache=cache)
    for v in (fp32, dynamic):
        assert v.description["needs_flex"] is True
        assert "FlexMatrixInverse" in v.description["ops"]
        assert v.description["inputs"][0]["shape"] == [1, 4, 4]
        # converted fine; whether it runs depends on a Flex runtime, which this machine may not have
        assert v.error is None, v.error
        assert "Flex" in v.validation
    assert int8.path is None and int8.error.startswith("conversion failed:")
    assert "MatrixInverse" in int8.error and "\n" not in int8.error


def test_describe_never_imports_tensorflow(work, cache, variants):
    flex = convert_model(work / "inverse", ["fp32"], cache=cache)[0]
    code = f"""
import json, sys
from farm.tflite_file import describe_tflite
d = describe_tflite({str(flex.path)!r})
e = describe_tflite({str(variants['int8'].path)!r})
print(json.dumps({{"flex": d, "int8": e, "tensorflow": "tensorflow" in sys.modules}}))
"""
    run = run_python(code)
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout.strip().splitlines()[-1])
    assert out["tensorflow"] is False
    assert out["flex"] == flex.description and out["flex"]["needs_flex"] is True
    assert out["int8"] == variants["int8"].description


def test_describe_falls_back_to_the_flatbuffer(variants, monkeypatch):
    def no_interpreter(path):
        raise RuntimeError("pretend the runtime can't build this model")

    monkeypatch.setattr(tflite_file, "litert_interpreter", no_interpreter)
    for kind in ("fp32", "int8"):
        d = describe_tflite(variants[kind].path)
        assert d == variants[kind].description


# --- static shapes --------------------------------------------------------------------------------------------------

SHAPE_OPS = {"SHAPE", "STRIDED_SLICE", "PACK"}


def outputs(path: Path, x: np.ndarray) -> np.ndarray:
    interp = litert(path)
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    found = []
    for sample in x:
        interp.set_tensor(inp["index"], sample[None])
        interp.invoke()
        found.append(interp.get_tensor(out["index"])[0])
    return np.array(found)


@pytest.fixture(scope="module")
def static(work, cache) -> dict[str, Variant]:
    got = convert_model(work / "digits.keras", ["fp32", "int8"], calibration=work / "calib.npz",
                        calibration_samples=8, static_shapes=True, cache=cache)
    return {v.kind: v for v in got}


def test_static_shapes_fold_flattens_shape_ops(variants, static, work):
    """Keras Flatten on an unfixed batch leaves SHAPE -> STRIDED_SLICE -> PACK -> RESHAPE in the graph; with the batch
    fixed to 1 the converter folds them into a constant shape, and the model computes the same."""
    assert SHAPE_OPS <= set(variants["fp32"].description["ops"])
    probe = np.load(work / "probe.npy")
    for kind in ("fp32", "int8"):
        plain, fixed = variants[kind], static[kind]
        assert fixed.error is None and fixed.validation.startswith("allocate_tensors ok"), fixed.error
        assert not SHAPE_OPS & set(fixed.description["ops"]), fixed.description["ops"]
        assert "RESHAPE" in fixed.description["ops"]
        assert fixed.description["op_count"] == plain.description["op_count"] - 3
        assert [list(d["shape_signature"]) for d in litert(fixed.path).get_input_details()] == [[1, 8, 8, 1]]
        assert [list(d["shape_signature"]) for d in litert(plain.path).get_input_details()] == [[-1, 8, 8, 1]]
        if kind == "fp32":
            assert np.abs(outputs(fixed.path, probe) - outputs(plain.path, probe)).max() < 1e-6
        # Recorded with the variant, and its own conversion: another file under another cache key.
        assert fixed.options == {**plain.options, "static_shapes": True}
        assert fixed.description["static_shapes"] is True and "static_shapes" not in plain.description
        assert fixed.sha256 != plain.sha256


def test_static_shapes_are_cached_apart(static, work, cache):
    said = []
    again = convert_model(work / "digits.keras", ["fp32"], static_shapes=True, cache=cache, progress=said.append)
    assert said == ["converting digits fp32 … cached"]
    assert again[0].to_dict() == static["fp32"].to_dict()


def test_static_shapes_let_tflite_runtimes_xnnpack_take_every_node(variants, static, tflite_runtime_python):
    """tflite-runtime 2.14's XNNPACK takes no node of the plain fp32 (its shapes are computed at run time), and says
    so; every node of the static one."""
    agent = REPO / "agents" / "litert_agent.py"
    found = {}
    for name, variant in (("plain", variants["fp32"]), ("static", static["fp32"])):
        request = json.dumps({"model": str(variant.path), "runs": 3})
        run = subprocess.run([str(TFLITE_RUNTIME_PYTHON), str(agent)], input=request, capture_output=True, text=True,
                             timeout=120)
        reply = json.loads(run.stdout)
        assert run.returncode == 0 and reply["runtime"]["name"] == "tflite_runtime", run.stdout + run.stderr
        found[name] = reply["delegate"]
    total = variants["fp32"].description["op_count"]
    assert (found["plain"]["outcome"], found["plain"]["delegated_nodes"], found["plain"]["total_nodes"]) == (
        "not_applied", 0, total)
    assert "SHAPE -> STRIDED_SLICE -> PACK -> RESHAPE" in found["plain"]["message"]
    assert "(farm convert --static-shapes)" in found["plain"]["message"]
    assert (found["static"]["outcome"], found["static"]["delegated_nodes"], found["static"]["total_nodes"]) == (
        "applied", total - 3, total - 3)


def test_static_shapes_on_the_command_line(work, cache, capsys, monkeypatch):
    monkeypatch.setenv("FARM_CACHE", str(cache))
    assert main(["convert", str(work / "digits.keras"), "--static-shapes"]) == 0
    out = capsys.readouterr().out
    assert "converting digits fp32 … cached" in out and "static shapes)" in out

    args = build_parser().parse_args(["sweep", "run", "--model", str(work / "digits.keras"), "--static-shapes"])
    spec, _ = spec_from_args(args)
    assert spec.models[0].static_shapes is True
    args = build_parser().parse_args(["sweep", "run", "--model", str(work / "digits.keras")])
    assert spec_from_args(args)[0].models[0].static_shapes is False


def test_static_shapes_refused_where_they_cannot_be_made(work, variants, tmp_path, cache):
    given = tmp_path / "given.tflite"
    given.write_bytes(variants["fp32"].path.read_bytes())
    refused(lambda: convert_model(given, [], static_shapes=True, cache=cache),
            "given.tflite: a .tflite file is benchmarked as given; static shapes are made when converting")

    import keras

    inp = keras.Input((None, None, 1), name="image")
    out = keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(2, 3)(inp)))
    keras.Model(inp, out).save(tmp_path / "any_size.keras")
    message = refused(lambda: convert_model(tmp_path / "any_size.keras", ["fp32"], static_shapes=True, cache=cache))
    assert message == ("any_size: static shapes: input 'image' is [None, None, None, 1]; only its batch (the first "
                       "dimension) is fixed, to 1: the others need a size in the model")


# --- bad input: one-line FarmError naming the file ----------------------------------------------------------------

def test_bad_inputs(work, tmp_path, cache, variants):
    refused(lambda: convert_model(tmp_path / "nope.keras", ["fp32"], cache=cache), "nope.keras", "not found")

    (tmp_path / "model.keras").write_text("I am a text file\n")
    refused(lambda: convert_model(tmp_path / "model.keras", ["fp32"], cache=cache), "model.keras", "not a Keras model")

    (tmp_path / "model.h5").write_text("I am a text file\n")
    refused(lambda: convert_model(tmp_path / "model.h5", ["fp32"], cache=cache), "model.h5", "not an HDF5")

    (tmp_path / "model.onnx").write_bytes(b"\x08\x01")  # an ONNX ModelProto with ir_version 1 and nothing else
    refused(lambda: convert_model(tmp_path / "model.onnx", [], cache=cache), "model.onnx", "corrupt ONNX file (no graph")

    (tmp_path / "model.pt").write_bytes(b"\x08\x01")
    refused(lambda: convert_model(tmp_path / "model.pt", ["fp32"], cache=cache), "model.pt", "'.pt'")

    (tmp_path / "folder").mkdir()
    refused(lambda: convert_model(tmp_path / "folder", ["fp32"], cache=cache), "folder", "not a SavedModel")

    (tmp_path / "junk.tflite").write_bytes(b"\x00" * 64)
    refused(lambda: convert_model(tmp_path / "junk.tflite", [], cache=cache), "junk.tflite", "not a TFLite model")
    refused(lambda: describe_tflite(tmp_path / "junk.tflite"), "junk.tflite")

    whole = variants["fp32"].path.read_bytes()
    (tmp_path / "truncated.tflite").write_bytes(whole[: len(whole) // 2])
    refused(lambda: convert_model(tmp_path / "truncated.tflite", [], cache=cache), "truncated.tflite", "corrupt")

    (tmp_path / "empty.tflite").write_bytes(b"")
    refused(lambda: describe_tflite(tmp_path / "empty.tflite"), "empty.tflite", "empty")

    message = refused(lambda: convert_model(work / "digits.keras", ["fp32", "int4"], cache=cache), "'int4'")
    assert all(kind in message for kind in VARIANT_KINDS)

    refused(lambda: convert_model(work / "digits.keras", ["fp32", "int16x8"], cache=cache),
            "int16x8", "calibration")
    refused(lambda: convert_model(work / "digits.keras", ["int8"], calibration=tmp_path / "nope.npz", cache=cache),
            "nope.npz", "not found")


def test_bad_inputs_found_while_converting(work, tmp_path, cache):
    """These need the model loaded (TensorFlow) to tell; still one line naming the file."""
    message = refused(lambda: convert_model(work / "digits.keras", ["int8"], calibration=work / "calib_rgb.npz",
                                            cache=cache))
    assert message == "calib_rgb.npz: samples have shape (8, 8, 3) but model 'digits' input is (8, 8, 1)"

    import zipfile
    with zipfile.ZipFile(tmp_path / "zipped.keras", "w") as z:
        z.writestr("hello.txt", "not a model")
    refused(lambda: convert_model(tmp_path / "zipped.keras", ["fp32"], cache=tmp_path / "c"),
            "zipped.keras", "can't load the Keras model")


def test_nothing_half_written(work, tmp_path, monkeypatch, cache):
    assert leftovers(cache) == []  # after every conversion and failure above

    fresh = tmp_path / "fresh"

    def full_disk(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(paths.os, "replace", full_disk)
    refused(lambda: convert_model(work / "digits_savedmodel", ["fp32"], cache=fresh),
            "can't write to the cache", "No space left on device")
    assert [p for p in fresh.rglob("*") if p.is_file()] == []
