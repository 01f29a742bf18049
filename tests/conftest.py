"""Fixtures shared by the suite: a private conversion cache and the demo's digits model, trained once per session."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
from fleet.fixtures import healed_ssh_fleet, ssh_fleet  # noqa: F401  (real OpenSSH servers on loopback)
from phone.fixtures import adb_lab, benchmark_model_binary, healed_adb_lab, tiny_tflite  # noqa: F401  (simulated phones)

REPO = Path(__file__).resolve().parent.parent
# Real benchmark_model console output, copied into the repository with its SOURCES.md.
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "benchmark_model"


@pytest.fixture(scope="session", autouse=True)
def farm_cache(tmp_path_factory) -> Path:
    """Every test (and every `farm` subprocess) converts into a private cache, never the user's."""
    cache = tmp_path_factory.mktemp("farm-cache")
    os.environ["FARM_CACHE"] = str(cache)
    return cache


@pytest.fixture(scope="session")
def digits_dir(tmp_path_factory) -> Path:
    """The demo's digits CNN (trained on scikit-learn's digits, seeded) with its calibration and held-out eval sets."""
    from farm.demo import build_digits

    workdir = tmp_path_factory.mktemp("digits")
    build_digits(workdir)
    return workdir


def farm(*args: str, cwd: Path | None = None, timeout: float = 900) -> subprocess.CompletedProcess:
    """Run the real `farm` command line in a fresh process."""
    return subprocess.run([sys.executable, "-m", "farm", *map(str, args)], cwd=cwd or REPO, capture_output=True,
                          text=True, timeout=timeout)


def refused(call, *needles) -> str:
    """The one-line FarmError that `call()` raises, checked to name every needle."""
    from farm.errors import FarmError

    with pytest.raises(FarmError) as info:
        call()
    message = str(info.value)
    assert "\n" not in message, message
    for needle in needles:
        assert needle in message, message
    return message
