"""Fine-tuning before conversion: quantization-aware training (variant qat) and magnitude pruning (pruned,
pruned-int8), with tensorflow-model-optimization (tfmot).

tfmot 0.8 wraps tf-keras (Keras 2) models only. A Keras 3 model is rebuilt layer by layer in tf-keras, from its config
without the initializer/regularizer/constraint entries (whose Keras 3 forms tf-keras can't read), and given its trained
weights; the rebuilt model's outputs equal the original's. TensorFlow, tf-keras and tfmot are imported only here, when
a variant must really be trained.
"""
from __future__ import annotations

import inspect
import warnings
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from farm.errors import one_line
from farm.tensorflow_logs import dist_version, quiet_native_logs
from farm.variants import VariantUnusable

# tf-keras requires the full `tensorflow` wheel (a second TensorFlow beside tensorflow-cpu) and tfmot pins absl-py
# below 2 (TensorFlow's is 2.x): installed with their dependencies they would break TensorFlow, so they come without.
TFMOT_PACKAGES = ("tf-keras==2.21.0", "tensorflow-model-optimization==0.8.1")  # `make` installs these too
TFMOT_INSTALL = f"pip install --no-deps {' '.join(TFMOT_PACKAGES)}"
SEED = 0


class FineTune(BaseModel):
    """The budget of quantization-aware fine-tuning (a model entry's `qat:`)."""

    model_config = ConfigDict(extra="forbid")
    epochs: int = Field(default=1, ge=1, le=1000)
    batch_size: int = Field(default=64, ge=1, le=65536)
    learning_rate: float = Field(default=1e-4, gt=0, le=1)


class Pruning(FineTune):
    """Magnitude pruning to `sparsity` (the share of each prunable weight tensor set to zero), fine-tuned as above
    (a model entry's `pruning:`)."""

    sparsity: float = Field(default=0.5, gt=0, lt=1)


class CannotFineTune(VariantUnusable):
    """Why a model can't be fine-tuned here: its variant is kept, unusable, with this reason."""


def tfmot_versions() -> dict:
    return {"tf_keras": dist_version("tf-keras"), "tfmot": dist_version("tensorflow-model-optimization")}


