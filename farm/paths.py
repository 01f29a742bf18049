"""Where tflite-farm keeps things on the coordinator."""
import os
from pathlib import Path


def cache_dir() -> Path:
    """Content-addressed variants and the conversion cache: $FARM_CACHE, else ~/.cache/tflite-farm."""
    return Path(os.environ.get("FARM_CACHE") or Path.home() / ".cache" / "tflite-farm")
