"""Transports: how the coordinator reaches a device. One small protocol, one implementation per kind of device.

The scheduler never knows whether a device is this machine, a board over SSH or a phone over adb. It hands a transport
a typed job (local files with their sha256, the variant's description, the resolved delegate, the run counts); the
transport stages what it needs on the device, runs the benchmark and returns a raw result that says its format.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Protocol

from farm.inventory import Device, kind_module
from farm.replies import MAX_REPLY_BYTES
from farm.results import JobFailed, RawResult


@dataclass(frozen=True)
class LocalFile:
    """A file of the coordinator that a job needs on the device, with the sha256 of its content."""

    path: Path
    sha256: str
    label: str = field(default="", compare=False)  # what progress calls it (a model's name and variant); else its name


@dataclass(frozen=True)
class Delegate:
    """A delegate as the device's inventory entry configures it."""

    name: str
    library: str | None = None
    options: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, device: Device, name: str) -> "Delegate":
        """Delegate `name` with the library and options the device's inventory entry gives it."""
        configured = device.delegate_options.get(name)
        return cls(name, configured.library, dict(configured.options)) if configured else cls(name)


@dataclass(frozen=True)
class BenchmarkJob:
    """Everything a transport needs to run one benchmark."""

    model: LocalFile
    description: dict  # the variant's stored description: inputs/outputs (dtype, shape, quantization), ops, needs_flex
    delegate: Delegate
    threads: int
    warmup_runs: int
    runs: int
    min_secs: float
    max_secs: float
    timeout_s: float
    max_reply_bytes: int = MAX_REPLY_BYTES
    eval: LocalFile | None = None
    eval_limit: int | None = None
    eval_outputs: bool = False  # each eval sample's first output too, not only its top-1 (regression and the like)
    profile: bool = False  # an op profile too (benchmark_model's --enable_op_profiling)


class Transport(Protocol):
    device: Device
    bytes_uploaded: int  # what this transport had to copy to the device so far
    on_upload: Callable[[str], None] | None  # told upload_note(...) as each upload starts (the runner sets it)

    async def probe(self) -> dict:
        """Facts about the device: CPU, cores, runtime and version, board, thermal zones, governor."""

    async def run_job(self, job: BenchmarkJob) -> RawResult:
        """Stage the job's files, run one benchmark in a fresh process; raises DeviceLost, JobFailed or TimeoutError."""

    async def temperatures(self) -> dict[str, float]:
        """The device's thermal zones now, in °C by zone (a phone's battery too); empty when it reports none."""

    async def governors(self, set_to: dict[str, str] | None = None) -> dict[str, str]:
        """The CPU frequency governor of each cpufreq policy, by policy; with `set_to`, those are written first (and
        DeviceRefused says why one could not be). Empty when the device has no cpufreq."""

    async def eval_predictions(self, job: BenchmarkJob) -> list[int] | list[list[float]] | None:
        """Top-1 predictions on the job's eval set (with job.eval_outputs: each sample's output values), for devices
        whose benchmark run does not report them (else None)."""

    async def reconnect(self) -> None:
        """Re-establish the link after DeviceLost."""

    async def close(self) -> None: ...


def upload_note(file: LocalFile | str, size: int) -> str:
    """How progress says an upload, as it starts: `uploading digits int8 (45.1 KB)`."""
    name = file if isinstance(file, str) else file.label or file.path.name
    if size < 1024:
        return f"uploading {name} ({size} B)"
    return f"uploading {name} ({size / 1024:.1f} KB)" if size < 1 << 20 else f"uploading {name} ({size / (1 << 20):.1f} MB)"


def delegate_flags(delegate: Delegate) -> list[str]:
    """benchmark_model's flags for a delegate, with the inventory's options for it."""
    name, extra = delegate.name, dict(delegate.options)
    if name == "xnnpack":
        return ["--use_xnnpack=true"] + [f"--{k}={v}" for k, v in extra.items()]
    if name == "none":
        return ["--use_xnnpack=false"]
    if name in ("gpu", "nnapi", "hexagon"):
        return [f"--use_{name}=true"] + [f"--{k}={v}" for k, v in extra.items()]
    # external (and edgetpu through its external delegate library)
    if delegate.library is None:
        raise JobFailed(f"delegate {name} needs delegate_options.{name}.library")
    flags = [f"--external_delegate_path={delegate.library}"]
    if extra:
        flags.append("--external_delegate_options=" + ";".join(f"{k}:{v}" for k, v in extra.items()))
    return flags


