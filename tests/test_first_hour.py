"""A new user's first hour: the state farm reports is true, and every command it suggests works as printed (each hint
here is run exactly as farm printed it, in the folder it was printed in)."""
import json
import re
import shlex
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
import yaml
from conftest import REPO, farm

from farm import hints
from farm.cli import build_parser
from farm.errors import FarmError
from farm.inventory import load_inventory
from farm.store import Store
from farm.tables import SCHEMA_VERSION


def follow(hint: str, cwd) -> subprocess.CompletedProcess:
    """Run a printed `farm ...` command as a user would paste it: in that folder, through a shell's word splitting."""
    argv = shlex.split(hint)
    assert argv[0] == "farm", hint
    return subprocess.run([sys.executable, "-m", "farm", *argv[1:]], cwd=cwd, capture_output=True, text=True,
                          timeout=600)


def hint_after(text: str, marker: str) -> str:
    found = re.search(re.escape(marker) + r"\s*(farm [^\n]*)", text)
    assert found, text[-2000:]
    return found.group(1).strip()


def states(db) -> dict[str, int]:
    try:
        with sqlite3.connect(db) as connection:
            return dict(connection.execute("SELECT state, count(*) FROM jobs GROUP BY state").fetchall())
    except sqlite3.OperationalError:  # not created yet
        return {}


