"""Processes and files behave: `farm dashboard` takes its Streamlit server with it when it is stopped (SIGTERM or SIGINT
to farm alone), refuses a store it cannot show before serving anything, and every file farm writes gets the user's
umask. All with the real `farm` command line in fresh processes."""
import os
import signal
import socket
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import Dashboard, farm, free_port

from farm.store import Store
from farm.tables import SCHEMA_VERSION


def processes() -> dict[int, tuple[int, int]]:
    """Every live process: pid -> (parent pid, process group), read from /proc."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rpartition(")")[2].split()  # after "pid (comm)", which may hold spaces
        except OSError:  # gone meanwhile
            continue
        if fields[0] != "Z":  # a zombie has exited; only its parent's wait is missing
            found[int(entry.name)] = (int(fields[1]), int(fields[2]))
    return found


def answers(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        return True
    except OSError:
        return False


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_the_dashboard_stops_its_server_when_farm_is_stopped(tmp_path, signum):
    Store(tmp_path / "farm.db").engine.dispose()
    dashboard = Dashboard(tmp_path / "farm.db", tmp_path / "dashboard.log")  # serving, in a process group of its own
    farm_pid = dashboard.process.pid
    try:
        servers = [pid for pid, (parent, _) in processes().items() if parent == farm_pid]
        assert len(servers) == 1, "farm dashboard serves through one Streamlit child"
        os.kill(farm_pid, signum)  # farm alone: not its process group, as `kill PID` or a service manager does
        assert dashboard.process.wait(timeout=30) == 0, (tmp_path / "dashboard.log").read_text()[-2000:]
        assert not answers(dashboard.port)
        left = [pid for pid, (_, group) in processes().items() if group == farm_pid]
        assert left == [] and servers[0] not in processes()
    finally:
        dashboard.stop()
        try:  # whatever the test left of what it started
            os.killpg(farm_pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_a_store_the_dashboard_cannot_show_is_one_line_before_serving(tmp_path):
    (tmp_path / "notes.db").write_text("not a database\n" * 100)
    with sqlite3.connect(tmp_path / "other.db") as other:
        other.execute("CREATE TABLE things (id INTEGER)")
    Store(tmp_path / "old.db").engine.dispose()
    with sqlite3.connect(tmp_path / "old.db") as old:  # a store of a schema this release cannot upgrade
        old.execute("UPDATE meta SET value='0' WHERE key='schema_version'")
    for name, reason in (("nope.db", "no such store (run a sweep first, or pass --db)"),
                         ("notes.db", "cannot open the store"), ("other.db", "not a tflite-farm store"),
                         ("old.db", f"store schema version 0, this tflite-farm needs {SCHEMA_VERSION}")):
        port = free_port()
        run = farm("dashboard", "--db", tmp_path / name, "--port", port, timeout=120)
        assert run.returncode == 2, run.stdout + run.stderr
        assert run.stderr.startswith("farm: error: ") and reason in run.stderr and run.stderr.count("\n") == 1, run.stderr
        assert run.stdout == "" and not answers(port)  # nothing was served, nor said to be


@pytest.mark.parametrize("umask", [0o022, 0o077], ids=["022", "077"])
def test_files_farm_writes_get_the_users_umask(tmp_path, tiny_tflite, umask):
    """A sweep on this machine and its export, in a process under `umask`: the store, its lease files, the conversion
    cache and the CSVs, every file and folder farm made, has the mode the umask gives."""
    work, cache = tmp_path / "work", tmp_path / "cache"
    work.mkdir()
    env = {**os.environ, "FARM_CACHE": str(cache)}
    for command in (["sweep", "run", "--model", tiny_tflite, "--runs", "2", "--warmup-runs", "0", "--repeats", "1",
                     "--delegates", "none"],
                    ["export", "--out", "reports"]):
        run = subprocess.run([sys.executable, "-m", "farm", *map(str, command)], cwd=work, env=env, umask=umask,
                             capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, run.stdout + run.stderr
    made = [path for root in (work, cache) for path in root.rglob("*")]
    assert {path.name for path in made} >= {"farm.db", "tiny_mlp-local.csv"} and any(cache.rglob("*.tflite"))
    wrong = {str(path): oct(stat.S_IMODE(path.stat().st_mode)) for path in made
             if stat.S_IMODE(path.stat().st_mode) != (0o777 if path.is_dir() else 0o666) & ~umask}
    assert wrong == {}


def test_stopping_waits_for_the_server(tmp_path):
    """A server slow to stop is waited for, then killed: farm never exits before its child is gone."""
    from farm.commands.dashboard import _stop

    stubborn = subprocess.Popen([sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, "
                                 "signal.SIG_IGN); print('ready', flush=True); time.sleep(120)"],
                                stdout=subprocess.PIPE, text=True)
    previous = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    try:
        assert stubborn.stdout.readline() == "ready\n"
        start = time.monotonic()
        _stop(stubborn, grace_s=1)
        assert stubborn.returncode == -signal.SIGKILL and time.monotonic() - start < 10
    finally:
        signal.signal(signal.SIGINT, previous[0])
        signal.signal(signal.SIGTERM, previous[1])
        if stubborn.poll() is None:
            stubborn.kill()
