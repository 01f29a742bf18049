"""Turn a Keras model, SavedModel, .tflite or .onnx into content-addressed variants (kept in farm.variants' cache):
TFLite files from the TFLite converter (after fine-tuning, for qat and pruned kinds: farm.optimize) and ONNX files from
tf2onnx.

TensorFlow is imported only inside the functions that actually convert; importing this module and answering a
conversion from the cache never import it, so the benchmark path never pays TensorFlow's start-up cost.
"""
from __future__ import annotations

import logging
import re
import shutil
import subprocess
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from farm import datasets
from farm.errors import MAX_REASON, FarmError, last_line, one_line
from farm.onnx_file import describe_onnx, validate_onnx
from farm.optimize import FineTune, Pruning, tfmot_versions
from farm.paths import sha256_file
from farm.sources import hash_files, hash_source, source_format
from farm.tensorflow_logs import converter_reason, dist_version, import_tf, quiet_native_logs, tf_version
from farm.tflite_file import EDGETPU_CUSTOM_OP, describe_tflite, litert_interpreter
from farm.variants import (CALIBRATED_KINDS, ONNX_KINDS, TRAINED_KINDS, VARIANT_KINDS, Variant, cached_variant,
                           VariantUnusable, conversion_key, gzip_size, model_suffix, remember, store_variant)

log = logging.getLogger(__name__)

EDGETPU_COMPILER = "edgetpu_compiler"
_BUILTINS_AND_FLEX = ["TFLITE_BUILTINS", "SELECT_TF_OPS"]
ONNX_OPSET = 17
NO_TRAIN = ("needs training data to fine-tune on: an .npz with x and y (--train, or train: in the model's entry of "
            "the sweep spec)")


# --------------------------------------------------------------------------- public API


def convert_model(
    source: Path | str,
    kinds: Iterable[str],
    *,
    name: str | None = None,
    calibration: Path | str | None = None,
    calibration_samples: int = 200,
    train: Path | str | None = None,
    qat: FineTune | None = None,
    pruning: Pruning | None = None,
    static_shapes: bool = False,
    cache: Path | str,
    progress: Callable[[str], None] = lambda line: None,
) -> list[Variant]:
    """Convert ``source`` into the requested variant kinds (in the order asked).

    ``source`` is a .keras/.h5 file, a SavedModel folder, or a .tflite or .onnx (benchmarked
    as given: one variant of the inferred kind; ``kinds`` may then be empty or name only
    that kind). int8/int16x8/edgetpu/pruned-int8 need ``calibration``: an .npz or a folder of
    images, capped to ``calibration_samples`` samples. qat/pruned/pruned-int8 are fine-tuned
    on ``train`` (an .npz with x and y) within the ``qat``/``pruning`` budgets; without
    ``train`` they come back unusable, with the reason. With ``static_shapes``, the TFLite kinds
    are converted from the model's function traced on inputs whose batch is fixed to 1, so the
    shapes a graph computed at run time (Keras Flatten's SHAPE -> STRIDED_SLICE -> PACK ->
    RESHAPE) fold into constants; the variant records it (``static_shapes`` in its options and
    description). Bad input raises FarmError; a variant that converts badly or fails validation
    comes back with ``error`` set. ``progress`` is told, a line at a time, each variant's
    conversion as it starts and ends, or that it was cached.
    """
    source = Path(source)
    cache = Path(cache)
    fmt = source_format(source)
    kinds = _check_kinds(kinds)
    name = name or (source.name if fmt == "saved_model" else source.stem)

    if fmt in ("tflite", "onnx"):
        if static_shapes:
            raise FarmError(f"{source.name}: a {source.suffix} file is benchmarked as given; static shapes are made "
                            f"when converting: give its Keras model or SavedModel")
        return [_as_given(source, fmt, kinds, name, cache)]

    if not kinds:
        raise FarmError(f"{source.name}: no variants requested (known: {', '.join(VARIANT_KINDS)})")
    calib_info = None
    needs_calib = [k for k in kinds if k in CALIBRATED_KINDS]
    if needs_calib:
        if calibration is None:
            raise FarmError(
                f"{name}: variant {needs_calib[0]} needs calibration data "
                f"(an .npz or a folder of images)"
            )
        if calibration_samples < 1:
            raise FarmError(f"{name}: calibration_samples must be at least 1, got {calibration_samples}")
        calib_info = _calibration_info(Path(calibration), calibration_samples)
    train_info = None
    if train is not None and any(k in TRAINED_KINDS for k in kinds):
        train_info = _Training(Path(train), _train_sha(Path(train)), qat or FineTune(), pruning or Pruning())

    source_sha = hash_source(source, fmt)
    tools = {"tensorflow": tf_version(), "ai_edge_litert": dist_version("ai-edge-litert")}
    conversion = _Conversion(source, fmt, name, source_sha, calib_info, train_info, static_shapes, tools, cache,
                             progress)
    try:
        return [conversion.variant(kind) for kind in kinds]
    finally:
        conversion.close()


