"""Which LiteRT runtime `farm provision` installs: pip's own dry runs decide, here on real pip output.

pip runs on this machine against local folders of stand-in wheels (metadata only: a dry run never unpacks them), as
the board's venv would against PyPI: the .venv's pip and the system Python's, whose pip (23.0) is what the SSH test
fleet's venvs get. No index is reached. The provisioning itself, over SSH, is in tests/transports/test_ssh.py.
"""
import json
import os
import socket
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from conftest import refused
from farm.provision import DRY_RUN, Choice, PipAnswer, choose_runtime, resolved

PLATFORM = "Python 3.11 x86_64"
PIPS = [pytest.param(sys.executable, id="venv-pip"), pytest.param("/usr/bin/python3", id="system-pip")]


def wheel(folder: Path, name: str, version: str, tag: str = "py3-none-any", requires: tuple[str, ...] = ()) -> None:
    """A wheel with metadata and nothing else, which is all a dry run reads."""
    dist_info = f"{name}-{version}.dist-info"
    metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n" + "".join(
        f"Requires-Dist: {requirement}\n" for requirement in requires)
    with zipfile.ZipFile(folder / f"{name}-{version}-{tag}.whl", "w") as archive:
        archive.writestr(f"{dist_info}/METADATA", metadata)
        archive.writestr(f"{dist_info}/WHEEL",
                         f"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: {tag}\n")
        archive.writestr(f"{dist_info}/RECORD", "")


@pytest.fixture
def wheelhouse(tmp_path) -> Path:
    """What an index offers a board without ai-edge-litert wheels: one for another Python and architecture only,
    tflite-runtime, and numpy 1 and 2."""
    folder = tmp_path / "wheels"
    folder.mkdir()
    wheel(folder, "ai_edge_litert", "2.3.0", tag="cp313-cp313-manylinux_2_17_armv7l", requires=("numpy",))
    wheel(folder, "tflite_runtime", "2.14.0", requires=("numpy>=1.23.2",))
    wheel(folder, "numpy", "1.26.4")
    wheel(folder, "numpy", "2.0.0")
    return folder


def local_pip(python: str, *index: str):
    """A dry_run for choose_runtime: that Python's pip, no configuration of this machine, the index given."""
    environment = {key: value for key, value in os.environ.items() if not key.startswith("PIP_")}
    environment["PIP_CONFIG_FILE"] = os.devnull  # pip then reads no configuration file at all

    def dry_run(requirements: list[str]) -> PipAnswer:
        done = subprocess.run([python, "-m", "pip", *DRY_RUN, *index, *requirements], capture_output=True, text=True,
                              env=environment, timeout=120)
        return PipAnswer(done.returncode, done.stdout, done.stderr)

    return dry_run


@pytest.mark.parametrize("python", PIPS)
def test_no_ai_edge_litert_for_the_board_means_tflite_runtime_with_numpy_1(python, wheelhouse):
    dry_run = local_pip(python, "--no-index", "--find-links", str(wheelhouse))
    choice = choose_runtime(dry_run, PLATFORM)
    assert choice == Choice("tflite-runtime", "2.14.0", "1.26.4", "no ai-edge-litert wheel for Python 3.11 x86_64")
    assert str(choice) == "tflite-runtime 2.14.0 with numpy 1.26.4 (no ai-edge-litert wheel for Python 3.11 x86_64)"
    assert choice.requirements() == ["tflite-runtime==2.14.0", "numpy==1.26.4"]


@pytest.mark.parametrize("python", PIPS)
def test_ai_edge_litert_where_pip_finds_it_unless_told_otherwise(python, wheelhouse):
    wheel(wheelhouse, "ai_edge_litert", "2.3.0", requires=("numpy",))  # now one this machine's Python can take
    dry_run = local_pip(python, "--no-index", "--find-links", str(wheelhouse))
    choice = choose_runtime(dry_run, PLATFORM)
    assert choice == Choice("ai-edge-litert", "2.3.0", "2.0.0", "pip found a wheel for Python 3.11 x86_64")
    assert choice.record() == {"runtime": "ai-edge-litert", "version": "2.3.0", "numpy": "2.0.0",
                               "why": "pip found a wheel for Python 3.11 x86_64"}
    forced = choose_runtime(dry_run, PLATFORM, forced="tflite-runtime")
    assert forced == Choice("tflite-runtime", "2.14.0", "1.26.4", "--runtime tflite-runtime")


