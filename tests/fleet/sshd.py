"""A fleet of real OpenSSH servers on loopback: the Linux boards of the SSH transport's tests.

Every host is Debian's own sshd (package openssh-server) on its own loopback address (127.0.0.11, .12, ...) and one
fixed port, with its own host key, HOME, workspace, sshd_config, log and pid. Tests break hosts the way boards break:

    kill()              power cut: the listening sshd and every session die at once, open connections drop
    freeze() / thaw()   a hung board: TCP stays up but nothing answers (SIGSTOP / SIGCONT of sshd and its sessions)
    rotate_host_key()   a reflashed board: the client's known_hosts no longer matches
    start()             the board comes back, same address, port and host key

Nothing here talks to anything but 127.0.0.0/8, or to a network namespace its caller created: a host made with
SshHost(..., netns=NAME) runs its sshd under `ip netns exec NAME` (a board behind a link the caller can cut, e.g. a
veth pair whose far end is in that namespace). Every wait is bounded.
"""
from __future__ import annotations

import atexit
import contextlib
import fcntl
import os
import pwd
import re
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import weakref
from pathlib import Path

DEFAULT_PORT = 22022  # below the ephemeral range, not 22 / 2222 / 8022 (commonly taken); FARM_TEST_SSH_PORT overrides
FIRST_HOST = 11  # hosts live at 127.0.0.11, 127.0.0.12, ... (busy addresses are skipped)
LAST_HOST = 250
# In every session's environment (SetEnv): with parentage, how a host finds its processes, even reparented ones.
# (sshd's own environment is no help: its process title overwrites what /proc/<pid>/environ shows.)
TAG_VAR = "TFLITE_FARM_FLEET_SSHD"
PRIVSEP_DIR = Path("/run/sshd")  # compiled into sshd; a root sshd refuses to start without it
INSTALL_HINT = ("`make test` installs it (openssh-server is in SYSTEM_PACKAGES of the Makefile); "
                "or: sudo apt-get install -y openssh-server")


class FleetError(RuntimeError):
    """The test fleet could not be set up or driven."""


class AddressInUse(FleetError):
    """Something else already listens on a host's address and port."""


# --------------------------------------------------------------------------------------------------------------------
# OpenSSH binaries


def find_sshd() -> Path | None:
    search = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/local/sbin", "/sbin"])
    found = shutil.which("sshd", path=search)
    return Path(found).resolve() if found else None  # sshd re-executes itself: it must be an absolute path


def require_openssh() -> tuple[Path, Path]:
    """(sshd, ssh-keygen), or a FleetError saying how to install them."""
    sshd = find_sshd()
    if sshd is None:
        raise FleetError(f"the SSH test fleet needs OpenSSH's server, and sshd is not installed: {INSTALL_HINT}")
    keygen = shutil.which("ssh-keygen")
    if keygen is None:
        raise FleetError(f"the SSH test fleet needs ssh-keygen (openssh-client), which is not installed: {INSTALL_HINT}")
    return sshd, Path(keygen)


_versions: dict[Path, tuple[int, int]] = {}


def sshd_version(sshd: Path) -> tuple[int, int]:
    if sshd not in _versions:
        out = subprocess.run([str(sshd), "-V"], capture_output=True, text=True, timeout=10)
        match = re.search(r"OpenSSH_(\d+)\.(\d+)", out.stdout + out.stderr)
        _versions[sshd] = (int(match.group(1)), int(match.group(2))) if match else (0, 0)
    return _versions[sshd]


