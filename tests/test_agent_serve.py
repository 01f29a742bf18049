"""The warm agent (`litert_agent.py --serve`), as the coordinator drives it: one process per device that imports numpy
and the runtime once and forks a child per request. Real LiteRT inference throughout; the crash is real too: an
external delegate library, built with the C compiler (tests/conftest.py), that kills its process with SIGSEGV when
TFLite asks it for a delegate (what a broken vendor delegate does)."""
import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from conftest import farm, sql
from farm.inventory import parse_device
from farm.transports import BenchmarkJob, Delegate, LocalFile
from farm.transports.local import LocalTransport

AGENT = Path(__file__).resolve().parent.parent / "agents" / "litert_agent.py"


class Served:
    """An agent started with --serve, asked one request at a time, as farm.transports.agent.WarmAgent asks it."""

    def __init__(self, *args: str, python: Path | str = sys.executable):
        self.process = subprocess.Popen([str(python), str(AGENT), "--serve", *args], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def ask(self, request: dict) -> tuple[dict, dict | None, bytes]:
        self.process.stdin.write(json.dumps(request).encode() + b"\n")
        self.process.stdin.flush()
        header = self.process.stdout.read(128)
        assert len(header) == 128 and header.endswith(b"\n"), header
        fields = json.loads(header)
        out, err = self.process.stdout.read(fields["out"]), self.process.stdout.read(fields["err"])
        return fields, json.loads(out) if out else None, err

    def children(self) -> list[int]:
        found = subprocess.run(["pgrep", "-P", str(self.process.pid)], capture_output=True, text=True).stdout
        return [int(pid) for pid in found.split()]

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(10)


def test_each_request_runs_in_a_child_and_a_crash_ends_only_that_child(tiny_tflite, crashing_delegate):
    served = Served()
    try:
        header, probe, _ = served.ask({"probe": True})
        assert header["exit"] == 0 and probe["runtime"]["name"] == "ai_edge_litert"
        job = {"model": str(tiny_tflite), "delegate": "none", "runs": 5, "warmup_runs": 1}
        header, first, _ = served.ask(job)
        assert header == {"exit": 0, "out": header["out"], "err": header["err"], "why": None} and first["ok"]
        assert len(first["samples_us"]) == 5 and first["agent_ms"] < 2000  # counted from the fork, not the start

        header, crashed, stderr = served.ask({**job, "delegate": {"name": "crash", "library": str(crashing_delegate)}})
        assert header["exit"] == -signal.SIGSEGV and crashed is None  # nothing on stdout: the child died
        assert served.process.poll() is None  # the warm agent lives on

        header, after, _ = served.ask(job)
        assert header["exit"] == 0 and after["ok"] and after["delegate"]["outcome"] == "cpu"
        assert served.children() == []  # every child reaped
    finally:
        served.close()


def test_a_job_past_its_timeout_or_its_reply_cap_is_killed_and_the_agent_goes_on(tiny_tflite):
    served = Served()
    try:
        endless = {"model": str(tiny_tflite), "delegate": "none", "runs": 10 ** 9, "max_secs": 120, "timeout_s": 1}
        start = time.monotonic()
        header, reply, _ = served.ask(endless)
        assert header["why"] == "timeout" and header["exit"] == -signal.SIGKILL and reply is None
        assert time.monotonic() - start < 10
        header, reply, _ = served.ask({"model": str(tiny_tflite), "delegate": "none", "runs": 2, "max_reply_bytes": 100})
        assert header == {"exit": header["exit"], "out": 0, "err": header["err"], "why": "too_large"}
        header, reply, _ = served.ask({"model": str(tiny_tflite), "delegate": "none", "runs": 2})
        assert header["exit"] == 0 and reply["ok"]
        header, reply, _ = served.ask({"model": "/no/such.tflite"})  # the agent's errors come through as they are
        assert header["exit"] == 2 and reply["error"]["type"] == "model_not_found"
    finally:
        served.close()


def test_the_end_of_stdin_ends_the_agent_and_its_running_job(tiny_tflite):
    served = Served()
    try:
        served.process.stdin.write(json.dumps({"model": str(tiny_tflite), "delegate": "none", "runs": 10 ** 9,
                                               "max_secs": 120}).encode() + b"\n")
        served.process.stdin.flush()
        deadline = time.monotonic() + 30
        while not served.children() and time.monotonic() < deadline:
            time.sleep(0.05)
        (child,) = served.children()
        served.process.stdin.close()  # the coordinator is gone
        assert served.process.wait(10) == 0
        with pytest.raises(ProcessLookupError):
            os.kill(child, 0)
    finally:
        served.close()


def test_an_idle_agent_ends_by_itself():
    served = Served("--idle-exit", "0.5")
    try:
        assert served.process.wait(10) == 0
    finally:
        served.close()


def test_the_local_transport_keeps_one_agent_for_the_lane_and_replaces_a_dead_one(tiny_tflite):
    transport = LocalTransport(parse_device({"name": "here", "kind": "local"}))
    job = BenchmarkJob(model=LocalFile(tiny_tflite, "0" * 64), description={}, delegate=Delegate("none"), threads=1,
                       warmup_runs=0, runs=2, min_secs=0.0, max_secs=5.0, timeout_s=30.0)

    def serving() -> set[int]:  # this process's warm agents (another test's may still be ending)
        found = subprocess.run(["pgrep", "-P", str(os.getpid()), "-f", "litert_agent.py --serve"],
                               capture_output=True, text=True).stdout
        return {int(pid) for pid in found.split()}

    async def lane():
        before = serving()
        await transport.probe()
        agent = transport.agent
        for _ in range(3):
            assert (await transport.run_job(job)).exit_code == 0
        assert transport.agent is agent  # the probe's agent ran every job
        (pid,) = serving() - before
        os.kill(pid, signal.SIGKILL)  # the agent dies (the OOM killer, say)
        from farm.results import DeviceLost

        with pytest.raises(DeviceLost, match="agent stopped"):
            await transport.run_job(job)
        assert (await transport.run_job(job)).exit_code == 0  # a new agent for the next attempt
        assert transport.agent is not agent
        await transport.close()

    asyncio.run(lane())


def test_a_crashing_delegate_fails_its_jobs_and_the_lane_runs_on(tmp_path, tiny_tflite, crashing_delegate):
    inventory = tmp_path / "lab.yaml"
    inventory.write_text(yaml.safe_dump({"devices": [{
        "name": "local", "kind": "local", "delegates": ["none", "gpu"],
        "delegate_options": {"gpu": {"library": str(crashing_delegate)}}}]}))
    spec = tmp_path / "sweep.yaml"
    spec.write_text(yaml.safe_dump({"name": "crashing", "inventory": str(inventory), "delegates": ["gpu", "none"],
                                    "runs": 3, "repeats": 2, "models": [{"source": str(tiny_tflite)}]}))
    db = tmp_path / "farm.db"
    run = farm("sweep", "run", spec, "--db", db)
    assert run.returncode == 1, run.stdout + run.stderr
    rows = sql(db, "SELECT delegate, state, error, attempts FROM jobs ORDER BY id")
    assert sorted((delegate, state) for delegate, state, _, _ in rows) == [
        ("gpu", "failed"), ("gpu", "failed"), ("none", "done"), ("none", "done")]
    for delegate, state, error, attempts in rows:
        if delegate == "gpu":  # a crash is the job's failure, once: not a lost device to retry
            assert error.startswith("agent killed by SIGSEGV without a result") and attempts == 1, error
