"""tflite-farm: benchmark TensorFlow Lite (LiteRT) models across a farm of edge devices."""
from pathlib import Path

__version__ = "0.1.0"

REPO = Path(__file__).resolve().parent.parent
# The agent is shipped to hosts as a single file and the dashboard is a Streamlit app: both live beside the package.
AGENT_PATH = REPO / "agents" / "litert_agent.py"
DASHBOARD_PATH = REPO / "dashboard"
