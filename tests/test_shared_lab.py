"""A shared lab: several coordinators, one store, the same devices (this machine and an SSH board of the test fleet),
on SQLite and on PostgreSQL. A device runs one benchmark at a time across all of them, a sweep has one driver, a
coordinator that dies frees what it held, and waiting says for whom."""
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import yaml
from conftest import farm, sql

from farm.leases import Leases, device_lease
from farm.store import Store

HOST = socket.gethostname()


def lab(tmp_path, ssh_fleet=None):
    devices = [{"name": "local", "kind": "local", "delegates": ["none"]}]
    if ssh_fleet is not None:
        devices.append(ssh_fleet[0].device(python=sys.executable, delegates=["none"],
                                           workspace=str(tmp_path / "board-workspace")))  # the fleet's stays clean
    path = tmp_path / "lab.yaml"
    path.write_text(yaml.safe_dump({"devices": devices}))
    return path


def spec(tmp_path, name, inventory, model, **overrides):
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"name": name, "inventory": [str(inventory)], "models": [{"source": str(model)}],
                                    "delegates": ["none"], "runs": 5, "warmup_runs": 0, "repeats": 1,
                                    **overrides}))
    return path


def start(*args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "farm", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def wait_for(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"not within {timeout} s: {what}")


def test_three_coordinators_never_share_a_device_and_every_job_has_one_result(tmp_path, db, ssh_fleet, tiny_tflite):
    inventory = lab(tmp_path, ssh_fleet)
    names = ["alice", "bob", "carol"]
    coordinators = []
    for name in names:  # overlapping: each starts while the one before still runs
        coordinators.append(start("sweep", "run", spec(tmp_path, name, inventory, tiny_tflite, threads=[1, 2],
                                                       repeats=2, min_secs=0.2), "--db", db))
        time.sleep(0.7)
    outputs = [coordinator.communicate(timeout=300) for coordinator in coordinators]
    for coordinator, (out, err) in zip(coordinators, outputs):
        assert coordinator.returncode == 0, out + err
    assert any(" waiting — held by sweep " in out for out, _ in outputs), [out for out, _ in outputs]

    jobs = sql(db, "SELECT j.device, j.started, j.finished, count(r.id) FROM jobs j "
                   "LEFT JOIN results r ON r.job_id = j.id GROUP BY j.id, j.device, j.started, j.finished")
    assert len(jobs) == 3 * 2 * 4 and {n for *_, n in jobs} == {1}  # every job, exactly one result
    for device in ("local", ssh_fleet[0].name):
        spans = sorted((started, finished) for name, started, finished, _ in jobs if name == device)
        for (_, end), (begin, _) in zip(spans, spans[1:]):
            assert begin >= end, f"{device}: a job started at {begin} while another ran until {end}"


def test_a_busy_device_is_waited_for_and_says_whom_for_or_fails_at_once_without_waiting(tmp_path, db, tiny_tflite):
    inventory = lab(tmp_path)
    with Leases(Store(db), "bob") as bob:
        assert bob.try_hold(device_lease("local"))
        refused = farm("sweep", "run", spec(tmp_path, "quick", inventory, tiny_tflite), "--db", db, "--no-wait")
        assert refused.returncode == 1, refused.stdout + refused.stderr
        ((state, error),) = sql(db, "SELECT state, error FROM jobs")
        assert state == "failed" and error.startswith(f"device busy: held by sweep bob (pid {os.getpid()} on {HOST}) "
                                                      "since "), error

        patient = start("sweep", "run", spec(tmp_path, "patient", inventory, tiny_tflite), "--db", db)
        said: list[str] = []
        threading.Thread(target=lambda: said.extend(patient.stdout), daemon=True).start()
        try:  # bob lets go once the patient coordinator says whom it waits for
            wait_for(lambda: any(f"local: waiting — held by sweep bob (pid {os.getpid()} on {HOST}) since " in line
                                 for line in said), 60, "the patient sweep waiting for bob")
            bob.release(device_lease("local"))
            assert patient.wait(timeout=120) == 0, "".join(said) + patient.stderr.read()
        finally:
            if patient.poll() is None:
                os.killpg(patient.pid, signal.SIGKILL)
    assert sql(db, "SELECT j.state FROM jobs j JOIN sweeps s ON s.id = j.sweep_id WHERE s.name = 'patient'") == [("done",)]


def test_a_live_sweep_has_one_driver_and_a_killed_one_frees_its_device_at_once(tmp_path, db, tiny_tflite):
    inventory = lab(tmp_path)
    carol = start("sweep", "run", spec(tmp_path, "carol", inventory, tiny_tflite, repeats=12, min_secs=1.0),
                  "--db", db)
    try:
        wait_for(lambda: sql(db, "SELECT 1 FROM jobs WHERE state = 'running'") if _exists(db) else None, 120,
                 "carol running a job")
        before = sql(db, "SELECT id, state, attempts FROM jobs ORDER BY id")
        again = farm("sweep", "resume", "carol", "--db", db)
        assert again.returncode == 2, again.stdout + again.stderr
        assert again.stderr == f"farm: error: sweep carol is being run by pid {carol.pid} on {HOST}\n"
        after = sql(db, "SELECT id, state, attempts FROM jobs ORDER BY id")
        assert max(a for *_, a in after) == 1 and len(after) == len(before)  # nothing ran twice, nothing added
        status = farm("sweep", "status", "--db", db)
        assert f"pid {carol.pid} on {HOST}" in status.stdout and "local: held by sweep carol" in status.stdout

        dave = start("sweep", "run", spec(tmp_path, "dave", inventory, tiny_tflite), "--db", db)
        said: list[str] = []
        threading.Thread(target=lambda: said.extend(dave.stdout), daemon=True).start()
        wait_for(lambda: any("waiting — held by sweep carol" in line for line in said), 60, "dave waiting for carol")
        os.killpg(carol.pid, signal.SIGKILL)
        killed = time.monotonic()
        carol.wait(timeout=30)
        wait_for(lambda: sql(db, "SELECT 1 FROM jobs j JOIN sweeps s ON s.id = j.sweep_id "
                                 "WHERE s.name = 'dave' AND j.state IN ('running', 'done')"), 10,
                 "dave proceeding after carol's coordinator died")
        assert time.monotonic() - killed < 10
        assert dave.wait(timeout=120) == 0, "".join(said) + dave.stderr.read()
    finally:
        for process in (carol,):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)

    status = farm("sweep", "status", "--db", db)
    assert "carol" in status.stdout and "interrupted" in status.stdout, status.stdout  # running, no driver: not true
    resumed = farm("sweep", "resume", "carol", "--db", db)  # its dead lease blocks nobody
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    per_job = sql(db, "SELECT count(r.id) FROM jobs j LEFT JOIN results r ON r.job_id = j.id GROUP BY j.id")
    assert {n for (n,) in per_job} == {1}


