"""Android phones over adb: TensorFlow Lite's own `benchmark_model` is pushed and run on the phone, as the TFLite team
benchmarks phones; its log is parsed on the coordinator (farm.benchmark_model). ONNX models (.onnx) run the same way
with ONNX Runtime's `onnxruntime_perf_test`, when the phone's inventory entry names one (farm.onnxruntime_perf_test).

The phone may hang off this machine's adb server or off a lab machine's (`adb_server: host:port`). adbutils is
synchronous, so every call runs in a worker thread. Commands run with `shell2(..., v2=True)`: exit codes and both
streams (the tool prints INFO/WARN on stdout but ERROR on stderr), and an error instead of partial output when the
phone is lost. Everything passed to the phone's shell is quoted.

A job's run is one round trip: battery and thermals before, the tool, battery and thermals after, in one shell command
whose output is split at marker lines (see split_run); its exit code is the tool's.
"""
from __future__ import annotations

import asyncio
import contextlib
import hashlib
import posixpath
import re
import secrets
import socket
import time
from pathlib import Path
from shlex import quote
from typing import ClassVar, Literal

import numpy as np
from pydantic import Field, model_validator

from farm.inventory import CpuMask, Device, local_file
from farm.paths import sha256_file
from farm.errors import last_line, one_line
from farm.onnxruntime_perf_test import EXECUTION_PROVIDERS, perf_test_flags
from farm.results import BENCHMARK_MODEL, ONNXRUNTIME_PERF_TEST, DeviceLost, DeviceRefused, JobFailed, RawResult
from farm.transports import (GOVERNORS, BenchmarkJob, LocalFile, benchmark_model_flags, delegate_flags,
                              parse_governors, parse_trips, parse_zones, set_governors, upload_note)

ROOT = "/data/local/tmp/tflite-farm"
PROPS = {
    "model": "ro.product.model", "manufacturer": "ro.product.manufacturer", "soc": "ro.soc.model",
    "soc_manufacturer": "ro.soc.manufacturer", "platform": "ro.board.platform", "abi": "ro.product.cpu.abi",
    "release": "ro.build.version.release", "sdk": "ro.build.version.sdk", "fingerprint": "ro.build.fingerprint",
}


def _lost_errors() -> tuple:
    from adbutils import AdbError

    # What adbutils raises depends on the call and on when the phone went: all of them mean the phone is gone.
    return (AdbError, EOFError, BrokenPipeError, ConnectionError, socket.timeout, OSError)


class AndroidDevice(Device):
    """An Android phone over adb, in an inventory: `kind: android`."""

    kind: Literal["android"]
    serial: str | None = None
    adb_server: str | None = None  # host:port of the adb server the phone hangs off; the local one by default
    binaries: dict[str, str] = Field(default_factory=dict)  # ABI -> local path of benchmark_model
    flex_binaries: dict[str, str] = Field(default_factory=dict)  # ABI -> benchmark_model_plus_flex, for Flex models
    # ABI -> local path of ONNX Runtime's onnxruntime_perf_test, which runs the onnx variants; none: they are skipped
    onnxruntime_perf_test: dict[str, str] = Field(default_factory=dict)
    affinity: CpuMask | None = None  # taskset CPU mask, e.g. "f0" for the big cores
    # benchmark_model has flags for xnnpack, gpu, nnapi and hexagon; the rest load with --external_delegate_path.
    LIBRARY_DELEGATES: ClassVar[frozenset[str]] = frozenset({"external", "edgetpu"})

    @model_validator(mode="after")
    def _required(self) -> "AndroidDevice":
        if not self.serial:
            raise ValueError("serial: required for an android device")
        if not self.binaries:
            raise ValueError("binaries: required for an android device (ABI: local path of benchmark_model)")
        if self.flex and not self.flex_binaries:
            raise ValueError("flex_binaries: required with flex: true (ABI: local path of benchmark_model_plus_flex)")
        return self

    def reached_at(self) -> str:
        return f"{self.serial} via {self.adb_server or 'local adb server'}"

    def resolve_paths(self, base: Path) -> None:
        self.binaries = {abi: local_file(base, binary) for abi, binary in self.binaries.items()}
        self.flex_binaries = {abi: local_file(base, binary) for abi, binary in self.flex_binaries.items()}
        self.onnxruntime_perf_test = {abi: local_file(base, path) for abi, path in self.onnxruntime_perf_test.items()}

    def local_files(self) -> dict[str, str]:
        return {f"{field}: {abi}": path for field in ("binaries", "flex_binaries", "onnxruntime_perf_test")
                for abi, path in getattr(self, field).items()}