def _import():
    try:
        with quiet_native_logs(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import tensorflow_model_optimization as tfmot
            import tf_keras
    except Exception as e:  # noqa: BLE001 - ImportError, or a version clash raised while importing
        raise CannotFineTune(f"needs tf-keras and tensorflow-model-optimization ({TFMOT_INSTALL}): "
                             f"{one_line(e, 300)}") from None
    return tf_keras, tfmot


def load_tf_keras(source: Path, fmt: str):
    """The source model as a tf-keras model: read by tf-keras itself (.h5, tf-keras files, Keras SavedModels), or,
    for a Keras 3 file, rebuilt in tf-keras."""
    tf_keras, _ = _import()
    try:
        with quiet_native_logs():
            return tf_keras.models.load_model(source, compile=False)
    except Exception as e:  # noqa: BLE001 - any reader error: try the Keras 3 path, or say why not
        first = one_line(e, 300)
    if fmt != "keras":
        raise CannotFineTune(f"tf-keras can't load {source.name}: {first}")
    import keras

    with quiet_native_logs():
        model = keras.models.load_model(source, compile=False)
    try:
        return _rebuild(model, tf_keras)
    except Exception as e:  # noqa: BLE001 - a layer tf-keras lacks, a shared layer, a weight mismatch
        raise CannotFineTune(f"can't rebuild the Keras 3 model in tf-keras for tfmot: {one_line(e, 300)}") from None


def _layer(tf_keras, class_name: str, config: dict):
    cls = getattr(tf_keras.layers, class_name, None)
    if cls is None:
        raise ValueError(f"tf-keras has no layer {class_name}")
    accepted = inspect.signature(cls.__init__).parameters
    config = {key: value for key, value in config.items()
              if not key.endswith(("_initializer", "_regularizer", "_constraint"))
              and (key in accepted or key in ("name", "trainable"))}
    return cls.from_config(config)


def _rebuild(model, tf_keras):
    """A Keras 3 Sequential or functional model, rebuilt in tf-keras with the same weights."""
    config = model.get_config()
    if type(model).__name__ == "Sequential":
        entries = config["layers"]
        first = entries[0] if entries and entries[0]["class_name"] == "InputLayer" else None
        x = inputs = tf_keras.Input(shape=(first["config"]["batch_shape"] if first else model.inputs[0].shape)[1:],
                                    name=first["config"]["name"] if first else None)
        for layer in model.layers:
            rebuilt = _layer(tf_keras, type(layer).__name__, layer.get_config())
            x = rebuilt(x)
            rebuilt.set_weights(layer.get_weights())
        return tf_keras.Model(inputs, x, name=model.name)
    originals = {layer.name: layer for layer in model.layers}
    tensors: dict = {}

    def tensor(value):
        if isinstance(value, dict) and value.get("class_name") == "__keras_tensor__":
            name, _, index = value["config"]["keras_history"]
            out = tensors[name]
            return out[index] if isinstance(out, (list, tuple)) else out
        if isinstance(value, (list, tuple)):
            return [tensor(v) for v in value]
        return value

    for entry in config["layers"]:
        name = entry["name"]
        if entry["class_name"] == "InputLayer":
            tensors[name] = tf_keras.Input(shape=entry["config"]["batch_shape"][1:], name=name)
            continue
        if len(entry["inbound_nodes"]) != 1:
            raise ValueError(f"layer {name} is called {len(entry['inbound_nodes'])} times (shared layers)")
        node = entry["inbound_nodes"][0]
        rebuilt = _layer(tf_keras, entry["class_name"], entry["config"])
        tensors[name] = rebuilt(*tensor(node["args"]), **{k: tensor(v) for k, v in node["kwargs"].items()})
        rebuilt.set_weights(originals[name].get_weights())

    def ends(spec):
        specs = spec if isinstance(spec[0], list) else [spec]
        found = [tensors[s[0]] for s in specs]
        return found if len(found) > 1 else found[0]

    return tf_keras.Model(ends(config["input_layers"]), ends(config["output_layers"]), name=model.name)


def _loss(tf_keras, model, x: np.ndarray, y: np.ndarray):
    """The loss the training labels call for: integer labels over a class vector are a classification (from logits
    unless the model already outputs probabilities); anything else is a regression (mean squared error)."""
    out = model(x[: min(len(x), 32)], training=False).numpy()
    if y.dtype.kind in "iub" and out.ndim == 2 and out.shape[1] > 1:
        probabilities = bool(np.all(out >= 0) and np.allclose(out.sum(axis=1), 1.0, atol=1e-3))
        return tf_keras.losses.SparseCategoricalCrossentropy(from_logits=not probabilities)
    return tf_keras.losses.MeanSquaredError()


def _fit(tf_keras, model, x, y, budget: FineTune, callbacks=()) -> None:
    tf_keras.utils.set_random_seed(SEED)
    model.compile(optimizer=tf_keras.optimizers.Adam(budget.learning_rate), loss=_loss(tf_keras, model, x, y))
    with quiet_native_logs():
        model.fit(x, y, epochs=budget.epochs, batch_size=budget.batch_size, verbose=0, shuffle=True,
                  callbacks=list(callbacks))


def quantization_aware(model, x: np.ndarray, y: np.ndarray, budget: FineTune):
    """The model with tfmot's fake-quantization wrappers, fine-tuned on (x, y): convert it with Optimize.DEFAULT."""
    tf_keras, tfmot = _import()
    try:
        with quiet_native_logs():
            wrapped = tfmot.quantization.keras.quantize_model(model)
    except Exception as e:  # noqa: BLE001 - tfmot's own reason (a layer it can't quantize, a subclassed model)
        raise CannotFineTune(f"tfmot can't quantize this model: {one_line(e, 300)}") from None
    _fit(tf_keras, wrapped, x, y, budget)
    return wrapped


def pruned(model, x: np.ndarray, y: np.ndarray, budget: Pruning):
    """(model with the smallest weights of each prunable layer set to zero, fine-tuned on (x, y) with the pruning
    masks held, then stripped of its wrappers; the sparsity achieved over the pruned weights)."""
    tf_keras, tfmot = _import()
    sparsity = tfmot.sparsity.keras
    # Pruned to the target from the first step (frequency 1), so the whole budget fine-tunes the pruned model.
    schedule = sparsity.ConstantSparsity(budget.sparsity, begin_step=0, frequency=1)
    try:
        with quiet_native_logs():
            wrapped = sparsity.prune_low_magnitude(model, pruning_schedule=schedule)
    except Exception as e:  # noqa: BLE001 - tfmot's own reason
        raise CannotFineTune(f"tfmot can't prune this model: {one_line(e, 300)}") from None
    _fit(tf_keras, wrapped, x, y, budget, callbacks=[sparsity.UpdatePruningStep()])
    stripped = sparsity.strip_pruning(wrapped)
    return stripped, _sparsity(wrapped)


def _sparsity(wrapped) -> float:
    """The share of zeros in the weights tfmot pruned (each PruneLowMagnitude wrapper's prunable weights)."""
    zeros = total = 0
    for layer in wrapped.layers:
        for weight in getattr(layer, "pruning_vars", ()):
            values = weight[0].numpy()  # (weight, mask, threshold)
            zeros += int(np.count_nonzero(values == 0))
            total += values.size
    return round(zeros / total, 4) if total else 0.0