# --------------------------------------------------------------------------- the conversion


@dataclass
class _CalibInfo:
    path: Path
    sha256: str
    samples: int


@dataclass
class _Training:
    path: Path
    sha256: str
    qat: FineTune
    pruning: Pruning


class _Conversion:
    """Answers variants for one source, from the cache when possible.

    TensorFlow is imported and the model loaded only when a variant must really be
    converted (``_ensure_loaded``).
    """

    def __init__(self, source, fmt, name, source_sha, calib, train, static_shapes, tools, cache, progress):
        self.source, self.fmt, self.name = source, fmt, name
        self.source_sha, self.calib, self.train, self.tools, self.cache = source_sha, calib, train, tools, cache
        self.static_shapes = static_shapes
        self.progress = progress
        self.done: dict[str, Variant] = {}
        self._tmp: tempfile.TemporaryDirectory | None = None
        self._saved_model: Path | None = None
        self._signature = None
        self._calib_x = None
        self._tf = None
        self._tf_keras_model = None  # the source in tf-keras, for tfmot
        self._pruned = None  # (stripped pruned model, sparsity): shared by pruned and pruned-int8

    def close(self):
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    # ---- cache

    def options(self, kind: str) -> dict:
        if kind == "edgetpu":
            opts = {"from": "int8", **self.options("int8")}
            opts["edgetpu_compiler"] = _edgetpu_compiler_version()
            return opts
        opts: dict[str, Any] = {}
        if kind == "fp32":
            opts = {"optimizations": [], "supported_ops": _BUILTINS_AND_FLEX}
        elif kind == "fp16":
            opts = {"optimizations": ["DEFAULT"], "supported_ops": _BUILTINS_AND_FLEX,
                    "supported_types": ["float16"]}
        elif kind == "dynamic":
            opts = {"optimizations": ["DEFAULT"], "supported_ops": _BUILTINS_AND_FLEX}
        elif kind in ("int8", "pruned-int8"):
            opts = {"optimizations": ["DEFAULT"], "supported_ops": ["TFLITE_BUILTINS_INT8"],
                    "inference_input_type": "int8", "inference_output_type": "int8"}
        elif kind == "int16x8":
            opts = {"optimizations": ["DEFAULT"],
                    "supported_ops": ["EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8"]}
        elif kind == "qat":
            # Full int8 with int8 I/O, like int8, so the two compare directly; the ranges come from the fine-tuning's
            # fake-quantization, not from calibration data.
            opts = {"optimizations": ["DEFAULT"], "supported_ops": ["TFLITE_BUILTINS"],
                    "inference_input_type": "int8", "inference_output_type": "int8"}
        elif kind == "pruned":
            opts = {"optimizations": [], "supported_ops": _BUILTINS_AND_FLEX}
        elif kind == "onnx":
            opts = {"opset": ONNX_OPSET, "batch": 1, "tf2onnx": dist_version("tf2onnx")}
        if kind in CALIBRATED_KINDS:
            assert self.calib is not None
            opts["calibration_sha256"] = self.calib.sha256
            opts["calibration_samples"] = self.calib.samples
        if kind in TRAINED_KINDS and self.train is not None:
            budget = self.train.qat if kind == "qat" else self.train.pruning
            opts.update(train_sha256=self.train.sha256, fine_tune=budget.model_dump(), **tfmot_versions())
        if self.static_shapes and kind not in ONNX_KINDS:  # an ONNX variant always has its batch fixed
            opts["static_shapes"] = True
        return opts

    def cached(self, key: str) -> Variant | None:
        variant = cached_variant(self.cache, key)
        if variant is not None:
            variant.model = self.name
            variant.source = str(self.source)
        return variant

    # ---- variants

    def variant(self, kind: str) -> Variant:
        if kind in self.done:
            return self.done[kind]
        options = self.options(kind)
        what = f"converting {self.name} {kind} …"
        if kind in TRAINED_KINDS and self.train is None:
            self.done[kind] = self._failed(kind, options, f"{kind} {NO_TRAIN}")
            self.progress(f"{what} unusable: no training data")
            return self.done[kind]
        key = conversion_key(self.source_sha, kind, options, self.tools)
        v = self.cached(key)
        if v is not None:
            self.progress(f"{what} cached" + (" (unusable)" if v.error else ""))
        else:
            # A conversion takes seconds (minutes when fine-tuned; TensorFlow's import with the first): said as it
            # starts, so nobody watches a silent terminal.
            self.progress(what)
            start = time.monotonic()
            try:
                v = self._make(kind, options)
            except VariantUnusable as e:  # a tool missing here: not remembered, so installing it is enough
                v = self._failed(kind, options, f"{kind}: {e}")
            else:
                remember(self.cache, key, v)
            self.progress(f"{what} {'unusable after' if v.error else 'done in'} {time.monotonic() - start:.1f} s")
        if v.error:
            log.debug("%s %s: %s", self.name, kind, v.error)
        self.done[kind] = v
        return v

    def _failed(self, kind, options, error, validation="") -> Variant:
        return Variant(model=self.name, kind=kind, source_sha=self.source_sha, sha256="",
                       path=None, size=0, description={}, options=options,
                       error=error, validation=validation, source=str(self.source))

    def _make(self, kind: str, options: dict) -> Variant:
        if kind == "edgetpu":
            return self._edgetpu(options)
        self._ensure_loaded()
        if kind in CALIBRATED_KINDS:
            self._ensure_calibration()
        described: dict = {}
        try:
            if kind == "onnx":
                data = self._onnx()
            elif kind in TRAINED_KINDS:
                model, described = self._fine_tuned(kind)
                data = self._run_converter(kind, model)
            else:
                data = self._run_converter(kind)
        except (FarmError, VariantUnusable):
            raise
        except (KeyboardInterrupt, MemoryError):
            raise
        except Exception as e:  # the converter's own failure: cached with its reason
            return self._failed(kind, options, f"conversion failed: {converter_reason(e)}")
        return self._finish(kind, options, data, allow_tf=True, described=described)

    def _finish(self, kind, options, data: bytes, allow_tf: bool, described: dict | None = None) -> Variant:
        path = store_variant(self.cache, data, model_suffix(kind))
        sha = path.stem
        try:
            description = describe_onnx(path) if kind in ONNX_KINDS else describe_tflite(path)
        except FarmError as e:
            return Variant(self.name, kind, self.source_sha, sha, path, len(data), {}, options,
                           error=f"produced an unreadable file: {e}", validation="describe failed",
                           source=str(self.source), gzip_size=gzip_size(data))
        description.update(described or {})
        if options.get("static_shapes"):
            description["static_shapes"] = True
        error, validation = (validate_onnx(path) if kind in ONNX_KINDS
                             else _validate(path, description, allow_tf=allow_tf))
        return Variant(self.name, kind, self.source_sha, sha, path, len(data), description,
                       options, error=error, validation=validation, source=str(self.source),
                       gzip_size=gzip_size(data))

    def _edgetpu(self, options: dict) -> Variant:
        if options["edgetpu_compiler"] is None:
            return self._failed("edgetpu", options, f"{EDGETPU_COMPILER} not found on PATH")
        base = self.variant("int8")
        if base.error:
            return self._failed("edgetpu", options, f"the int8 variant it is compiled from failed: {base.error}")
        compiler = shutil.which(EDGETPU_COMPILER)
        if compiler is None:  # vanished since we asked for its version
            return self._failed("edgetpu", options, f"{EDGETPU_COMPILER} not found on PATH")
        with tempfile.TemporaryDirectory(prefix="farm-edgetpu-") as tmp:
            model_in = Path(tmp) / f"{_safe_name(self.name)}.tflite"
            shutil.copyfile(base.path, model_in)
            out_dir = Path(tmp) / "out"
            out_dir.mkdir()
            try:
                proc = subprocess.run([compiler, "-s", "-o", str(out_dir), str(model_in)],
                                      capture_output=True, text=True, timeout=1800)
            except (OSError, subprocess.TimeoutExpired) as e:
                return self._failed("edgetpu", options, f"{EDGETPU_COMPILER} failed: {one_line(e)}")
            produced = out_dir / f"{model_in.stem}_edgetpu.tflite"
            if proc.returncode != 0 or not produced.is_file():
                reason = last_line(proc.stderr) or last_line(proc.stdout) or f"exit status {proc.returncode}"
                if proc.returncode == 0:
                    reason = f"no {produced.name} produced ({reason})"
                return self._failed("edgetpu", options, f"{EDGETPU_COMPILER} failed: {reason}")
            data = produced.read_bytes()
        return self._finish("edgetpu", options, data, allow_tf=self._tf is not None)

    # ---- TensorFlow side

    def _ensure_loaded(self):
        if self._saved_model is not None:
            return
        self._tf = import_tf()
        if self.fmt == "saved_model":
            self._saved_model = self.source
            return
        try:
            with quiet_native_logs():
                import keras

                model = keras.models.load_model(self.source, compile=False)
        except Exception as e:
            raise FarmError(f"{self.source.name}: can't load the Keras model: {one_line(e, 300)}") from None
        self._tmp = tempfile.TemporaryDirectory(prefix="farm-convert-")
        export_dir = Path(self._tmp.name) / "saved_model"
        try:
            with quiet_native_logs():
                model.export(str(export_dir), verbose=False)
        except Exception as e:
            raise FarmError(f"{self.source.name}: can't export the Keras model for conversion: "
                            f"{one_line(e, 300)}") from None
        self._saved_model = export_dir

    def _serving_signature(self):
        """The SavedModel's serving function and its named input specs."""
        if self._signature is None:
            try:
                with quiet_native_logs():
                    loaded = self._tf.saved_model.load(str(self._saved_model))
            except Exception as e:
                raise FarmError(f"{self.source.name}: can't load the SavedModel: {one_line(e, 300)}") from None
            sigs = loaded.signatures
            sig = sigs.get("serving_default") or (next(iter(sigs.values())) if len(sigs) == 1 else None)
            if sig is None:
                raise FarmError(f"{self.source.name}: no serving_default signature to convert")
            self._signature = (loaded, sig, dict(sig.structured_input_signature[1]))
        return self._signature[1], self._signature[2]

    def _ensure_calibration(self):
        if self._calib_x is not None:
            return
        _, specs = self._serving_signature()
        if len(specs) != 1:
            raise FarmError(f"{self.name}: calibration supports single-input models only; "
                            f"this model has {len(specs)} inputs")
        spec = next(iter(specs.values()))
        shape = tuple(spec.shape.as_list())
        dtype = spec.dtype.as_numpy_dtype

        c = self.calib
        if c.path.is_dir():
            x = datasets.load_image_folder(c.path, shape, c.samples)
        else:
            x, _ = datasets.load_npz(c.path)
            x = x[: c.samples]
        x = datasets.check_fits(x, shape, where=c.path.name, model=self.name)
        self._calib_x = x.astype(dtype, copy=False)

    def _fine_tuned(self, kind: str):
        """(the tf-keras model fine-tuned for `kind`, what to add to its description)."""
        from farm import optimize

        if self._tf_keras_model is None:
            self._tf_keras_model = optimize.load_tf_keras(self.source, self.fmt)
        model = self._tf_keras_model
        x, y = self._training_data(model)
        if kind == "qat":
            return optimize.quantization_aware(model, x, y, self.train.qat), {}
        if self._pruned is None:
            self._pruned = optimize.pruned(model, x, y, self.train.pruning)
        pruned, sparsity = self._pruned
        return pruned, {"sparsity": sparsity, "target_sparsity": self.train.pruning.sparsity}

    def _training_data(self, model):
        x, y = datasets.load_npz(self.train.path)
        if y is None:
            raise FarmError(f"{self.train.path.name}: training data needs labels or targets (y) beside x")
        if len(y) != len(x):
            raise FarmError(f"{self.train.path.name}: {len(x)} samples (x) but {len(y)} targets (y)")
        x = datasets.check_fits(x, model.inputs[0].shape, where=self.train.path.name, model=self.name)
        return x.astype(np.float32, copy=False), y

    def _onnx(self) -> bytes:
        """The SavedModel's serving function through tf2onnx, with the batch fixed to 1 like the TFLite variants."""
        try:
            import tf2onnx
        except ImportError as e:
            raise VariantUnusable(f"needs tf2onnx (pip install 'tflite-farm[convert]'): {one_line(e)}") from None
        logging.getLogger("tf2onnx").setLevel(logging.ERROR)
        tf = self._tf
        sig, specs = self._serving_signature()
        names = list(specs)
        fixed = [tf.TensorSpec(_batch_of_one(spec.shape.as_list()), spec.dtype, name=name)
                 for name, spec in specs.items()]
        function = tf.function(lambda *inputs: sig(**dict(zip(names, inputs))))
        with quiet_native_logs():
            proto, _ = tf2onnx.convert.from_function(function, input_signature=fixed, opset=ONNX_OPSET)
        return proto.SerializeToString()

    def _static_converter(self, keras_model=None):
        """A converter of the model's function traced on inputs of a fixed shape, the batch 1: a shape the graph
        computed from its input's at run time is then a constant, which the converter folds away."""
        tf = self._tf
        if keras_model is not None:
            specs = [(t.name, t.shape, t.dtype) for t in keras_model.inputs]
            function = tf.function(lambda *inputs: keras_model(list(inputs) if len(inputs) > 1 else inputs[0]))
            owner = keras_model
        else:
            sig, named = self._serving_signature()
            specs = [(name, spec.shape, spec.dtype) for name, spec in named.items()]
            function = tf.function(lambda *inputs: sig(**dict(zip(named, inputs))))
            owner = self._signature[0]
        fixed = []
        for name, shape, dtype in specs:
            dims = _batch_of_one(list(shape))
            if None in dims:
                raise FarmError(f"{self.name}: static shapes: input {name!r} is {list(shape)}; only its batch (the "
                                f"first dimension) is fixed, to 1: the others need a size in the model")
            fixed.append(tf.TensorSpec(dims, dtype))
        with quiet_native_logs():
            concrete = function.get_concrete_function(*fixed)
        return tf.lite.TFLiteConverter.from_concrete_functions([concrete], owner)

    def _run_converter(self, kind: str, keras_model=None) -> bytes:
        tf = self._tf
        opts = self.options(kind)
        if self.static_shapes:
            conv = self._static_converter(keras_model)
        elif keras_model is not None:
            conv = tf.lite.TFLiteConverter.from_keras_model(keras_model)
        else:
            conv = tf.lite.TFLiteConverter.from_saved_model(str(self._saved_model))
        conv.optimizations = [getattr(tf.lite.Optimize, o) for o in opts["optimizations"]]
        conv.target_spec.supported_ops = {getattr(tf.lite.OpsSet, o) for o in opts["supported_ops"]}
        if "supported_types" in opts:
            conv.target_spec.supported_types = [getattr(tf, t) for t in opts["supported_types"]]
        if "inference_input_type" in opts:
            conv.inference_input_type = getattr(tf, opts["inference_input_type"])
            conv.inference_output_type = getattr(tf, opts["inference_output_type"])
        if kind in CALIBRATED_KINDS:
            x = self._calib_x

            def representative_dataset():
                for i in range(len(x)):
                    yield [x[i : i + 1]]

            conv.representative_dataset = representative_dataset
        with quiet_native_logs(), warnings.catch_warnings():
            # "Statistics for quantized inputs were expected": int8 I/O of a QAT model takes its ranges from training.
            warnings.simplefilter("ignore")
            return conv.convert()


