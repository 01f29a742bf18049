"""A board with tflite-runtime 2.14 and numpy 1.26 (what Raspberry Pi OS and Coral images run) beside a board with
ai-edge-litert and numpy 2, both real OpenSSH servers of the test fleet (tests/fleet): one sweep of the demo's digits
CNN over both, read by the tests below; and the agent run directly with that venv's Python, one-shot and --serve.

Nothing is simulated but the crash: a delegate library that raises SIGSEGV (tests/conftest.py), as a broken vendor
delegate would. The tflite-runtime venv is the one `make test` builds (tests/conftest.py: TFLITE_RUNTIME_PYTHON).
"""
import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import farm
from test_agent_serve import AGENT, Served

RUNS = 10
LITERT, TFLITE = "board1", "board2"  # the ai-edge-litert board and the tflite-runtime one


@pytest.fixture(scope="module")
def sweep(tflite_runtime_python, tmp_path_factory, ssh_fleet, digits_dir, crashing_delegate) -> Path:
    """The store of one sweep of digits fp32 and int8, with its eval set, with xnnpack and none on both boards; and
    gpu, the crashing library, on the tflite-runtime board only."""
    folder = tmp_path_factory.mktemp("tflite-runtime")
    lab = folder / "lab.yaml"
    lab.write_text(yaml.safe_dump({"devices": [
        ssh_fleet[LITERT].device(python=sys.executable, delegates=["xnnpack", "none"]),
        ssh_fleet[TFLITE].device(python=str(tflite_runtime_python), delegates=["xnnpack", "none", "gpu"],
                                 delegate_options={"gpu": {"library": str(crashing_delegate)}}),
    ]}))
    spec = folder / "runtimes.yaml"
    spec.write_text(yaml.safe_dump({
        "name": "runtimes",
        "inventory": [str(lab)],
        "models": [{"name": "digits", "source": str(digits_dir / "digits.keras"), "variants": ["fp32", "int8"],
                    "calibration": str(digits_dir / "digits_calib.npz"), "eval": str(digits_dir / "digits_eval.npz")}],
        "delegates": ["xnnpack", "none", "gpu"],
        "runs": RUNS,
        "warmup_runs": 2,
        "repeats": 1,
    }))
    db = folder / "farm.db"
    run = farm("sweep", "run", spec, "--db", db)
    assert run.returncode == 1, run.stdout[-3000:] + run.stderr  # 1: the jobs that fail on purpose
    return db


def jobs(db: Path) -> dict[tuple[str, str, str], dict]:
    """(device, variant kind, delegate) -> the job and its result (None where it failed)."""
    connection = sqlite3.connect(db)
    connection.row_factory = sqlite3.Row
    rows = connection.execute(
        "SELECT j.id, j.device, v.kind, j.delegate, j.state, j.error, j.attempts, j.started, j.finished, r.accuracy, "
        "r.count, r.predictions, r.delegate_outcome, r.delegated_nodes, r.total_nodes, r.runtime, r.runtime_version, "
        "r.host FROM jobs j JOIN variants v ON v.id = j.variant_id LEFT JOIN results r ON r.job_id = j.id").fetchall()
    return {(row["device"], row["kind"], row["delegate"]): dict(row) for row in rows}


def variant_paths(db: Path) -> dict[str, Path]:
    return {kind: Path(path) for kind, path in sqlite3.connect(db).execute("SELECT kind, path FROM variants")}


def facts(db: Path, device: str) -> dict:
    (raw,) = sqlite3.connect(db).execute("SELECT facts FROM devices WHERE name = ?", (device,)).fetchone()
    return json.loads(raw)


def test_the_probe_finds_each_boards_runtime_and_numpy(sweep):
    litert, tflite = facts(sweep, LITERT), facts(sweep, TFLITE)
    assert (tflite["runtime"]["name"], tflite["runtime"]["version"]) == ("tflite_runtime", "2.14.0")
    assert tflite["numpy_version"].startswith("1.26.")
    assert litert["runtime"]["name"] == "ai_edge_litert" and litert["numpy_version"].startswith("2.")


def test_each_result_records_the_runtime_it_ran_on(sweep):
    done = [job for job in jobs(sweep).values() if job["state"] == "done"]
    assert {(job["device"], job["runtime"], job["runtime_version"].split(".")[0]) for job in done} == {
        (LITERT, "ai_edge_litert", "2"), (TFLITE, "tflite_runtime", "2")}
    for job in done:
        host = json.loads(job["host"])
        if job["device"] == TFLITE:
            assert job["runtime_version"] == "2.14.0" and host["numpy_version"].startswith("1.26."), job
        else:
            assert host["numpy_version"].startswith("2."), job


