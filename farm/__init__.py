"""tflite-farm: benchmark TensorFlow Lite (LiteRT) models across a farm of edge devices."""
from pathlib import Path

__version__ = "0.1.0"

# The agent is shipped to hosts as a single file, so it lives beside the package, not inside it.
AGENT_PATH = Path(__file__).resolve().parent.parent / "agents" / "litert_agent.py"
