"""The source model's own outputs on an eval set: what every variant is validated against (agreement_with_source,
rmse_vs_source). Computed once per (source, eval set, limit) by the coordinator with TensorFlow, and cached as .npy
beside the variants (``<cache>/source_outputs/<key>.npy``), so a sweep over the same data never loads TF for it again.
"""
from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import numpy as np

from farm.datasets import check_fits, load_npz
from farm.errors import FarmError, one_line
from farm.paths import atomic_write, sha256_file
from farm.sources import hash_source, source_format
from farm.tensorflow_logs import import_tf, quiet_native_logs, tf_version

BATCH = 256
MAX_VALUES = 1 << 20  # output values kept for a regression (as the agent's own cap on eval outputs)


def source_outputs(source: Path, eval_path: Path, limit: int | None, cache: Path) -> np.ndarray | None:
    """The source's first output on the eval set's first `limit` samples, one row per sample (N, values); None for a
    source that is itself a .tflite or .onnx (there is no other model to compare with)."""
    fmt = source_format(source)
    if fmt in ("tflite", "onnx"):
        return None
    key = hashlib.sha256(json.dumps({"format": 1, "source": hash_source(source, fmt), "eval": sha256_file(eval_path),
                                     "limit": limit, "tensorflow": tf_version()}).encode()).hexdigest()
    path = cache / "source_outputs" / f"{key}.npy"
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError):
        pass  # not computed yet, or damaged: compute it again
    x, _ = load_npz(eval_path)
    x = x[:limit] if limit else x
    outputs = _saved_model_outputs(source, x) if fmt == "saved_model" else _keras_outputs(source, x)
    outputs = outputs.reshape(len(x), -1).astype(np.float32)
    buffer = io.BytesIO()
    np.save(buffer, outputs, allow_pickle=False)
    atomic_write(path, buffer.getvalue())
    return outputs


def _keras_outputs(source: Path, x: np.ndarray) -> np.ndarray:
    import_tf()
    import keras

    try:
        with quiet_native_logs():
            model = keras.models.load_model(source, compile=False)
    except Exception as e:  # noqa: BLE001 - Keras's own reasons
        raise FarmError(f"{source.name}: can't load the Keras model: {one_line(e, 300)}") from None
    x = check_fits(x, model.inputs[0].shape, where="eval", model=source.name)
    with quiet_native_logs():
        out = model.predict(x.astype(np.float32), batch_size=BATCH, verbose=0)
    return np.asarray(out[0] if isinstance(out, (list, tuple)) else out)


def _saved_model_outputs(source: Path, x: np.ndarray) -> np.ndarray:
    tf = import_tf()
    with quiet_native_logs():
        signature = tf.saved_model.load(str(source)).signatures.get("serving_default")
    if signature is None:
        raise FarmError(f"{source.name}: no serving_default signature to compute the source model's outputs with")
    specs = signature.structured_input_signature[1]
    if len(specs) != 1:
        raise FarmError(f"{source.name}: eval supports single-input models only; this one has {len(specs)} inputs")
    name, spec = next(iter(specs.items()))
    x = check_fits(x, spec.shape.as_list(), where="eval", model=source.name).astype(spec.dtype.as_numpy_dtype)
    first = sorted(signature.structured_outputs)[0]  # a signature's outputs are a dict: the first by name
    with quiet_native_logs():
        parts = [signature(**{name: tf.constant(x[i:i + BATCH])})[first].numpy() for i in range(0, len(x), BATCH)]
    return np.concatenate(parts)
