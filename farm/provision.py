"""`farm provision`: make a Linux board ready for the agent, with Fabric.

Creates a venv in the board's workspace and installs numpy and a LiteRT runtime there, as the venv's own pip resolves
them for the board's Python and architecture: ai-edge-litert where pip finds it, else tflite-runtime (the wheels Pi OS
and Coral images can take, with numpy < 2), or the runtime `--runtime` names; with onnxruntime, also onnxruntime, which
the agent runs .onnx models with. The SSH transport then runs the agent with that venv's Python. Fabric accepts any
host key by default; here it verifies against the device's known_hosts like every other connection of the farm.
"""
from __future__ import annotations

import json
import posixpath
import re
import shlex
import socket
from shlex import quote
from typing import TYPE_CHECKING, Callable, NamedTuple

from farm import hints
from farm.errors import FarmError, last_line, one_line

if TYPE_CHECKING:  # the CLI's parser reads RUNTIMES; the SSH transport is imported when a board is provisioned
    from farm.transports.ssh import SshDevice

RUNTIMES = ("ai-edge-litert", "tflite-runtime")
# What each runtime is installed with: tflite-runtime's last wheels (2.14) were built against numpy 1, and numpy 2
# cannot load them.
REQUIREMENTS = {"ai-edge-litert": ["ai-edge-litert", "numpy"], "tflite-runtime": ["tflite-runtime", "numpy<2"]}
# pip's own resolution, nothing installed: --ignore-installed so that the report names every package pip would take
# (a venv provisioned before already has them), and so their versions.
DRY_RUN = ["install", "--dry-run", "--quiet", "--disable-pip-version-check", "--ignore-installed", "--report", "-"]
DRY_RUN_PIP = "pip>=22.2"  # the first pip with --dry-run and --report (Debian 11 and Ubuntu 22.04 venvs have older)
MAX_REPORT_CHARS = 4 << 20  # pip's report of a runtime and its dependencies is ~100 KB (their descriptions included)
VERSION = re.compile(r"[0-9][0-9A-Za-z.+!_-]{0,63}")
# Lines by which pip says that it could not reach its index, which it otherwise reports as "no matching distribution".
UNREACHABLE = re.compile(r"^WARNING: (Retrying \(|Could not fetch URL)", re.MULTILINE)


class PipAnswer(NamedTuple):
    """What a pip command on the board said: its exit status, stdout and stderr."""

    exit_code: int
    stdout: str
    stderr: str


class Choice(NamedTuple):
    """The runtime provisioning installs, as pip resolved it, and why that one."""

    runtime: str  # one of RUNTIMES
    version: str
    numpy: str
    why: str

    def requirements(self) -> list[str]:
        """Exactly what pip resolved, so that what is installed is what was said."""
        return [f"{self.runtime}=={self.version}", f"numpy=={self.numpy}"]

    def record(self) -> dict:
        """The choice as the device's facts keep it (facts["provisioned"])."""
        return self._asdict()

    def __str__(self) -> str:
        return f"{self.runtime} {self.version} with numpy {self.numpy} ({self.why})"


def choose_runtime(dry_run: Callable[[list[str]], PipAnswer], platform: str, forced: str | None = None) -> Choice:
    """The runtime to install, from pip's dry runs of REQUIREMENTS (`dry_run` runs DRY_RUN with them on the board):
    ai-edge-litert when pip finds it for the board, else tflite-runtime; `forced` (one of RUNTIMES) skips the choice.
    `platform` ("Python 3.11 x86_64") names the board in what is said."""
    if forced is None:
        answer = dry_run(REQUIREMENTS["ai-edge-litert"])
        if answer.exit_code == 0:
            version, numpy, wheel = resolved(answer.stdout, "ai-edge-litert")
            found = "a wheel" if wheel else "a source distribution"
            return Choice("ai-edge-litert", version, numpy, f"pip found {found} for {platform}")
        _unless_no_match(answer, "ai-edge-litert")
        runtime, why = "tflite-runtime", f"no ai-edge-litert wheel for {platform}"
    else:
        runtime, why = forced, f"--runtime {forced}"
    answer = dry_run(REQUIREMENTS[runtime])
    if answer.exit_code != 0:
        _unless_no_match(answer, runtime)
        tried = "neither ai-edge-litert nor tflite-runtime" if forced is None else f"no {runtime}"
        raise FarmError(f"pip finds {tried} for {platform}: {last_line(answer.stderr)}")
    version, numpy, _ = resolved(answer.stdout, runtime)
    return Choice(runtime, version, numpy, why)


