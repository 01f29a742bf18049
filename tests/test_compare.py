"""`farm compare`: the repeat is the unit. Seeded stores with known changes, a calibration check over noise-only
comparisons, and a real rerun on this machine."""
import json

import numpy as np
import pytest
import yaml
from conftest import farm
from test_store import FakeVariantRecord

from farm.compare import Trials, compare
from farm.inventory import parse_device
from farm.stats import summarize
from farm.store import Store

LABELS = [i % 10 for i in range(2000)]


def seed(db, sweeps: dict[str, dict[str, tuple[float, float]]], repeats=3, seed=0, specs=None, hosts=None, versions=None):
    """Sweeps of two configurations on `local`: {sweep: {variant: (median ms, accuracy)}}, each repeat's samples drawn
    around the median with a run-to-run factor (±3%) and scatter inside the run (±5%); optionally with each sweep's
    spec fields, the host facts its results record, and its runtime version (by sweep name)."""
    rng = np.random.default_rng(seed)
    store = Store(db)
    store.upsert_device(parse_device({"name": "local", "kind": "local"}))
    ids = {kind: store.add_variant(FakeVariantRecord("m", kind, kind[0] * 64)) for kind in ("fp32", "int8")}
    for name, figures in sweeps.items():
        jobs = [{"device": "local", "variant_id": ids[kind], "delegate": "xnnpack", "threads": 1, "repeat": r}
                for r in range(repeats) for kind in figures]
        sweep = store.create_sweep(name, {"name": name, **(specs or {}).get(name, {})}, jobs)
        for job in store.jobs(sweep.id):
            median_ms, accuracy = figures[store.variant_names(job.variant_id)[1]]
            run = median_ms * 1000 * rng.normal(1.0, 0.03)
            samples = list(run * rng.lognormal(0.0, 0.05, 200))
            wrong = int(round((1 - accuracy) * len(LABELS)))
            predictions = [(label + 1) % 10 if i < wrong else label for i, label in enumerate(LABELS)]
            store.start_job(job.id)
            store.finish_job(job.id, {**summarize(samples), "init_ms": 1.0, "first_ms": 1.0, "runtime": "x",
                                      "runtime_version": (versions or {}).get(name, "1"), "delegate_outcome": "applied",
                                      "accuracy": accuracy, "predictions": json.dumps(predictions),
                                      "host": json.dumps((hosts or {}).get(name, {}))}, samples)
        store.set_sweep_state(sweep.id, "done")
    store.engine.dispose()


def test_a_2x_slowdown_fails_the_gate_and_an_unchanged_configuration_does_not(tmp_path):
    db = tmp_path / "farm.db"
    seed(db, {"base": {"fp32": (10.0, 0.95), "int8": (4.0, 0.94)}, "new": {"fp32": (20.0, 0.95), "int8": (4.0, 0.94)}})
    run = farm("compare", "base", "new", "--db", db, "--max-slowdown", "5%", "--json")
    assert run.returncode == 3, run.stdout + run.stderr
    report = json.loads(run.stdout)
    by_variant = {c["variant"]: c for c in report["configurations"]}
    assert report["regressed"] == 1 and by_variant["fp32"]["regressed"] and by_variant["fp32"]["verdict"] == "slower"
    assert 0.8 < by_variant["fp32"]["change"] < 1.2 and by_variant["fp32"]["change_low"] > 0.5
    assert by_variant["int8"]["verdict"] == "same" and not by_variant["int8"]["regressed"]
    assert by_variant["int8"]["change_low"] < 0 < by_variant["int8"]["change_high"]

    table = farm("compare", "base", "new", "--db", db, "--max-slowdown", "5%")
    assert table.returncode == 3 and "slower — REGRESSION" in table.stdout and "1 configuration(s) regressed" in table.stdout
    lenient = farm("compare", "base", "new", "--db", db, "--max-slowdown", "150%")
    assert lenient.returncode == 0, lenient.stdout  # slower, significantly, but within the threshold


