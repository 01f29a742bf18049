"""The package as a user meets it: `python -m build` makes an sdist and a wheel that `twine check` accepts; the wheel,
installed into a throwaway venv outside the source tree, runs a sweep on this machine, exports it and serves the
dashboard from an empty directory, with the agent byte for byte the repository's agents/litert_agent.py."""
from __future__ import annotations

import csv
import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from conftest import REPO, Dashboard


# The throwaway venv is installed without byte-compiling (seconds, not a minute); its first process compiles what it
# imports, and keeps it for the next ones even where the environment says not to write bytecode.
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def run(*args, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=ENV)
    assert proc.returncode == 0, f"{' '.join(map(str, args))} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    return proc


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Path:
    """An sdist and a wheel built as a release would be: the wheel is built from the sdist, in isolation."""
    out = tmp_path_factory.mktemp("dist")
    run(sys.executable, "-m", "build", "--outdir", out, REPO, cwd=out)
    return out


@pytest.fixture(scope="module")
def installed(dist, tmp_path_factory) -> Path:
    """A fresh venv outside the source tree with the wheel and its `dashboard` extra (from pip's cache)."""
    venv = tmp_path_factory.mktemp("installed") / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=venv.parent)
    wheel = next(dist.glob("*.whl"))
    # This venv's pip installs into the new venv; skipping byte-compilation keeps it to seconds.
    run(sys.executable, "-m", "pip", "--python", venv / "bin" / "python", "install", "--quiet", "--no-compile",
        f"{wheel}[dashboard]", cwd=venv.parent)
    return venv


def test_sdist_and_wheel_pass_twine_check_and_carry_agent_dashboard_and_license(dist):
    sdist, wheel = next(dist.glob("*.tar.gz")), next(dist.glob("*.whl"))
    checked = run(sys.executable, "-m", "twine", "check", "--strict", sdist, wheel, cwd=dist)
    assert checked.stdout.count("PASSED") == 2, checked.stdout

    agent = (REPO / "agents" / "litert_agent.py").read_bytes()
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        assert archive.read("farm/agents/litert_agent.py") == agent
        metadata = archive.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    # Every module of the repository is in the wheel, agents/ and dashboard/ under farm/.
    modules = {p.relative_to(REPO).as_posix() if top == "farm" else f"farm/{p.relative_to(REPO).as_posix()}"
               for top in ("farm", "agents", "dashboard") for p in (REPO / top).rglob("*.py")}
    assert modules - names == set()
    assert {"farm/dashboard/app.py", "farm/dashboard/views/sweeps.py", "farm/commands/sweep.py"} <= modules
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert "License-Expression: Apache-2.0" in metadata
    assert "Classifier: Topic :: System :: Benchmark" in metadata
    assert "Project-URL: Source, " in metadata

    with tarfile.open(sdist) as archive:
        members = {Path(m).relative_to(Path(m).parts[0]).as_posix() for m in archive.getnames() if "/" in m}
    # The sdist carries what the repository's own tests need, fixtures included.
    assert {"agents/litert_agent.py", "dashboard/app.py", "LICENSE", "README.md",
            "tests/fixtures/benchmark_model/SOURCES.md"} <= members


def test_installed_wheel_runs_a_sweep_exports_and_serves_the_dashboard_from_an_empty_directory(
        installed, tiny_tflite, tmp_path):
    farm = installed / "bin" / "farm"
    python = installed / "bin" / "python"
    work = tmp_path / "empty"
    work.mkdir()

    version = run(farm, "--version", cwd=work)
    assert version.stdout.strip() == "farm 0.1.0"
    where = run(python, "-c", "import farm; print(farm.AGENT_PATH)", cwd=work).stdout.strip()
    assert Path(where).is_relative_to(installed), where  # the installed copy, not the checkout's
    assert Path(where).read_bytes() == (REPO / "agents" / "litert_agent.py").read_bytes()

    check = run(farm, "inventory", "check", cwd=work)
    assert "no inventory/local.yaml here, so this machine alone, as device 'local'" in check.stdout

    model = work / "m.tflite"
    model.write_bytes(tiny_tflite.read_bytes())
    env_cache = {**ENV, "FARM_CACHE": str(tmp_path / "cache")}
    sweep = subprocess.run([str(farm), "sweep", "run", "--model", "m.tflite", "--runs", "5", "--delegates",
                            "xnnpack,none"], cwd=work, capture_output=True, text=True, timeout=600, env=env_cache)
    assert sweep.returncode == 0, sweep.stdout + sweep.stderr
    assert "6 done" in sweep.stdout, sweep.stdout  # 2 configurations, 3 repeats each by default

    run(farm, "export", cwd=work)
    with open(work / "reports" / "m-local.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert sorted(row["delegate"] for row in rows) == ["none", "xnnpack"]  # a row per configuration
    assert all(row["status"] == "done" and row["repeats"] == "3" for row in rows), rows
    assert all(float(row["p50_ci_low_ms"]) <= float(row["p50_ms"]) <= float(row["p50_ci_high_ms"]) for row in rows)

    dashboard = Dashboard(work / "farm.db", tmp_path / "dashboard.log", farm_command=(str(farm),), cwd=work)
    try:
        assert dashboard.process.poll() is None  # it answered /_stcore/health with 200
    finally:
        dashboard.stop()
