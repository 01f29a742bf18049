"""Where tflite-farm keeps things on the coordinator, and how it writes them."""

from __future__ import annotations
import contextlib
import hashlib
import os
import secrets
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


def atomic_write(dest: Path, data: bytes) -> None:
    """Write `dest` through a temporary file beside it and a rename: a reader (or a crash) never sees half a file.

    The file gets the user's umask, as any file the user writes; OSError when it cannot be written."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    temp = dest.with_name(f".{dest.name}.{secrets.token_hex(4)}.tmp")
    try:
        handle = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temp, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise
