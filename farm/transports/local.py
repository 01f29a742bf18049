"""This machine as a device: the agent runs as a subprocess with a Python of this machine."""
from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from pathlib import Path
from shlex import quote
from typing import ClassVar, Literal

from farm.inventory import AGENT_LIBRARY_DELEGATES, Device, Program, local_file
from farm.replies import MAX_REPLY_BYTES, probe_facts, read_json
from farm.errors import last_line, one_line
from farm.results import BENCHMARK_MODEL, DeviceLost, DeviceRefused, JobFailed, RawResult
from farm.transports import (GOVERNORS, THERMAL_ZONES, BenchmarkJob, benchmark_model_flags, parse_governors,
                              parse_zones, set_governors)
from farm.transports.agent import (STDERR_TAIL, AgentStopped, Capped, ReplyTooLarge, WarmAgent, agent_file, agent_request, decoded,
                                   together)

PROBE_TIMEOUT_S = 120
ANSWER_GRACE_S = 10  # past a job's timeout, how long the agent has to say it killed the job


class LocalDevice(Device):
    """This machine, in an inventory: `kind: local`."""

    kind: Literal["local"]
    python: Program | None = None  # interpreter that runs the agent (default: the coordinator's own)
    # A TensorFlow Lite benchmark_model build of this machine, run for op profiles (LiteRT's Python API has no op
    # profiler): with `profile: true`, a second run of the job with --enable_op_profiling=true.
    benchmark_model: str | None = None
    LIBRARY_DELEGATES: ClassVar[frozenset[str]] = AGENT_LIBRARY_DELEGATES

    def reached_at(self) -> str:
        return "this machine"

    def resolve_paths(self, base: Path) -> None:
        if self.benchmark_model:
            self.benchmark_model = local_file(base, self.benchmark_model)

    def local_files(self) -> dict[str, str]:
        # Everything is of this machine here; a bare name (python3, libedgetpu.so.1) is found on PATH or by the
        # dynamic loader, so only paths are looked for.
        named = {"python": self.python, "benchmark_model": self.benchmark_model}
        named.update({f"delegate_options: {delegate}: library": options.library
                      for delegate, options in self.delegate_options.items()})
        return {field: path for field, path in named.items() if path and "/" in path}

    def runtime_fix(self, python: str) -> str:
        return f"{quote(python)} -m pip install ai-edge-litert"