def benchmark_model_flags(job: BenchmarkJob, model: str) -> list[str]:
    """TensorFlow Lite's benchmark_model flags for a job whose model is at `model` on the device."""
    flags = [f"--graph={model}", f"--num_threads={job.threads}", f"--warmup_runs={job.warmup_runs}",
             f"--num_runs={job.runs}", f"--min_secs={job.min_secs}", f"--max_secs={job.max_secs}",
             "--report_peak_memory_footprint=true", *delegate_flags(job.delegate)]
    if job.profile:
        flags.append("--enable_op_profiling=true")
    return flags


def open_transport(device: Device) -> Transport:
    """The transport for a device, from the module of its kind (farm.inventory.KINDS)."""
    return kind_module(device.kind).TRANSPORT(device)


# Thermal zones as a Linux or Android shell lists them: one "type millidegrees" line per zone. The root can be moved
# with FARM_THERMAL_ROOT in the device's environment (a board whose zones live elsewhere; the test fleet's boards).
THERMAL_ZONES = ('root="${FARM_THERMAL_ROOT:-/sys/class/thermal}"; for z in "$root"/thermal_zone*; do '
                 'printf \'%s %s\\n\' "$(cat "$z/type" 2>/dev/null)" "$(cat "$z/temp" 2>/dev/null)"; done')


# Each zone's passive trip points (where the kernel throttles), "type millidegrees" per trip, as parse_trips reads them.
THERMAL_TRIPS = ('root="${FARM_THERMAL_ROOT:-/sys/class/thermal}"; for z in "$root"/thermal_zone*; do '
                 'for t in "$z"/trip_point_*_type; do [ "$(cat "$t" 2>/dev/null)" = passive ] && '
                 'printf \'%s %s\\n\' "$(cat "$z/type" 2>/dev/null)" "$(cat "${t%_type}_temp" 2>/dev/null)"; done; done; true')


def parse_trips(text: str) -> dict[str, float]:
    """THERMAL_TRIPS' output → the lowest passive trip point (°C) of each zone type."""
    trips: dict[str, float] = {}
    for line in text.splitlines()[:1024]:
        found = parse_zones(line)
        for zone, celsius in found.items():
            trips[zone] = min(celsius, trips.get(zone, celsius))
    return dict(list(trips.items())[:256])


def parse_zones(text: str) -> dict[str, float]:
    """THERMAL_ZONES' output → °C by zone type (millidegrees as the kernel gives them; whole degrees as some do)."""
    temps: dict[str, float] = {}
    for line in text.splitlines()[:256]:
        name, _, value = line.strip().rpartition(" ")
        if name and value.lstrip("-").isdigit() and len(value) <= 9:  # a reading, not a 4,000-digit number
            number = int(value)
            celsius = number / 1000.0 if abs(number) > 1000 else float(number)
            temps[name[:100] if name not in temps else f"{name[:100]} ({len(temps)})"] = round(celsius, 1)
    return temps


# cpufreq policies as a Linux or Android shell reads and writes them; FARM_CPU_ROOT moves /sys/devices/system/cpu.
CPU_ROOT = 'root="${FARM_CPU_ROOT:-/sys/devices/system/cpu}"; '
GOVERNORS = CPU_ROOT + ('for p in "$root"/cpufreq/policy*; do [ -e "$p/scaling_governor" ] && '
                        'printf \'%s %s\\n\' "${p##*/}" "$(cat "$p/scaling_governor" 2>/dev/null)"; done; true')
POLICY = re.compile(r"policy[0-9]{1,4}")
GOVERNOR = re.compile(r"[a-z_]{1,32}")


def set_governors(wanted: dict[str, str]) -> str:
    """The shell that writes each policy's governor (names checked, never read as shell), then lists them all."""
    writes = []
    for policy, governor in wanted.items():
        if not POLICY.fullmatch(policy) or not GOVERNOR.fullmatch(governor):
            raise ValueError(f"not a cpufreq policy and governor: {policy!r} {governor!r}")
        writes.append(f'echo {governor} > "$root/cpufreq/{policy}/scaling_governor" '
                      f'|| echo "cannot set {policy} to {governor}" >&2; ')
    return CPU_ROOT + "".join(writes) + GOVERNORS


def parse_governors(text: str) -> dict[str, str]:
    found = {}
    for line in text.splitlines()[:1024]:
        policy, _, governor = line.strip().partition(" ")
        if POLICY.fullmatch(policy) and GOVERNOR.fullmatch(governor):
            found[policy] = governor
    return found
