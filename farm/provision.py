"""`farm provision`: make a Linux board ready for the agent, with Fabric.

Creates a venv in the board's workspace and installs numpy and a LiteRT runtime there: ai-edge-litert where the board's
Python supports it, else tflite-runtime (the wheels Pi OS and Coral images can take, with numpy < 2); with onnxruntime,
also onnxruntime, which the agent runs .onnx models with. The SSH transport then runs the agent with that venv's Python.
Fabric accepts any host key by default; here it verifies against the device's known_hosts like every other connection
of the farm.
"""
from __future__ import annotations

import posixpath
import shlex
import socket
from shlex import quote

from farm import hints
from farm.errors import FarmError
from farm.transports.ssh import SshDevice, client_keys, known_hosts_path, password, untrusted

# ai-edge-litert publishes wheels for these Pythons; older ones get tflite-runtime, whose last wheels need numpy < 2.
LITERT_MIN_PYTHON = (3, 10)


def fabric_connection(device: SshDevice):
    """A Fabric connection to the device that refuses unknown or changed host keys."""
    import paramiko
    from fabric import Connection

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
              log=print) -> str:
    """Create <workspace>/venv on the device and install numpy and a LiteRT runtime (and onnxruntime, when asked);
    returns the venv's Python."""
    import paramiko

    if device.kind != "linux":
        raise FarmError(f"device {device.name!r}: only linux (SSH) devices are provisioned; "
                        "phones run benchmark_model, this machine runs the venv that `make` set up")
    connection = fabric_connection(device)
    try:
        def run(command: str, what: str) -> str:
            result = connection.run(command, hide=True, warn=True, in_stream=False)
            if result.exited != 0:
                detail = (result.stderr or result.stdout).strip().splitlines()
                raise FarmError(f"device {device.name!r}: {what} failed (exit {result.exited}): "
                                f"{detail[-1] if detail else 'no output'}")
            return result.stdout.strip()

        workspace = run(f'ws={device.workspace_expression()} && mkdir -p -- "$ws" && printf %s "$ws"', "creating the workspace")
        venv = posixpath.join(workspace, "venv")
        version = run(f"{quote(base_python)} -c 'import sys; print(\"%d.%d\" % sys.version_info[:2])'",
                      f"running {base_python}")
        major, minor = map(int, version.split("."))
        if (major, minor) < (3, 8):
            raise FarmError(f"device {device.name!r}: {base_python} is Python {version}; the agent needs 3.8 or newer")
        new_enough = (major, minor) >= LITERT_MIN_PYTHON
        numpy, runtime = ("numpy", "ai-edge-litert") if new_enough else ("numpy<2", "tflite-runtime")
        packages = [numpy, runtime]
        log(f"{device.name}: Python {version} → venv {venv} with {', '.join(packages)}"
            + (", onnxruntime" if onnxruntime else ""))
        run(f"{quote(base_python)} -m venv {quote(venv)}",
            "creating the venv (Debian and Pi OS need the python3-venv package)")
        pip = posixpath.join(venv, "bin", "pip")

        def install(names: list[str], what: str) -> None:
            arguments = [*shlex.split(pip_args), *names]
            run(f"{quote(pip)} install --quiet --disable-pip-version-check " + " ".join(quote(a) for a in arguments),
                what)

        install(packages, "installing " + ", ".join(packages))
        if onnxruntime:
            # A step of its own, after the runtime: its failure (no wheel for the board: PyPI has 64-bit ones only)
            # is named as such and leaves the TFLite runtime installed. The numpy requirement is repeated so that
            # onnxruntime never upgrades numpy past what tflite-runtime takes.
            install([numpy, "onnxruntime"], "installing onnxruntime (PyPI has wheels for 64-bit ARM and x86 only)")
        return posixpath.join(venv, "bin", "python")
    except paramiko.BadHostKeyException as error:
        raise FarmError(f"device {device.name!r}: host key of {device.host}:{device.port} has changed "
                        f"({error.key.get_name()}); check it, then: {hints.for_device('inventory trust', device)}") from None
    except paramiko.SSHException as error:
        raise FarmError(f"device {device.name!r}: {device.host}:{device.port}: {error}") from None
    except (OSError, socket.timeout) as error:
        raise FarmError(f"device {device.name!r}: cannot connect to {device.host}:{device.port}: {error}") from None
    finally:
        connection.close()
