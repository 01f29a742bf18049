"""Transports: how the coordinator reaches a device. One small protocol, one implementation per kind of device.

The scheduler never knows whether a device is this machine, a board over SSH or a phone over adb: it calls
`probe()`, `ensure()` for every file a job needs, `run_job()`, and hands the raw result to the transport's `parse`.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Protocol

from farm.inventory import Device


class DeviceLost(Exception):
    """The device stopped answering (dropped link, killed server, lost phone): the job may be retried after reconnecting."""


class DeviceRefused(Exception):
    """The device cannot be used as configured (unknown or changed host key, login refused): no retry can fix it."""


class JobFailed(Exception):
    """The job ran and failed (the agent's error, a crash, a bad model): retrying would fail the same way."""


@dataclass
class RawResult:
    """What a device sent back for one job, before parsing: the agent's JSON or benchmark_model's log."""

    stdout: str
    stderr: str
    exit_code: int | None
    wall_ms: float
    # What the transport learned beside the log (phones: requested delegate, eval predictions, battery/thermals).
    extra: dict = field(default_factory=dict)


class Transport(Protocol):
    device: Device
    parse: Callable[[RawResult], "object"]

    async def probe(self) -> dict:
        """Facts about the device: CPU, cores, runtime and version, board, thermal zones, governor."""

    async def ensure(self, path: Path, sha256: str) -> str:
        """Make a local file available on the device, content-addressed; returns its path there."""

    async def run_job(self, request: dict, timeout: float) -> RawResult:
        """Run one benchmark in a fresh process on the device; raises DeviceLost or TimeoutError."""

    async def reconnect(self) -> None:
        """Re-establish the link after DeviceLost."""

    async def close(self) -> None: ...


# Imported only when a device of that kind is in the sweep: a farm of boards never loads adbutils, and the reverse.
TRANSPORTS = {
    "local": ("farm.transports.local", "LocalTransport"),
    "linux": ("farm.transports.ssh", "SshTransport"),
    "android": ("farm.transports.adb", "AdbTransport"),
}


def open_transport(device: Device) -> Transport:
    """The transport for a device's kind."""
    module, name = TRANSPORTS[device.kind]
    return getattr(importlib.import_module(module), name)(device)