def test_neither_runtime_nor_a_reachable_index_is_said_as_such(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    nothing = local_pip(sys.executable, "--no-index", "--find-links", str(empty))
    refused(lambda: choose_runtime(nothing, PLATFORM), "pip finds neither ai-edge-litert nor tflite-runtime for "
            "Python 3.11 x86_64: ERROR: No matching distribution found for tflite-runtime")
    refused(lambda: choose_runtime(nothing, PLATFORM, forced="ai-edge-litert"),
            "pip finds no ai-edge-litert for Python 3.11 x86_64: ERROR: No matching distribution found for "
            "ai-edge-litert")
    # An index that refuses connections: pip says "no matching distribution" there too, after its retries.
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))  # bound, never listening: connections to it are refused
        index = f"http://127.0.0.1:{closed.getsockname()[1]}/simple"
        unreachable = local_pip(sys.executable, "--index-url", index, "--retries", "1", "--timeout", "5")
        refused(lambda: choose_runtime(unreachable, PLATFORM),
                "pip could not reach its package index: WARNING: Retrying (", "/simple/ai-edge-litert/")
    bad_option = local_pip(sys.executable, "--no-such-option")
    refused(lambda: choose_runtime(bad_option, PLATFORM),
            "pip failed (exit 2) on ai-edge-litert: no such option: --no-such-option")


def test_a_report_that_is_not_pip_s_is_refused_in_one_bounded_line():
    def report(*items) -> str:
        return json.dumps({"version": "1", "install": list(items)})

    def item(name, version, url="https://example.org/x-1-py3-none-any.whl"):
        return {"metadata": {"name": name, "version": version}, "download_info": {"url": url}}

    assert resolved(report(item("ai_edge_litert", "2.3.0"), item("NumPy", "2.0.0")), "ai-edge-litert") == (
        "2.3.0", "2.0.0", True)
    assert resolved(report(item("ai-edge-litert", "2.3.0", url="file:///x.tar.gz"), item("numpy", "2.0.0")),
                    "ai-edge-litert")[2] is False  # a source distribution, said as such
    refused(lambda: resolved("Would install ai-edge-litert-2.3.0", "ai-edge-litert"),
            "pip's report is not JSON: Would install ai-edge-litert-2.3.0")
    refused(lambda: resolved("x" * (5 << 20), "ai-edge-litert"), "pip's report is larger than 4 MB")
    refused(lambda: resolved("[" * 100_000, "ai-edge-litert"), "pip's report is not JSON: [[[[")
    refused(lambda: resolved(report(item("numpy", "2.0.0")), "ai-edge-litert"),
            "pip's report names no ai-edge-litert to install")
    # Shapes that are not pip's, and versions that are no versions, are passed over, not trusted.
    hostile = report("x", {"metadata": []}, {"metadata": {"name": ["numpy"], "version": "1"}},
                     item("ai-edge-litert", "2.3.0; rm -rf ~"), item("numpy", "$(reboot)"))
    refused(lambda: resolved(hostile, "ai-edge-litert"), "pip's report names no ai-edge-litert and no numpy to install")
    refused(lambda: resolved(json.dumps(["install"]), "tflite-runtime"), "names no tflite-runtime and no numpy")


def test_a_bad_runtime_is_one_line_naming_the_option(capsys):
    from farm.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["provision", "pi", "--runtime", "tflite"])
    assert exit_.value.code == 2
    error = capsys.readouterr().err.splitlines()[-1]  # after argparse's usage line
    assert error.startswith("farm provision: error: argument --runtime: invalid choice: 'tflite' (choose from ")
    assert "ai-edge-litert" in error and "tflite-runtime" in error