# --------------------------------------------------------------------------- .tflite as given


def _as_given(source: Path, fmt: str, kinds: list[str], name: str, cache: Path) -> Variant:
    description = describe_onnx(source) if fmt == "onnx" else describe_tflite(source)
    kind = "onnx" if fmt == "onnx" else _infer_kind(description)
    others = [k for k in kinds if k != kind]
    if others:
        raise FarmError(
            f"{source.name}: a {source.suffix} file is benchmarked as given (it is {kind}); "
            f"it can't be converted further to {', '.join(others)}"
        )
    data = source.read_bytes()
    path = store_variant(cache, data, model_suffix(kind))
    error, validation = validate_onnx(path) if fmt == "onnx" else _validate(path, description, allow_tf=False)
    v = Variant(model=name, kind=kind, source_sha=path.stem, sha256=path.stem, path=path,
                size=len(data), description=description, options={"as_given": True},
                error=error, validation=validation, source=str(source), gzip_size=gzip_size(data))
    if error:
        log.debug("%s %s: %s", name, kind, error)
    return v


def _infer_kind(description: dict) -> str:
    if EDGETPU_CUSTOM_OP in description["ops"]:
        return "edgetpu"
    if any(i["dtype"] in ("int8", "uint8") for i in description["inputs"]):
        return "int8"
    return "fp32"


