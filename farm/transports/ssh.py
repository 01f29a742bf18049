"""Linux boards over SSH (Raspberry Pi, Coral, Jetson): the agent runs with the board's Python, driven by asyncssh.

One connection per device, reused for the whole sweep. Keepalive is on, because asyncssh otherwise waits forever on a
frozen board; a server that dies shows up as a missing exit status, which is a lost device. Host keys are always
verified against known_hosts. Everything that reaches the remote shell goes through shlex.quote.
"""
from __future__ import annotations

import asyncio
import os
import posixpath
import secrets
import weakref
from pathlib import Path
from shlex import quote
from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import model_validator

from farm import hints
from farm.errors import FarmError, last_line, one_line
from farm.inventory import AGENT_LIBRARY_DELEGATES, CpuMask, Device, EnvName, Program, RemotePath, local_file
from farm.paths import atomic_write, sha256_file
from farm.results import DeviceLost, DeviceRefused, JobFailed, RawResult
from farm.transports import (GOVERNORS, THERMAL_ZONES, BenchmarkJob, LocalFile, benchmark_model_flags,
                              parse_governors, parse_zones, set_governors, upload_note)
from farm.replies import MAX_REPLY_BYTES, probe_facts, read_json
from farm.transports.agent import STDERR_TAIL, AgentStopped, Capped, ReplyTooLarge, WarmAgent, agent_file, agent_request, together

if TYPE_CHECKING:  # asyncssh (the `ssh` extra) is imported when a board is reached, not when an inventory is read
    import asyncssh

PROBE_TIMEOUT_S = 120
KEEPALIVE_S = 2.0  # with 3 missed answers: a frozen board is noticed within ~6-8 s
KEEPALIVE_MISSES = 3
CONNECT_TIMEOUT_S = 10.0
# AES-GCM first: asyncssh seals a packet with it in one call, where chacha20-poly1305 builds three cipher objects, so a
# coordinator of many boards spends a third less CPU on every handshake, command, answer and keepalive (OpenSSH's sshd
# offers both; chacha20-poly1305 and the CTR modes stay for a board that offers only those).
ENCRYPTION = ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com", "chacha20-poly1305@openssh.com", "aes256-ctr",
              "aes192-ctr", "aes128-ctr")
# Handshakes in flight at once, per event loop (like Ansible's forks). All at once, each handshake lasts as long as all
# of them together: a thousand took 5-9 s each on 2 cores, and all passed CONNECT_TIMEOUT_S (every device unreachable)
# while the machine was busy with other work. Bounded, each stays short whatever the farm's size.
MAX_HANDSHAKES = 128
_handshakes: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = weakref.WeakKeyDictionary()
ANSWER_GRACE_S = 10  # past a job's timeout, how long the agent has to say it killed the job


def _lost() -> tuple:
    """What asyncssh raises when the board or the link is gone."""
    import asyncssh

    return (OSError, asyncssh.Error, asyncio.IncompleteReadError)