def _unless_no_match(answer: PipAnswer, name: str) -> None:
    """Raise pip's own error unless it failed for want of a distribution of `name` (pip names it as it was asked)."""
    unreachable = UNREACHABLE.search(answer.stderr)
    if unreachable:
        line = answer.stderr[unreachable.start():].splitlines()[0]
        raise FarmError(f"pip could not reach its package index: {one_line(line)}")
    if f"No matching distribution found for {name}" not in answer.stderr:
        raise FarmError(f"pip failed (exit {answer.exit_code}) on {name}: "
                        f"{last_line(answer.stderr) or last_line(answer.stdout) or 'no output'}")


def resolved(report_text: str, runtime: str) -> tuple[str, str, bool]:
    """(runtime version, numpy version, whether the runtime comes as a wheel) from pip's JSON report of a dry run.

    The report is the board's output: bounded, checked for shape, and only versions that look like versions are kept."""
    if len(report_text) > MAX_REPORT_CHARS:
        raise FarmError(f"pip's report is larger than {MAX_REPORT_CHARS >> 20} MB")
    try:
        report = json.loads(report_text)
    except (ValueError, RecursionError):  # RecursionError: arrays nested thousands deep
        raise FarmError(f"pip's report is not JSON: {one_line(report_text, 120) or 'nothing'}") from None
    items = report.get("install") if isinstance(report, dict) else None
    found: dict[str, tuple[str, bool]] = {}
    for item in items if isinstance(items, list) else []:
        metadata = item.get("metadata") if isinstance(item, dict) else None
        if not isinstance(metadata, dict):
            continue
        name, version = metadata.get("name"), metadata.get("version")
        if isinstance(name, str) and isinstance(version, str) and VERSION.fullmatch(version):
            download = item.get("download_info")
            url = download.get("url") if isinstance(download, dict) else None
            found[re.sub(r"[-_.]+", "-", name).lower()] = (version, isinstance(url, str) and url.endswith(".whl"))
    missing = [name for name in (runtime, "numpy") if name not in found]
    if missing:
        raise FarmError(f"pip's report names no {' and no '.join(missing)} to install")
    return found[runtime][0], found["numpy"][0], found[runtime][1]


def fabric_connection(device: SshDevice):
    """A Fabric connection to the device that refuses unknown or changed host keys."""
    import paramiko
    from fabric import Connection

    from farm.transports.ssh import client_keys, known_hosts_path, password, untrusted

    known_hosts = known_hosts_path(device)
    if not known_hosts.is_file():
        raise FarmError(untrusted(device, known_hosts))
    keys = client_keys(device)
    connect_kwargs = {"look_for_keys": keys is None, "allow_agent": keys is None, "banner_timeout": 10,
                      "auth_timeout": 10}
    if keys:
        connect_kwargs["key_filename"] = keys
    secret = password(device)
    if secret is not None:
        connect_kwargs["password"] = secret
    gateway = None
    if device.jump:
        jump_user, jump_host, jump_port = device.jump_host()
        gateway = _verified(Connection(jump_host, user=jump_user, port=jump_port,
                                       connect_kwargs=dict(connect_kwargs), connect_timeout=10), known_hosts, paramiko)
    connection = Connection(device.host, user=device.user, port=device.port, connect_kwargs=connect_kwargs,
                            connect_timeout=10, gateway=gateway)
    return _verified(connection, known_hosts, paramiko)


def _verified(connection, known_hosts, paramiko):
    connection.client.set_missing_host_key_policy(paramiko.RejectPolicy())
    connection.client.load_host_keys(str(known_hosts))
    return connection