# --------------------------------------------------------------------------- validation


_FLEX_MISSING = ("Select TensorFlow op", "Flex delegate")


def _validate(path: Path, description: dict, *, allow_tf: bool) -> tuple[str | None, str]:
    """(error or None, how it was checked). Loads the file and allocates its tensors."""
    ops = description.get("ops", [])
    if EDGETPU_CUSTOM_OP in ops:
        return None, (f"not run here: {EDGETPU_CUSTOM_OP} needs the Edge TPU runtime; "
                      f"file parsed and described only")
    try:
        interp = litert_interpreter(path)
        interp.allocate_tensors()
        return None, f"allocate_tensors ok (ai_edge_litert {dist_version('ai-edge-litert')})"
    except Exception as e:
        reason = one_line(e, MAX_REASON)
    if not (description.get("needs_flex") and any(s in reason for s in _FLEX_MISSING)):
        return reason, "allocate_tensors failed (ai_edge_litert)"

    # ai_edge_litert has no Flex kernels. tf.lite.Interpreter had them up to TF 2.19; TF
    # 2.20+ pip wheels ship without them too (google-ai-edge/LiteRT#6458).
    if not allow_tf:
        return None, "not run here: needs Flex (Select TF ops), which ai_edge_litert lacks"
    tf = import_tf()
    try:
        with warnings.catch_warnings(), quiet_native_logs():
            warnings.simplefilter("ignore")
            tf_interp = tf.lite.Interpreter(model_path=str(path))
            tf_interp.allocate_tensors()
        return None, f"allocate_tensors ok (tf.lite.Interpreter with Flex, TF {tf.__version__})"
    except Exception as e:
        reason = one_line(e, MAX_REASON)
    if any(s in reason for s in _FLEX_MISSING):
        return None, (f"not run here: needs Flex (Select TF ops) and neither ai_edge_litert nor "
                      f"TF {tf.__version__}'s tf.lite.Interpreter has the Flex delegate; "
                      f"file parsed and described only")
    return reason, "allocate_tensors failed (tf.lite.Interpreter)"