class SshDevice(Device):
    """A Linux board over SSH, in an inventory: `kind: linux`."""

    kind: Literal["linux"]
    host: str | None = None
    port: int = 22
    user: str | None = None
    key: str | None = None
    known_hosts: str | None = None
    jump: str | None = None  # user@gateway:port of a jump host
    password_env: EnvName | None = None  # the name of an environment variable, never the password itself
    workspace: RemotePath = "~/.cache/tflite-farm"
    python: Program | None = None  # interpreter that runs the agent (default: the provisioned venv, else python3)
    affinity: CpuMask | None = None  # taskset CPU mask the agent runs on, e.g. "f0" for the big cores
    # A TensorFlow Lite benchmark_model build for the board, a file of the coordinator uploaded like a model, run for
    # op profiles (LiteRT's Python API has no op profiler): with `profile: true`, a second run of each job.
    benchmark_model: str | None = None
    LIBRARY_DELEGATES: ClassVar[frozenset[str]] = AGENT_LIBRARY_DELEGATES

    @model_validator(mode="after")
    def _host(self) -> "SshDevice":
        if not self.host:
            raise ValueError("host: required for a linux device")
        return self

    def reached_at(self) -> str:
        return f"{self.user + '@' if self.user else ''}{self.host}:{self.port}"

    def jump_host(self) -> tuple[str | None, str, int]:
        """(user, host, port) of the jump host: `user@gateway:port`, user and port optional."""
        user, _, rest = (self.jump or "").rpartition("@")
        host, _, port = rest.partition(":")
        return user or self.user, host, int(port or 22)

    def workspace_expression(self) -> str:
        """The workspace as a shell expression on the board: a leading ~ is the board's $HOME, the rest quoted."""
        workspace = self.workspace
        return '"$HOME"' + quote(workspace[1:]) if workspace.startswith("~") else quote(workspace)

    def resolve_paths(self, base: Path) -> None:
        # Files of the coordinator; paths on the board (python, workspace, delegate libraries) stay as written.
        if self.key:
            self.key = local_file(base, self.key)
        if self.known_hosts:
            self.known_hosts = local_file(base, self.known_hosts)
        if self.benchmark_model:
            self.benchmark_model = local_file(base, self.benchmark_model)

    def local_files(self) -> dict[str, str]:
        # known_hosts is not one: `farm inventory trust` creates it (notes() says so).
        return {field: path for field, path in (("key", self.key), ("benchmark_model", self.benchmark_model)) if path}

    def notes(self) -> list[str]:
        known_hosts = known_hosts_path(self)
        if known_hosts.is_file():
            return []
        return [f"known_hosts: {known_hosts}: not there yet, so the board is refused; check its host key, then: "
                f"{hints.for_device('inventory trust', self)}"]

    def runtime_fix(self, python: str) -> str:
        provision = hints.for_device("provision", self)
        if self.python:  # the agent runs with that Python whatever farm provision installs in its venv
            return (f"install ai-edge-litert for python: {self.python} on the board, or remove that line from its "
                    f"inventory entry and run: {provision}")
        return provision


def known_hosts_path(device: SshDevice) -> Path:
    """The known_hosts file that vouches for this device: the inventory's, else the user's."""
    return Path(device.known_hosts or "~/.ssh/known_hosts").expanduser()


def client_keys(device: SshDevice) -> list[str] | None:
    """The device's key file, or None for asyncssh's defaults (ssh-agent, then ~/.ssh/id_*)."""
    return [str(Path(device.key).expanduser())] if device.key else None


def password(device: SshDevice) -> str | None:
    if not device.password_env:
        return None
    value = os.environ.get(device.password_env)
    if value is None:
        # Never the variable's name: a password typed into password_env by mistake must not reach a log.
        raise DeviceRefused(f"device {device.name!r}: the environment variable that password_env names is not set")
    return value


def untrusted(device: SshDevice, known_hosts: Path) -> str:
    """Why a board without a known_hosts file is refused, and what to do."""
    return (f"device {device.name!r}: no known_hosts file at {known_hosts}; "
            f"check the host key, then: {hints.for_device('inventory trust', device)}")