def provision(device: SshDevice, *, base_python: str = "python3", pip_args: str = "", onnxruntime: bool = False,
              runtime: str | None = None, log=print) -> tuple[str, Choice]:
    """Create <workspace>/venv on the device and install numpy and the LiteRT runtime that choose_runtime picks (or
    `runtime`), and onnxruntime when asked; returns the venv's Python and the choice."""
    import paramiko

    if device.kind != "linux":
        raise FarmError(f"device {device.name!r}: only linux (SSH) devices are provisioned; "
                        "phones run benchmark_model, this machine runs the venv that `make` set up")
    connection = fabric_connection(device)
    try:
        def answer(command: str) -> PipAnswer:
            result = connection.run(command, hide=True, warn=True, in_stream=False)
            return PipAnswer(result.exited, result.stdout, result.stderr)

        def run(command: str, what: str) -> str:
            result = answer(command)
            if result.exit_code != 0:
                detail = last_line(result.stderr) or last_line(result.stdout) or "no output"
                raise FarmError(f"device {device.name!r}: {what} failed (exit {result.exit_code}): {detail}")
            return result.stdout.strip()

        workspace = run(f'ws={device.workspace_expression()} && mkdir -p -- "$ws" && printf %s "$ws"', "creating the workspace")
        venv = posixpath.join(workspace, "venv")
        code = ('import platform, sys; '
                'print("%d.%d %s" % (sys.version_info[0], sys.version_info[1], platform.machine()))')
        said = run(f"{quote(base_python)} -c {quote(code)}", f"running {base_python}")
        found = re.fullmatch(r"(\d{1,3})\.(\d{1,3}) ([\w.-]{1,32})", said)
        if not found:
            raise FarmError(f"device {device.name!r}: {base_python} said {one_line(said, 80)!r}, not its Python "
                            "version and architecture")
        version, machine = f"{found[1]}.{found[2]}", found[3]
        if (int(found[1]), int(found[2])) < (3, 8):
            raise FarmError(f"device {device.name!r}: {base_python} is Python {version}; the agent needs 3.8 or newer")
        log(f"{device.name}: Python {version} {machine} → venv {venv}"
            + (", with onnxruntime" if onnxruntime else ""))
        run(f"{quote(base_python)} -m venv {quote(venv)}",
            "creating the venv (Debian and Pi OS need the python3-venv package)")
        pip = quote(posixpath.join(venv, "bin", "pip"))
        extra = shlex.split(pip_args)

        def pip_command(arguments: list[str]) -> str:
            return f"{pip} " + " ".join(quote(argument) for argument in arguments)

        def dry_run(requirements: list[str]) -> PipAnswer:
            result = answer(pip_command([*DRY_RUN, *extra, *requirements]))
            if "no such option: --dry-run" in result.stderr:
                log(f"{device.name}: the venv's pip has no `install --dry-run --report` (pip 22.2 has): upgrading it")
                run(pip_command(["install", "--quiet", "--disable-pip-version-check", *extra, DRY_RUN_PIP]),
                    "upgrading pip")
                result = answer(pip_command([*DRY_RUN, *extra, *requirements]))
            return result

        try:
            choice = choose_runtime(dry_run, f"Python {version} {machine}", runtime)
        except FarmError as error:
            raise FarmError(f"device {device.name!r}: {error}") from None
        log(f"{device.name}: {choice}")

        def install(requirements: list[str], what: str) -> None:
            run(pip_command(["install", "--quiet", "--disable-pip-version-check", *extra, *requirements]), what)

        install(choice.requirements(), f"installing {choice.runtime} {choice.version} with numpy {choice.numpy}")
        # One runtime per venv: the agent imports ai_edge_litert before tflite_runtime, and tflite-runtime's numpy < 2
        # would fight ai-edge-litert's numpy. After the install, so that a failed install leaves the old runtime.
        other = next(name for name in RUNTIMES if name != choice.runtime)
        run(f"{pip} uninstall --quiet --yes {quote(other)}", f"removing {other} from the venv")
        if onnxruntime:
            # A step of its own, after the runtime: its failure (no wheel for the board: PyPI has 64-bit ones only)
            # is named as such and leaves the TFLite runtime installed. numpy is pinned to the runtime's, which
            # onnxruntime would otherwise be free to move (past what tflite-runtime takes).
            install([f"numpy=={choice.numpy}", "onnxruntime"],
                    "installing onnxruntime (PyPI has wheels for 64-bit ARM and x86 only)")
        return posixpath.join(venv, "bin", "python"), choice
    except paramiko.BadHostKeyException as error:
        raise FarmError(f"device {device.name!r}: host key of {device.host}:{device.port} has changed "
                        f"({error.key.get_name()}); check it, then: {hints.for_device('inventory trust', device)}") from None
    except paramiko.SSHException as error:
        raise FarmError(f"device {device.name!r}: {device.host}:{device.port}: {error}") from None
    except (OSError, socket.timeout) as error:
        raise FarmError(f"device {device.name!r}: cannot connect to {device.host}:{device.port}: {error}") from None
    finally:
        connection.close()
