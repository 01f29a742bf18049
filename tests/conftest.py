"""Fixtures shared by the suite: a private conversion cache and the demo's digits model, trained once per run."""
import fcntl
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from fleet.fixtures import healed_ssh_fleet, ssh_fleet  # noqa: F401  (real OpenSSH servers on loopback)
from phone.fixtures import adb_lab, benchmark_model_binary, healed_adb_lab, tiny_tflite  # noqa: F401  (simulated phones)
from postgres.fixtures import _stop_postgres_cluster, db, postgres_cluster  # noqa: F401  (a private PostgreSQL)

REPO = Path(__file__).resolve().parent.parent
# A Python with tflite-runtime 2.14 (and numpy < 2), as on a Raspberry Pi: the venv `make` builds beside .venv, or one
# named by FARM_TFLITE_RUNTIME_PYTHON.
TFLITE_RUNTIME_PYTHON = Path(os.environ.get("FARM_TFLITE_RUNTIME_PYTHON")
                             or REPO / ".venv-tflite-runtime" / "bin" / "python")
# Real benchmark_model console output, copied into the repository with its SOURCES.md.
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "benchmark_model"
CRASHING_DELEGATE = r"""
#include <signal.h>
/* TEST CODE: TFLite's external delegate entry point, which crashes instead of creating a delegate. */
void *tflite_plugin_create_delegate(char **keys, char **values, unsigned long count, void (*report)(const char *)) {
    raise(SIGSEGV);
    return 0;
}
void tflite_plugin_destroy_delegate(void *delegate) {}
"""


@pytest.fixture(scope="session", autouse=True)
def farm_cache(tmp_path_factory) -> Path:
    """Every test (and every `farm` subprocess) converts into a private cache, never the user's: one per run, shared by
    pytest-xdist's workers (the cache is content-addressed and written by atomic renames, so they can share it, and a
    variant one worker converted is a cache hit for the others)."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # the run's folder, above every worker's own
    cache = root / "farm-cache"
    cache.mkdir(exist_ok=True)
    os.environ["FARM_CACHE"] = str(cache)
    return cache


@pytest.fixture(scope="session")
def tflite_runtime_python() -> Path:
    """TFLITE_RUNTIME_PYTHON, or the test fails (not a skip: `make test` builds it, as it installs sshd)."""
    if not TFLITE_RUNTIME_PYTHON.exists():
        pytest.fail(f"no tflite-runtime venv at {TFLITE_RUNTIME_PYTHON}: `make test` builds it (or name one with "
                    f"FARM_TFLITE_RUNTIME_PYTHON)", pytrace=False)
    return TFLITE_RUNTIME_PYTHON


@pytest.fixture(scope="session")
def crashing_delegate(tmp_path_factory) -> Path:
    """A real external delegate library, built with the C compiler, that kills its process with SIGSEGV when TFLite
    asks it for a delegate (what a broken vendor delegate does)."""
    folder = tmp_path_factory.mktemp("crashing-delegate")
    (folder / "crash.c").write_text(CRASHING_DELEGATE)
    library = folder / "libcrash.so"
    subprocess.run(["cc", "-shared", "-fPIC", "-o", str(library), str(folder / "crash.c")], check=True)
    return library


@pytest.fixture(scope="session")
def digits_dir(tmp_path_factory) -> Path:
    """The demo's digits CNN (trained on scikit-learn's digits, seeded) with its calibration and held-out eval sets,
    built once per run: pytest-xdist's workers share one build (tests only read it)."""
    from farm.demo import build_digits

    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # the run's folder, above every worker's own
    workdir = root / "digits"
    with open(root / "digits.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (workdir / "built").exists():
            workdir.mkdir(exist_ok=True)
            build_digits(workdir)
            (workdir / "built").touch()
    return workdir


def farm(*args: str, cwd: Path | None = None, timeout: float = 900) -> subprocess.CompletedProcess:
    """Run the real `farm` command line in a fresh process."""
    return subprocess.run([sys.executable, "-m", "farm", *map(str, args)], cwd=cwd or REPO, capture_output=True,
                          text=True, timeout=timeout)


def sql(store, statement: str, **params) -> list[tuple]:
    """The rows of a query on a store, a SQLite path or a PostgreSQL URL alike: what a test checks, read beside farm."""
    from sqlalchemy import create_engine, text

    from farm.store import db_url

    engine = create_engine(db_url(store))
    try:
        with engine.connect() as connection:
            return [tuple(row) for row in connection.execute(text(statement), params)]
    finally:
        engine.dispose()


def refused(call, *needles) -> str:
    """The one-line FarmError that `call()` raises, checked to name every needle."""
    from farm.errors import FarmError

    with pytest.raises(FarmError) as info:
        call()
    message = str(info.value)
    assert "\n" not in message, message
    for needle in needles:
        assert needle in message, message
    return message


START_S = 60  # the server's first answer (Python and Streamlit imports on a loaded CI machine)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Dashboard:
    """`farm dashboard --db DB --port N` in its own process group, stopped with everything it started."""

    def __init__(self, db: Path, log: Path, farm_command: tuple[str, ...] = (sys.executable, "-m", "farm"),
                 cwd: Path = REPO):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        with open(log, "w") as out:
            self.process = subprocess.Popen([*farm_command, "dashboard", "--db", str(db), "--port", str(self.port)],
                                            cwd=cwd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + START_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"farm dashboard exited {self.process.returncode}: {log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=2) as reply:
                    if reply.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise AssertionError(f"farm dashboard did not answer within {START_S} s: {log.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