class LocalTransport:
    def __init__(self, device: LocalDevice):
        self.device = device
        self.python = device.python or sys.executable
        self.bytes_uploaded = 0  # the files are already here
        self.on_upload = None  # nothing to upload
        self.agent: WarmAgent | None = None

    async def probe(self) -> dict:
        missing = self.device.missing_files().get("python")
        if missing:  # refused, not lost: trying again would not make it appear
            raise DeviceRefused(f"{self.device.where()}: python: {missing}")
        try:
            raw = await self._ask({"probe": True, "timeout_s": PROBE_TIMEOUT_S}, MAX_REPLY_BYTES)
        except AgentStopped as error:
            raise DeviceLost(f"probe failed: {error}") from None
        if raw.exit_code != 0:
            raise DeviceLost(f"probe failed: {(raw.stdout or raw.stderr).strip()[-300:]}")
        return probe_facts(read_json(raw.stdout, "probe reply"))

    async def run_job(self, job: BenchmarkJob) -> RawResult:
        # Variants and eval data already live content-addressed on this machine.
        for local in (job.model, job.eval):
            if local is not None and not local.path.is_file():
                raise JobFailed(f"{local.path}: missing (the conversion cache was cleared?)")
        request = agent_request(job, str(job.model.path), str(job.eval.path) if job.eval else None)
        raw = await self._ask(request, job.max_reply_bytes)
        raw.extra["profile"] = job.profile
        if job.profile and self.device.benchmark_model and raw.exit_code == 0:
            raw.extra["op_profile"] = await self._op_profile(job)
        return raw

    async def _ask(self, request: dict, limit: int) -> RawResult:
        """The warm agent's answer (started on first use); any failure to get a whole answer closes it, so the next
        request starts a new one."""
        if self.agent is None or self.agent.stale():
            await self._close_agent()
            self.agent = await self._start_agent()
        try:
            # The agent kills a job past timeout_s itself; this bounds an agent that stopped answering at all.
            return await asyncio.wait_for(self.agent.ask(request, limit), request["timeout_s"] + ANSWER_GRACE_S)
        except asyncio.TimeoutError:
            await self._close_agent()
            raise TimeoutError(f"no result within {request['timeout_s']:g} s") from None
        except BaseException:
            await self._close_agent()
            raise

    async def _start_agent(self) -> WarmAgent:
        try:
            process = await asyncio.create_subprocess_exec(
                self.python, str(agent_file().path), "--serve",
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                start_new_session=True,  # its own process group: closing it ends every job process it forked
            )
        except OSError as error:
            raise DeviceLost(f"cannot start {self.python}: {error}") from None

        async def stop():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await self._reap(process)

        return WarmAgent(process.stdin, process.stdout, process.stderr, stop)

    async def _close_agent(self) -> None:
        agent, self.agent = self.agent, None
        if agent is not None:
            await agent.close()

    async def _op_profile(self, job: BenchmarkJob) -> dict:
        """benchmark_model's op-profiling run of the job: its output, or why there is none (the job stands)."""
        argv = [self.device.benchmark_model, *benchmark_model_flags(job, str(job.model.path))]
        try:
            run = await self._process(argv, job.timeout_s, job.max_reply_bytes)
        except (DeviceLost, JobFailed, TimeoutError) as error:  # a binary that is missing or hangs: no profile
            return {"error": one_line(error)}
        return {"delegate": job.delegate.name, "stdout": run.stdout, "stderr": run.stderr, "exit_code": run.exit_code}

    async def temperatures(self) -> dict[str, float]:
        return parse_zones((await self._shell(THERMAL_ZONES))[0])

    async def governors(self, set_to: dict[str, str] | None = None) -> dict[str, str]:
        stdout, stderr = await self._shell(set_governors(set_to) if set_to else GOVERNORS)
        if set_to and stderr.strip():
            raise DeviceRefused(f"governor: {last_line(stderr)}")
        return parse_governors(stdout)

    @staticmethod
    async def _shell(command: str) -> tuple[str, str]:
        """A short command of this machine's sh: its output and its errors, as text."""
        process = await asyncio.create_subprocess_exec("sh", "-c", command, stdout=asyncio.subprocess.PIPE,
                                                       stderr=asyncio.subprocess.PIPE)
        stdout, stderr = await asyncio.wait_for(process.communicate(), 30)
        return stdout[:65536].decode(errors="replace"), stderr[-4096:].decode(errors="replace")

    async def eval_predictions(self, job: BenchmarkJob) -> None:
        return None  # the agent scores the eval set in the job's own run

    async def _process(self, argv: list[str], timeout: float, limit: int) -> RawResult:
        """Run a benchmark_model of this machine, its output read within the caps, killed past `timeout`."""
        try:
            process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                start_new_session=True,  # its own process group, so a timeout kills everything it started
            )
        except OSError as error:
            raise DeviceLost(f"cannot start {argv[0]}: {error}") from None
        stdout, stderr = Capped(limit), Capped(STDERR_TAIL, keep_tail=True)
        try:
            await asyncio.wait_for(together(stdout.drain(process.stdout), stderr.drain(process.stderr),
                                            process.wait()), timeout)
        except (asyncio.TimeoutError, asyncio.CancelledError, ReplyTooLarge) as error:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await self._reap(process)
            if isinstance(error, asyncio.TimeoutError):
                raise TimeoutError(f"no result within {timeout:g} s") from None
            raise
        return RawResult(BENCHMARK_MODEL, decoded(stdout.bytes()), stderr.bytes().decode(errors="replace"),
                         process.returncode)

    @staticmethod
    async def _reap(process) -> None:
        """Empty both pipes of a killed process and wait for its exit. asyncio's wait() returns only once the pipes are
        closed, and a reader that stopped at its cap is paused on a full buffer and would never see their end."""
        async def discard(stream):
            while await stream.read(1 << 16):
                pass

        # Bounded: a process that left the group may hold the pipes open; the lane moves on without it.
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(together(discard(process.stdout), discard(process.stderr), process.wait()), 10)

    async def reconnect(self) -> None:
        await self._close_agent()

    async def close(self) -> None:
        await self._close_agent()


DEVICE, TRANSPORT = LocalDevice, LocalTransport