def keygen(ssh_keygen: Path, path: Path, comment: str) -> None:
    """A new ed25519 key pair at path and path.pub, no passphrase (replaces an existing one)."""
    for old in (path, path.with_name(path.name + ".pub")):
        old.unlink(missing_ok=True)
    subprocess.run([str(ssh_keygen), "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
                   check=True, capture_output=True, timeout=30)


# --------------------------------------------------------------------------------------------------------------------
# Processes, read from /proc


def _proc_stat(pid: int) -> tuple[int, str, int] | None:
    """(ppid, state, start time) of a process, None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read()
    except OSError:
        return None
    fields = raw[raw.rindex(b")") + 2:].split()  # the command name may hold spaces and parentheses
    return int(fields[1]), fields[0].decode(), int(fields[19])


def _pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def _alive(pid: int) -> bool:
    stat = _proc_stat(pid)
    return stat is not None and stat[1] not in ("Z", "X")


def _environ_tags() -> dict[int, str]:
    """pid -> value of TAG_VAR, for every process that carries it."""
    prefix = TAG_VAR.encode() + b"="
    found = {}
    for pid in _pids():
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                env = f.read()
        except OSError:
            continue
        for entry in env.split(b"\0"):
            if entry.startswith(prefix):
                found[pid] = entry[len(prefix):].decode(errors="replace")
                break
    return found


def _signal(pids, sig: int) -> None:
    for pid in pids:
        if pid in (0, 1, os.getpid()):
            continue
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def _wait_gone(pids, timeout: float) -> set[int]:
    """Wait (bounded) until none of pids is alive; the ones still alive."""
    deadline = time.monotonic() + timeout
    left = {p for p in pids if _alive(p)}
    while left and time.monotonic() < deadline:
        time.sleep(0.01)
        left = {p for p in left if _alive(p)}
    return left


def _owner_tag() -> str:
    stat = _proc_stat(os.getpid())
    return f"{os.getpid()}.{stat[2] if stat else 0}"


def _children() -> dict[int, list[int]]:
    """ppid -> live (non-zombie) children, for every process."""
    children: dict[int, list[int]] = {}
    for pid in _pids():
        stat = _proc_stat(pid)
        if stat is not None and stat[1] not in ("Z", "X"):
            children.setdefault(stat[0], []).append(pid)
    return children


def _descendants(roots, children: dict[int, list[int]]) -> set[int]:
    """roots and all their descendants."""
    found, todo = set(), list(roots)
    while todo:
        pid = todo.pop()
        if pid not in found:
            found.add(pid)
            todo.extend(children.get(pid, ()))
    return found


def _is_sshd(pid: int) -> bool:
    try:
        return os.path.basename(os.readlink(f"/proc/{pid}/exe")).startswith("sshd")  # sshd, or sshd-session (10.x)
    except OSError:
        return False


def _sshd_ancestors(pids) -> set[int]:
    """The sshd processes above pids (a session's own sshd, whose environment sshd's process title overwrote)."""
    found = set()
    for pid in pids:
        for _ in range(8):
            stat = _proc_stat(pid)
            if stat is None or stat[0] <= 1 or not _is_sshd(stat[0]):
                break
            pid = stat[0]
            found.add(pid)
    return found


def _owner_alive(tag: str) -> bool:
    try:
        owner_pid, owner_start = (int(x) for x in tag.split(":", 1)[0].split("."))
    except ValueError:
        return True  # not ours to judge
    stat = _proc_stat(owner_pid)
    return stat is not None and stat[2] == owner_start


_LISTENER_CONFIG = re.compile(r" -f (\S+)")
_CONFIG_TAG = re.compile(TAG_VAR + r'="([^"]*)"')


def reap_orphans() -> set[int]:
    """SIGKILL fleet servers left behind by a test session that died without its teardown (its pid is gone).

    Only fleet processes are touched: listening sshds whose config (written by this module) names a dead owner, their
    sessions, and processes whose environment carries TAG_VAR (set by this module alone) with a dead owner.
    """
    roots = {pid for pid, tag in _environ_tags().items() if not _owner_alive(tag)}
    for pid in _pids():
        if not _is_sshd(pid):
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                title = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        match = _LISTENER_CONFIG.search(title)
        if "[listener]" not in title or not match:
            continue
        try:
            config = Path(match.group(1)).read_text()
        except OSError:
            continue
        tag = _CONFIG_TAG.search(config)
        if config.startswith("# test fleet host") and tag and not _owner_alive(tag.group(1)):
            roots.add(pid)
    orphans = _descendants(roots, _children()) | _sshd_ancestors(roots)
    orphans.discard(os.getpid())
    _signal(orphans, signal.SIGKILL)
    return orphans


# --------------------------------------------------------------------------------------------------------------------
# Addresses


def address_free(address: str, port: int) -> bool:
    """True when sshd could listen on address:port (nothing listens there, nor on the wildcard address)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as sshd does: TIME_WAIT leftovers do not count
        try:
            s.bind((address, port))
        except OSError:
            return False
    return True


def _next_free_address(port: int, taken: set[str], first: int = FIRST_HOST) -> str:
    for n in range(first, LAST_HOST + 1):
        address = f"127.0.0.{n}"
        if address not in taken and address_free(address, port):
            return address
    raise FleetError(f"no free loopback address in 127.0.0.{first}-{LAST_HOST} for port {port}")


def _sshd_quote(value: str) -> str:
    if any(c in value for c in '"\n'):
        raise FleetError(f"cannot put {value!r} in an sshd_config")
    return f'"{value}"'


# --------------------------------------------------------------------------------------------------------------------
# One host


class SshHost:
    """One board: a real sshd on address:port, with its own keys, HOME, workspace, config, log and pid.

    Layout of its folder (root):
        sshd_config  sshd.log  sshd.pid  authorized_keys
        ssh_host_ed25519_key(.pub)   the key it serves now
        enrolled_host_key(.pub)      the key the fleet's known_hosts lists (differs after rotate_host_key)
        home/        its HOME: sessions start here (with a .bashrc that only cds here)
        workspace/   a folder for the transport's files
    """

    def __init__(self, name: str, address: str, port: int, root: Path, *, user: str, client_key: Path,
                 known_hosts: Path, sshd: Path, ssh_keygen: Path, owner: str | None = None,
                 netns: str | None = None):
        self.name = name
        self.address = address
        self.port = port
        self.root = Path(root)
        self.user = user
        self.client_key = Path(client_key)
        self.known_hosts = Path(known_hosts)
        self.sshd = Path(sshd)
        self.ssh_keygen = Path(ssh_keygen)
        self.tag = f"{owner or _owner_tag()}:{self.root}"
        self._proc: subprocess.Popen | None = None
        self._frozen: set[int] = set()
        self._lock = threading.RLock()
        self.netns = netns  # a network namespace (made by the caller) whose address this host listens on, or None

    # paths
    host_key = property(lambda self: self.root / "ssh_host_ed25519_key")
    enrolled_key = property(lambda self: self.root / "enrolled_host_key")
    config = property(lambda self: self.root / "sshd_config")
    log = property(lambda self: self.root / "sshd.log")
    pid_file = property(lambda self: self.root / "sshd.pid")
    authorized_keys = property(lambda self: self.root / "authorized_keys")
    home = property(lambda self: self.root / "home")
    workspace = property(lambda self: self.root / "workspace")

    def __repr__(self) -> str:
        state = "frozen" if self._frozen else "running" if self.running else "stopped"
        return f"<SshHost {self.name} {self.user}@{self.address}:{self.port} {state}>"

    # ---- set-up

    def setup(self) -> None:
        """Write this host's folder: keys (kept when present), authorized_keys, HOME and its dotfiles, config."""
        for folder in (self.root, self.home, self.workspace):
            folder.mkdir(parents=True, exist_ok=True)
        if not self.host_key.exists():
            keygen(self.ssh_keygen, self.host_key, f"{self.name}-host")
        if not self.enrolled_key.exists():
            shutil.copy2(self.host_key, self.enrolled_key)
            shutil.copy2(self.host_key.with_suffix(".pub"), self.enrolled_key.with_suffix(".pub"))
        self.authorized_keys.write_text(self.client_key.with_name(self.client_key.name + ".pub").read_text())
        # sshd chdirs to the login user's real home; the session's shell then reads $HOME/.bashrc (Debian's bash
        # sources it for commands run by sshd), $HOME being this host's HOME (SetEnv): move there, nothing else.
        rc = f"# test fleet host {self.name}: sessions start in this host's HOME, not in {self.user}'s real one\n" \
             'cd "$HOME" 2>/dev/null || true\n'
        (self.home / ".bashrc").write_text(rc)
        (self.home / ".zshenv").write_text(rc)
        (self.home / ".profile").write_text('[ -f "$HOME/.bashrc" ] && . "$HOME/.bashrc"\n')
        self.write_config()

    @contextlib.contextmanager
    def login_environment(self, **variables: str):
        """These variables exported in this host's sessions (its .bashrc) while the block runs."""
        rc = self.home / ".bashrc"
        original = rc.read_text()
        rc.write_text(original + "".join(f"export {name}={shlex.quote(str(value))}\n"
                                         for name, value in variables.items()))
        try:
            yield
        finally:
            rc.write_text(original)

    def write_config(self) -> None:
        self.config.write_text(self.sshd_config())

    def sshd_config(self) -> str:
        lines = [
            f"# test fleet host {self.name}: sshd -D -f {self.config} -E {self.log}",
            f"ListenAddress {self.address}:{self.port}",
            f"HostKey {_sshd_quote(str(self.host_key))}",
            f"PidFile {_sshd_quote(str(self.pid_file))}",  # never the system's /run/sshd.pid
            # key-only authentication, against this host's own authorized_keys, for the one login user
            f"AuthorizedKeysFile {_sshd_quote(str(self.authorized_keys))}",
            "AuthenticationMethods publickey",
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "HostbasedAuthentication no",
            f"AllowUsers {self.user}",
            "PermitRootLogin prohibit-password",
            "UsePAM no",  # no PAM session modules (slow, and pam_systemd may not be there)
            "StrictModes no",  # the fleet's files live under /tmp
            "UseDNS no",
            # many parallel connections and channels (the scheduler opens one per job)
            "MaxStartups 100:30:200",
            "MaxSessions 100",
            "LoginGraceTime 30",
            # sessions get this host's HOME (so ~, ~/.cache, dotfiles are the host's own) and the tag kill() looks for
            f"SetEnv HOME={_sshd_quote(str(self.home))} {TAG_VAR}={_sshd_quote(self.tag)}",
            "AcceptEnv LANG LC_*",
            "PermitUserRC no",
            "PrintMotd no",
            "PrintLastLog no",
            "X11Forwarding no",
            "AllowAgentForwarding no",
            f"Subsystem sftp internal-sftp -d {_sshd_quote(str(self.home))}",
            "LogLevel VERBOSE",
        ]
        if sshd_version(self.sshd) >= (9, 8):
            # a refused host key or a dropped connection would otherwise lock 127.0.0.1 out for a while
            lines.append("PerSourcePenalties no")
        return "\n".join(lines) + "\n"

    # ---- what clients need

    def public_key(self, enrolled: bool = True) -> str:
        """'ssh-ed25519 AAAA...' of the enrolled key (the one known_hosts lists), or of the one served now."""
        path = (self.enrolled_key if enrolled else self.host_key).with_suffix(".pub")
        return " ".join(path.read_text().split()[:2])

    @property
    def host_pattern(self) -> str:
        return self.address if self.port == 22 else f"[{self.address}]:{self.port}"

    def known_hosts_line(self, enrolled: bool = True) -> str:
        return f"{self.host_pattern} {self.public_key(enrolled)}"

    def connect_options(self, **overrides) -> dict:
        """Keyword arguments for asyncssh.connect(**host.connect_options()): host key verified, this client key only,
        no ~/.ssh/config, no ssh-agent."""
        options = dict(host=self.address, port=self.port, username=self.user, client_keys=[str(self.client_key)],
                       known_hosts=str(self.known_hosts), config=None, agent_path=None)
        options.update(overrides)
        return options

    def device(self, **overrides) -> dict:
        """This host as an inventory entry (kind linux), for the farm's own code."""
        entry = dict(name=self.name, kind="linux", host=self.address, port=self.port, user=self.user,
                     key=str(self.client_key), known_hosts=str(self.known_hosts), workspace=str(self.workspace))
        entry.update(overrides)
        return entry

    def ssh_argv(self, *command: str) -> list[str]:
        """An OpenSSH client command line for this host (debugging): `subprocess.run(host.ssh_argv("uname -a"))`."""
        return ["ssh", "-F", "/dev/null", "-p", str(self.port), "-i", str(self.client_key),
                "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none", "-o", "BatchMode=yes",
                "-o", f"UserKnownHostsFile={self.known_hosts}", "-o", "GlobalKnownHostsFile=/dev/null",
                "-o", "StrictHostKeyChecking=yes", "-o", "ConnectTimeout=5", "-o", "LogLevel=ERROR",
                f"{self.user}@{self.address}", *command]

    def ssh_command(self, *command: str) -> str:
        return shlex.join(self.ssh_argv(*command))

    # ---- lifecycle

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        """The listening sshd's pid (sshd -D does not fork away: it is the process started here)."""
        return self._proc.pid if self.running else None

    def start(self, timeout: float = 10.0) -> None:
        """Start sshd and wait (bounded) until it answers with an SSH banner. No-op when it runs already."""
        with self._lock:
            if self.running:
                return
            self._launch()
            self._wait_ready(time.monotonic() + timeout)

    def _launch(self) -> None:
        if self._proc is not None:
            self._proc.poll()  # reap a previous run
        # (a host in a network namespace owns its address there: this namespace cannot bind it to check)
        if self.netns is None and not address_free(self.address, self.port):
            raise AddressInUse(f"{self.name}: {self.address}:{self.port} is already in use (ss -ltnp)")
        if os.geteuid() == 0 and not PRIVSEP_DIR.is_dir():
            # what Debian's ssh.service (RuntimeDirectory=sshd) and tmpfiles.d create at boot
            PRIVSEP_DIR.mkdir(mode=0o755, parents=True, exist_ok=True)
        self.pid_file.unlink(missing_ok=True)
        self._log_offset = self.log.stat().st_size if self.log.exists() else 0
        argv = [str(self.sshd), "-D", "-f", str(self.config), "-E", str(self.log)]
        if self.netns is not None:
            # `ip netns exec` enters the namespace and execs sshd: the process started here is still the listener
            argv = [shutil.which("ip") or "/usr/sbin/ip", "netns", "exec", self.netns, *argv]
        with open(self.log, "ab") as log:
            self._proc = subprocess.Popen(
                argv,
                env={"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8",
                     TAG_VAR: self.tag},
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True, close_fds=True)
        self._frozen = set()

    def _log_since_start(self) -> str:
        try:
            with open(self.log, "rb") as f:
                f.seek(getattr(self, "_log_offset", 0))
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def _wait_ready(self, deadline: float) -> None:
        while True:
            code = self._proc.poll()
            if code is not None:
                log = self._log_since_start().strip()
                tail = "\n".join(log.splitlines()[-8:])
                if "Address already in use" in log:
                    raise AddressInUse(f"{self.name}: {self.address}:{self.port} is already in use:\n{tail}")
                raise FleetError(f"{self.name}: sshd exited with code {code} at start; {self.log}:\n{tail}")
            if self._answers():
                return
            if time.monotonic() > deadline:
                self.kill()
                raise FleetError(f"{self.name}: sshd did not accept connections on {self.address}:{self.port} "
                                 f"in time; {self.log}:\n{self._log_since_start()[-2000:]}")
            time.sleep(0.005)

    def _answers(self) -> bool:
        try:
            with socket.create_connection((self.address, self.port), timeout=1.0) as s:
                s.settimeout(1.0)
                return s.recv(64).startswith(b"SSH-2.0-")
        except OSError:
            return False

    def processes(self) -> set[int]:
        """Every live process of this host: the listening sshd, its connection and session processes, the commands
        they run (found by parentage and by the tag in their environment, which also catches reparented ones)."""
        children = _children()
        alive = {pid for kids in children.values() for pid in kids}
        tagged = {pid for pid, tag in _environ_tags().items() if tag == self.tag and pid in alive}
        roots = tagged | _sshd_ancestors(tagged)
        if self.running:
            roots.add(self._proc.pid)
        found = _descendants(roots, children)
        found.discard(os.getpid())
        return found

    def _stop_all(self) -> set[int]:
        """SIGSTOP every process of this host, again until no new one shows up (bounded); the stopped pids."""
        stopped: set[int] = set()
        for _ in range(50):
            new = self.processes() - stopped
            if not new:
                break
            if self.running and self._proc.pid in new:
                _signal([self._proc.pid], signal.SIGSTOP)  # first, so it accepts no new connection
            _signal(new, signal.SIGSTOP)
            stopped |= new
            time.sleep(0.002)
        return stopped

    def freeze(self) -> None:
        """A hung board: every process of this host stops (SIGSTOP). The kernel still accepts TCP connections and
        keeps open ones up, but nothing answers: not the banner, not a keepalive, not a command's output."""
        with self._lock:
            self._frozen |= self._stop_all()

    def thaw(self) -> None:
        """Undo freeze(): SIGCONT every process of this host."""
        with self._lock:
            _signal(self._frozen | self.processes(), signal.SIGCONT)
            self._frozen = set()

    @property
    def frozen(self) -> bool:
        return bool(self._frozen)

    def kill(self, timeout: float = 5.0) -> None:
        """A power cut: SIGKILL the listening sshd and all its sessions and commands (stopped first, so none forks
        away meanwhile). Open connections drop (the kernel closes their sockets); start() brings the host back."""
        with self._lock:
            pids = self._stop_all() | self._frozen
            _signal(pids, signal.SIGKILL)
            if self._proc is not None:
                try:
                    self._proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    pass
            left = _wait_gone(pids, timeout)
            self._frozen = set()
            if left:
                raise FleetError(f"{self.name}: processes {sorted(left)} survived SIGKILL")

    def stop(self, timeout: float = 5.0) -> None:
        """Shut down cleanly: SIGTERM the sessions, then the listening sshd (held stopped meanwhile, so it accepts
        nothing new), and wait; whatever is left after timeout is killed. Idempotent."""
        with self._lock:
            if self._frozen:
                self.thaw()
            listener = self._proc.pid if self.running else None
            if listener is not None:
                _signal([listener], signal.SIGSTOP)
            sessions = self.processes() - {listener}
            _signal(sessions, signal.SIGTERM)
            left = _wait_gone(sessions, timeout / 2)
            if listener is not None:
                _signal([listener], signal.SIGTERM)
                _signal([listener], signal.SIGCONT)
                try:
                    self._proc.wait(timeout / 2)
                except subprocess.TimeoutExpired:
                    left.add(listener)
            if left or self.processes():
                self.kill(timeout)

    def restart(self, timeout: float = 10.0) -> None:
        self.stop()
        self.start(timeout)

    def rotate_host_key(self) -> str:
        """A reflashed board: a new host key, so known_hosts (which lists the enrolled key) no longer matches.
        A running host restarts with it (its sessions end). Returns the new 'ssh-ed25519 AAAA...'."""
        with self._lock:
            was_running = self.running
            if was_running:
                self.stop()
            keygen(self.ssh_keygen, self.host_key, f"{self.name}-host-rotated")
            if was_running:
                self.start()
            return self.public_key(enrolled=False)

    def heal(self) -> None:
        """Back to the fleet's normal: thawed, running, serving the enrolled host key."""
        with self._lock:
            if self._frozen:
                self.thaw()
            if self.public_key(enrolled=False) != self.public_key(enrolled=True):
                self.stop()
                for suffix in ("", ".pub"):
                    shutil.copy2(self.enrolled_key.with_name(self.enrolled_key.name + suffix),
                                 self.host_key.with_name(self.host_key.name + suffix))
                os.chmod(self.host_key, 0o600)
            if not self.running:
                self.stop()  # sessions a dead listener left behind
                self.start()


# --------------------------------------------------------------------------------------------------------------------
# The fleet


_live_fleets: "weakref.WeakSet[Fleet]" = weakref.WeakSet()


@atexit.register
def _stop_live_fleets() -> None:  # a safety net: fixtures stop their fleet themselves
    for fleet in list(_live_fleets):
        try:
            fleet.stop()
        except Exception:
            pass


class Fleet:
    """K SshHosts sharing one client key and one known_hosts file that lists every host's enrolled key."""

    def __init__(self, root: Path, hosts: list[SshHost], client_key: Path, known_hosts: Path):
        self.root = root
        self.hosts = hosts
        self.client_key = client_key
        self.known_hosts = known_hosts

    def __repr__(self) -> str:
        return f"<Fleet {self.root} {self.hosts}>"

    def __iter__(self):
        return iter(self.hosts)

    def __len__(self) -> int:
        return len(self.hosts)

    def __getitem__(self, key: int | str) -> SshHost:
        if isinstance(key, str):
            for host in self.hosts:
                if host.name == key:
                    return host
            raise KeyError(key)
        return self.hosts[key]

    def __enter__(self) -> "Fleet":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def write_known_hosts(self) -> None:
        self.known_hosts.write_text("".join(host.known_hosts_line() + "\n" for host in self.hosts))

    def heal(self) -> None:
        """Every host thawed, running and serving its enrolled key (after a test broke some)."""
        for host in self.hosts:
            host.heal()

    def stop(self) -> None:
        """Stop every host (idempotent)."""
        errors = []
        for host in self.hosts:
            try:
                host.stop()
            except Exception as exc:  # keep stopping the others
                errors.append(exc)
        _live_fleets.discard(self)
        if errors:
            raise errors[0]


@contextlib.contextmanager
def _allocation_lock(timeout: float = 30.0):
    """An exclusive lock shared by every fleet of this machine (best effort: without it, retries still cope)."""
    try:
        fd = os.open(os.path.join(tempfile.gettempdir(), "tflite-farm-ssh-fleet.lock"), os.O_RDONLY | os.O_CREAT, 0o644)
    except OSError:
        yield
        return
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise FleetError("another test fleet held the address lock for too long") from None
                time.sleep(0.01)
        yield
    finally:
        os.close(fd)  # releases the lock


def start_fleet(k: int, root_dir: str | Path, *, port: int | None = None, user: str | None = None,
                first_host: int = FIRST_HOST, names: list[str] | None = None, timeout: float = 10.0) -> Fleet:
    """Start k sshd hosts named board1..boardk on free loopback addresses (from 127.0.0.<first_host>) and one port.

    Files go under root_dir: client/id_ed25519 (the client key), known_hosts, hosts/<name>/ (see SshHost).
    The sshds start together and each is waited for until it answers (bounded by timeout)."""
    sshd, ssh_keygen = require_openssh()
    # Under pytest-xdist each worker's fleets get their own port, so two workers never race for one address.
    worker = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0")[2:] or 0)
    port = int(port or os.environ.get("FARM_TEST_SSH_PORT") or DEFAULT_PORT + worker)
    user = user or pwd.getpwuid(os.geteuid()).pw_name
    names = names or [f"board{i + 1}" for i in range(k)]
    if len(names) != k or len(set(names)) != k:
        raise FleetError(f"need {k} distinct names, got {names}")
    root = Path(root_dir).resolve()
    root.mkdir(parents=True, exist_ok=True)
    reap_orphans()

    client_key = root / "client" / "id_ed25519"
    client_key.parent.mkdir(exist_ok=True)
    if not client_key.exists():
        keygen(ssh_keygen, client_key, "tflite-farm-test-client")
    known_hosts = root / "known_hosts"

    owner = _owner_tag()
    hosts: list[SshHost] = []
    taken: set[str] = set()
    for name in names:
        address = _next_free_address(port, taken, first_host)
        taken.add(address)
        host = SshHost(name, address, port, root / "hosts" / name, user=user, client_key=client_key,
                       known_hosts=known_hosts, sshd=sshd, ssh_keygen=ssh_keygen, owner=owner)
        host.setup()
        hosts.append(host)
    fleet = Fleet(root, hosts, client_key, known_hosts)
    _live_fleets.add(fleet)

    try:
        deadline = time.monotonic() + timeout
        pending = list(hosts)
        with _allocation_lock():  # concurrent test runs on this machine take turns between address check and bind
            for _ in range(20):  # and anything else that grabs an address meanwhile costs a retry on the next one
                retry, launched = [], []
                for host in pending:
                    try:
                        host._launch()
                        launched.append(host)
                    except AddressInUse:
                        retry.append(host)
                for host in launched:
                    try:
                        host._wait_ready(deadline)
                    except AddressInUse:
                        retry.append(host)
                if not retry:
                    break
                for host in retry:
                    host.stop()
                    host.address = _next_free_address(port, taken, first_host)
                    taken.add(host.address)
                    host.write_config()
                pending = retry
            else:
                raise FleetError(f"could not find free loopback addresses for port {port}")
        fleet.write_known_hosts()
    except BaseException:
        fleet.stop()
        raise
    return fleet
