"""Linux boards over SSH: sweeps against the fleet of real OpenSSH servers (tests/fleet), host keys always verified."""
import json
import platform
import re
import sqlite3
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
import yaml

from conftest import farm

RUNS = 10


def inventory(tmp_path: Path, fleet, *, local: bool = True, name: str = "lab.yaml", **overrides) -> Path:
    """The fleet's boards (and this machine) as an inventory; the agent runs there with this venv's Python."""
    devices = [host.device(python=sys.executable, delegates=["xnnpack", "none"], tags=["board"], **overrides)
               for host in fleet]
    if local:
        devices.append({"name": "local", "kind": "local"})
    path = tmp_path / name
    path.write_text(yaml.safe_dump({"devices": devices}))
    return path


def sweep_spec(tmp_path: Path, digits_dir: Path, lab: Path, name: str = "boards", **overrides) -> Path:
    spec = {
        "name": name,
        "inventory": [str(lab)],
        "models": [{"name": "digits", "source": str(digits_dir / "digits.keras"), "variants": ["fp32", "int8"],
                    "calibration": str(digits_dir / "digits_calib.npz"), "eval": str(digits_dir / "digits_eval.npz")}],
        "delegates": ["xnnpack"],
        "runs": RUNS,
        "warmup_runs": 2,
        "repeats": 1,
        **overrides,
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def job_states(db: Path) -> dict[str, list[tuple]]:
    connection = sqlite3.connect(db)
    rows = connection.execute("SELECT device, state, error FROM jobs ORDER BY id").fetchall()
    out: dict[str, list[tuple]] = {}
    for device, state, error in rows:
        out.setdefault(device, []).append((state, error))
    return out


def results_per_job(db: Path) -> set[int]:
    connection = sqlite3.connect(db)
    rows = connection.execute("SELECT count(r.id) FROM jobs j LEFT JOIN results r ON r.job_id = j.id "
                              "WHERE j.state = 'done' GROUP BY j.id").fetchall()
    return {n for (n,) in rows}


def uploaded(run) -> int:
    return int(re.search(r"; (\d+) bytes uploaded to devices", run.stdout).group(1))


def test_sweep_over_four_boards_and_this_machine(tmp_path, ssh_fleet, digits_dir):
    lab = inventory(tmp_path, ssh_fleet)
    db = tmp_path / "farm.db"
    run = farm("sweep", "run", sweep_spec(tmp_path, digits_dir, lab), "--db", db)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr
    states = job_states(db)
    assert set(states) == {host.name for host in ssh_fleet} | {"local"}
    assert all(state == "done" for jobs in states.values() for state, _ in jobs), states
    connection = sqlite3.connect(db)
    for host in ssh_fleet:
        # The agent ran on that board: its facts carry the board's workspace, and the files were uploaded there.
        facts = connection.execute("SELECT facts FROM devices WHERE name = ?", (host.name,)).fetchone()[0]
        assert f'"workspace": "{host.workspace}"' in facts
        files = sorted(p.suffix for p in (host.workspace / "files").iterdir())
        assert files == [".npz", ".py", ".tflite", ".tflite"], files
        accuracy = connection.execute(
            "SELECT min(r.accuracy), min(r.count) FROM results r JOIN jobs j ON j.id = r.job_id WHERE j.device = ?",
            (host.name,)).fetchone()
        assert accuracy[0] >= 0.9 and accuracy[1] == RUNS
    assert uploaded(run) > 0

    again = farm("sweep", "run", sweep_spec(tmp_path, digits_dir, lab), "--db", db)
    assert again.returncode == 0, again.stderr
    assert uploaded(again) == 0  # the same models again: every file checked on the board, none copied
    assert results_per_job(db) == {1}


def test_a_board_whose_host_key_changed_is_refused(tmp_path, healed_ssh_fleet, digits_dir):
    lab = inventory(tmp_path, healed_ssh_fleet, local=False)
    healed_ssh_fleet["board2"].rotate_host_key()
    db = tmp_path / "farm.db"
    run = farm("sweep", "run", sweep_spec(tmp_path, digits_dir, lab), "--db", db)
    assert run.returncode == 1
    states = job_states(db)
    for state, error in states["board2"]:
        assert state == "failed"
        assert "device refused" in error and "host key" in error and "unknown or has changed" in error
        assert "farm inventory trust board2" in error
    assert all(state == "done" for name, jobs in states.items() if name != "board2" for state, _ in jobs)


def test_trust_records_a_host_key_only_when_asked(tmp_path, ssh_fleet, digits_dir):
    host = ssh_fleet["board1"]
    known_hosts = tmp_path / "known_hosts"
    lab = tmp_path / "lab.yaml"
    lab.write_text(yaml.safe_dump({"devices": [host.device(python=sys.executable, known_hosts=str(known_hosts))]}))
    refused = farm("inventory", "probe", "board1", "--inventory", lab, "--db", tmp_path / "farm.db")
    assert refused.returncode == 1 and "no known_hosts file" in refused.stdout
    assert not known_hosts.exists()  # never recorded silently

    trusted = farm("inventory", "trust", "board1", "--inventory", lab)
    assert trusted.returncode == 0, trusted.stderr
    assert "trusted ssh-ed25519 SHA256:" in trusted.stdout
    assert known_hosts.read_text().strip() == host.known_hosts_line()

    probed = farm("inventory", "probe", "board1", "--inventory", lab, "--db", tmp_path / "farm.db")
    assert probed.returncode == 0, probed.stdout + probed.stderr
    assert "board1: Python 3." in probed.stdout and "ai_edge_litert 2." in probed.stdout
    shown = farm("inventory", "show", "--db", tmp_path / "farm.db")
    assert "board1" in shown.stdout and f"workspace={host.workspace}" in shown.stdout


def test_names_and_paths_with_quotes_neither_break_nor_inject(tmp_path, ssh_fleet, digits_dir):
    evil = "it's a; touch PWNED; $(touch PWNED2) `touch PWNED3`"
    host = ssh_fleet["board3"]
    workspace = host.workspace / evil
    lab = tmp_path / "lab.yaml"
    device = "bob's pi; $(touch PWNED4)"
    lab.write_text(yaml.safe_dump({"devices": [host.device(name=device, python=sys.executable, workspace=str(workspace))]}))
    model_dir = tmp_path / "models 'quoted'; rm -rf ~"
    model_dir.mkdir()
    (model_dir / "digits it's.keras").write_bytes((digits_dir / "digits.keras").read_bytes())
    spec = sweep_spec(tmp_path, digits_dir, lab, name="quotes")
    raw = yaml.safe_load(spec.read_text())
    raw["models"][0].update(name="digits-it's", source=str(model_dir / "digits it's.keras"), variants=["fp32"])
    spec.write_text(yaml.safe_dump(raw))
    db = tmp_path / "farm.db"
    run = farm("sweep", "run", spec, "--db", db)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr
    assert {state for state, _ in job_states(db)[device]} == {"done"}
    assert (workspace / "files").is_dir() and len(list((workspace / "files").glob("*.tflite"))) == 1
    for folder in (host.home, host.workspace, workspace, Path.cwd(), tmp_path):
        assert not list(folder.glob("PWNED*"))
    model = sqlite3.connect(db).execute("SELECT name FROM models").fetchone()[0]
    assert model == "digits-it's"
    exported = farm("export", "--sweep", "quotes", "--out", tmp_path / "reports", "--db", db)
    assert exported.returncode == 0, exported.stderr
    report = tmp_path / "reports" / f"quotes-{device}.csv"
    assert report.is_file() and "digits-it's" in report.read_text()
    assert not list(tmp_path.rglob("PWNED*"))


def _when_running(db: Path, device: str, action, timeout: float = 120) -> threading.Thread:
    """Do `action` once `device` has a job running (bounded), in a thread beside the sweep."""

    def watch():
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                row = sqlite3.connect(db, timeout=5).execute(
                    "SELECT count(*) FROM jobs WHERE device = ? AND state = 'running'", (device,)).fetchone()
            except sqlite3.OperationalError:
                row = (0,)
            if row[0]:
                action()
                return
            time.sleep(0.02)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def test_a_board_killed_mid_sweep_is_retried_and_the_others_finish(tmp_path, healed_ssh_fleet, digits_dir):
    lab = inventory(tmp_path, healed_ssh_fleet, local=False)
    db = tmp_path / "farm.db"
    board = healed_ssh_fleet["board2"]

    def kill_then_come_back():
        board.kill()
        time.sleep(1.5)
        board.start()

    watcher = _when_running(db, "board2", kill_then_come_back)
    spec = sweep_spec(tmp_path, digits_dir, lab, min_secs=1.0, threads=[1, 2])
    run = farm("sweep", "run", spec, "--db", db)
    watcher.join(timeout=5)
    states = job_states(db)
    for name, jobs in states.items():
        if name != "board2":
            assert {state for state, _ in jobs} == {"done"}, (name, jobs)
    for state, error in states["board2"]:
        assert state == "done" or (state == "failed" and "device lost" in error), states["board2"]
    connection = sqlite3.connect(db)
    attempts = connection.execute("SELECT max(attempts) FROM jobs WHERE device = 'board2'").fetchone()[0]
    assert attempts >= 2  # the job that was running when the board died was tried again
    assert results_per_job(db) == {1}
    assert connection.execute("SELECT count(*) FROM results r JOIN jobs j ON j.id = r.job_id "
                              "WHERE j.state != 'done'").fetchone()[0] == 0
    assert run.returncode in (0, 1)


def test_a_frozen_board_is_detected_within_ten_seconds(tmp_path, healed_ssh_fleet, digits_dir):
    lab = inventory(tmp_path, healed_ssh_fleet, local=False)
    db = tmp_path / "farm.db"
    board = healed_ssh_fleet["board4"]
    frozen_at: list[float] = []

    def freeze():
        board.freeze()
        frozen_at.append(time.time())

    watcher = _when_running(db, "board4", freeze)
    # One attempt: the first loss is final, so its time is the detection time.
    spec = sweep_spec(tmp_path, digits_dir, lab, min_secs=3.0, attempts=1)
    run = farm("sweep", "run", spec, "--db", db, timeout=300)
    watcher.join(timeout=5)
    assert frozen_at, "board4 never ran a job"
    connection = sqlite3.connect(db)
    rows = connection.execute("SELECT state, error, finished FROM jobs WHERE device = 'board4' ORDER BY id").fetchall()
    state, error, finished = rows[0]
    assert state == "failed" and "device lost" in error, rows
    stamp = datetime.fromisoformat(finished)
    detected = (stamp if stamp.tzinfo else stamp.replace(tzinfo=timezone.utc)).timestamp()  # the store keeps UTC
    assert detected - frozen_at[0] < 10, (detected - frozen_at[0], error)
    others = {name: jobs for name, jobs in job_states(db).items() if name != "board4"}
    assert all(state == "done" for jobs in others.values() for state, _ in jobs)
    assert run.returncode == 1


def logins(host) -> int:
    return Path(host.log).read_text().count("Accepted publickey")


def test_a_board_behind_a_jump_host(tmp_path, ssh_fleet, digits_dir):
    gateway, board = ssh_fleet["board1"], ssh_fleet["board2"]
    lab = tmp_path / "lab.yaml"
    lab.write_text(yaml.safe_dump({"devices": [
        board.device(python=sys.executable, jump=f"{gateway.user}@{gateway.address}:{gateway.port}")]}))
    before = logins(gateway)
    run = farm("sweep", "run", sweep_spec(tmp_path, digits_dir, lab, name="jump"), "--db", tmp_path / "farm.db")
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr
    assert {state for state, _ in job_states(tmp_path / "farm.db")["board2"]} == {"done"}
    assert logins(gateway) == before + 1  # one connection through the gateway, reused for the whole lane


def test_a_delegate_library_that_does_not_load_is_recorded_as_such(tmp_path, ssh_fleet, digits_dir):
    host = ssh_fleet["board1"]
    lab = tmp_path / "lab.yaml"
    lab.write_text(yaml.safe_dump({"devices": [host.device(
        python=sys.executable, delegates=["xnnpack", "gpu"],
        delegate_options={"gpu": {"library": "/opt/vendor/libnot_there_gpu_delegate.so", "options": {"precision": "fp16"}}})]}))
    spec = sweep_spec(tmp_path, digits_dir, lab, name="gpu", delegates=["xnnpack", "gpu"])
    run = farm("sweep", "run", spec, "--db", tmp_path / "farm.db")
    assert run.returncode == 1
    connection = sqlite3.connect(tmp_path / "farm.db")
    rows = connection.execute("SELECT j.delegate, j.state, j.error, r.id FROM jobs j LEFT JOIN results r "
                              "ON r.job_id = j.id ORDER BY j.id").fetchall()
    for delegate, state, error, result in rows:
        if delegate == "gpu":
            # Never a CPU number filed under the GPU's name.
            assert state == "failed" and result is None
            assert "delegate_failed" in error and "libnot_there_gpu_delegate.so" in error
        else:
            assert state == "done" and result is not None


def test_provision_installs_the_runtime_with_fabric_and_the_agent_uses_it(tmp_path, ssh_fleet, digits_dir):
    host = ssh_fleet["board4"]
    workspace = host.workspace / "provisioned"
    lab = tmp_path / "lab.yaml"
    lab.write_text(yaml.safe_dump({"devices": [host.device(workspace=str(workspace))]}))  # no python: the venv's
    run = farm("provision", "board4", "--inventory", lab, "--python", "/usr/bin/python3", "--onnxruntime",
               "--db", tmp_path / "farm.db", timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    venv_python = workspace / "venv" / "bin" / "python"
    assert f"board4: ready: {venv_python} (Python 3." in run.stdout and "ai_edge_litert 2." in run.stdout
    # --onnxruntime: installed in the same venv, and the probe that checks the board found it there.
    assert "onnxruntime 1." in run.stdout and "CPUExecutionProvider" in run.stdout, run.stdout
    facts = device_facts(tmp_path / "farm.db", "board4")
    assert facts["onnxruntime"]["version"].startswith("1.")
    # The board's Python has ai-edge-litert wheels: pip's choice, said with its reason and kept with the facts.
    board = f"Python {facts['python_version'].rsplit('.', 1)[0]} {platform.machine()}"
    chosen = {"runtime": "ai-edge-litert", "version": facts["runtime"]["version"], "numpy": facts["numpy_version"],
              "why": f"pip found a wheel for {board}"}
    assert facts["runtime"]["name"] == "ai_edge_litert" and facts["provisioned"] == chosen
    assert (f"board4: ai-edge-litert {chosen['version']} with numpy {chosen['numpy']} (pip found a wheel for "
            f"{board})\n") in run.stdout
    swept = farm("sweep", "run", sweep_spec(tmp_path, digits_dir, lab, name="provisioned"), "--db", tmp_path / "farm.db")
    assert swept.returncode == 0, swept.stdout[-2000:] + swept.stderr
    hosts = sqlite3.connect(tmp_path / "farm.db").execute("SELECT DISTINCT host FROM results").fetchall()
    assert len(hosts) == 1 and f'"python_executable": "{venv_python}"' in hosts[0][0]
    # The sweep probed the board again; the choice stays with its facts, and `farm inventory show` says it.
    assert device_facts(tmp_path / "farm.db", "board4")["provisioned"] == chosen
    shown = farm("inventory", "show", "--db", tmp_path / "farm.db")
    assert (f"provisioned=ai-edge-litert {chosen['version']} with numpy {chosen['numpy']} (pip found a wheel for "
            f"{board})") in shown.stdout, shown.stdout


def device_facts(db: Path, name: str) -> dict:
    (facts,) = sqlite3.connect(db).execute("SELECT facts FROM devices WHERE name = ?", (name,)).fetchone()
    return json.loads(facts)


def test_provision_runtime_tflite_runtime_replaces_ai_edge_litert_and_the_probe_finds_it(tmp_path, ssh_fleet):
    host = ssh_fleet["board3"]
    workspace = host.workspace / "tflite-runtime"
    lab = tmp_path / "lab.yaml"
    lab.write_text(yaml.safe_dump({"devices": [host.device(workspace=str(workspace))]}))
    db = tmp_path / "farm.db"
    first = farm("provision", "board3", "--inventory", lab, "--python", "/usr/bin/python3", "--db", db, timeout=600)
    assert first.returncode == 0, first.stdout + first.stderr
    assert device_facts(db, "board3")["runtime"]["name"] == "ai_edge_litert"
    # Forced, in the same venv: tflite-runtime with numpy 1, and ai-edge-litert (which the agent would import first)
    # removed.
    run = farm("provision", "board3", "--inventory", lab, "--python", "/usr/bin/python3", "--runtime",
               "tflite-runtime", "--db", db, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    venv_python = workspace / "venv" / "bin" / "python"
    assert "board3: tflite-runtime 2.14.0 with numpy 1." in run.stdout and "(--runtime tflite-runtime)\n" in run.stdout
    assert f"board3: ready: {venv_python} (Python 3." in run.stdout
    assert ", tflite_runtime 2.14.0, numpy 1." in run.stdout
    facts = device_facts(db, "board3")
    assert (facts["runtime"]["name"], facts["runtime"]["version"]) == ("tflite_runtime", "2.14.0")
    assert facts["provisioned"] == {"runtime": "tflite-runtime", "version": "2.14.0", "numpy": facts["numpy_version"],
                                    "why": "--runtime tflite-runtime"}
    assert facts["numpy_version"].startswith("1.")
    assert not list((workspace / "venv" / "lib").glob("python3.*/site-packages/ai_edge_litert"))


def test_provision_verifies_host_keys_too(tmp_path, healed_ssh_fleet):
    host = healed_ssh_fleet["board3"]
    lab = tmp_path / "lab.yaml"
    lab.write_text(yaml.safe_dump({"devices": [host.device(workspace=str(host.workspace / "never"))]}))
    host.rotate_host_key()
    run = farm("provision", "board3", "--inventory", lab, "--db", tmp_path / "farm.db")
    assert run.returncode == 2
    assert "host key of" in run.stderr and "farm inventory trust board3" in run.stderr
    assert not (host.workspace / "never").exists()  # nothing ran on a board that could not prove who it is
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    lab.write_text(yaml.safe_dump({"devices": [host.device(known_hosts=str(empty))]}))
    run = farm("provision", "board3", "--inventory", lab, "--db", tmp_path / "farm.db")
    assert run.returncode == 2 and "not found in known_hosts" in run.stderr, run.stderr


def test_a_missing_password_names_the_device_and_the_field_never_the_value(monkeypatch):
    from farm.inventory import parse_device
    from farm.results import DeviceRefused
    from farm.transports.ssh import password

    monkeypatch.delenv("Hunter2secret", raising=False)  # a password typed where its variable's name belongs
    board = parse_device({"name": "pi", "kind": "linux", "host": "h", "password_env": "Hunter2secret"})
    with pytest.raises(DeviceRefused) as error:
        password(board)
    assert str(error.value) == "device 'pi': the environment variable that password_env names is not set"


def test_trust_goes_through_the_jump_host_and_shows_fingerprints_before_writing(tmp_path, ssh_fleet):
    gateway, board = ssh_fleet["board1"], ssh_fleet["board2"]
    known_hosts = tmp_path / "known_hosts"
    lab = tmp_path / "lab.yaml"
    lab.write_text(yaml.safe_dump({"devices": [
        {"name": "local", "kind": "local"},
        board.device(python=sys.executable, known_hosts=str(known_hosts),
                     jump=f"{gateway.user}@{gateway.address}:{gateway.port}")]}))
    trusted = farm("inventory", "trust", "--inventory", lab)  # no names: every SSH device, the others skipped
    assert trusted.returncode == 0, trusted.stdout + trusted.stderr
    lines = trusted.stdout.splitlines()
    assert lines[0] == "local: skipped, a local device has no SSH host key"
    # The gateway's key first, then the board's (asked through the gateway); each fingerprint before its writing.
    assert lines[1].startswith(f"board2: [{gateway.address}]:{gateway.port} presents ssh-ed25519 SHA256:")
    assert lines[2].startswith("board2: trusted ssh-ed25519 SHA256:") and f"[{gateway.address}]" in lines[2]
    assert lines[3].startswith(f"board2: [{board.address}]:{board.port} presents ssh-ed25519 SHA256:")
    assert lines[4].startswith("board2: trusted ssh-ed25519 SHA256:") and f"[{board.address}]" in lines[4]
    assert sorted(known_hosts.read_text().splitlines()) == sorted([gateway.known_hosts_line(), board.known_hosts_line()])
    probed = farm("inventory", "probe", "board2", "--inventory", lab, "--db", tmp_path / "farm.db")
    assert probed.returncode == 0, probed.stdout + probed.stderr  # the next probe is not refused


def test_a_changed_key_is_replaced_only_when_asked(tmp_path, healed_ssh_fleet):
    board = healed_ssh_fleet["board3"]
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(board.known_hosts_line() + "\n")
    lab = tmp_path / "lab.yaml"
    lab.write_text(yaml.safe_dump({"devices": [board.device(known_hosts=str(known_hosts))]}))
    board.rotate_host_key()
    kept = farm("inventory", "trust", "board3", "--inventory", lab)
    assert kept.returncode == 2 and "has changed and was kept" in kept.stderr
    assert "is recorded in" in kept.stdout and "it now presents SHA256:" in kept.stdout  # old beside new
    assert known_hosts.read_text() == board.known_hosts_line() + "\n"  # nothing written
    replaced = farm("inventory", "trust", "board3", "--inventory", lab, "--replace")
    assert replaced.returncode == 0, replaced.stderr
    assert "replaced the old key with ssh-ed25519" in replaced.stdout
    assert known_hosts.read_text() == board.known_hosts_line(enrolled=False) + "\n"


def test_an_upload_is_published_under_its_sha256_only_when_whole(tmp_path, ssh_fleet):
    # What a coordinator killed mid-upload sends: fewer bytes than the file (cat ends with status 0 all the same).
    # Here the local file changes after its digest was taken, which the board sees exactly the same way.
    import asyncio

    from farm.inventory import parse_device
    from farm.paths import sha256_file
    from farm.transports import LocalFile
    from farm.transports.ssh import SshTransport

    workspace = tmp_path / "workspace"
    transport = SshTransport(parse_device(ssh_fleet[0].device(python=sys.executable, workspace=str(workspace))))
    model = tmp_path / "model.tflite"
    model.write_bytes(b"x" * 100_000)
    whole = LocalFile(model, sha256_file(model))
    model.write_bytes(b"x" * 40_000)  # the bytes that arrive are not the file that was named

    async def stage():
        try:
            return await transport._stage(whole)
        finally:
            await transport.close()

    from farm.results import JobFailed

    with pytest.raises(JobFailed, match="cat failed on board1: the copy that arrived does not hash to its sha256"):
        asyncio.run(stage())
    assert sorted(p.name for p in (workspace / "files").iterdir()) == []  # neither published nor left as .part