@pytest.mark.parametrize("sent", [signal.SIGINT, signal.SIGTERM], ids=lambda s: s.name)
def test_a_stopped_sweep_says_interrupted_and_its_hint_resumes_the_right_store(tmp_path, digits_dir, sent):
    work = tmp_path / "work"
    (work / "stores").mkdir(parents=True)
    # The trap: a default store right here with a finished sweep of the same name. A hint without --db resumes it.
    decoy = farm("sweep", "run", "--model", digits_dir / "digits.keras", "--name", "slow", "--runs", "1",
                 "--repeats", "1", "--inventory", REPO / "inventory" / "local.yaml", cwd=work)
    assert decoy.returncode == 0, decoy.stderr
    spec = work / "slow.yaml"
    spec.write_text(yaml.safe_dump({
        "name": "slow", "inventory": [str(REPO / "inventory" / "local.yaml")],
        "models": [{"source": str(digits_dir / "digits.keras")}],
        "delegates": ["xnnpack", "none"], "threads": [1], "repeats": 2, "runs": 20,
        "min_secs": 0.5}))  # every job lasts long enough to be caught mid-run
    db = work / "stores" / "lab.db"
    coordinator = subprocess.Popen([sys.executable, "-m", "farm", "sweep", "run", "slow.yaml", "--db", "stores/lab.db"],
                                   cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and coordinator.poll() is None:
        seen = states(db)
        if seen.get("done", 0) >= 1 and seen.get("running", 0) == 1:
            break
        time.sleep(0.05)
    assert coordinator.poll() is None, "the sweep ended before it could be stopped"
    coordinator.send_signal(sent)
    _, stderr = coordinator.communicate(timeout=60)

    status = json.loads(farm("sweep", "status", "slow", "--db", "stores/lab.db", "--json", cwd=work).stdout)
    [sweep] = status["sweeps"]
    assert sweep["state"] == "interrupted" and sweep["counts"]["running"] == 0 and sweep["counts"]["pending"] > 0
    assert coordinator.returncode == 130, stderr
    assert states(db).get("running") is None  # put back to pending by the coordinator itself
    hint = hint_after(stderr, "continue with:")
    assert hint == "farm sweep resume slow --db stores/lab.db"

    resumed = follow(hint, work)
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr
    assert states(db) == {"done": 4}
    with sqlite3.connect(db) as connection:
        assert {n for (n,) in connection.execute(
            "SELECT count(r.id) FROM jobs j LEFT JOIN results r ON r.job_id = j.id GROUP BY j.id")} == {1}
        assert connection.execute("SELECT state FROM sweeps").fetchall() == [("done",)]


def test_retry_failed_after_the_fix_and_every_hint_on_the_way_works(tmp_path, ssh_fleet, digits_dir):
    """A board whose host key is not trusted yet: its jobs fail with a hint to trust it; trusting it as printed, then
    retrying the failed jobs as printed, finishes the sweep, and each retried job keeps its failure in its history."""
    work = tmp_path / "work"
    work.mkdir()
    host = ssh_fleet["board1"]
    (work / "lab.yaml").write_text(yaml.safe_dump({"devices": [
        host.device(python=sys.executable, known_hosts=str(tmp_path / "known_hosts")), {"name": "local",
                                                                                        "kind": "local"}]}))
    args = ("sweep", "run", "--model", digits_dir / "digits.keras", "--name", "first", "--inventory", "lab.yaml",
            "--repeats", "1", "--runs", "5", "--db", "first.db")
    run = farm(*args, cwd=work)
    assert run.returncode == 1, run.stdout[-3000:] + run.stderr
    with sqlite3.connect(work / "first.db") as connection:
        failures = connection.execute("SELECT error FROM jobs WHERE state = 'failed'").fetchall()
    assert len(failures) == 1 and "no known_hosts file" in failures[0][0]

    # The same final state through resume: the same exit code.
    again = farm("sweep", "resume", "first", "--db", "first.db", cwd=work)
    assert again.returncode == run.returncode, again.stdout[-2000:]

    trust = follow(hint_after(failures[0][0], "check the host key, then:"), work)
    assert trust.returncode == 0, trust.stdout + trust.stderr
    assert "trusted ssh-ed25519" in trust.stdout

    retry = hint_after(run.stdout, "run the failed jobs again with:")
    assert retry == "farm sweep resume first --retry-failed --db first.db"
    retried = follow(retry, work)
    assert retried.returncode == 0, retried.stdout[-3000:] + retried.stderr
    assert "1 failed job back to pending" in retried.stdout
    with sqlite3.connect(work / "first.db") as connection:
        rows = connection.execute("SELECT device, state, attempts, history FROM jobs ORDER BY device").fetchall()
    assert [(device, state) for device, state, _, _ in rows] == [("board1", "done"), ("local", "done")]
    [past] = json.loads(rows[0][3])
    assert "no known_hosts file" in past["error"] and past["attempts"] == 1 and past["finished"]
    assert json.loads(rows[1][3]) == []  # a job that never failed has no history


def test_an_older_store_hint_upgrades_it(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    Store(work / "old.db").engine.dispose()
    with sqlite3.connect(work / "old.db") as connection:  # back to schema 5, as the previous release wrote it
        connection.execute("ALTER TABLE jobs DROP COLUMN history")
        connection.execute("UPDATE meta SET value = '5' WHERE key = 'schema_version'")
    hints.given(db="old.db")
    try:
        with pytest.raises(FarmError) as refused:
            Store(work / "old.db", readonly=True)  # a reader (the dashboard) never changes a store
    finally:
        hints.given(db=None)
    hint = hint_after(str(refused.value), "e.g.")
    assert hint == "farm sweep status --db old.db"
    assert follow(hint, work).returncode == 0
    with sqlite3.connect(work / "old.db") as connection:
        assert connection.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == (
            str(SCHEMA_VERSION),)


def test_a_device_hint_names_the_inventory_that_defines_it(tmp_path):
    """What farm prints when a board lacks onnxruntime: the parser takes it, and it names that board of that file."""
    lab = tmp_path / "labs" / "pis.yaml"
    lab.parent.mkdir()
    lab.write_text(yaml.safe_dump({"devices": [{"name": "pi 4", "kind": "linux", "host": "192.0.2.7"}]}))
    [pi] = load_inventory(lab).devices
    hints.given(db="postgresql://farm:hunter2@db.lab/farm")
    try:
        hint = hints.for_device("provision", pi, "--onnxruntime")
    finally:
        hints.given(db=None)
    assert hint == f"farm provision 'pi 4' --onnxruntime --inventory {lab} --db postgresql://farm@db.lab/farm"
    args = build_parser().parse_args(shlex.split(hint)[1:])
    assert (args.devices, args.onnxruntime, args.inventory) == (["pi 4"], True, [str(lab)])
    assert [d.name for d in load_inventory(*args.inventory).devices] == ["pi 4"]