def adb_server(address: str | None) -> tuple[str, int]:
    """(host, port) of an adb server given as host:port; this machine's, 127.0.0.1:5037, by default."""
    host, _, port = (address or "127.0.0.1:5037").rpartition(":")
    return host or "127.0.0.1", int(port)


def adb_client(server: tuple[str, int]):
    """An adbutils client for an adb server that answers now (adbutils would otherwise spawn a local server)."""
    import adbutils

    try:
        socket.create_connection(server, timeout=5).close()
    except OSError as error:
        raise DeviceLost(f"adb server {server[0]}:{server[1]} does not answer: {error}") from None
    return adbutils.AdbClient(host=server[0], port=server[1], socket_timeout=30)


# The most of a battery and thermals reading that is read: a few KB on any phone.
FACTS_BYTES = 1 << 18

# A phone's thermal zones and their passive trip points, printed as farm.transports' THERMAL_ZONES and THERMAL_TRIPS
# print a board's, but read with the shell's own `read`: a phone has dozens of zones, and a `cat` per file (two forks)
# costs more than the round trip (five simulated zones: 110 ms against 32).
ZONES = ('for z in /sys/class/thermal/thermal_zone*; do t=; v=; read -r t < "$z/type"; read -r v < "$z/temp"; '
         'printf \'%s %s\\n\' "$t" "$v"; done')
TRIPS = ('for z in /sys/class/thermal/thermal_zone*; do t=; read -r t < "$z/type"; '
         'for p in "$z"/trip_point_*_type; do k=; read -r k < "$p"; '
         '[ "$k" = passive ] && { v=; read -r v < "${p%_type}_temp"; printf \'%s %s\\n\' "$t" "$v"; }; done; done')


def facts_command(token: str) -> str:
    """The shell that prints battery, thermal zones and their trip points now, each after a `<token> <name>` line;
    what dumpsys or sysfs say on stderr is dropped. parse_facts reads its output."""
    def mark(name: str) -> str:
        return f"printf '%s\\n' {quote(f'{token} {name}')}"

    # The battery only when dumpsys answers: a phone without the service has no battery facts.
    return (f"{{ {mark('battery')}; battery=$(dumpsys battery) && printf '%s\\n' \"$battery\"; "
            f"{mark('zones')}; {ZONES}; {mark('trips')}; {TRIPS}; }} 2>/dev/null")


def parse_facts(text: str, token: str) -> dict:
    """facts_command's output → battery, °C by zone and lowest trip points; a section that is missing is empty."""
    sections: dict[str, str] = {}
    parts = re.split(rf"^{re.escape(token)} (battery|zones|trips)\n", text[:FACTS_BYTES], flags=re.M)
    for name, body in zip(parts[1::2], parts[2::2]):
        sections.setdefault(name, body)
    return {"battery": parse_battery(sections.get("battery", "")), "temps_c": parse_zones(sections.get("zones", "")),
            "trips_c": parse_trips(sections.get("trips", ""))}


def folded_command(command: str, token: str) -> str:
    """`command` run in ROOT with the battery and thermals before and after it, each part after a marker line with
    `token` (split_run and parse_facts read them); the shell's exit code is the command's.

    The command runs in the background while the shell waits for it: adbd sends a lost connection's SIGHUP to the shell
    only, and the trap passes it on to `timeout`, which ends the run instead of leaving it to measure on beside the
    retry (a SIGHUP before the command started ends the shell)."""
    return (f"pid=; trap 'kill -HUP $pid 2>/dev/null; exit 129' HUP; facts() {facts_command(token)}; facts; "
            f"printf '\\n%s\\n' {quote(token + ' run')}; cd {quote(ROOT)} && {{ {command} & pid=$!; wait $pid; }}; "
            f"code=$?; printf '\\n%s\\n' {quote(token + ' after')}; facts; exit $code")


