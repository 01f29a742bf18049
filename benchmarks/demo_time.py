"""How long `farm demo` takes after install, from an empty folder and an empty conversion cache: the digits CNN trained
and converted to all eight variants (qat and pruning fine-tuned), MobileNetV2 built and converted, everything benchmarked
here. Target: under 3 minutes on this 2-core machine.

    .venv/bin/python benchmarks/demo_time.py
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_S = 180.0


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="farm-demo-") as folder:
        env = {**os.environ, "FARM_CACHE": str(Path(folder) / "cache")}  # no conversion from an earlier run
        start = time.perf_counter()
        run = subprocess.run([sys.executable, "-m", "farm", "demo", "--workdir", folder], env=env,
                             capture_output=True, text=True)
        wall = time.perf_counter() - start
    if run.returncode != 0:
        print(run.stdout[-3000:] + run.stderr[-3000:], file=sys.stderr)
        print(f"farm demo failed (exit {run.returncode}) after {wall:.1f} s")
        return 1
    verdict = "within" if wall <= TARGET_S else "OVER"
    print(f"farm demo, empty folder and cache: {wall:.1f} s ({verdict} the {TARGET_S:.0f} s target)")
    return 0 if wall <= TARGET_S else 1


if __name__ == "__main__":
    sys.exit(main())
