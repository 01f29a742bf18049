"""The .onnx file: read, checked and described (inputs, outputs, ops) with the `onnx` package, in the same shape as
farm.tflite_file describes a .tflite, so the store, the planner and the transports treat both alike."""
from __future__ import annotations

from pathlib import Path

from farm.errors import FarmError, one_line

MAX_ONNX_BYTES = 2 << 30  # protobuf's own limit for one file without external data

# ONNX TensorProto element types → numpy dtype names (the ones a model input or output can have)
_DTYPES = {1: "float32", 2: "uint8", 3: "int8", 4: "uint16", 5: "int16", 6: "int32", 7: "int64", 9: "bool",
           10: "float16", 11: "float64", 12: "uint32", 13: "uint64", 16: "bfloat16"}


def _onnx():
    try:
        import onnx
    except ImportError as e:
        raise FarmError(f"reading .onnx models needs the onnx package (pip install 'tflite-farm[convert]'): "
                        f"{one_line(e)}") from None
    return onnx


def describe_onnx(path: Path | str) -> dict:
    """``{"inputs", "outputs", "ops", "op_count", "needs_flex": False, "opset"}`` of an .onnx file; each input and
    output is ``{"name", "shape", "dtype"}``, a symbolic or unknown dimension shown as -1."""
    path = Path(path)
    onnx = _onnx()
    if path.stat().st_size > MAX_ONNX_BYTES:
        raise FarmError(f"{path.name}: larger than 2 GB (models with external data are not supported)")
    try:
        model = onnx.load_model(str(path), load_external_data=False)
    except Exception as e:  # noqa: BLE001 - protobuf's DecodeError and friends
        raise FarmError(f"{path.name}: corrupt ONNX file ({one_line(e)})") from None
    graph = model.graph
    if not graph.output or not graph.node:
        # protobuf reads almost any short byte string as some message: an ONNX model has a graph that computes
        raise FarmError(f"{path.name}: corrupt ONNX file (no graph: {len(graph.node)} nodes, "
                        f"{len(graph.output)} outputs)")
    initializers = {t.name for t in graph.initializer}
    ops = [node.op_type if not node.domain or node.domain == "ai.onnx" else f"{node.domain}.{node.op_type}"
           for node in graph.node]
    return {
        "inputs": [_value(v) for v in graph.input if v.name not in initializers],
        "outputs": [_value(v) for v in graph.output],
        "ops": sorted(set(ops)),
        "op_count": len(ops),
        "needs_flex": False,
        "opset": max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=None),
    }


def _value(info) -> dict:
    tensor = info.type.tensor_type
    dims = [d.dim_value if d.HasField("dim_value") else -1 for d in tensor.shape.dim]
    return {"name": info.name, "shape": dims, "dtype": _DTYPES.get(tensor.elem_type, f"onnx type {tensor.elem_type}")}


def validate_onnx(path: Path) -> tuple[str | None, str]:
    """(error or None, how it was checked): an ONNX Runtime session made on this machine's CPU."""
    try:
        import onnxruntime
    except ImportError:
        return None, "not run here: onnxruntime is not installed on the coordinator; file parsed and described only"
    try:
        onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as e:  # noqa: BLE001 - ORT raises its own Fail/InvalidGraph/... types
        return one_line(e), f"InferenceSession failed (onnxruntime {onnxruntime.__version__})"
    return None, f"InferenceSession ok (onnxruntime {onnxruntime.__version__})"