def split_run(text: str, token: str) -> tuple[str, str, str]:
    """A folded run's stdout → (the facts before, the tool's stdout, the facts after).

    The tool's output may hold anything, even a marker line with this call's token (a tool can read its shell's
    command line): the facts before end at the first run marker, printed before the tool started, and the facts after
    begin at the last after marker, printed once it had ended. Whatever lies between is the tool's, exactly. A shell
    killed before its after marker (its exit code is then the kill's, not the tool's) leaves no facts after, or the
    tool's own after marker if it printed one."""
    before, found, rest = text.partition(f"\n{token} run\n")
    if not found:  # the shell never got to the run
        return text, "", ""
    tool, found, after = rest.rpartition(f"\n{token} after\n")
    return (before, tool, after) if found else (before, rest, "")


def parse_battery(text: str) -> dict:
    """`dumpsys battery` → level (%), temperature (°C), status."""
    facts: dict = {}
    for key, value in re.findall(r"^\s*(level|temperature|status|plugged|voltage):\s*(-?\d+)", text, re.M):
        number = int(value)
        facts[key] = number / 10.0 if key == "temperature" else number  # tenths of a degree
    return facts


class AdbTransport:
    """A phone: binaries and models pushed content-addressed under /data/local/tmp/tflite-farm, benchmark_model run."""

    def __init__(self, device: AndroidDevice):
        self.device = device
        self.server = adb_server(device.adb_server)
        self.present: set[str] = set()  # files (by sha256) and eval folders checked to be on the phone, this connection
        self.bytes_uploaded = 0
        self.on_upload = None  # called from the worker thread that pushes
        self.abi: str | None = None
        self._phone = None
        # Where a phone's time goes (benchmarks/phone_overhead.py reads them): seconds and adb round trips (each shell,
        # push or pull is one) by phase, summed over the transport's life. A phase's time excludes the phases it calls.
        self.seconds: dict[str, float] = {}
        self.round_trips: dict[str, int] = {}
        self._in_phase: str | None = None

    # --- the phone -------------------------------------------------------------------------------------------------

    def _connect(self):
        client = adb_client(self.server)
        serial = self.device.serial
        try:
            states = {info.serial: info.state for info in client.list()}
            if states.get(serial) != "device" and ":" in serial:
                # A network phone the adb server lost (offline, or dropped past its reconnect window). An offline one
                # is "already connected" to the server, so drop it first; then connect and wait for the handshake.
                if states.get(serial) == "offline":
                    client.disconnect(serial, raise_error=False)
                deadline = time.monotonic() + 10
                while states.get(serial) != "device" and time.monotonic() < deadline:
                    client.connect(serial, timeout=5)  # refused while the phone is still down: try again
                    time.sleep(0.5)
                    states = {info.serial: info.state for info in client.list()}
        except _lost_errors() as error:
            raise DeviceLost(f"adb server {self.server[0]}:{self.server[1]}: {one_line(error)}") from None
        if states.get(serial) != "device":
            raise DeviceLost(f"phone {serial} is {states.get(serial, 'not attached')} on the adb server "
                             f"{self.server[0]}:{self.server[1]}")
        self._phone = client.device(serial)
        self.present.clear()  # a phone that was away may have come back wiped: its files are checked again
        return self._phone

    @contextlib.contextmanager
    def _phase(self, name: str):
        """Time spent in the block, and the adb round trips it makes, counted under `name`."""
        outer, self._in_phase = self._in_phase, name
        start = time.perf_counter()
        try:
            yield
        finally:
            elapsed = time.perf_counter() - start
            self.seconds[name] = self.seconds.get(name, 0.0) + elapsed
            if outer is not None:  # counted once: the enclosing phase keeps only its own time
                self.seconds[outer] = self.seconds.get(outer, 0.0) - elapsed
            self._in_phase = outer

    def _round_trip(self) -> None:
        phase = self._in_phase or "other"
        self.round_trips[phase] = self.round_trips.get(phase, 0) + 1

    def _shell(self, command: str, timeout: float = 60):
        """Run a command on the phone with its exit code and both streams; DeviceLost if the phone goes away."""
        from adbutils import AdbTimeout

        phone = self._phone or self._connect()
        self._round_trip()
        try:
            return phone.shell2(command, timeout=timeout, v2=True)
        except AdbTimeout:
            raise TimeoutError(f"{self.device.name}: no answer within {timeout:g} s") from None
        except _lost_errors() as error:
            self._phone = None
            raise DeviceLost(f"phone {self.device.serial}: {one_line(error)}") from None

    async def _call(self, function, *args, **kwargs):
        return await asyncio.to_thread(function, *args, **kwargs)

    # --- the protocol ----------------------------------------------------------------------------------------------

    async def probe(self) -> dict:
        return await self._call(self._probe)

    def _probe(self) -> dict:
        with self._phase("probe"):
            return self._probe_facts()

    def _probe_facts(self) -> dict:
        phone = self._phone or self._connect()
        try:
            facts = {}
            for key, prop in PROPS.items():
                self._round_trip()
                facts[key] = phone.getprop(prop) or None
        except _lost_errors() as error:
            self._phone = None
            raise DeviceLost(f"phone {self.device.serial}: {one_line(error)}") from None
        self.abi = facts["abi"]
        facts["soc"] = facts["soc"] or facts["platform"]
        cores = self._shell("cat /sys/devices/system/cpu/present")
        facts["cores"] = _count_cpus(cores.stdout.strip()) if cores.returncode == 0 else None
        facts.update(self._read_environment())  # counted as the probe's, not a job's
        facts["serial"] = self.device.serial
        facts["adb_server"] = f"{self.server[0]}:{self.server[1]}"
        if self.abi not in self.device.binaries:
            raise DeviceRefused(f"device {self.device.name!r}: no benchmark_model for ABI {self.abi} "
                                f"(inventory binaries: {', '.join(self.device.binaries) or 'none'})")
        missing = self.device.missing_files().get(f"binaries: {self.abi}")
        if missing:  # every job of the phone needs it: refused before any starts
            raise DeviceRefused(f"{self.device.where()}: binaries: {self.abi}: {missing}")
        self._shell(f"mkdir -p {quote(ROOT)}")
        return facts

    def _environment(self) -> dict:
        """Battery, thermal zones and their throttling trip points now, in one round trip (a job's run takes them
        itself, before and after: folded_command)."""
        with self._phase("environment"):
            return self._read_environment()

    def _read_environment(self) -> dict:
        token = secrets.token_hex(16)
        return parse_facts(self._shell(facts_command(token)).stdout, token)

    async def governors(self, set_to: dict[str, str] | None = None) -> dict[str, str]:
        reply = await self._call(self._governors, set_governors(set_to) if set_to else GOVERNORS)
        if set_to and (reply.stderr or "").strip():
            raise DeviceRefused(f"governor: {last_line(reply.stderr)}")
        return parse_governors(reply.stdout[:65536])

    def _governors(self, command: str):
        with self._phase("governor"):
            return self._shell(command, 30)

    async def temperatures(self) -> dict[str, float]:
        environment = await self._call(self._environment)
        temps = dict(environment["temps_c"])
        if "temperature" in environment["battery"]:
            temps["battery"] = environment["battery"]["temperature"]
        return temps

    def _stage(self, local: LocalFile, mode: int = 0o644) -> str:
        """The file under ROOT on the phone, named by its sha256; pushed only when the phone has no such copy."""
        remote = posixpath.join(ROOT, local.sha256 + local.path.suffix)
        if local.sha256 in self.present:
            return remote
        # Checked, not assumed: reused only when the phone's copy hashes the same.
        found = self._shell(f"sha256sum {quote(remote)} 2>/dev/null")
        if not found.stdout.startswith(local.sha256):
            data = local.path.read_bytes()
            if self.on_upload:
                self.on_upload(upload_note(local, len(data)))
            self._push(data, remote, mode)
        self.present.add(local.sha256)
        return remote

    def _push(self, data: bytes, remote: str, mode: int) -> None:
        partial = f"{remote}.part"
        phone = self._phone or self._connect()
        self._round_trip()
        try:
            phone.sync.push(data, partial, mode=mode)
        except _lost_errors() as error:
            self._phone = None
            raise DeviceLost(f"phone {self.device.serial}: push failed: {one_line(error)}") from None
        moved = self._shell(f"mv -f {quote(partial)} {quote(remote)}")
        if moved.returncode != 0:
            raise DeviceLost(f"phone {self.device.serial}: {moved.stderr.strip() or 'mv failed'}")
        self.bytes_uploaded += len(data)

    async def run_job(self, job: BenchmarkJob) -> RawResult:
        return await self._call(self._run_job, job)

    def _binary(self, job: BenchmarkJob) -> LocalFile:
        """The benchmark_model build for this phone's ABI: the Flex build for models with Flex ops."""
        if self.abi is None:
            self._probe()
        # The planner only sends models with Flex ops to flex: true phones.
        needs_flex = bool(job.description.get("needs_flex"))
        binaries = self.device.flex_binaries if needs_flex else self.device.binaries
        if self.abi not in binaries:
            raise JobFailed(f"device {self.device.name!r}: no {'flex_' if needs_flex else ''}binaries "
                            f"entry for ABI {self.abi}")
        return LocalFile(Path(binaries[self.abi]), sha256_file(binaries[self.abi]))

    def _perf_test_binary(self) -> LocalFile:
        """The onnxruntime_perf_test build for this phone's ABI (the planner skips onnx models on phones with none)."""
        if self.abi is None:
            self._probe()
        builds = self.device.onnxruntime_perf_test
        if self.abi not in builds:
            raise JobFailed(f"device {self.device.name!r}: no onnxruntime_perf_test entry for ABI {self.abi} "
                            f"(inventory onnxruntime_perf_test: {', '.join(builds) or 'none'})")
        return LocalFile(Path(builds[self.abi]), sha256_file(builds[self.abi]))

    def _run_job(self, job: BenchmarkJob) -> RawResult:
        if is_onnx(job):
            return self._run_perf_test(job)
        with self._phase("stage"):
            binary = self._binary(job)
            binary_remote, model = self._stage(binary, 0o755), self._stage(job.model)
        raw = self._run(binary, binary_remote, benchmark_model_flags(job, model), job, BENCHMARK_MODEL)
        raw.extra.update(delegate=job.delegate.name, profile=job.profile)
        return raw

    def _run_perf_test(self, job: BenchmarkJob) -> RawResult:
        """An onnx model: ONNX Runtime's onnxruntime_perf_test with the delegate's execution provider."""
        provider = EXECUTION_PROVIDERS.get(job.delegate.name)
        if provider is None:  # the planner skips these; a job from elsewhere fails with the same reason
            raise JobFailed(f"the {job.delegate.name} delegate has no onnxruntime_perf_test execution provider "
                            f"(onnx models run with: {', '.join(EXECUTION_PROVIDERS)})")
        with self._phase("stage"):
            binary = self._perf_test_binary()
            binary_remote, model = self._stage(binary, 0o755), self._stage(job.model)
        flags = perf_test_flags(model, runs=job.runs, threads=job.threads, provider=provider)
        raw = self._run(binary, binary_remote, flags, job, ONNXRUNTIME_PERF_TEST)
        raw.extra.update(delegate=job.delegate.name, provider=provider, warnings=_not_applied(job))
        return raw

    def _run(self, binary: LocalFile, binary_remote: str, flags: list[str], job: BenchmarkJob, tool: str) -> RawResult:
        """One run of a staged tool, its output bounded, with battery and thermals before and after, in one round
        trip; `tool` names the output's format."""
        timeout = job.timeout_s
        token = secrets.token_hex(16)  # per call: no output holds these markers by chance (split_run: on purpose)
        command = folded_command(self._command(binary_remote, flags, timeout), token)
        start = time.perf_counter()
        with self._phase("run"):
            reply = self._shell(command, timeout=timeout + 10)
        wall_ms = (time.perf_counter() - start) * 1000
        if reply.returncode == 137 and wall_ms >= timeout * 1000:
            raise TimeoutError(f"no result within {timeout:g} s")
        before, stdout, after = split_run(reply.stdout, token)
        # adbutils reads the whole output before it returns: bounded here, before it is parsed or stored.
        if len(stdout) + len(reply.stderr) > job.max_reply_bytes:
            raise JobFailed(f"{tool} output: more than {job.max_reply_bytes / (1 << 20):g} MB (max_reply_bytes)")
        if reply.returncode is None:
            raise DeviceLost(f"the phone went away before {tool} finished")
        extra = {"env_before": parse_facts(before, token), "env_after": parse_facts(after, token),
                 "binary": binary.path.name, "host": {"serial": self.device.serial, "abi": self.abi}}
        return RawResult(tool, stdout, reply.stderr, reply.returncode, extra)

    async def eval_predictions(self, job: BenchmarkJob) -> list[int] | list[list[float]] | None:
        """benchmark_model reports no outputs: the phone runs the eval set in a second step (see _accuracy), for top-1
        predictions, or with job.eval_outputs (a regression) the output values.
        onnxruntime_perf_test has no way to feed given inputs or write outputs: no predictions (its result says so)."""
        if job.eval is None or is_onnx(job):
            return None
        return await self._call(self._accuracy, job)

    def _command(self, binary: str, flags: list[str], timeout: float) -> str:
        pinned = f"taskset {quote(self.device.affinity)} " if self.device.affinity else ""
        # The phone enforces the timeout too, so a hung run does not keep the phone busy (and hot).
        return f"timeout -s KILL {int(timeout) + 1} {pinned}{quote(binary)} " + " ".join(quote(flag) for flag in flags)

    def _accuracy(self, job: BenchmarkJob) -> list[int] | list[list[float]]:
        """Top-1 predictions (or output values) on the eval set: one benchmark_model run per sample inside one
        on-device shell loop.

        Eval data goes to the phone as raw tensor files, one per sample, written for the model's input."""
        from farm.datasets import check_fits, load_npz

        (model_input,), outputs = job.description["inputs"], job.description["outputs"]
        with self._phase("stage"):
            binary, model = self._stage(self._binary(job), 0o755), self._stage(job.model)
            x, _ = load_npz(job.eval.path)
            x = check_fits(x, model_input["shape"], str(job.eval.path))
            if job.eval_limit:
                x = x[: job.eval_limit]
            tensors = _to_input_dtype(x, model_input)
            digest = hashlib.sha256(tensors.tobytes() + str(tensors.shape).encode()).hexdigest()[:16]
            folder = posixpath.join(ROOT, f"eval-{digest}")
            if folder not in self.present and self._shell(f"test -f {quote(folder)}/complete").returncode != 0:
                self._shell(f"mkdir -p {quote(folder)}")
                if self.on_upload:
                    self.on_upload(upload_note(f"{job.eval.path.name} as {len(tensors)} input files", tensors.nbytes))
                for index, sample in enumerate(tensors):
                    self._push(sample.tobytes(), posixpath.join(folder, f"{index}.bin"), 0o644)
                self._shell(f"touch {quote(folder)}/complete")
            self.present.add(folder)
        name = model_input["name"].replace(":", "::")  # the tool's escape for ':' in layer names
        outputs_dir = posixpath.join(ROOT, f"out-{time.time_ns()}")
        # The tool reads value files only for layers it is told the name and shape of.
        shape = ",".join(str(d) for d in model_input["shape"])
        flags = [f"--graph={model}", "--num_runs=1", "--warmup_runs=0", "--min_secs=0",
                 f"--input_layer={model_input['name']}", f"--input_layer_shape={shape}",
                 f"--num_threads={job.threads}", *delegate_flags(job.delegate)]
        fixed = " ".join(quote(flag) for flag in flags)
        loop = (f"mkdir -p {quote(outputs_dir)} && cd {quote(ROOT)} && i=0; while [ $i -lt {len(tensors)} ]; do "
                f"{quote(binary)} {fixed} --input_layer_value_files={quote(name)}:{quote(folder)}/$i.bin "
                f"--output_filepath={quote(outputs_dir)}/$i.bin >/dev/null 2>&1 || exit 3; i=$((i+1)); done; "
                f"cat $(i=0; while [ $i -lt {len(tensors)} ]; do echo {quote(outputs_dir)}/$i.bin; i=$((i+1)); done) "
                f"> {quote(outputs_dir)}/all && echo ok")
        with self._phase("eval"):
            reply = self._shell(loop, timeout=job.timeout_s * 4 + 60)
        if reply.returncode != 0 or "ok" not in reply.stdout:
            raise JobFailed(f"accuracy run failed on the phone (exit {reply.returncode}): {reply.stderr.strip()[-200:]}")
        with self._phase("pull"):
            phone = self._phone or self._connect()
            self._round_trip()
            try:
                data = phone.sync.read_bytes(posixpath.join(outputs_dir, "all"))
            except _lost_errors() as error:
                self._phone = None
                raise DeviceLost(f"phone {self.device.serial}: pulling outputs failed: {error}") from None
            finally:
                self._shell(f"rm -rf {quote(outputs_dir)}")
        firsts = _first_outputs(data, outputs, len(tensors))
        if job.eval_outputs:
            return [values.tolist() for values in firsts]
        return [int(np.argmax(values)) for values in firsts]

    async def reconnect(self) -> None:
        self._phone = None
        await self._call(self._connect)

    async def close(self) -> None:
        self._phone = None