async def connect(device: SshDevice, host: str | None = None, port: int | None = None) -> asyncssh.SSHClientConnection:
    """An SSH connection to the device (through its jump host if any), host key verified; DeviceRefused / DeviceLost."""
    import asyncssh

    known_hosts = known_hosts_path(device)
    if not known_hosts.is_file():
        raise DeviceRefused(untrusted(device, known_hosts))
    missing = device.missing_files().get("key")
    if missing:  # refused, not lost: asyncssh's OSError would read as a board to retry
        raise DeviceRefused(f"{device.where()}: key: {missing}")
    options = dict(known_hosts=str(known_hosts), keepalive_interval=KEEPALIVE_S, keepalive_count_max=KEEPALIVE_MISSES,
                   connect_timeout=CONNECT_TIMEOUT_S, password=password(device), encryption_algs=ENCRYPTION)
    if client_keys(device) is not None:
        options["client_keys"] = client_keys(device)
    target = f"{host or device.host}:{port or device.port}"
    tunnel = None
    try:
        if device.jump:
            jump_user, jump_host, jump_port = device.jump_host()
            tunnel = await _handshake(jump_host, jump_port, username=jump_user, **options)
        return await _handshake(host or device.host, port or device.port, username=device.user, tunnel=tunnel,
                                **options)
    except asyncssh.HostKeyNotVerifiable as error:
        raise DeviceRefused(f"device {device.name!r}: host key of {target} is unknown or has changed ({error.reason}); "
                            f"check it, then: {hints.for_device('inventory trust', device)}") from None
    except asyncssh.PermissionDenied:
        raise DeviceRefused(f"device {device.name!r}: {target} refused the login of user {device.user!r} "
                            "(check key, ssh-agent or password_env)") from None
    except (*_lost(), asyncio.TimeoutError) as error:
        if tunnel is not None:
            tunnel.close()
        raise DeviceLost(f"cannot connect to {target}: {one_line(error)}") from None


async def _handshake(host: str, port: int, **options) -> asyncssh.SSHClientConnection:
    """asyncssh.connect, once one of this event loop's MAX_HANDSHAKES slots is free (its timeout runs from then)."""
    import asyncssh

    loop = asyncio.get_running_loop()
    if loop not in _handshakes:
        _handshakes[loop] = asyncio.Semaphore(MAX_HANDSHAKES)
    async with _handshakes[loop]:
        return await asyncssh.connect(host, port, **options)


