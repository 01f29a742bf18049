"""Op profiles (`profile: true`): a phone's benchmark_model with --enable_op_profiling=true, an SSH board and this
machine through a benchmark_model build named in their inventory entries, and a device with none, which says why.

The phone is simulated (tests/phone: TEST CODE speaking the real ADB protocol to a real adb server); its stand-in
benchmark_model runs real LiteRT inference and prints the model's real nodes, with simulated per-node times (the
stand-in's docstring says how). The same stand-in is the benchmark_model build of the board and of this machine.
The parser itself is tested against real benchmark_model output in test_benchmark_model.py.
"""
import json
import sqlite3
import sys

import yaml

from conftest import farm
from farm.parse import NO_OP_PROFILER


def test_every_result_of_a_profiled_sweep_has_its_op_profile_or_says_why_not(tmp_path, adb_lab, benchmark_model_binary,
                                                                              ssh_fleet, digits_dir):
    board = ssh_fleet[0]
    inventory = tmp_path / "farm.yaml"
    inventory.write_text(yaml.safe_dump({"devices": [
        {"name": "pixel", "kind": "android", "serial": adb_lab["pixel"].serial, "adb_server": f"127.0.0.1:{adb_lab.port}",
         "binaries": {"arm64-v8a": str(benchmark_model_binary)}, "delegates": ["xnnpack", "none"]},
        board.device(python=sys.executable, workspace=str(tmp_path / "board-workspace"),
                     benchmark_model=str(benchmark_model_binary)),
        {"name": "local", "kind": "local", "benchmark_model": str(benchmark_model_binary)},
        {"name": "bare", "kind": "local"},  # no benchmark_model build: no op profile, and the result says why
    ]}))
    spec = tmp_path / "profiled.yaml"
    spec.write_text(yaml.safe_dump({
        "name": "profiled", "inventory": [str(inventory)], "profile": True, "repeats": 1, "runs": 5, "warmup_runs": 1,
        "delegates": ["xnnpack", "none"],
        "models": [{"name": "digits", "source": str(digits_dir / "digits.keras"), "variants": ["fp32", "int8"],
                    "calibration": str(digits_dir / "digits_calib.npz")}]}))
    db = tmp_path / "farm.db"
    run = farm("sweep", "run", spec, "--db", db)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr

    store = sqlite3.connect(db)
    results = store.execute(
        "SELECT j.device, v.kind, j.delegate, r.id, r.warnings, v.description FROM jobs j JOIN results r ON r.job_id = j.id "
        "JOIN variants v ON v.id = j.variant_id").fetchall()
    assert len(results) == 4 * 2 * 2
    for device, variant, delegate, result_id, warnings, description in results:
        ops = store.execute("SELECT position, node, op, name, avg_ms, times_called FROM ops WHERE result_id = ? "
                            "ORDER BY position", (result_id,)).fetchall()
        if device == "bare":
            assert ops == [] and NO_OP_PROFILER in json.loads(warnings)
            continue
        assert ops, (device, variant, delegate, warnings)
        assert not any("no op profile" in w for w in json.loads(warnings))
        assert [position for position, *_ in ops] == list(range(len(ops)))
        assert all(name.endswith(f":{node}") and avg_ms >= 0 and calls == 1 for _p, node, _o, name, avg_ms, calls in ops)
        types = {op for _p, _n, op, *_ in ops}
        model_ops = set(json.loads(description)["ops"])
        if delegate == "none":  # every node is one of the model's own, in the model's own terms
            assert types == model_ops and len(ops) == json.loads(description)["op_count"], (device, variant)
        else:  # XNNPACK's node replaces the nodes it took
            assert "TfLiteXNNPackDelegate" in types and types - {"TfLiteXNNPackDelegate"} < model_ops
