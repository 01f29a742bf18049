"""The .tflite file: read, checked and described (inputs, outputs, ops, Flex) without TensorFlow.

The conversion step describes what it produced, the store keeps that description, and transports read it from there."""
from __future__ import annotations

import logging
from pathlib import Path

from farm.errors import FarmError, one_line

log = logging.getLogger(__name__)

EDGETPU_CUSTOM_OP = "edgetpu-custom-op"


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
    data = read_tflite(path)
    model = _parse_flatbuffer(data, path)
    op_names, op_count = _flatbuffer_ops(model, path)

    interp_error = None
    try:
        interp = litert_interpreter(path)
    except ValueError as e:
        reason = one_line(e)
        if "not a valid Flatbuffer" in reason or "allocation is null" in reason:
            raise FarmError(f"{path.name}: corrupt TFLite file ({reason})") from None
        interp, interp_error = None, reason
    except RuntimeError as e:  # e.g. an op version this runtime doesn't know
        interp, interp_error = None, one_line(e)

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


def litert_interpreter(path: Path):
    """A LiteRT interpreter of the file with the built-in CPU kernels only (no delegate applied)."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    return Interpreter(model_path=str(path),
                       experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)


def read_tflite(path: Path) -> bytes:
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
        raise FarmError(f"{path.name}: corrupt TFLite file ({one_line(e)})") from None
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
        raise FarmError(f"{path.name}: corrupt TFLite file ({one_line(e)})") from None
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
        raise FarmError(f"{path.name}: corrupt TFLite file ({one_line(e)})") from None
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