def test_an_accuracy_drop_fails_the_gate(tmp_path):
    db = tmp_path / "farm.db"
    seed(db, {"base": {"fp32": (10.0, 0.95), "int8": (4.0, 0.94)}, "new": {"fp32": (10.0, 0.95), "int8": (4.0, 0.90)}})
    run = farm("compare", "base", "new", "--db", db, "--max-accuracy-drop", "0.01", "--markdown")
    assert run.returncode == 3, run.stdout + run.stderr
    assert "less accurate — REGRESSION" in run.stdout and "\\-0\\.040" in run.stdout  # markdown, escaped
    assert farm("compare", "base", "new", "--db", db, "--max-accuracy-drop", "0.05").returncode == 0


def test_history_is_each_configurations_last_n_sweeps(tmp_path):
    db = tmp_path / "farm.db"
    seed(db, {"old": {"fp32": (30.0, 0.95)}, "s1": {"fp32": (10.0, 0.95)}, "s2": {"fp32": (10.0, 0.95)},
              "s3": {"fp32": (10.0, 0.95)}, "new": {"fp32": (10.0, 0.95)}})
    recent = farm("compare", "--history", "3", "--db", db, "--max-slowdown", "5%", "--json")  # s1..s3: no change
    assert recent.returncode == 0, recent.stdout + recent.stderr
    (change,) = json.loads(recent.stdout)["configurations"]
    assert change["repeats"] == [9, 3] and change["verdict"] == "same"
    everything = json.loads(farm("compare", "--history", "4", "--db", db, "--json").stdout)["configurations"][0]
    assert everything["repeats"] == [12, 3]


def test_bad_input_is_one_line_and_exit_2(tmp_path):
    db = tmp_path / "farm.db"
    seed(db, {"base": {"fp32": (10.0, 0.95)}})
    for args, needle in ((["base"], "give two sweeps"), (["base", "nope"], "no sweep named 'nope'"),
                         (["base", "base", "--max-slowdown", "fast"], "--max-slowdown: 'fast' is not a number"),
                         (["--history", "3"], "no finished sweep before base")):
        run = farm("compare", *args, "--db", db)
        assert run.returncode == 2 and needle in run.stderr and run.stderr.count("\n") == 1, (args, run.stderr)


# Two sweeps of one model measured differently: 30 runs against 300, another runtime version, kernel and core count, and
# a CPU name that a hostile device sent as markup.
UNALIKE = dict(specs={"base": {"runs": 30, "warmup_runs": 5, "threads": [1]},
                      "new": {"runs": 300, "warmup_runs": 5, "threads": [1]}},
               hosts={"base": {"cpu_model": "Cortex-A72", "cores": 4, "os_release": "6.1.0", "governor": "ondemand"},
                      "new": {"cpu_model": "**A72** [docs](http://x.example)", "cores": 2, "os_release": "6.6.51",
                              "governor": "ondemand"}},
               versions={"base": "2.3.0", "new": "2.4.0"})