def _exists(db) -> bool:
    try:
        return bool(sql(db, "SELECT 1 FROM jobs LIMIT 1"))
    except Exception:  # noqa: BLE001 - not created yet
        return False


def test_a_postgresql_store_without_its_driver_is_one_line_naming_the_extra(tmp_path):
    code = ("import sys; sys.modules['psycopg'] = None; from farm.cli import main; "
            "sys.exit(main(['sweep', 'status', '--db', 'postgresql://farm:secret@127.0.0.1:1/farm']))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and run.stderr.count("\n") == 1, run.stderr
    assert "pip install 'tflite-farm[postgres]'" in run.stderr and "secret" not in run.stderr, run.stderr


def agents(coordinator: int, workspace: Path) -> set[int]:
    """The agent processes of one coordinator: the local device's (agents/litert_agent.py, started by the coordinator,
    and the job processes those fork) and the test board's (the same file, staged in the board's workspace). Other
    tests' agents may be running on this machine too (a warm agent lives as long as its lane), so only these count."""
    parents, commands = {}, {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                commands[int(entry)] = open(f"/proc/{entry}/cmdline", "rb").read()
                parents[int(entry)] = int(open(f"/proc/{entry}/stat").read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue

    def started_by_coordinator(pid: int) -> bool:
        for _ in range(64):  # bounded: a process tree is shallow
            pid = parents.get(pid, 0)
            if pid == coordinator:
                return True
            if pid <= 1:
                return False
        return False

    return {pid for pid, command in commands.items()
            if (b"litert_agent" in command and started_by_coordinator(pid)) or str(workspace).encode() in command}


def alive(pids: set[int]) -> set[int]:
    """Those of `pids` still running (a zombie has no command line: it has ended)."""
    found = set()
    for pid in pids:
        try:
            if open(f"/proc/{pid}/cmdline", "rb").read():
                found.add(pid)
        except OSError:
            pass
    return found


def test_the_agents_of_a_killed_coordinator_stop_with_it(tmp_path, ssh_fleet, tiny_tflite):
    # Else a benchmark nobody waits for would run on beside the next coordinator's, on the same device.
    inventory = lab(tmp_path, ssh_fleet)
    coordinator = start("sweep", "run", spec(tmp_path, "orphans", inventory, tiny_tflite, min_secs=60, runs=5),
                        "--db", tmp_path / "farm.db")
    try:
        workspace = tmp_path / "board-workspace"
        running = wait_for(lambda: coordinator.poll() is not None or (
            len(found := agents(coordinator.pid, workspace)) >= 4 and found), 120,
            "an agent and its job's process on each device")
        assert coordinator.poll() is None, coordinator.communicate()
        coordinator.kill()  # SIGKILL, the coordinator alone: each agent runs in a session of its own
        coordinator.wait(timeout=30)
        wait_for(lambda: not alive(running), 10, f"the agents {sorted(running)} gone after the kill")
    finally:
        if coordinator.poll() is None:
            coordinator.kill()