class SshTransport:
    """A Linux board: content-addressed uploads into its workspace, the agent run there, one connection reused."""

    def __init__(self, device: SshDevice):
        self.device = device
        self.connection: asyncssh.SSHClientConnection | None = None
        self.workspace = ""
        self.python = device.python or "python3"
        self.present: set[str] = set()  # files checked to be on the device, over this connection
        self.bytes_uploaded = 0
        self.on_upload = None
        self.agent: WarmAgent | None = None
        self.agent_path = ""

    async def _connection(self) -> asyncssh.SSHClientConnection:
        if self.connection is None:
            self.connection = await connect(self.device)
            self.present.clear()
            # One round trip: resolve the workspace (a leading ~ is the board's $HOME), create it, look for a venv.
            reply = await self._run(f'ws={self.device.workspace_expression()} && mkdir -p -- "$ws/files" && printf "%s\\n" "$ws" && '
                                    f'if test -x "$ws/venv/bin/python"; then echo venv; fi')
            lines = reply.stdout.splitlines()
            self.workspace = lines[0]
            if not self.device.python:
                has_venv = lines[1:] == ["venv"]
                self.python = posixpath.join(self.workspace, "venv", "bin", "python") if has_venv else "python3"
        return self.connection

    async def _run(self, command: str, *, input: str | bytes | None = None, timeout: float | None = 60,
                   check: bool = True, binary: bool = False) -> asyncssh.SSHCompletedProcess:
        import asyncssh

        connection = self.connection
        try:
            result = await connection.run(command, input=input, timeout=timeout, check=False,
                                          encoding=None if binary else "utf-8", errors="replace")
        except asyncssh.TimeoutError:
            raise  # an asyncssh.Error too, but the job's timeout, not a lost board
        except _lost() as error:
            raise await self._gone(one_line(error)) from None
        if result.exit_status is None and result.exit_signal is None:
            # asyncssh reports a dead server as a missing exit status, not as an exception.
            raise await self._gone("the connection closed during a command")
        if check and result.exit_status != 0:
            # The board answered: a failed command is the job's failure (disk full, no permission), not a lost board.
            stderr = result.stderr.decode(errors="replace") if isinstance(result.stderr, bytes) else result.stderr
            reason = last_line(stderr) or f"exit status {result.exit_status}"
            raise JobFailed(f"{command.split()[0]} failed on {self.device.name}: {reason}")
        return result

    async def _gone(self, why: object) -> DeviceLost:
        """The connection is gone: it is dropped, and the DeviceLost to raise says why."""
        await self._drop()
        return DeviceLost(f"{self.device.host}:{self.device.port}: {why}")

    async def _drop(self) -> None:
        self.agent = None  # it lived on that connection
        if self.connection is not None:
            self.connection.abort()
            self.connection = None

    async def probe(self) -> dict:
        raw = None
        try:
            raw = await self._ask({"probe": True, "timeout_s": PROBE_TIMEOUT_S}, MAX_REPLY_BYTES)
            facts = read_json(raw.stdout, "probe reply")
        except TimeoutError:
            raise TimeoutError(f"probe of {self.device.name}: no answer within {PROBE_TIMEOUT_S} s") from None
        except (JobFailed, AgentStopped) as error:  # the board answers, but its Python can't run the agent
            # Without an answer (the agent's upload failed, or it stopped), the error says why; with one, its output.
            why = one_line(error) if raw is None else (raw.stderr or raw.stdout).strip()[-300:]
            raise DeviceLost(f"probe of {self.device.name} with {self.python} failed: {why}") from None
        facts = probe_facts(facts)
        facts["workspace"] = self.workspace
        return facts

    async def _ask(self, request: dict, limit: int) -> RawResult:
        """The warm agent's answer (started on first use, in the workspace's copy of the agent); any failure to get
        a whole answer closes it, so the next request starts a new one."""
        await self._connection()
        agent = await self._stage(agent_file())
        if self.agent is None or self.agent.stale() or self.agent_path != agent:
            await self._close_agent()
            self.agent, self.agent_path = await self._start_agent(agent), agent
        try:
            # The agent kills a job past timeout_s itself; this bounds an agent (or a board) that stopped answering.
            return await asyncio.wait_for(self.agent.ask(request, limit), request["timeout_s"] + ANSWER_GRACE_S)
        except asyncio.TimeoutError:
            await self._close_agent()
            raise TimeoutError(f"no result within {request['timeout_s']:g} s") from None
        except _lost() as error:
            if isinstance(error, TimeoutError):  # the agent's own word that it killed the job: the board is fine
                await self._close_agent()
                raise
            raise await self._gone(one_line(error)) from None
        except BaseException:
            await self._close_agent()
            raise

    async def _start_agent(self, agent: str) -> WarmAgent:
        # taskset pins the agent, and so every job process it forks, to the device's CPUs.
        pinned = f"taskset {quote(self.device.affinity)} " if self.device.affinity else ""
        try:
            process = await self.connection.create_process(
                f"exec {pinned}{quote(self.python)} {quote(agent)} --serve", encoding=None)
        except _lost() as error:
            raise await self._gone(one_line(error)) from None

        async def stop():
            process.close()  # the agent sees its stdin end, kills a running job and exits

        return WarmAgent(process.stdin, process.stdout, process.stderr, stop)

    async def _close_agent(self) -> None:
        agent, self.agent = self.agent, None
        if agent is not None:
            await agent.close()

    async def _stage(self, local: LocalFile) -> str:
        """The file in the board's workspace, named by its sha256; uploaded only when the board has no such copy."""
        await self._connection()
        sha256 = local.sha256
        remote = posixpath.join(self.workspace, "files", sha256 + local.path.suffix)
        if sha256 in self.present:
            return remote
        # Checked, not assumed: a copy is reused only when its content hashes to the same sha256.
        found = await self._run(f"sha256sum -- {quote(remote)} 2>/dev/null", check=False)
        if not found.stdout.startswith(sha256):
            data = local.path.read_bytes()
            if self.on_upload:
                self.on_upload(upload_note(local, len(data)))
            partial = f"{remote}.part-{secrets.token_hex(4)}"
            # Published under its name only when whole: a coordinator that dies mid-upload ends cat's input early
            # (and cat exits 0), and a full disk fails the write; either way the partial copy is removed.
            await self._run(f"cat > {quote(partial)} && {{ printf '%s  %s\\n' {sha256} {quote(partial)} | "
                            f"sha256sum -c --status || {{ echo 'the copy that arrived does not hash to its sha256' "
                            f">&2; false; }}; }} && mv -f -- {quote(partial)} {quote(remote)} || "
                            f"{{ status=$?; rm -f -- {quote(partial)}; exit $status; }}",
                            input=data, timeout=600, binary=True)
            self.bytes_uploaded += len(data)
        self.present.add(sha256)
        return remote

    async def run_job(self, job: BenchmarkJob) -> RawResult:
        model = await self._stage(job.model)
        eval_data = await self._stage(job.eval) if job.eval else None
        raw = await self._ask(agent_request(job, model, eval_data), job.max_reply_bytes)
        raw.extra["profile"] = job.profile
        if job.profile and self.device.benchmark_model and raw.exit_code == 0:
            pinned = f"taskset {quote(self.device.affinity)} " if self.device.affinity else ""
            raw.extra["op_profile"] = await self._op_profile(job, model, pinned)
        return raw

    async def _op_profile(self, job: BenchmarkJob, model: str, pinned: str) -> dict:
        """benchmark_model's op-profiling run of the job: its output, or why there is none (the job stands)."""
        path = self.device.benchmark_model
        stdout, stderr = Capped(job.max_reply_bytes), Capped(STDERR_TAIL, keep_tail=True)
        try:
            binary = await self._stage(LocalFile(Path(path), sha256_file(path)))
            flags = " ".join(quote(flag) for flag in benchmark_model_flags(job, model))
            command = (f"chmod +x -- {quote(binary)} && exec timeout -s KILL {int(job.timeout_s) + 1} {pinned}"
                       f"{quote(binary)} {flags}")
            result = await self._exchange(command, stdout, stderr, job.timeout_s + 5)
        except (OSError, JobFailed) as error:  # TimeoutError is an OSError
            return {"error": one_line(error)}
        return {"delegate": job.delegate.name, "stdout": stdout.bytes().decode(errors="replace"),
                "stderr": stderr.bytes().decode(errors="replace"), "exit_code": result.exit_status}

    async def _exchange(self, command: str, stdout: Capped, stderr: Capped, timeout: float):
        """Run a command, its output read within the caps; DeviceLost when the board goes away."""
        process = None

        async def exchange():
            nonlocal process
            process = await self.connection.create_process(command, encoding=None)
            process.stdin.write_eof()
            await together(stdout.drain(process.stdout), stderr.drain(process.stderr))
            return await process.wait()

        try:
            result = await asyncio.wait_for(exchange(), timeout)
        except asyncio.TimeoutError:
            if process is not None:
                process.close()
            raise TimeoutError(f"no result within {timeout:g} s") from None
        except ReplyTooLarge:
            process.close()  # the tool dies on its next write; `timeout` on the board bounds it anyway
            raise
        except _lost() as error:
            raise await self._gone(one_line(error)) from None
        if result.exit_status is None and result.exit_signal is None:
            # asyncssh reports a dead server as a missing exit status, not as an exception.
            raise await self._gone("the connection closed during a command")
        return result

    async def governors(self, set_to: dict[str, str] | None = None) -> dict[str, str]:
        await self._connection()
        result = await self._run(set_governors(set_to) if set_to else GOVERNORS, timeout=30, check=False)
        if set_to and result.stderr.strip():
            raise DeviceRefused(f"governor: {last_line(result.stderr)}")
        return parse_governors(result.stdout[:65536])

    async def temperatures(self) -> dict[str, float]:
        await self._connection()
        result = await self._run(THERMAL_ZONES, timeout=30, check=False)
        return parse_zones(result.stdout[:65536])

    async def eval_predictions(self, job: BenchmarkJob) -> None:
        return None  # the agent scores the eval set in the job's own run

    async def reconnect(self) -> None:
        await self._drop()
        await self._connection()

    async def close(self) -> None:
        await self._close_agent()
        if self.connection is not None:
            self.connection.close()
            try:
                await asyncio.wait_for(self.connection.wait_closed(), 5)
            except (asyncio.TimeoutError, *_lost()):
                pass
            self.connection = None


