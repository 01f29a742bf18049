"""Turn a Keras model, SavedModel or .tflite into content-addressed TFLite variants.

TensorFlow is imported only inside the functions that actually convert; importing this
module, describing a .tflite (``describe_tflite``) and answering a conversion from the
cache never import it, so the benchmark path never pays TensorFlow's start-up cost.

Cache layout (under ``cache``, normally ``farm.paths.cache_dir()``)::

    variants/<sha256>.tflite      every produced model, named by the sha256 of its bytes
    conversions/<key>.json        one conversion result (a Variant, errors included);
                                  key = sha256 of (source sha, kind, options, tool versions)

Files are written to a temporary name in the same folder and renamed into place, so a
crash or a failed conversion never leaves a half-written file under a real name.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import warnings
import zipfile
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Iterable

from farm import datasets
from farm.errors import FarmError

log = logging.getLogger(__name__)

VARIANT_KINDS = ("fp32", "fp16", "dynamic", "int8", "int16x8", "edgetpu")
CALIBRATED_KINDS = ("int8", "int16x8", "edgetpu")
EDGETPU_CUSTOM_OP = "edgetpu-custom-op"
EDGETPU_COMPILER = "edgetpu_compiler"

_CACHE_FORMAT = 1
_MAX_REASON = 400
_BUILTINS_AND_FLEX = ["TFLITE_BUILTINS", "SELECT_TF_OPS"]


@dataclass
class Variant:
    """One TFLite file made from a model, or the reason it could not be made/used.

    ``error`` is set when the variant is unusable (conversion failed, the runtime can't
    allocate it, the Edge TPU compiler is missing...). When no file was produced at all,
    ``path`` is None, ``sha256`` is "" and ``size`` 0. ``validation`` says how the file
    was checked on this machine (allocate_tensors with ai_edge_litert, or why it could
    not be run here: Flex and Edge TPU models need runtimes the coordinator may lack).
    ``source`` is the model path as given (not part of the cache key).
    """

    model: str
    kind: str
    source_sha: str
    sha256: str
    path: Path | None
    size: int
    description: dict = field(default_factory=dict)
    options: dict = field(default_factory=dict)
    error: str | None = None
    validation: str = ""
    source: str = ""

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["path"] = str(self.path) if self.path is not None else None
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Variant":
        names = {f.name for f in dataclasses.fields(cls)}
        d = {k: v for k, v in d.items() if k in names}
        if d.get("path") is not None:
            d["path"] = Path(d["path"])
        return cls(**d)


# --------------------------------------------------------------------------- public API


def convert_model(
    source: Path | str,
    kinds: Iterable[str],
    *,
    name: str | None = None,
    calibration: Path | str | None = None,
    calibration_samples: int = 200,
    cache: Path | str,
) -> list[Variant]:
    """Convert ``source`` into the requested variant kinds (in the order asked).

    ``source`` is a .keras/.h5 file, a SavedModel folder, or a .tflite (benchmarked as
    given: one variant of the inferred kind; ``kinds`` may then be empty or name only
    that kind). int8/int16x8/edgetpu need ``calibration``: an .npz or a folder of images,
    capped to ``calibration_samples`` samples. Bad input raises FarmError; a variant that
    converts badly or fails validation comes back with ``error`` set.
    """
    source = Path(source)
    cache = Path(cache)
    fmt = _source_format(source)
    kinds = _check_kinds(kinds)
    name = name or (source.name if fmt == "saved_model" else source.stem)

    if fmt == "tflite":
        return [_as_given(source, kinds, name, cache)]

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

    source_sha = _hash_source(source, fmt)
    tools = {"tensorflow": _tf_version(), "ai_edge_litert": _dist_version("ai-edge-litert")}
    job = _Job(source, fmt, name, source_sha, calib_info, tools, cache)
    try:
        return [job.variant(kind) for kind in kinds]
    finally:
        job.close()


def describe_tflite(path: Path | str) -> dict:
    """Inputs, outputs and ops of a .tflite, without TensorFlow.

    Returns ``{"inputs": [...], "outputs": [...], "ops": [...], "op_count": n,
    "needs_flex": bool}``; each input/output is ``{"name", "shape", "dtype",
    "quantization": {"scale", "zero_point"}}``. ``ops`` are the sorted unique operator
    names (builtin names like ``CONV_2D``, custom codes like ``FlexMatrixInverse`` or
    ``edgetpu-custom-op``) over all subgraphs, read from the flatbuffer; ``op_count``
    counts the operators of all subgraphs. Inputs/outputs come from the ai_edge_litert
    interpreter, or from the flatbuffer if the interpreter can't be created.
    """
    path = Path(path)
    data = _read_tflite_bytes(path)
    model = _parse_flatbuffer(data, path)
    op_names, op_count = _flatbuffer_ops(model, path)

    interp_error = None
    try:
        interp = _litert_interpreter(path)
    except ValueError as e:
        reason = _one_line(e)
        if "not a valid Flatbuffer" in reason or "allocation is null" in reason:
            raise FarmError(f"{path.name}: corrupt TFLite file ({reason})") from None
        interp, interp_error = None, reason
    except RuntimeError as e:  # e.g. an op version this runtime doesn't know
        interp, interp_error = None, _one_line(e)

    if interp is not None:
        inputs = [_io_from_details(d) for d in interp.get_input_details()]
        outputs = [_io_from_details(d) for d in interp.get_output_details()]
    else:
        log.debug("%s: interpreter not created (%s); describing from the flatbuffer", path, interp_error)
        inputs, outputs = _flatbuffer_io(model, path)

    return {
        "inputs": inputs,
        "outputs": outputs,
        "ops": sorted(op_names),
        "op_count": op_count,
        "needs_flex": any(op.startswith("Flex") for op in op_names),
    }


# --------------------------------------------------------------------------- the job


@dataclass
class _CalibInfo:
    path: Path
    sha256: str
    samples: int


class _Job:
    """Answers variants for one source, from the cache when possible.

    TensorFlow is imported and the model loaded only when a variant must really be
    converted (``_ensure_loaded``).
    """

    def __init__(self, source, fmt, name, source_sha, calib, tools, cache):
        self.source, self.fmt, self.name = source, fmt, name
        self.source_sha, self.calib, self.tools, self.cache = source_sha, calib, tools, cache
        self.done: dict[str, Variant] = {}
        self._tmp: tempfile.TemporaryDirectory | None = None
        self._saved_model: Path | None = None
        self._input_spec = None
        self._calib_x = None
        self._tf = None

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
        elif kind == "int8":
            opts = {"optimizations": ["DEFAULT"], "supported_ops": ["TFLITE_BUILTINS_INT8"],
                    "inference_input_type": "int8", "inference_output_type": "int8"}
        elif kind == "int16x8":
            opts = {"optimizations": ["DEFAULT"],
                    "supported_ops": ["EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8"]}
        if kind in CALIBRATED_KINDS:
            assert self.calib is not None
            opts["calibration_sha256"] = self.calib.sha256
            opts["calibration_samples"] = self.calib.samples
        return opts

    def key(self, kind: str, options: dict) -> str:
        payload = {"format": _CACHE_FORMAT, "source_sha": self.source_sha, "kind": kind,
                   "options": options, "tools": self.tools}
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()

    def cached(self, key: str) -> Variant | None:
        record = self.cache / "conversions" / f"{key}.json"
        try:
            v = Variant.from_dict(json.loads(record.read_text())["variant"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if v.sha256:
            path = _variant_path(self.cache, v.sha256)
            if not path.is_file() or path.stat().st_size != v.size or _sha256_file(path) != v.sha256:
                return None  # the stored file went missing or was damaged: convert again
            v.path = path
        v.model = self.name
        v.source = str(self.source)
        return v

    def store(self, key: str, v: Variant):
        record = {"format": _CACHE_FORMAT, "key": key, "variant": v.to_dict()}
        _atomic_write(self.cache / "conversions" / f"{key}.json",
                      json.dumps(record, indent=1, sort_keys=True).encode())

    # ---- variants

    def variant(self, kind: str) -> Variant:
        if kind in self.done:
            return self.done[kind]
        options = self.options(kind)
        key = self.key(kind, options)
        v = self.cached(key)
        if v is None:
            v = self._make(kind, options)
            self.store(key, v)
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
        try:
            data = self._run_converter(kind)
        except FarmError:
            raise
        except (KeyboardInterrupt, MemoryError):
            raise
        except Exception as e:  # the converter's own failure: cached with its reason
            return self._failed(kind, options, f"conversion failed: {_converter_reason(e)}")
        return self._finish(kind, options, data, allow_tf=True)

    def _finish(self, kind, options, data: bytes, allow_tf: bool) -> Variant:
        path = _store_variant(self.cache, data)
        sha = path.stem
        try:
            description = describe_tflite(path)
        except FarmError as e:
            return Variant(self.name, kind, self.source_sha, sha, path, len(data), {}, options,
                           error=f"produced an unreadable file: {e}", validation="describe failed",
                           source=str(self.source))
        error, validation = _validate(path, description, allow_tf=allow_tf)
        return Variant(self.name, kind, self.source_sha, sha, path, len(data), description,
                       options, error=error, validation=validation, source=str(self.source))

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
                return self._failed("edgetpu", options, f"{EDGETPU_COMPILER} failed: {_one_line(e)}")
            produced = out_dir / f"{model_in.stem}_edgetpu.tflite"
            if proc.returncode != 0 or not produced.is_file():
                reason = _last_line(proc.stderr) or _last_line(proc.stdout) or f"exit status {proc.returncode}"
                if proc.returncode == 0:
                    reason = f"no {produced.name} produced ({reason})"
                return self._failed("edgetpu", options, f"{EDGETPU_COMPILER} failed: {reason}")
            data = produced.read_bytes()
        return self._finish("edgetpu", options, data, allow_tf=self._tf is not None)

    # ---- TensorFlow side

    def _ensure_loaded(self):
        if self._saved_model is not None:
            return
        self._tf = _import_tf()
        if self.fmt == "saved_model":
            self._saved_model = self.source
            return
        try:
            with _quiet_native_logs():
                import keras

                model = keras.models.load_model(self.source, compile=False)
        except Exception as e:
            raise FarmError(f"{self.source.name}: can't load the Keras model: {_one_line(e, 300)}") from None
        self._tmp = tempfile.TemporaryDirectory(prefix="farm-convert-")
        export_dir = Path(self._tmp.name) / "saved_model"
        try:
            with _quiet_native_logs():
                model.export(str(export_dir), verbose=False)
        except Exception as e:
            raise FarmError(f"{self.source.name}: can't export the Keras model for conversion: "
                            f"{_one_line(e, 300)}") from None
        self._saved_model = export_dir

    def _ensure_calibration(self):
        if self._calib_x is not None:
            return
        tf = self._tf
        try:
            with _quiet_native_logs():
                loaded = tf.saved_model.load(str(self._saved_model))
        except Exception as e:
            raise FarmError(f"{self.source.name}: can't load the SavedModel: {_one_line(e, 300)}") from None
        sigs = loaded.signatures
        sig = sigs.get("serving_default") or (next(iter(sigs.values())) if len(sigs) == 1 else None)
        if sig is None:
            raise FarmError(f"{self.source.name}: no serving_default signature to convert")
        args, kwargs = sig.structured_input_signature
        specs = list(args) + list(kwargs.values())
        if len(specs) != 1:
            raise FarmError(f"{self.name}: calibration supports single-input models only; "
                            f"this model has {len(specs)} inputs")
        spec = specs[0]
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

    def _run_converter(self, kind: str) -> bytes:
        tf = self._tf
        opts = self.options(kind)
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
        with _quiet_native_logs():
            return conv.convert()


# --------------------------------------------------------------------------- .tflite as given


def _as_given(source: Path, kinds: list[str], name: str, cache: Path) -> Variant:
    description = describe_tflite(source)
    kind = _infer_kind(description)
    others = [k for k in kinds if k != kind]
    if others:
        raise FarmError(
            f"{source.name}: a .tflite is benchmarked as given (it is {kind}); "
            f"it can't be converted further to {', '.join(others)}"
        )
    data = source.read_bytes()
    path = _store_variant(cache, data)
    error, validation = _validate(path, description, allow_tf=False)
    v = Variant(model=name, kind=kind, source_sha=path.stem, sha256=path.stem, path=path,
                size=len(data), description=description, options={"as_given": True},
                error=error, validation=validation, source=str(source))
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
        interp = _litert_interpreter(path)
        interp.allocate_tensors()
        return None, f"allocate_tensors ok (ai_edge_litert {_dist_version('ai-edge-litert')})"
    except Exception as e:
        reason = _one_line(e, _MAX_REASON)
    if not (description.get("needs_flex") and any(s in reason for s in _FLEX_MISSING)):
        return reason, "allocate_tensors failed (ai_edge_litert)"

    # ai_edge_litert has no Flex kernels. tf.lite.Interpreter had them up to TF 2.19; TF
    # 2.20+ pip wheels ship without them too (google-ai-edge/LiteRT#6458).
    if not allow_tf:
        return None, "not run here: needs Flex (Select TF ops), which ai_edge_litert lacks"
    tf = _import_tf()
    try:
        with warnings.catch_warnings(), _quiet_native_logs():
            warnings.simplefilter("ignore")
            tf_interp = tf.lite.Interpreter(model_path=str(path))
            tf_interp.allocate_tensors()
        return None, f"allocate_tensors ok (tf.lite.Interpreter with Flex, TF {tf.__version__})"
    except Exception as e:
        reason = _one_line(e, _MAX_REASON)
    if any(s in reason for s in _FLEX_MISSING):
        return None, (f"not run here: needs Flex (Select TF ops) and neither ai_edge_litert nor "
                      f"TF {tf.__version__}'s tf.lite.Interpreter has the Flex delegate; "
                      f"file parsed and described only")
    return reason, "allocate_tensors failed (tf.lite.Interpreter)"


def _litert_interpreter(path: Path):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    return Interpreter(model_path=str(path),
                       experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)


# --------------------------------------------------------------------------- flatbuffer


def _read_tflite_bytes(path: Path) -> bytes:
    if not path.exists():
        raise FarmError(f"{path}: file not found")
    if path.is_dir():
        raise FarmError(f"{path}: is a folder, expected a .tflite file")
    data = path.read_bytes()
    if not data:
        raise FarmError(f"{path.name}: corrupt TFLite file (it is empty)")
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise FarmError(f"{path.name}: not a TFLite model (no TFL3 flatbuffer identifier)")
    return data


def _parse_flatbuffer(data: bytes, path: Path):
    from ai_edge_litert import schema_py_generated as schema

    try:
        model = schema.Model.GetRootAs(data, 0)
        model.SubgraphsLength()
        model.OperatorCodesLength()
    except Exception as e:
        raise FarmError(f"{path.name}: corrupt TFLite file ({_one_line(e)})") from None
    return model


def _builtin_names() -> dict[int, str]:
    from ai_edge_litert import schema_py_generated as schema

    return {v: k for k, v in vars(schema.BuiltinOperator).items()
            if not k.startswith("_") and isinstance(v, int)}


def _flatbuffer_ops(model, path: Path) -> tuple[set[str], int]:
    try:
        builtin = _builtin_names()
        codes = []
        for i in range(model.OperatorCodesLength()):
            oc = model.OperatorCodes(i)
            code = max(oc.BuiltinCode(), oc.DeprecatedBuiltinCode())
            custom = oc.CustomCode()
            if custom is not None and builtin.get(code) == "CUSTOM":
                codes.append(custom.decode("utf-8", "replace"))
            else:
                codes.append(builtin.get(code, f"BUILTIN_{code}"))
        names: set[str] = set()
        count = 0
        for s in range(model.SubgraphsLength()):
            sub = model.Subgraphs(s)
            for j in range(sub.OperatorsLength()):
                names.add(codes[sub.Operators(j).OpcodeIndex()])
                count += 1
    except Exception as e:
        raise FarmError(f"{path.name}: corrupt TFLite file ({_one_line(e)})") from None
    return names, count


def _flatbuffer_io(model, path: Path) -> tuple[list[dict], list[dict]]:
    from ai_edge_litert import schema_py_generated as schema

    types = {v: _TFL_TO_NUMPY.get(k.lower(), k.lower()) for k, v in vars(schema.TensorType).items()
             if not k.startswith("_") and isinstance(v, int)}
    try:
        sub = model.Subgraphs(0)

        def tensor(i):
            t = sub.Tensors(i)
            q = t.Quantization()
            scale = float(q.Scale(0)) if q is not None and q.ScaleLength() else 0.0
            zp = int(q.ZeroPoint(0)) if q is not None and q.ZeroPointLength() else 0
            return {"name": (t.Name() or b"").decode("utf-8", "replace"),
                    "shape": [int(d) for d in (t.ShapeAsNumpy() if t.ShapeLength() else [])],
                    "dtype": types.get(t.Type(), str(t.Type())),
                    "quantization": {"scale": scale, "zero_point": zp}}

        inputs = [tensor(sub.Inputs(i)) for i in range(sub.InputsLength())]
        outputs = [tensor(sub.Outputs(i)) for i in range(sub.OutputsLength())]
    except Exception as e:
        raise FarmError(f"{path.name}: corrupt TFLite file ({_one_line(e)})") from None
    return inputs, outputs


_TFL_TO_NUMPY = {"float32": "float32", "float16": "float16", "float64": "float64", "int8": "int8",
                 "uint8": "uint8", "int16": "int16", "uint16": "uint16", "int32": "int32",
                 "uint32": "uint32", "int64": "int64", "uint64": "uint64", "bool": "bool",
                 "string": "object", "complex64": "complex64", "complex128": "complex128"}


def _io_from_details(d: dict) -> dict:
    import numpy as np

    scale, zero_point = d.get("quantization", (0.0, 0))
    return {"name": d["name"], "shape": [int(s) for s in d["shape"]],
            "dtype": np.dtype(d["dtype"]).name,
            "quantization": {"scale": float(scale), "zero_point": int(zero_point)}}


# --------------------------------------------------------------------------- sources


def _source_format(source: Path) -> str:
    """'keras' | 'h5' | 'saved_model' | 'tflite', after cheap checks that need no TF."""
    if not source.exists():
        raise FarmError(f"{source}: model not found")
    if source.is_dir():
        if (source / "saved_model.pb").is_file() or (source / "saved_model.pbtxt").is_file():
            return "saved_model"
        raise FarmError(f"{source}: not a SavedModel folder (no saved_model.pb)")
    suffix = source.suffix.lower()
    if suffix == ".keras":
        if not zipfile.is_zipfile(source):
            raise FarmError(f"{source.name}: not a Keras model (a .keras file is a zip archive; this one isn't)")
        return "keras"
    if suffix in (".h5", ".hdf5"):
        with source.open("rb") as f:
            head = f.read(8)
        if head != b"\x89HDF\r\n\x1a\n":
            raise FarmError(f"{source.name}: not a Keras .h5 model (not an HDF5 file)")
        return "h5"
    if suffix == ".tflite":
        _read_tflite_bytes(source)
        return "tflite"
    raise FarmError(
        f"{source.name}: unsupported model format '{source.suffix or '(no extension)'}' "
        f"(expected .keras, .h5, a SavedModel folder or .tflite)"
    )


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
        sha = _hash_files(path, files, tag=b"images")
    else:
        sha = _sha256_file(path)
    return _CalibInfo(path=path, sha256=sha, samples=samples)


def _hash_source(source: Path, fmt: str) -> str:
    if fmt == "saved_model":
        files = sorted((p for p in source.rglob("*") if p.is_file()),
                       key=lambda p: p.relative_to(source).as_posix())
        return _hash_files(source, files, tag=b"saved_model")
    return _sha256_file(source)


def _hash_files(root: Path, files: list[Path], tag: bytes) -> str:
    h = hashlib.sha256(tag + b"\0")
    for p in files:
        rel = p.relative_to(root).as_posix().encode()
        h.update(len(rel).to_bytes(8, "little") + rel)
        h.update(p.stat().st_size.to_bytes(8, "little"))
        with p.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# --------------------------------------------------------------------------- storage


def _variant_path(cache: Path, sha: str) -> Path:
    return cache / "variants" / f"{sha}.tflite"


def _store_variant(cache: Path, data: bytes) -> Path:
    sha = hashlib.sha256(data).hexdigest()
    path = _variant_path(cache, sha)
    if not (path.is_file() and path.stat().st_size == len(data) and _sha256_file(path) == sha):
        _atomic_write(path, data)
    return path


def _atomic_write(dest: Path, data: bytes) -> None:
    """Write ``dest`` via a temporary file in the same folder and an atomic rename."""
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
    except OSError as e:
        raise FarmError(f"{dest.parent}: can't write to the cache: {_one_line(e)}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o644)  # mkstemp makes 0600; these are shared artefacts
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, dest)
    except BaseException as e:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(e, OSError):
            raise FarmError(f"{dest}: can't write to the cache: {_one_line(e)}") from None
        raise


# --------------------------------------------------------------------------- tools


_TF_DISTS = ("tensorflow", "tensorflow-cpu", "tensorflow-intel", "tensorflow-macos",
             "tf-nightly", "tf-nightly-cpu")


def _dist_version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _tf_version() -> str | None:
    """TensorFlow's version from package metadata: answering from the cache must not import it."""
    for dist in _TF_DISTS:
        v = _dist_version(dist)
        if v:
            return v
    return None


