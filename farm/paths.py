"""Where tflite-farm keeps things on the coordinator."""

from __future__ import annotations
import hashlib
import os
from pathlib import Path


def cache_dir() -> Path:
    """Content-addressed variants and the conversion cache: $FARM_CACHE, else ~/.cache/tflite-farm."""
    return Path(os.environ.get("FARM_CACHE") or Path.home() / ".cache" / "tflite-farm")


def sha256_file(path: str | Path) -> str:
    """The sha256 of a file's content, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