async def _presented_key(host: str, port: int, tunnel=None):
    """The key an SSH server presents now, unverified (only `farm inventory trust` asks)."""
    import asyncssh

    try:
        key = await asyncio.wait_for(asyncssh.get_server_host_key(host, port, **({"tunnel": tunnel} if tunnel else {})),
                                     CONNECT_TIMEOUT_S)
    except (*_lost(), asyncio.TimeoutError) as error:
        raise FarmError(f"cannot reach {host}:{port}: {one_line(error)}") from None
    if key is None:
        raise FarmError(f"{host}:{port} presented no host key")
    return key


def trust(device: SshDevice, *, replace: bool = False, confirm=None, say=print) -> None:
    """Show the host keys the device presents (its jump host's first, then its own through that gateway), and record
    each new one in the device's known_hosts; a changed key is replaced only with `replace` or a yes from `confirm`.

    The fingerprint is shown before anything is written, and the gateway's key is checked before the board's is
    asked through it."""
    import asyncssh

    path = known_hosts_path(device)
    if device.jump:
        user, host, port = device.jump_host()
        _record(device, path, host, port, asyncio.run(_presented_key(host, port)), replace, confirm, say)

    async def through_gateway():
        if not device.jump:
            return await _presented_key(device.host, device.port)
        user, host, port = device.jump_host()
        options = dict(known_hosts=str(path), connect_timeout=CONNECT_TIMEOUT_S, password=password(device))
        if client_keys(device) is not None:
            options["client_keys"] = client_keys(device)
        try:
            gateway = await asyncssh.connect(host, port, username=user, **options)
        except asyncssh.HostKeyNotVerifiable as error:
            raise FarmError(f"device {device.name!r}: jump host {host}:{port}: {error.reason}") from None
        except asyncssh.PermissionDenied:
            raise FarmError(f"device {device.name!r}: jump host {host}:{port} refused the login of {user!r}") from None
        except (*_lost(), asyncio.TimeoutError) as error:
            raise FarmError(f"device {device.name!r}: cannot reach the jump host {host}:{port}: {error}") from None
        async with gateway:
            return await _presented_key(device.host, device.port, tunnel=gateway)

    _record(device, path, device.host, device.port, asyncio.run(through_gateway()), replace, confirm, say)


