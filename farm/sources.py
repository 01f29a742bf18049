"""A model source as the user gives it: which format it is (checked without TensorFlow) and its content hash (what
conversions and the source model's outputs are cached by)."""
from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

from farm.errors import FarmError
from farm.paths import sha256_file
from farm.tflite_file import read_tflite


def source_format(source: Path) -> str:
    """'keras' | 'h5' | 'saved_model' | 'tflite' | 'onnx', after cheap checks that need no TF."""
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
        read_tflite(source)
        return "tflite"
    if suffix == ".onnx":
        return "onnx"
    raise FarmError(
        f"{source.name}: unsupported model format '{source.suffix or '(no extension)'}' "
        f"(expected .keras, .h5, a SavedModel folder, .tflite or .onnx)"
    )


def hash_source(source: Path, fmt: str) -> str:
    if fmt == "saved_model":
        files = sorted((p for p in source.rglob("*") if p.is_file()),
                       key=lambda p: p.relative_to(source).as_posix())
        return hash_files(source, files, tag=b"saved_model")
    return sha256_file(source)


def hash_files(root: Path, files: list[Path], tag: bytes) -> str:
    h = hashlib.sha256(tag + b"\0")
    for p in files:
        rel = p.relative_to(root).as_posix().encode()
        h.update(len(rel).to_bytes(8, "little") + rel)
        h.update(p.stat().st_size.to_bytes(8, "little"))
        with p.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()