def discover(server: str = "127.0.0.1:5037") -> list[dict]:
    """Every phone attached to an adb server, with what an inventory entry needs."""
    from farm.errors import FarmError

    try:
        client = adb_client(adb_server(server))
    except DeviceLost as error:
        raise FarmError(f"{error} (is it running? `adb start-server`)") from None
    try:
        phones = [d for d in client.device_list()]
        found = []
        for phone in phones:
            facts = {key: phone.getprop(prop) or None for key, prop in PROPS.items()}
            facts["soc"] = facts["soc"] or facts["platform"]
            found.append({"serial": phone.serial, **facts})
        return found
    except _lost_errors() as error:
        raise FarmError(f"adb server {server}: {one_line(error)} (is it running? `adb start-server`)") from None


def is_onnx(job: BenchmarkJob) -> bool:
    """An ONNX model: run by onnxruntime_perf_test, not benchmark_model."""
    return job.model.path.suffix == ".onnx"


def _not_applied(job: BenchmarkJob) -> list[str]:
    """What a job asks for that onnxruntime_perf_test cannot do, for the result's warnings."""
    said = []
    if job.eval is not None:
        said.append("accuracy is not measured by onnxruntime_perf_test: it reports no outputs of the model")
    if job.warmup_runs != 1:
        said.append(f"warmup_runs={job.warmup_runs} not applied: onnxruntime_perf_test always runs one warm-up "
                    "inference (its first inference)")
    if job.min_secs > 0:
        said.append(f"min_secs={job.min_secs:g} not applied: onnxruntime_perf_test -m times runs exactly "
                    f"{job.runs} inferences")
    if job.profile:
        said.append("no op profile: onnxruntime_perf_test writes its profile (-p) as a JSON trace on the phone, "
                    "which is not collected")
    return said