def test_both_runtimes_predict_the_eval_set_alike(sweep):
    found = jobs(sweep)
    for kind in ("fp32", "int8"):
        litert, tflite = found[LITERT, kind, "none"], found[TFLITE, kind, "none"]
        assert litert["state"] == tflite["state"] == "done", (litert, tflite)
        assert litert["count"] == tflite["count"] == RUNS
        # The same model and kernels on the same inputs: the same top-1 for every one of the 450 samples.
        predictions = json.loads(tflite["predictions"])
        assert len(predictions) == 450 and predictions == json.loads(litert["predictions"]), kind
        assert tflite["accuracy"] == litert["accuracy"] >= 0.9


def test_xnnpack_on_the_digits_cnn_is_applied_by_ai_edge_litert_and_not_by_tflite_runtime(sweep):
    found = jobs(sweep)
    for kind in ("fp32", "int8"):
        litert = found[LITERT, kind, "xnnpack"]
        assert litert["state"] == "done" and litert["delegated_nodes"] > 0, litert
        assert litert["delegate_outcome"] in ("applied", "partial")
        # tflite-runtime 2.14's XNNPACK takes none of the model's nodes: the job fails rather than file a CPU run
        # under XNNPACK's name, and says so.
        tflite = found[TFLITE, kind, "xnnpack"]
        assert tflite["state"] == "failed" and tflite["runtime"] is None, tflite
        assert tflite["error"].startswith(f"delegate not applied: XNNPACK (runtime default) took 0 of "
                                          f"{litert['total_nodes']} nodes: tflite_runtime 2.14.0"), tflite["error"]


def test_a_runtime_crash_on_the_tflite_runtime_board_fails_its_job_once_and_the_lane_goes_on(sweep):
    found = jobs(sweep)
    crashed = [found[TFLITE, kind, "gpu"] for kind in ("fp32", "int8")]
    for job in crashed:
        assert job["state"] == "failed" and job["attempts"] == 1, job
        assert job["error"].startswith("agent killed by SIGSEGV without a result"), job["error"]
    after = [job for (device, _, _), job in found.items()
             if device == TFLITE and job["state"] == "done" and job["started"] > min(j["finished"] for j in crashed)]
    assert after, "no job of the tflite-runtime board ran after a crash"
    for kind in ("fp32", "int8"):  # the other board has no such delegate
        assert found[LITERT, kind, "gpu"]["state"] == "skipped"


def agent(python: Path, request: dict) -> dict:
    """The agent run once, as a board runs it one-shot, with the given Python."""
    run = subprocess.run([str(python), str(AGENT)], input=json.dumps(request), capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    return json.loads(run.stdout)


def test_one_shot_on_numpy_1_gives_the_same_eval_outputs_as_on_numpy_2(sweep, digits_dir, tflite_runtime_python):
    # The int8 variant: its outputs are dequantized by the agent, with numpy 1 here and numpy 2 in this venv.
    request = {"model": str(variant_paths(sweep)["int8"]), "delegate": "none", "runs": 3,
               "eval": str(digits_dir / "digits_eval.npz"), "eval_outputs": True}
    old, new = agent(tflite_runtime_python, request), agent(Path(sys.executable), request)
    assert old["runtime"] == {"name": "tflite_runtime", "version": "2.14.0"}
    assert old["host"]["numpy_version"].startswith("1.26.") and new["host"]["numpy_version"].startswith("2.")
    assert old["eval"]["count"] == new["eval"]["count"] == 450
    assert old["eval"]["predictions"] == new["eval"]["predictions"]
    np.testing.assert_allclose(old["eval"]["outputs"], new["eval"]["outputs"], atol=1e-6)
    assert len(old["samples_us"]) == 3 and old["delegate"]["outcome"] == "cpu"


def test_serve_on_numpy_1_probes_and_runs_jobs(sweep, digits_dir, tflite_runtime_python):
    served = Served(python=tflite_runtime_python)
    try:
        header, probe, _ = served.ask({"probe": True})
        assert header["exit"] == 0 and probe["runtime"] == {"name": "tflite_runtime", "version": "2.14.0"}
        assert probe["numpy_version"].startswith("1.26.")
        job = {"model": str(variant_paths(sweep)["fp32"]), "delegate": "none", "runs": 5,
               "eval": str(digits_dir / "digits_eval.npz")}
        header, reply, _ = served.ask(job)
        assert header["exit"] == 0 and reply["ok"] and len(reply["samples_us"]) == 5, reply
        assert reply["eval"]["count"] == 450 and reply["eval"]["accuracy"] >= 0.9
        assert reply["eval"]["predictions"] == json.loads(jobs(sweep)[LITERT, "fp32", "none"]["predictions"])
        header, again, _ = served.ask(job)  # a second child of the same warm agent
        assert header["exit"] == 0 and again["eval"]["predictions"] == reply["eval"]["predictions"]
    finally:
        served.close()