def test_sweeps_not_measured_alike_are_said_to_differ_before_any_verdict(tmp_path):
    db = tmp_path / "farm.db"
    seed(db, {"base": {"fp32": (10.0, 0.95)}, "new": {"fp32": (10.0, 0.95)}, "again": {"fp32": (10.0, 0.95)}},
         specs={**UNALIKE["specs"], "again": UNALIKE["specs"]["new"]},
         hosts={**UNALIKE["hosts"], "again": UNALIKE["hosts"]["new"]},
         versions={**UNALIKE["versions"], "again": "2.4.0"})
    expected = [("runs", "30", "300"), ("local: CPU", "Cortex-A72", "**A72** [docs](http://x.example)"),
                ("local: cores", "4", "2"), ("local: kernel", "6.1.0", "6.6.51"), ("local: runtime", "x 2.3.0", "x 2.4.0")]

    report = json.loads(farm("compare", "base", "new", "--db", db, "--json").stdout)
    assert [(d["field"], d["baseline"], d["candidate"]) for d in report["differences"]] == expected
    assert json.loads(farm("compare", "new", "again", "--db", db, "--json").stdout)["differences"] == []  # alike

    table = farm("compare", "base", "new", "--db", db, "--max-slowdown", "5%")
    assert table.returncode == 0, table.stdout + table.stderr
    said = [f"  {field}: {a} in base, {b} in new" for field, a, b in expected]
    lines = table.stdout.splitlines()
    assert lines[:6] == ["warning: new and base were not measured alike; a change below may come from this, not from "
                         "the model:", *said]  # first, before the table and its verdicts; device text as sent
    assert "Welch's p below 0.05" in table.stdout and "whole interval lies beyond +5.0%" in table.stdout
    alike = farm("compare", "new", "again", "--db", db)
    assert "warning" not in alike.stdout and "Welch's p below 0.05" in alike.stdout

    comment = farm("compare", "base", "new", "--db", db, "--markdown").stdout
    assert comment.startswith("warning: new and base were not measured alike")
    assert "- local: CPU: Cortex\\-A72 in base, \\*\\*A72\\*\\* \\[docs\\]\\(http://x\\.example\\) in new" in comment
    assert comment.index("- runs: 30 in base, 300 in new") < comment.index("| device |")


def test_noise_alone_is_flagged_at_most_5_percent_of_the_time(capsys):
    # 100 comparisons of one configuration with itself: each side 3 repeats, run-to-run factor ±3%, scatter ±5%.
    rng = np.random.default_rng(2024)
    flagged = 0
    for _ in range(100):
        sides = [Trials([float(np.median(10 * rng.normal(1.0, 0.03) * rng.lognormal(0, 0.05, 200)))
                         for _ in range(3)]) for _ in range(2)]
        (change,) = compare({("local", "m", "fp32", "xnnpack", 1): sides[0]},
                            {("local", "m", "fp32", "xnnpack", 1): sides[1]}, max_slowdown=0.0, max_accuracy_drop=None)
        flagged += change.regressed  # the gate's question, at its strictest: any significant slowdown at all
    with capsys.disabled():
        print(f"\nfalse-positive rate of the gate (--max-slowdown 0%) over 100 noise-only comparisons: {flagged}%")
    assert flagged <= 5


@pytest.mark.alone  # two sweeps timed minutes apart: other tests running beside one of them would be a real slowdown
def test_a_real_rerun_on_this_machine_is_not_flagged(tmp_path, tiny_tflite):
    lab = tmp_path / "lab.yaml"
    lab.write_text(yaml.safe_dump({"devices": [{"name": "local", "kind": "local", "delegates": ["xnnpack"]}]}))
    spec = tmp_path / "rerun.yaml"
    spec.write_text(yaml.safe_dump({"name": "rerun", "inventory": [str(lab)], "models": [{"source": str(tiny_tflite)}],
                                    "runs": 50, "min_secs": 0.3, "repeats": 3}))
    db = tmp_path / "farm.db"
    assert farm("sweep", "run", spec, "--db", db).returncode == 0
    again = farm("sweep", "run", spec, "--db", db, "--json")  # stdout: one JSON summary a CI job can parse
    summary = json.loads(again.stdout)
    assert again.returncode == summary["exit_code"] == 0 and summary["counts"]["done"] == 3
    (row,) = summary["configurations"]
    assert row["repeats"] == 3 and row["p50_ci_low_ms"] <= row["p50_ms"] <= row["p50_ci_high_ms"]
    status = json.loads(farm("sweep", "status", "--db", db, "--json").stdout)
    assert [(s["sweep"], s["state"]) for s in status["sweeps"]] == [("rerun", "done"), ("rerun-2", "done")]

    gate = farm("compare", "rerun", "rerun-2", "--db", db, "--max-slowdown", "5%")
    assert gate.returncode == 0, gate.stdout
    assert "no regression" in gate.stdout