# --------------------------------------------------------------------------- sources


def _check_kinds(kinds: Iterable[str] | None) -> list[str]:
    if isinstance(kinds, str):
        kinds = [kinds]
    out: list[str] = []
    for k in kinds or []:
        if k not in VARIANT_KINDS:
            raise FarmError(f"unknown variant {k!r} (known: {', '.join(VARIANT_KINDS)})")
        if k not in out:
            out.append(k)
    return out


def _calibration_info(path: Path, samples: int) -> _CalibInfo:
    if not path.exists():
        raise FarmError(f"{path}: calibration data not found")
    if path.is_dir():
        files = datasets.image_files(path)
        if not files:
            raise FarmError(f"{path.name}: no images (png/jpg/bmp) in the calibration folder")
        sha = hash_files(path, files, tag=b"images")
    else:
        sha = sha256_file(path)
    return _CalibInfo(path=path, sha256=sha, samples=samples)


def _train_sha(path: Path) -> str:
    if not path.is_file():
        raise FarmError(f"{path}: training data not found (an .npz with x and y)")
    return sha256_file(path)


# --------------------------------------------------------------------------- tools


def _edgetpu_compiler_version() -> str | None:
    exe = shutil.which(EDGETPU_COMPILER)
    if exe is None:
        return None
    try:
        proc = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"unknown ({one_line(e)})"
    return last_line(proc.stdout) or last_line(proc.stderr) or f"unknown (exit {proc.returncode})"


def _batch_of_one(shape: list) -> list:
    """A model input's shape with an unknown batch (its first dimension) fixed to 1, as every variant is run."""
    return [1 if i == 0 and d is None else d for i, d in enumerate(shape)]


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name) or "model"