def _record(device: SshDevice, path: Path, host: str, port: int, key, replace: bool, confirm, say) -> None:
    import asyncssh

    pattern = host if port == 22 else f"[{host}]:{port}"
    entry = f"{pattern} {key.export_public_key('openssh').decode().strip()}"
    lines = path.read_text().splitlines() if path.is_file() else []
    say(f"{device.name}: {pattern} presents {key.get_algorithm()} {key.get_fingerprint()}")
    if entry in lines:
        say(f"{device.name}: {pattern} already trusted ({key.get_fingerprint()})")
        return
    recorded = [line for line in lines if line.split(" ", 1)[0] == pattern]
    if recorded:
        old = []
        for line in recorded:
            try:
                old.append(asyncssh.import_public_key(line.split(" ", 1)[1]).get_fingerprint())
            except (asyncssh.KeyImportError, IndexError):
                old.append("an unreadable key")
        say(f"{device.name}: {pattern} is recorded in {path} with {', '.join(old)}; it now presents "
            f"{key.get_fingerprint()}. A changed key is a reflashed board, or someone in between.")
        if not (replace or (confirm is not None and confirm(f"replace the key of {pattern}?"))):
            raise FarmError(f"device {device.name!r}: host key of {pattern} has changed and was kept; check the new "
                            f"one, then run trust again with --replace")
    kept = [line for line in lines if line.split(" ", 1)[0] != pattern]
    atomic_write(path, ("\n".join(kept + [entry]) + "\n").encode())
    verb = "replaced the old key with" if recorded else "trusted"
    say(f"{device.name}: {verb} {key.get_algorithm()} {key.get_fingerprint()} for {pattern} in {path}")


DEVICE, TRANSPORT = SshDevice, SshTransport
