"""Bad input: one clear line on stderr, a non-zero exit, and nothing half-written."""
import sqlite3

import numpy as np
import pytest
from conftest import REPO, farm

LOCAL = REPO / "inventory" / "local.yaml"


def sweeps_in(db):
    if not db.exists():
        return 0
    return sqlite3.connect(db).execute("SELECT count(*) FROM sweeps").fetchone()[0]


def check_refused(run, db, *fragments):
    assert run.returncode == 2, run.stdout + run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("farm: error: "), run.stderr
    for fragment in fragments:
        assert fragment in lines[0]
    assert "Traceback" not in run.stderr
    assert sweeps_in(db) == 0


def test_missing_model(tmp_path):
    db = tmp_path / "farm.db"
    run = farm("sweep", "run", "--model", tmp_path / "nope.keras", "--inventory", LOCAL, "--db", db)
    check_refused(run, db, "nope.keras")


def test_a_file_that_is_not_a_model(tmp_path):
    db = tmp_path / "farm.db"
    (tmp_path / "model.keras").write_text("this is not a model\n")
    run = farm("sweep", "run", "--model", tmp_path / "model.keras", "--inventory", LOCAL, "--db", db)
    check_refused(run, db, "model.keras")


def test_a_corrupt_tflite(tmp_path, digits_dir):
    db = tmp_path / "farm.db"
    (tmp_path / "broken.tflite").write_bytes(b"TFL3" + bytes(range(256)) * 4)
    run = farm("sweep", "run", "--model", tmp_path / "broken.tflite", "--inventory", LOCAL, "--db", db)
    check_refused(run, db, "broken.tflite")


def test_eval_data_that_does_not_fit_the_model(tmp_path, digits_dir):
    db = tmp_path / "farm.db"
    np.savez(tmp_path / "eval.npz", x=np.zeros((10, 9, 9, 1), np.float32), y=np.zeros(10, np.int64))
    run = farm("sweep", "run", "--model", digits_dir / "digits.keras", "--eval", tmp_path / "eval.npz",
               "--inventory", LOCAL, "--db", db)
    check_refused(run, db, "eval.npz", "(9, 9, 1)")


def test_calibration_that_does_not_fit_the_model(tmp_path, digits_dir):
    np.savez(tmp_path / "calib.npz", x=np.zeros((10, 4, 4, 3), np.float32))
    run = farm("convert", digits_dir / "digits.keras", "--variants", "int8", "--calibration", tmp_path / "calib.npz")
    check_refused(run, tmp_path / "farm.db", "calib.npz")


@pytest.mark.parametrize("entries, message", [
    ("  - {name: local, kind: local, delegates: [xnnpak]}\n", "{inventory}: device 'local': delegates: unknown delegate 'xnnpak'"),
    ("  - {name: local, kind: local\n", "{inventory}:3:1: not valid YAML: "),
    ("  - {name: local, kind: local, delegates: [xnnpack, gpu]}\n",
     "{inventory}: device 'local': delegate_options: gpu: library: required"),
], ids=["typo", "yaml-mistake-as-file-line-column", "delegate-without-its-library"])
def test_an_inventory_mistake_fails_the_sweep_before_it_starts(tmp_path, digits_dir, entries, message):
    db = tmp_path / "farm.db"
    inventory = tmp_path / "lab.yaml"
    inventory.write_text("devices:\n" + entries)
    run = farm("sweep", "run", "--model", digits_dir / "digits.keras", "--inventory", inventory, "--db", db)
    check_refused(run, db, message.format(inventory=inventory))


def test_a_missing_key_fails_that_boards_jobs_at_once_and_the_rest_runs(tmp_path, digits_dir):
    db = tmp_path / "farm.db"
    (tmp_path / "known_hosts").write_text("")
    inventory = tmp_path / "lab.yaml"
    inventory.write_text("devices:\n  - {name: local, kind: local}\n"
                         "  - {name: pi, kind: linux, host: 192.0.2.10, key: keys/pi, known_hosts: known_hosts}\n")
    run = farm("sweep", "run", "--model", digits_dir / "digits.keras", "--runs", "5", "--repeats", "2",
               "--inventory", inventory, "--db", db)
    assert run.returncode == 1, run.stdout + run.stderr
    jobs = sqlite3.connect(db).execute("SELECT device, state, error FROM jobs ORDER BY device").fetchall()
    reason = f"device refused: {inventory}: device 'pi': key: {tmp_path}/keys/pi: file not found"
    assert jobs == [("local", "done", None)] * 2 + [("pi", "failed", reason)] * 2
    # The same line `farm inventory check` gives, before any sweep.
    assert f"farm: error: {reason.removeprefix('device refused: ')}" in farm("inventory", "check", inventory).stderr


