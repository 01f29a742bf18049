"""The demo's two small real models and its sweep (`farm demo`, in farm/commands/demo.py, runs them end to end).

A CNN trained on scikit-learn's bundled digits (no download, seeded) shows accuracy across variants; a MobileNetV2 with
random weights (weights=None: no download) shows realistic latencies. Both go through the same path as any user model:
spec → convert → plan → run → store → CSV.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

SEED = 7


def build_digits(workdir: Path) -> None:
    """Train the digits CNN; write digits.keras, its training set (what qat and pruning fine-tune on), a calibration
    set from the training images, and a held-out eval set."""
    if all((workdir / name).exists() for name in ("digits.keras", "digits_train.npz", "digits_calib.npz",
                                                  "digits_eval.npz")):
        return
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    keras = _keras()
    data = load_digits()
    x = (data.images / 16.0).astype(np.float32)[..., None]  # 8x8x1 in [0, 1]
    y = data.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.25, random_state=SEED, stratify=y)
    model = keras.Sequential([
        keras.Input(shape=(8, 8, 1), name="image"),
        keras.layers.Conv2D(16, 3, padding="same", activation="relu"),
        keras.layers.Conv2D(32, 3, padding="same", activation="relu"),
        keras.layers.MaxPooling2D(),
        keras.layers.Flatten(),
        keras.layers.Dense(64, activation="relu"),
        keras.layers.Dense(10, activation="softmax"),
    ])
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x_train, y_train, epochs=25, batch_size=32, verbose=0, shuffle=True)
    workdir.mkdir(parents=True, exist_ok=True)
    np.savez(workdir / "digits_train.npz", x=x_train, y=y_train)
    np.savez(workdir / "digits_calib.npz", x=x_train[:200])
    np.savez(workdir / "digits_eval.npz", x=x_test, y=y_test)
    model.save(workdir / "digits.keras")


def build_mobilenet(workdir: Path) -> None:
    """MobileNetV2 (alpha 0.35, 96x96, random weights) and a calibration set of random images."""
    if all((workdir / name).exists() for name in ("mobilenet_v2.keras", "mobilenet_v2_calib.npz")):
        return
    keras = _keras()
    model = keras.applications.MobileNetV2(input_shape=(96, 96, 3), alpha=0.35, weights=None, classes=10)
    rng = np.random.default_rng(SEED)
    workdir.mkdir(parents=True, exist_ok=True)
    np.savez(workdir / "mobilenet_v2_calib.npz", x=rng.uniform(-1, 1, (32, 96, 96, 3)).astype(np.float32))
    model.save(workdir / "mobilenet_v2.keras")


def _keras():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    keras.utils.set_random_seed(SEED)
    return keras


def demo_spec(workdir: Path, runs: int) -> dict:
    variants = ["fp32", "fp16", "dynamic", "int8", "int16x8"]
    return {
        "name": "demo",
        "models": [
            # Every conversion path on the model with labelled data: post-training, fine-tuned (one epoch of
            # quantization-aware training, one of pruning to 50%), and ONNX for ONNX Runtime beside LiteRT.
            {"name": "digits", "source": "digits.keras", "variants": [*variants, "qat", "pruned-int8", "onnx"],
             "calibration": "digits_calib.npz", "train": "digits_train.npz", "eval": "digits_eval.npz",
             "qat": {"epochs": 1}, "pruning": {"sparsity": 0.5, "epochs": 1}},
            {"name": "mobilenet_v2", "source": "mobilenet_v2.keras", "variants": list(variants),
             "calibration": "mobilenet_v2_calib.npz", "calibration_samples": 32},
        ],
        "devices": ["local"],
        "delegates": ["xnnpack", "none"],
        "threads": [1],
        "runs": runs,
        "warmup_runs": 5,
    }
