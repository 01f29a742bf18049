"""TEST CODE, not part of tflite-farm: small real .tflite and .onnx models for the simulated phones, built without
TensorFlow.

tiny_mlp() writes a float32 multi-layer perceptron (FULLY_CONNECTED + RELU layers, then SOFTMAX) straight from the
TFLite flatbuffer schema that ai_edge_litert ships (schema_py_generated), with seeded random weights: a valid model
that LiteRT (and its XNNPACK delegate) really runs, made in milliseconds. tiny_onnx() writes the same kind of model as
ONNX (MatMul + Add layers, then Softmax) with onnx.helper, for the stand-in onnxruntime_perf_test.
"""
from __future__ import annotations

from pathlib import Path

import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as schema

INPUT_NAME = "input"
OUTPUT_NAME = "probabilities"


def _tensor(name: str, shape, buffer: int) -> "schema.TensorT":
    t = schema.TensorT()
    t.name = name.encode()
    t.shape = [int(s) for s in shape]
    t.type = schema.TensorType.FLOAT32
    t.buffer = buffer
    return t


def _opcode(code: int) -> "schema.OperatorCodeT":
    oc = schema.OperatorCodeT()
    oc.builtinCode = code
    oc.deprecatedBuiltinCode = min(code, 127)
    oc.version = 1
    return oc


def tiny_mlp(path: Path, sizes=(256, 512, 512, 10), seed: int = 0) -> Path:
    """Write an MLP with layer widths `sizes` (input first) to path; input "input" [1, sizes[0]] float32, output
    "probabilities" [1, sizes[-1]]. The default is 3 FULLY_CONNECTED + 1 SOFTMAX nodes and about 1.6 MB of weights."""
    rng = np.random.default_rng(seed)
    buffers = [schema.BufferT()]  # buffer 0: the empty sentinel

    def buffer(array=None) -> int:
        b = schema.BufferT()
        if array is not None:
            b.data = np.ascontiguousarray(array).tobytes()
        buffers.append(b)
        return len(buffers) - 1

    tensors = [_tensor(INPUT_NAME, (1, sizes[0]), buffer())]
    operators = []
    previous = 0
    for i in range(len(sizes) - 1):
        w = (rng.standard_normal((sizes[i + 1], sizes[i])) / np.sqrt(sizes[i])).astype(np.float32)
        b = (rng.standard_normal(sizes[i + 1]) * 0.1).astype(np.float32)
        tensors.append(_tensor(f"dense_{i}/kernel", w.shape, buffer(w)))
        tensors.append(_tensor(f"dense_{i}/bias", b.shape, buffer(b)))
        tensors.append(_tensor(f"dense_{i}/output", (1, sizes[i + 1]), buffer()))
        op = schema.OperatorT()
        op.opcodeIndex = 0
        op.inputs = [previous, len(tensors) - 3, len(tensors) - 2]
        op.outputs = [len(tensors) - 1]
        options = schema.FullyConnectedOptionsT()
        options.fusedActivationFunction = (schema.ActivationFunctionType.RELU if i < len(sizes) - 2
                                           else schema.ActivationFunctionType.NONE)
        op.builtinOptionsType = schema.BuiltinOptions.FullyConnectedOptions
        op.builtinOptions = options
        operators.append(op)
        previous = len(tensors) - 1
    tensors.append(_tensor(OUTPUT_NAME, (1, sizes[-1]), buffer()))
    softmax = schema.OperatorT()
    softmax.opcodeIndex = 1
    softmax.inputs = [previous]
    softmax.outputs = [len(tensors) - 1]
    softmax.builtinOptionsType = schema.BuiltinOptions.SoftmaxOptions
    softmax.builtinOptions = schema.SoftmaxOptionsT()
    softmax.builtinOptions.beta = 1.0
    operators.append(softmax)

    subgraph = schema.SubGraphT()
    subgraph.name = b"main"
    subgraph.tensors = tensors
    subgraph.inputs = [0]
    subgraph.outputs = [len(tensors) - 1]
    subgraph.operators = operators
    model = schema.ModelT()
    model.version = 3
    model.description = b"tflite-farm test phone: tiny MLP"
    model.operatorCodes = [_opcode(schema.BuiltinOperator.FULLY_CONNECTED), _opcode(schema.BuiltinOperator.SOFTMAX)]
    model.subgraphs = [subgraph]
    model.buffers = buffers
    builder = flatbuffers.Builder(1 << 20)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    path = Path(path)
    path.write_bytes(bytes(builder.Output()))
    return path


def tiny_onnx(path: Path, sizes=(256, 512, 10), seed: int = 0) -> Path:
    """Write a float32 ONNX model built with onnx.helper: MatMul + Add (+ Relu between layers) per layer, then Softmax;
    input "input" [1, sizes[0]], output "probabilities" [1, sizes[-1]], seeded random weights (about 0.5 MB by default).
    Opset 13 and IR version 8, which every ONNX Runtime since 1.10 loads (a phone's build may be old)."""
    from onnx import TensorProto, helper, numpy_helper, save

    rng = np.random.default_rng(seed)
    nodes, initializers = [], []
    previous = INPUT_NAME
    for i in range(len(sizes) - 1):
        w = (rng.standard_normal((sizes[i], sizes[i + 1])) / np.sqrt(sizes[i])).astype(np.float32)
        b = (rng.standard_normal(sizes[i + 1]) * 0.1).astype(np.float32)
        initializers += [numpy_helper.from_array(w, f"dense_{i}/kernel"), numpy_helper.from_array(b, f"dense_{i}/bias")]
        nodes.append(helper.make_node("MatMul", [previous, f"dense_{i}/kernel"], [f"dense_{i}/matmul"]))
        nodes.append(helper.make_node("Add", [f"dense_{i}/matmul", f"dense_{i}/bias"], [f"dense_{i}/output"]))
        previous = f"dense_{i}/output"
        if i < len(sizes) - 2:
            nodes.append(helper.make_node("Relu", [previous], [f"dense_{i}/relu"]))
            previous = f"dense_{i}/relu"
    nodes.append(helper.make_node("Softmax", [previous], [OUTPUT_NAME], axis=-1))
    graph = helper.make_graph(nodes, "tiny_mlp", [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT,
                                                                                [1, sizes[0]])],
                              [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, [1, sizes[-1]])],
                              initializer=initializers)
    model = helper.make_model(graph, producer_name="tflite-farm test phone",
                              opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    path = Path(path)
    save(model, str(path))
    return path