def _count_cpus(present: str) -> int | None:
    """'0-7' or '0-3,4-7' → 8."""
    try:
        total = 0
        for part in present.split(","):
            low, _, high = part.partition("-")
            total += int(high or low) - int(low) + 1
        return total
    except ValueError:
        return None


def _to_input_dtype(x: np.ndarray, model_input: dict) -> np.ndarray:
    dtype = np.dtype(model_input["dtype"])
    if np.issubdtype(dtype, np.integer) and not np.issubdtype(x.dtype, np.integer):
        scale = model_input["quantization"]["scale"] or 1.0
        zero_point = model_input["quantization"]["zero_point"] or 0
        info = np.iinfo(dtype)
        return np.clip(np.round(x / scale + zero_point), info.min, info.max).astype(dtype)
    return x.astype(dtype)


def _first_outputs(data: bytes, outputs: list[dict], count: int) -> list[np.ndarray]:
    """Each sample's first output, as float values: benchmark_model writes every output tensor's raw bytes, in order;
    a quantized output is dequantized with its scale and zero point (argmax is the same either way)."""
    per_sample = sum(int(np.prod(o["shape"])) * np.dtype(o["dtype"]).itemsize for o in outputs)
    if len(data) != per_sample * count:
        raise JobFailed(f"benchmark_model wrote {len(data)} output bytes for {count} samples; expected {per_sample * count}")
    first = outputs[0]
    dtype = np.dtype(first["dtype"])
    size = int(np.prod(first["shape"])) * dtype.itemsize
    quantization = first.get("quantization") or {}
    scale, zero_point = quantization.get("scale") or 0.0, quantization.get("zero_point") or 0
    values = []
    for index in range(count):
        raw = np.frombuffer(data[index * per_sample: index * per_sample + size], dtype=dtype).astype(np.float64)
        values.append((raw - zero_point) * scale if dtype.kind in "iu" and scale else raw)
    return values


DEVICE, TRANSPORT = AndroidDevice, AdbTransport
