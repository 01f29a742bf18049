"""This machine as a device: the agent runs as a subprocess with a Python of this machine."""
from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from pathlib import Path

from farm import AGENT_PATH
from farm.inventory import Device
from farm.parse import parse_agent_result
from farm.transports import DeviceLost, RawResult


class LocalTransport:
    parse = staticmethod(parse_agent_result)

    def __init__(self, device: Device):
        self.device = device
        self.python = device.python or sys.executable

    async def probe(self) -> dict:
        raw = await self._agent(["--probe"], b"", timeout=120)
        if raw.exit_code != 0:
            raise DeviceLost(f"probe failed: {(raw.stdout or raw.stderr).strip()[-300:]}")
        return json.loads(raw.stdout)

    async def ensure(self, path: Path, sha256: str) -> str:
        # Variants and eval data already live content-addressed on this machine.
        if not Path(path).is_file():
            raise FileNotFoundError(f"{path}: missing (the conversion cache was cleared?)")
        return str(path)

    async def run_job(self, request: dict, timeout: float) -> RawResult:
        return await self._agent([], json.dumps(request).encode(), timeout)

    async def _agent(self, args: list[str], stdin: bytes, timeout: float) -> RawResult:
        start = time.perf_counter()
        try:
            process = await asyncio.create_subprocess_exec(
                self.python, str(AGENT_PATH), *args,
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                start_new_session=True,  # its own process group, so a timeout kills everything it started
            )
        except OSError as error:
            raise DeviceLost(f"cannot start {self.python}: {error}") from None
        try:
            stdout, stderr = await asyncio.wait_for(process.communicate(stdin), timeout)
        except (asyncio.TimeoutError, asyncio.CancelledError):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
            raise
        return RawResult(stdout.decode(errors="replace"), stderr.decode(errors="replace"), process.returncode,
                         (time.perf_counter() - start) * 1000)

    async def reconnect(self) -> None:
        return None

    async def close(self) -> None:
        return None

