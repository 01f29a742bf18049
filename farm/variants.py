"""Variant kinds, the Variant record, and the content-addressed cache that keeps them.

Cache layout (under ``cache``, normally ``farm.paths.cache_dir()``)::

    variants/<sha256>.tflite      every produced model, named by the sha256 of its bytes (.onnx for ONNX models)
    conversions/<key>.json        one conversion result (a Variant, errors included);
                                  key = sha256 of (source sha, kind, options, tool versions)

Files are written to a temporary name in the same folder and renamed into place, so a
crash or a failed conversion never leaves a half-written file under a real name.
"""
from __future__ import annotations

import dataclasses
import gzip
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from farm.errors import FarmError, one_line
from farm.paths import atomic_write, sha256_file

VARIANT_KINDS = ("fp32", "fp16", "dynamic", "int8", "int16x8", "edgetpu", "qat", "pruned", "pruned-int8", "onnx")
CALIBRATED_KINDS = ("int8", "int16x8", "edgetpu", "pruned-int8")
TRAINED_KINDS = ("qat", "pruned", "pruned-int8")  # fine-tuned on the model's training data before conversion
ONNX_KINDS = ("onnx",)  # run by ONNX Runtime; every other kind is a .tflite run by LiteRT

CACHE_FORMAT = 2  # 2: variants record their gzip-compressed size


def model_suffix(kind: str) -> str:
    return ".onnx" if kind in ONNX_KINDS else ".tflite"


def gzip_size(data: bytes) -> int:
    """The size a model ships at over a compressed download: pruning's zeros pay off here, not in the plain size."""
    return len(gzip.compress(data, compresslevel=9, mtime=0))


class VariantUnusable(Exception):
    """Why a variant can't be made here (a tool missing, a model a tool can't handle): kept, unusable, with this."""


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
    description: dict = field(default_factory=dict)  # pruned variants add "sparsity"; ONNX ones "opset"
    options: dict = field(default_factory=dict)
    error: str | None = None
    validation: str = ""
    source: str = ""
    gzip_size: int = 0

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


def conversion_key(source_sha: str, kind: str, options: dict, tools: dict) -> str:
    """The cache key of one conversion: what was converted, how, and with which tool versions."""
    payload = {"format": CACHE_FORMAT, "source_sha": source_sha, "kind": kind, "options": options, "tools": tools}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def cached_variant(cache: Path, key: str) -> Variant | None:
    """The variant a conversion made before, if its record and its file are still intact."""
    record = cache / "conversions" / f"{key}.json"
    try:
        variant = Variant.from_dict(json.loads(record.read_text())["variant"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if variant.sha256:
        path = variant_path(cache, variant.sha256, model_suffix(variant.kind))
        if not path.is_file() or path.stat().st_size != variant.size or sha256_file(path) != variant.sha256:
            return None  # the stored file went missing or was damaged: convert again
        variant.path = path
    return variant


def remember(cache: Path, key: str, variant: Variant) -> None:
    """Keep a conversion's result (errors included) under its key."""
    record = {"format": CACHE_FORMAT, "key": key, "variant": variant.to_dict()}
    _write(cache / "conversions" / f"{key}.json", json.dumps(record, indent=1, sort_keys=True).encode())


def variant_path(cache: Path, sha: str, suffix: str = ".tflite") -> Path:
    return cache / "variants" / f"{sha}{suffix}"


def store_variant(cache: Path, data: bytes, suffix: str = ".tflite") -> Path:
    sha = hashlib.sha256(data).hexdigest()
    path = variant_path(cache, sha, suffix)
    if not (path.is_file() and path.stat().st_size == len(data) and sha256_file(path) == sha):
        _write(path, data)
    return path


def _write(dest: Path, data: bytes) -> None:
    try:
        atomic_write(dest, data)
    except OSError as error:
        raise FarmError(f"{dest}: can't write to the cache: {one_line(error)}") from None