def _import_tf():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        with _quiet_native_logs():
            import tensorflow as tf
    except ImportError as e:
        raise FarmError(f"converting models needs TensorFlow (pip install 'tflite-farm[convert]'): "
                        f"{_one_line(e)}") from None
    return tf


def _edgetpu_compiler_version() -> str | None:
    exe = shutil.which(EDGETPU_COMPILER)
    if exe is None:
        return None
    try:
        proc = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"unknown ({_one_line(e)})"
    return _last_line(proc.stdout) or _last_line(proc.stderr) or f"unknown (exit {proc.returncode})"


# TensorFlow's C++ start-up and converter chatter (absl/glog INFO and WARNING lines, CPU
# feature notices), which TF_CPP_MIN_LOG_LEVEL can't silence because most of it is written
# before absl is initialised. Anything else written to stderr meanwhile is passed through.
_NATIVE_NOISE = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog\(\) is called"
    r"|[IW]\d{4} \d\d:\d\d:\d\d"
    r"|To enable the following instructions:"
    r"|fully_quantize: \d"
    r"|INFO: Created TensorFlow Lite"
    r"|WARNING:absl:)"
)


@contextlib.contextmanager
def _quiet_native_logs():
    """Hide TensorFlow's native log noise on fd 2 (the CLI promises one-line errors)."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):
        yield
        return
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            with contextlib.suppress(Exception):
                sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            text = capture.read().decode("utf-8", "replace")
            kept = [ln for ln in text.splitlines() if ln.strip() and not _NATIVE_NOISE.match(ln)]
            if kept:
                os.write(2, ("\n".join(kept) + "\n").encode())
            if text:
                log.debug("TensorFlow said:\n%s", text)


# --------------------------------------------------------------------------- text


def _one_line(e: BaseException | str, limit: int = _MAX_REASON) -> str:
    text = " ".join(str(e).split()) or (type(e).__name__ if isinstance(e, BaseException) else "")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _last_line(text: str | None) -> str:
    lines = [ln.strip() for ln in (text or "").splitlines() if ln.strip()]
    return _one_line(lines[-1]) if lines else ""


def _strip_loc(msg: str) -> str:
    """Drop a leading MLIR ``loc(...)`` (balanced parentheses) and what precedes 'error:'."""
    msg = msg.strip()
    if msg.startswith("loc("):
        depth = 0
        for i, ch in enumerate(msg):
            if ch == "(":
                depth += 1
            elif ch == ")":
                depth -= 1
                if depth == 0:
                    msg = msg[i + 1 :].lstrip(": ").strip()
                    break
    return msg


def _converter_reason(e: BaseException) -> str:
    """One line from a TFLite converter error: its first MLIR error, plus its error code."""
    text = str(e)
    errors = []
    for line in text.splitlines():
        if "error:" in line:
            msg = _strip_loc(line.split("error:", 1)[1])
            if msg:
                errors.append(msg)
    if not errors:
        return _one_line(e)
    reason = errors[0]
    select = re.search(r"TF Select ops: ([^\n]+)", text)
    if select and "Select" not in reason:
        reason += f" (needs TF Select ops: {select.group(1).strip()})"
    code = re.search(r"Error code: (\w+)", text)
    if code:
        reason += f" [{code.group(1)}]"
    return _one_line(reason)


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name) or "model"
