"""examples/ci: the shell the GitHub Actions workflow runs, run here against this machine as the farm."""
import json
import os
import subprocess
import sys
from pathlib import Path

import yaml
from conftest import REPO

GATE = REPO / "examples" / "ci" / "benchmark-gate.sh"


def gate(tmp_path, model, name, **env):
    lab = tmp_path / "lab.yaml"
    lab.write_text(yaml.safe_dump({"devices": [{"name": "local", "kind": "local", "delegates": ["xnnpack"]}]}))
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"  # `farm` as the workflow installs it
    return subprocess.run(["bash", str(GATE), str(model), str(lab)], cwd=tmp_path, capture_output=True, text=True,
                          timeout=600, env={**os.environ, "PATH": path, "FARM_DB": str(tmp_path / "farm.db"),
                                            "SWEEP_NAME": name, "VARIANTS": "fp32,fp16", **env})


def test_the_first_run_is_the_baseline_and_the_next_one_is_gated(tmp_path, digits_dir):
    model = digits_dir / "digits.keras"  # converted for real, as the workflow's Convert step
    first = gate(tmp_path, model, "ci-1")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "no earlier sweep" in first.stdout
    assert json.loads((tmp_path / "sweep.json").read_text())["counts"]["done"] == 2 * 3  # 2 variants, 3 repeats

    # A rerun of the same model: the plumbing is what is tested here (tests/test_compare.py tests the statistics),
    # so the threshold is wide enough for a shared, noisy machine.
    second = gate(tmp_path, model, "ci-2", MAX_SLOWDOWN="50%")
    assert second.returncode == 0, second.stdout + second.stderr
    report = (tmp_path / "compare.md").read_text()
    assert report.startswith("**ci\\-2 against the last 5 sweeps of each configuration: no regression**"), report
    assert report.count("| local |") == 2


def test_a_regression_fails_the_job_with_exit_3(tmp_path, digits_dir):
    model = digits_dir / "digits.keras"
    assert gate(tmp_path, model, "ci-1").returncode == 0
    # The baseline's medians doctored 100x faster: the rerun is then a 100x regression, as the gate sees one.
    import sqlite3

    with sqlite3.connect(tmp_path / "farm.db") as connection:
        connection.execute("UPDATE results SET p50_ms = p50_ms / 100")
    regressed = gate(tmp_path, model, "ci-2")
    assert regressed.returncode == 3, regressed.stdout + regressed.stderr
    assert "REGRESSION" in (tmp_path / "compare.md").read_text()


def test_bad_input_stops_before_measuring(tmp_path):
    bad = gate(tmp_path, tmp_path / "missing.keras", "ci-1")
    assert bad.returncode == 2 and "missing.keras" in bad.stderr
