"""TEST CODE: pytest fixtures of the simulated phones. In tests/conftest.py:

    from phone.fixtures import adb_lab, healed_adb_lab, tiny_tflite, benchmark_model_binary  # noqa: F401

adb_lab                 session-scoped: a real adb server (Debian's adb) on a free port from 5137 and two simulated
                        phones connected to it: "pixel" (a full Android build of benchmark_model: GPU simulated as
                        applied, NNAPI failing, Hexagon unsupported; onnxruntime_perf_test with cpu and xnnpack) and
                        "galaxy" (CPU-only builds: --use_gpu=true is an unconsumed flag, -e xnnpack is not
                        supported). lab["pixel"].serial == "127.0.0.1:<port>"; lab.device(phone) gives adbutils'
                        AdbDevice; lab.port is the adb server's port. Server and phones stop at the end.
healed_adb_lab          the same lab for a test that kills phones: every phone running and connected before and after
tiny_tflite             session-scoped: a small real float32 .tflite (models.tiny_mlp), ~1.6 MB
benchmark_model_binary  session-scoped: the stand-in benchmark_model as an executable file (the inventory's
                        arm64-v8a binary), its #! the venv's Python

Fails (never skips) when adb is missing: `make test` installs it.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from .models import tiny_mlp
from .phone import (CPU_ONLY_BUILD, FULL_ANDROID_BUILD, ORT_ANDROID_BUILD, ORT_CPU_ONLY_BUILD, Lab, LabError, find_adb,
                    write_benchmark_model)

PHONES = {
    "pixel": dict(delegates=FULL_ANDROID_BUILD, ort_providers=ORT_ANDROID_BUILD, battery_level=85, props={
        "ro.product.model": "Pixel 8", "ro.product.name": "shiba", "ro.product.device": "shiba",
        "ro.product.brand": "google", "ro.product.manufacturer": "Google", "ro.soc.manufacturer": "Google",
        "ro.soc.model": "Tensor G3", "ro.board.platform": "zuma", "ro.hardware": "shiba",
        "ro.build.version.release": "14", "ro.build.version.sdk": "34"}),
    "galaxy": dict(delegates=CPU_ONLY_BUILD, ort_providers=ORT_CPU_ONLY_BUILD, battery_level=64, props={
        "ro.product.model": "SM-A546B", "ro.product.name": "a54xnsxx", "ro.product.device": "a54x",
        "ro.product.brand": "samsung", "ro.product.manufacturer": "samsung", "ro.soc.manufacturer": "Samsung",
        "ro.soc.model": "S5E8835", "ro.board.platform": "s5e8835", "ro.hardware": "s5e8835",
        "ro.build.version.release": "13", "ro.build.version.sdk": "33"}),
}

# One lab per session even when the fixture is imported in several places (conftest.py and a test module both
# importing adb_lab make two fixture definitions): the first to run starts it, the last to finish stops it.
_shared: dict = {"lab": None, "users": 0}


@pytest.fixture(scope="session")
def adb_lab(tmp_path_factory) -> Lab:
    """A real adb server on a non-default port with the simulated phones "pixel" and "galaxy" connected."""
    problem = None
    try:
        find_adb()
    except LabError as exc:
        problem = str(exc)
    if problem:
        pytest.fail(problem, pytrace=False)  # not a skip: `make test` installs what the suite needs
    if _shared["lab"] is None:
        lab = Lab(tmp_path_factory.mktemp("adb-lab"))
        try:
            lab.start()
            for name, options in PHONES.items():
                lab.add_phone(name, **options)
        except BaseException:
            lab.stop()
            raise
        _shared["lab"] = lab
    _shared["users"] += 1
    try:
        yield _shared["lab"]
    finally:
        _shared["users"] -= 1
        if _shared["users"] == 0:
            lab, _shared["lab"] = _shared["lab"], None
            lab.stop()


@pytest.fixture
def healed_adb_lab(adb_lab: Lab) -> Lab:
    """The session's lab with every phone running and connected, before and after the test."""
    adb_lab.heal()
    yield adb_lab
    adb_lab.heal()


@pytest.fixture(scope="session")
def tiny_tflite(tmp_path_factory) -> Path:
    return tiny_mlp(tmp_path_factory.mktemp("phone-models") / "tiny_mlp.tflite")


@pytest.fixture(scope="session")
def benchmark_model_binary(tmp_path_factory) -> Path:
    return write_benchmark_model(tmp_path_factory.mktemp("phone-binaries") / "arm64-v8a" / "benchmark_model")
