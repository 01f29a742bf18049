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
from farm.results import AGENT, BENCHMARK_MODEL, DeviceLost, DeviceRefused, JobFailed, RawResult
from farm.transports import (GOVERNORS, THERMAL_ZONES, BenchmarkJob, benchmark_model_flags, parse_governors,
                              parse_zones, set_governors)
from farm.transports.agent import (STDERR_TAIL, Capped, ReplyTooLarge, agent_file, agent_request, decoded, request_line,
                                   together)

PROBE_TIMEOUT_S = 120


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

    async def probe(self) -> dict:
        missing = self.device.missing_files().get("python")
        if missing:  # refused, not lost: trying again would not make it appear
            raise DeviceRefused(f"{self.device.where()}: python: {missing}")
        raw = await self._agent(["--probe"], b"", PROBE_TIMEOUT_S)
        if raw.exit_code != 0:
            raise DeviceLost(f"probe failed: {(raw.stdout or raw.stderr).strip()[-300:]}")
        return probe_facts(read_json(raw.stdout, "probe reply"))

    async def run_job(self, job: BenchmarkJob) -> RawResult:
        # Variants and eval data already live content-addressed on this machine.
        for local in (job.model, job.eval):
            if local is not None and not local.path.is_file():
                raise JobFailed(f"{local.path}: missing (the conversion cache was cleared?)")
        request = agent_request(job, str(job.model.path), str(job.eval.path) if job.eval else None)
        raw = await self._agent([], request_line(request), job.timeout_s, job.max_reply_bytes)
        raw.extra["profile"] = job.profile
        if job.profile and self.device.benchmark_model and raw.exit_code == 0:
            raw.extra["op_profile"] = await self._op_profile(job)
        return raw

    async def _op_profile(self, job: BenchmarkJob) -> dict:
        """benchmark_model's op-profiling run of the job: its output, or why there is none (the job stands)."""
        argv = [self.device.benchmark_model, *benchmark_model_flags(job, str(job.model.path))]
        try:
            run = await self._process(argv, b"", job.timeout_s, job.max_reply_bytes, BENCHMARK_MODEL)
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

    async def _agent(self, args: list[str], stdin: bytes, timeout: float, limit: int = MAX_REPLY_BYTES) -> RawResult:
        return await self._process([self.python, str(agent_file().path), *args], stdin, timeout, limit)

    async def _process(self, argv: list[str], stdin: bytes, timeout: float, limit: int,
                       format: str = AGENT) -> RawResult:
        """Run a program of this machine with `stdin`, its output read within the caps, killed past `timeout`."""
        try:
            process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                start_new_session=True,  # its own process group, so a timeout kills everything it started
            )
        except OSError as error:
            raise DeviceLost(f"cannot start {argv[0]}: {error}") from None
        stdout, stderr = Capped(limit), Capped(STDERR_TAIL, keep_tail=True)
        try:
            await asyncio.wait_for(self._exchange(process, stdin, stdout, stderr), timeout)
        except (asyncio.TimeoutError, asyncio.CancelledError, ReplyTooLarge) as error:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await self._reap(process)
            if isinstance(error, asyncio.TimeoutError):
                raise TimeoutError(f"no result within {timeout:g} s") from None
            raise
        return RawResult(format, decoded(stdout.bytes()), stderr.bytes().decode(errors="replace"), process.returncode)

    @staticmethod
    async def _exchange(process, stdin: bytes, stdout: Capped, stderr: Capped) -> None:
        """Write the request, read both streams within their caps, wait for the exit."""
        async def feed():
            # stdin stays open (an agent ends when it closes: this coordinator gone); the agent's exit closes it.
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                process.stdin.write(stdin)
                await process.stdin.drain()

        await together(feed(), stdout.drain(process.stdout), stderr.drain(process.stderr))
        await process.wait()

    @staticmethod
    async def _reap(process) -> None:
        """Empty both pipes of a killed agent and wait for its exit. asyncio's wait() returns only once the pipes are
        closed, and a reader that stopped at its cap is paused on a full buffer and would never see their end."""
        async def discard(stream):
            while await stream.read(1 << 16):
                pass

        # Bounded: a process that left the agent's group may hold the pipes open; the lane moves on without it.
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(together(discard(process.stdout), discard(process.stderr), process.wait()), 10)

    async def reconnect(self) -> None:
        return None

    async def close(self) -> None:
        return None


DEVICE, TRANSPORT = LocalDevice, LocalTransport