def test_unknown_device(tmp_path, digits_dir):
    db = tmp_path / "farm.db"
    run = farm("sweep", "run", "--model", digits_dir / "digits.keras", "--inventory", LOCAL, "--devices", "rpi9",
               "--db", db)
    check_refused(run, db, "unknown device 'rpi9'")


def test_unknown_variant(tmp_path, digits_dir):
    db = tmp_path / "farm.db"
    run = farm("sweep", "run", "--model", digits_dir / "digits.keras", "--variants", "fp32,int4",
               "--inventory", LOCAL, "--db", db)
    check_refused(run, db, "unknown variant 'int4'")


def test_unknown_sweep_and_missing_store(tmp_path):
    run = farm("sweep", "resume", "nope", "--db", tmp_path / "farm.db")
    check_refused(run, tmp_path / "farm.db", "no such store")


@pytest.mark.parametrize("command", [["--help"], ["sweep", "run", "--help"], ["convert", "--help"], ["export", "--help"]])
def test_help_explains_commands(command):
    run = farm(*command)
    assert run.returncode == 0 and "usage: farm" in run.stdout


def test_inventory_check_and_show(tmp_path, digits_dir):
    # The example lab is valid, but names a key and phone binaries this machine does not have: errors to fix.
    run = farm("inventory", "check", LOCAL, REPO / "inventory" / "example-lab.yaml")
    assert run.returncode == 2 and "6 devices, 3 errors (above)" in run.stdout and "coral-devboard" in run.stdout
    assert "device 'rpi4-a': key: " in run.stderr and "device 'pixel-7': binaries: arm64-v8a: " in run.stderr
    assert farm("inventory", "check", LOCAL).returncode == 0
    db = tmp_path / "farm.db"
    swept = farm("sweep", "run", "--model", digits_dir / "digits.keras", "--runs", "5", "--repeats", "1", "--inventory", LOCAL,
                 "--db", f"sqlite:///{db}")  # any SQLAlchemy URL works as --db
    assert swept.returncode == 0, swept.stderr
    shown = farm("inventory", "show", "--db", db)
    assert shown.returncode == 0
    assert "local" in shown.stdout and "cores=" in shown.stdout and "cpu_model=" in shown.stdout


# Rich markup that is not balanced ([/x]) made Rich raise; balanced markup ([bold], [link=...]) would render.
HOSTILE = "m[/x] [bold]b[/bold] [link=http://198.51.100.7/]click[/link]"


def test_names_reasons_and_facts_are_printed_literally_never_as_markup(tmp_path, tiny_tflite):
    import json

    import yaml

    from farm.store import Store

    inventory = tmp_path / "lab.yaml"
    inventory.write_text(yaml.safe_dump({"devices": [{"name": "pi[bold]", "kind": "local", "tags": ["t[/x]", HOSTILE]}]}))
    check = farm("inventory", "check", inventory)
    assert check.returncode == 0, check.stderr
    assert "t[/x]" in check.stdout and "[bold]b[/bold]" in check.stdout and "click[/link]" in check.stdout

    spec = tmp_path / "sweep.yaml"
    spec.write_text(yaml.safe_dump({"name": "s[bold]", "inventory": str(inventory), "runs": 5, "repeats": 1,
                                    "delegates": ["none", "gpu"],
                                    "models": [{"name": HOSTILE, "source": str(tiny_tflite)}]}))
    db = tmp_path / "farm.db"
    swept = farm("sweep", "run", spec, "--db", db)
    assert swept.returncode == 0, swept.stdout + swept.stderr
    assert "Traceback" not in swept.stderr and "[bold]b[/bold]" in swept.stdout

    store = Store(db)
    (job,) = [job for job in store.jobs(store.sweep("s[bold]").id) if job.delegate == "none"]
    store.start_job(job.id)
    store.fail_job(job.id, "[red]boom[/red] [/x] [link=http://198.51.100.7/]re-authenticate[/link]")
    store.upsert_device(store.devices()[0], {"board": "pi[/x]", "governor": "[italic]fast[/italic]"})
    status = farm("sweep", "status", "s[bold]", "--db", db)
    assert status.returncode == 0, status.stderr
    assert "[red]boom[/red] [/x] [link=http://198.51.100.7/]re-authenticate[/link]" in status.stdout
    show = farm("inventory", "show", "--db", db)
    assert show.returncode == 0, show.stderr
    assert "board=pi[/x]" in show.stdout and "[italic]fast[/italic]" in show.stdout
    assert json.loads(store.devices()[0].facts)["board"] == "pi[/x]"
