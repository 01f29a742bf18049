"""tflite-farm: benchmark TensorFlow Lite (LiteRT) models across a farm of edge devices."""
import importlib.util
from pathlib import Path

__version__ = "0.1.0"

# agents/ sits beside farm/ in the repository and ships inside the package as farm.agents (pyproject.toml maps it),
# so a source checkout and an installed wheel both find the very same file.
AGENT_PATH = Path(importlib.util.find_spec("farm.agents").origin).with_name("litert_agent.py")
