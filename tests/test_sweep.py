"""A whole sweep through the real `farm` command: convert → plan → run (agent subprocesses) → SQLite → CSV."""
import sqlite3
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import REPO, farm

from farm.store import Store

RUNS = 20


def write_spec(path, digits_dir, **overrides):
    spec = {
        "name": "digits",
        "inventory": [str(REPO / "inventory" / "local.yaml")],
        "models": [{"name": "digits", "source": str(digits_dir / "digits.keras"),
                    "variants": ["fp32", "fp16", "dynamic", "int8", "int16x8"],
                    "calibration": str(digits_dir / "digits_calib.npz"), "eval": str(digits_dir / "digits_eval.npz")}],
        "devices": ["local"],
        "delegates": ["xnnpack", "none"],
        "threads": [1, 2],
        "runs": RUNS,
        "repeats": 1,
        "warmup_runs": 3,
        **overrides,
    }
    path.write_text(yaml.safe_dump(spec))
    return path


@pytest.fixture(scope="module")
def digits_sweep(tmp_path_factory, digits_dir):
    tmp = tmp_path_factory.mktemp("sweep")
    spec = write_spec(tmp / "sweep.yaml", digits_dir)
    run = farm("sweep", "run", spec, "--db", tmp / "farm.db")
    store = Store(tmp / "farm.db", create=False)
    return run, store, store.sweep("digits"), tmp


def test_every_job_ends_done_or_explained(digits_sweep):
    run, store, sweep, _ = digits_sweep
    rows = store.report(sweep.id)
    assert len(rows) == 5 * 2 * 2, run.stderr
    assert sweep.state == "done" or store.sweep("digits").state == "done"
    for row in rows:
        assert row["status"] in ("done", "failed", "skipped"), row
        if row["status"] != "done":
            # The only expected non-result: a delegate that takes none of the model, said so, never a fake CPU number.
            assert row["error"], row
    done = [r for r in rows if r["status"] == "done"]
    assert len(done) >= 16, [(r["variant"], r["delegate"], r["error"]) for r in rows if r["status"] != "done"]
    assert run.returncode == (0 if len(done) == len(rows) else 1), run.stderr


def test_latencies_are_real_measurements(digits_sweep):
    _, store, sweep, _ = digits_sweep
    for row in store.report(sweep.id):
        if row["status"] != "done":
            continue
        samples = store.samples(row["result_id"])
        assert len(samples) == RUNS == row["count"]
        assert all(0 < s < 200_000 for s in samples)  # a tiny CNN: well under 200 ms per inference
        assert 0 < row["min_ms"] <= row["p50_ms"] <= row["p90_ms"] <= row["p99_ms"] <= row["max_ms"]
        assert row["init_ms"] > 0 and row["first_ms"] > 0 and row["warmup_ms"] > 0
        assert row["peak_mb"] > 10 and row["peak_delta_mb"] >= 0
        assert row["runtime"] == "ai_edge_litert" and row["runtime_version"].startswith("2.")
        if row["delegate"] == "none":
            assert row["delegate_outcome"] == "cpu" and row["delegated_nodes"] == 0
        else:
            assert row["delegate_outcome"] in ("applied", "partial") and row["delegated_nodes"] > 0
        assert row["total_nodes"] > 0


def test_accuracy_and_agreement(digits_sweep):
    _, store, sweep, _ = digits_sweep
    rows = [r for r in store.report(sweep.id) if r["status"] == "done"]
    fp32 = {(r["delegate"], r["threads"]): r["accuracy"] for r in rows if r["variant"] == "fp32"}
    assert len(fp32) == 4 and all(a >= 0.90 for a in fp32.values()), fp32
    for row in rows:
        assert row["accuracy"] is not None and row["agreement_with_fp32"] is not None, row
        assert len(row["predictions"]) == 450  # the held-out quarter of 1797 digits, rounded up
        if row["variant"] == "fp32":
            assert row["agreement_with_fp32"] == 1.0
        if row["variant"] == "int8":
            assert abs(row["accuracy"] - fp32[(row["delegate"], row["threads"])]) <= 0.02
            assert row["agreement_with_fp32"] >= 0.95


def test_device_facts_are_recorded(digits_sweep):
    _, store, _, tmp = digits_sweep
    facts = sqlite3.connect(tmp / "farm.db").execute("SELECT facts FROM devices WHERE name='local'").fetchone()[0]
    assert '"cores"' in facts and "ai_edge_litert" in facts


def test_export_writes_one_csv_for_the_device(digits_sweep):
    _, store, sweep, tmp = digits_sweep
    run = farm("export", "--sweep", "digits", "--out", tmp / "reports", "--db", tmp / "farm.db")
    assert run.returncode == 0, run.stderr
    frame = pd.read_csv(tmp / "reports" / "digits-local.csv")
    assert len(frame) == 20
    report = {(r["variant"], r["delegate"], r["threads"]): r for r in store.report(sweep.id)}
    for _, line in frame.iterrows():
        row = report[(line["variant"], line["delegate"], line["threads"])]
        assert line["status"] == row["status"]
        if row["status"] == "done":
            assert line["p50_ms"] == pytest.approx(row["p50_ms"], abs=1e-4)
            assert line["accuracy"] == pytest.approx(row["accuracy"], abs=1e-4)


def test_status_lists_the_sweep(digits_sweep):
    _, _, _, tmp = digits_sweep
    run = farm("sweep", "status", "--db", tmp / "farm.db")
    assert run.returncode == 0 and "digits" in run.stdout and "done" in run.stdout


def test_a_second_sweep_reuses_the_conversions(digits_sweep, digits_dir, farm_cache):
    _, _, _, tmp = digits_sweep
    # The cache is shared by the run's workers: what matters is that this sweep wrote nothing into it.
    before = {p: p.stat().st_mtime_ns for p in farm_cache.rglob("*") if p.is_file()}
    spec = write_spec(tmp / "again.yaml", digits_dir, delegates=["xnnpack"], threads=[1], runs=5)
    run = farm("sweep", "run", spec, "--db", tmp / "farm.db")
    assert run.returncode in (0, 1), run.stderr
    assert "sweep digits-2:" in run.stdout  # the name was taken: a suffix, not an overwrite
    assert all(p.stat().st_mtime_ns == mtime for p, mtime in before.items())
    used = {Path(path) for (path,) in sqlite3.connect(tmp / "farm.db").execute("SELECT path FROM variants")}
    assert used <= set(before)
