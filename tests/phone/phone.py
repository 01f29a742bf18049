"""TEST CODE, not part of tflite-farm: simulated Android phones behind a real adb server, for the test suite.

    from phone import Lab
    with Lab(tmp_path) as lab:                       # a real adb server (Debian's `adb`) on a free port from 5137
        pixel = lab.add_phone("pixel")               # a SimulatedPhone, `adb connect`ed: serial 127.0.0.1:17001
        device = lab.device(pixel)                   # adbutils.AdbDevice through that server
        device.shell2("getprop ro.product.model", v2=True)
        pixel.set_battery(level=15, temperature_c=41.5)
        pixel.kill(); pixel.start(); lab.connect(pixel)   # a lost phone, and its return

A SimulatedPhone is one `adbd.py` process (the device side of the ADB protocol over TCP, see adbd.py) serving a
sandbox folder as the phone's file system:

    <folder>/root/          the phone's "/": data/local/tmp, sdcard, system/bin (sh, getprop, dumpsys, cmd),
                            system/build.prop (the properties), system/etc/tflite_farm_standin.json (which delegates
                            the stand-in benchmark_model has, which execution providers the stand-in
                            onnxruntime_perf_test has), vendor/
    <folder>/sysfs/class/   the phone's /sys/class: thermal/thermal_zoneN/{type,temp}, power_supply/battery/...
    <folder>/adbd.json      the daemon's configuration;  <folder>/adbd.log its log

The daemon runs in a private mount namespace chrooted into root/ (host folders bound in, see adbd.py), so device paths
are real paths for sync and shell alike; phone.path("/data/local/tmp/x") is the same file seen from the test.

Nothing here talks to anything but 127.0.0.1, and every wait is bounded.
"""
from __future__ import annotations

import contextlib
import ctypes
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ADBD = HERE / "adbd.py"
STAND_IN = HERE / "benchmark_model.py"
ORT_STAND_IN = HERE / "onnxruntime_perf_test.py"
PHONE_TAG_VAR = "TFLITE_FARM_TEST_PHONE"  # = adbd.PHONE_TAG_VAR
LAB_TAG_VAR = "TFLITE_FARM_TEST_ADB_LAB"
SERVER_PORTS = range(5137, 5200)  # the adb server's; the default 5037 is never used
PHONE_PORTS = range(17001, 17999)  # away from 5555-5585, which an adb server scans for emulators
STAND_IN_CONFIG = "/system/etc/tflite_farm_standin.json"


class LabError(Exception):
    pass


# --------------------------------------------------------------------------------------------------------------------
# Processes

def _owner_tag() -> str:
    try:
        with open(f"/proc/{os.getpid()}/stat", "rb") as f:
            start = f.read().rsplit(b")", 1)[1].split()[19].decode()
    except (OSError, IndexError):
        start = "0"
    return f"{os.getpid()}.{start}"


def _owner_alive(tag: str) -> bool:
    try:
        pid, start = tag.split(":", 1)[0].split(".")
        with open(f"/proc/{int(pid)}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[19].decode() == start
    except (OSError, ValueError, IndexError):
        return False


def tagged_processes(var: str, value: str | None = None) -> dict[int, str]:
    """pid -> value of the environment variable var, for every process carrying it (value: only that one)."""
    prefix = var.encode() + b"="
    found = {}
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as f:
                env = f.read()
        except OSError:
            continue
        for entry in env.split(b"\0"):
            if entry.startswith(prefix):
                tag = entry[len(prefix):].decode(errors="replace")
                if value is None or tag == value:
                    found[int(name)] = tag
                break
    return found


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            state = f.read().rsplit(b")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in (b"Z", b"X")


def kill_tagged(var: str, value: str, timeout: float = 5.0) -> set[int]:
    """SIGKILL every process tagged var=value, again until none is left (bounded); the pids that were killed."""
    killed: set[int] = set()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = {p for p in tagged_processes(var, value) if _alive(p)}
        if not pids:
            break
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        killed |= pids
        time.sleep(0.02)
    return killed


def reap_orphans() -> set[int]:
    """SIGKILL phones and adb servers left by a test session that died without its teardown (owner gone)."""
    killed = set()
    for var in (PHONE_TAG_VAR, LAB_TAG_VAR):
        for pid, tag in tagged_processes(var).items():
            if tag and not _owner_alive(tag):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
                    killed.add(pid)
    return killed


def _die_with_parent() -> None:  # preexec_fn: SIGKILL when the test process dies
    with contextlib.suppress(Exception):
        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) != 0


def free_port(ports: range, taken: set[int] = frozenset()) -> int:
    # Under pytest-xdist each worker takes its own share of the range, so two workers never race for one port.
    worker = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0")[2:] or 0)
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    for port in ports:
        if port % workers == worker % workers and port not in taken and port_free(port):
            return port
    raise LabError(f"no free port on 127.0.0.1 in {ports.start}-{ports.stop - 1}")


# --------------------------------------------------------------------------------------------------------------------
# The phone's files

GETPROP = r"""#!/system/bin/sh
# TEST CODE (tflite-farm simulated phone): getprop answers from /system/build.prop.
props=/system/build.prop
if [ $# -eq 0 ]; then
  while IFS= read -r line || [ -n "$line" ]; do
    case "$line" in ''|'#'*) continue ;; *=*) ;; *) continue ;; esac
    printf '[%s]: [%s]\n' "${line%%=*}" "${line#*=}"
  done < "$props" | sort
  exit 0
fi
found=
while IFS= read -r line || [ -n "$line" ]; do
  case "$line" in "$1="*) found=1; value=${line#*=} ;; esac
done < "$props"
if [ -n "$found" ]; then printf '%s\n' "$value"; else printf '%s\n' "${2-}"; fi
"""

DUMPSYS = r"""#!/system/bin/sh
# TEST CODE (tflite-farm simulated phone): dumpsys answers from the sandbox's /sys/class files.
bat=/sys/class/power_supply/battery
rd() { cat "$1" 2>/dev/null || printf '%s\n' "$2"; }
zones() {
  for z in /sys/class/thermal/thermal_zone*; do
    [ -r "$z/temp" ] || continue
    printf '%s %s\n' "$(rd "$z/type" "$(basename "$z")")" "$(rd "$z/temp" 0)"
  done
}
case "$1" in
  battery)
    status=$(rd $bat/status Unknown)
    case "$status" in Charging) s=2 ;; Discharging) s=3 ;; "Not charging") s=4 ;; Full) s=5 ;; *) s=1 ;; esac
    usb=false; [ "$status" = Charging ] && usb=true
    echo "Current Battery Service state:"
    echo "  AC powered: false"
    echo "  USB powered: $usb"
    echo "  Wireless powered: false"
    echo "  Max charging current: 500000"
    echo "  Max charging voltage: 5000000"
    echo "  Charge counter: $(( $(rd $bat/capacity 0) * 40000 ))"
    echo "  status: $s"
    echo "  health: 2"
    echo "  present: $( [ "$(rd $bat/present 1)" = 1 ] && echo true || echo false )"
    echo "  level: $(rd $bat/capacity 0)"
    echo "  scale: 100"
    echo "  voltage: $(( $(rd $bat/voltage_now 0) / 1000 ))"
    echo "  temperature: $(rd $bat/temp 0)"
    echo "  technology: $(rd $bat/technology Li-ion)"
    ;;
  thermalservice)
    lines=$(zones | awk '{
      t = $NF / 1000.0; name = $1
      type = -1
      if (name ~ /cpu/) type = 0; else if (name ~ /gpu/) type = 1; else if (name ~ /batt/) type = 2; else if (name ~ /skin/) type = 3
      st = (t < 45) ? 0 : (t < 50) ? 1 : (t < 55) ? 2 : (t < 60) ? 3 : (t < 70) ? 4 : (t < 80) ? 5 : 6
      if (st > worst) worst = st
      printf "\tTemperature{mValue=%.1f, mType=%d, mName=%s, mStatus=%d}\n", t, type, name, st
    } END { printf "STATUS %d\n", worst + 0 }')
    status=$(printf '%s\n' "$lines" | sed -n 's/^STATUS //p')
    temps=$(printf '%s\n' "$lines" | grep -v '^STATUS ')
    echo "IsStatusOverride: false"
    echo "ThermalEventListeners:"
    printf '\tcallbacks: 1\n\tkilled: false\n\tbroadcasts count: -1\n'
    echo "ThermalStatusListeners:"
    printf '\tcallbacks: 1\n\tkilled: false\n\tbroadcasts count: -1\n'
    echo "Thermal Status: $status"
    echo "Cached temperatures:"
    printf '%s\n' "$temps"
    echo "HAL Ready: true"
    echo "HAL connection:"
    printf '\tThermalHAL 2.0 connected: yes\n'
    echo "Current temperatures from HAL:"
    printf '%s\n' "$temps"
    echo "Current cooling devices from HAL:"
    ;;
  ""|-l)
    echo "Currently running services:"
    echo "  battery"
    echo "  thermalservice"
    ;;
  *)
    echo "Can't find service: $1"
    ;;
esac
"""

CMD = r"""#!/system/bin/sh
# TEST CODE (tflite-farm simulated phone): no Android services to talk to.
if [ $# -eq 0 ]; then
  echo "cmd: No service specified; use -l to list all running services. Use -w to start and wait for a service." >&2
  exit 20
fi
echo "cmd: Can't find service: $1" >&2
exit 20
"""

DEFAULT_THERMAL = (("cpu-0-0-usr", 38.0), ("cpu-1-0-usr", 39.5), ("gpu-usr", 36.5), ("battery", 30.0),
                   ("skin-therm", 33.0))

# Which delegates the stand-in benchmark_model "has" (see benchmark_model.py):
#   a delegate missing from the dict: this build has no such provider, its flags are "Unconsumed cmdline flags"
#   "applied" / "partial": simulated delegate takes every node / all but the last (the model really runs on CPU)
#   "unsupported": provider compiled in, no hardware: warns and runs on CPU;  "fail": fails to apply, exit 1
#   "load" (external only): really load the library with ai_edge_litert.load_delegate
FULL_ANDROID_BUILD = {"gpu": "applied", "nnapi": "fail", "hexagon": "unsupported", "external": "load"}
CPU_ONLY_BUILD: dict[str, str] = {}

# Which execution providers the stand-in onnxruntime_perf_test "has" (see onnxruntime_perf_test.py): a provider missing
# here fails as the real tool does ("NNAPI is not supported in this build"); one listed runs, SIMULATED, on ONNX
# Runtime's CPU execution provider. ORT_ANDROID_BUILD is an Android build made with --use_xnnpack.
ORT_ANDROID_BUILD = ("cpu", "xnnpack")
ORT_CPU_ONLY_BUILD = ("cpu",)


def default_props(name: str) -> dict[str, str]:
    return {
        "ro.product.name": name, "ro.product.device": name, "ro.product.model": f"Simulated {name}",
        "ro.product.brand": "tflite-farm", "ro.product.manufacturer": "tflite-farm test lab",
        "ro.soc.manufacturer": "Simulated", "ro.soc.model": "SM0000", "ro.board.platform": "simulated",
        "ro.hardware": "simulated", "ro.product.cpu.abi": "arm64-v8a",
        "ro.product.cpu.abilist": "arm64-v8a,armeabi-v7a,armeabi", "ro.product.cpu.abilist64": "arm64-v8a",
        "ro.build.version.release": "14", "ro.build.version.sdk": "34", "ro.build.id": "UQ1A.240105.004",
        "ro.build.type": "user", "ro.build.tags": "release-keys", "ro.debuggable": "0",
        "ro.build.fingerprint": f"tflite-farm/{name}/{name}:14/UQ1A.240105.004/1:user/release-keys",
        "ro.serialno": f"SIM{abs(hash(name)) % 10**8:08d}", "sys.boot_completed": "1",
    }


def write_benchmark_model(dest: Path, python: str = sys.executable) -> Path:
    """The stand-in benchmark_model (benchmark_model.py) as an executable whose #! is this Python (the venv's, which
    has ai_edge_litert): what the test inventory names as the arm64-v8a benchmark_model binary."""
    return _write_stand_in(STAND_IN, dest, python)


def write_onnxruntime_perf_test(dest: Path, python: str = sys.executable) -> Path:
    """The stand-in onnxruntime_perf_test (onnxruntime_perf_test.py) as an executable whose #! is this Python (the
    venv's, which has onnxruntime): what the test inventory names as the arm64-v8a onnxruntime_perf_test."""
    return _write_stand_in(ORT_STAND_IN, dest, python)


def _write_stand_in(source: Path, dest: Path, python: str) -> Path:
    text = source.read_text()
    body = text.split("\n", 1)[1] if text.startswith("#!") else text
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(f"#!{python}\n{body}")
    dest.chmod(0o755)
    return dest


# --------------------------------------------------------------------------------------------------------------------
# One phone

class SimulatedPhone:
    """One simulated phone: an adbd.py process on 127.0.0.1:port serving the sandbox in folder (see module doc)."""

    def __init__(self, name: str, folder: Path, *, port: int | None = None, props: dict[str, str] | None = None,
                 delegates: dict[str, str] | None = None, ort_providers: tuple[str, ...] | None = None,
                 battery_level: int = 80, battery_temperature_c: float = 29.0,
                 battery_status: str = "Discharging", thermal=DEFAULT_THERMAL, max_payload: int | None = None,
                 features: tuple[str, ...] | None = None, owner: str | None = None):
        self.name = name
        self.folder = Path(folder)
        self.port = port
        self.props = default_props(name)
        self.props.update(props or {})
        self.delegates = dict(FULL_ANDROID_BUILD if delegates is None else delegates)
        self.ort_providers = tuple(ORT_ANDROID_BUILD if ort_providers is None else ort_providers)
        self.max_payload = max_payload
        self.features = features
        self.tag = f"{owner or _owner_tag()}:{self.folder}"
        self._proc: subprocess.Popen | None = None
        self._lock = threading.RLock()  # start/kill/stop from several threads (a test killing a phone mid-call)
        self._setup(battery_level, battery_temperature_c, battery_status, thermal)

    root = property(lambda self: self.folder / "root")
    sysfs_class = property(lambda self: self.folder / "sysfs" / "class")
    config_path = property(lambda self: self.folder / "adbd.json")
    log_path = property(lambda self: self.folder / "adbd.log")

    @property
    def serial(self) -> str:
        if self.port is None:
            raise LabError(f"{self.name} has no port until it is started")
        return f"127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def __repr__(self) -> str:
        return f"<SimulatedPhone {self.name} 127.0.0.1:{self.port} {'running' if self.running else 'stopped'}>"

    def path(self, device_path: str) -> Path:
        """The host path of a path on the phone (/data/..., /sdcard/..., /system/..., /sys/class/...)."""
        if not device_path.startswith("/"):
            raise ValueError(f"not an absolute device path: {device_path!r}")
        if device_path == "/sys/class" or device_path.startswith("/sys/class/"):
            return self.sysfs_class / device_path[len("/sys/class"):].lstrip("/")
        return self.root / device_path.lstrip("/")

    # ---- the sandbox

    def _setup(self, level, temperature_c, status, thermal) -> None:
        for d in ("data/local/tmp", "sdcard/Download", "system/bin", "system/etc", "vendor/etc", "storage"):
            (self.root / d).mkdir(parents=True, exist_ok=True)
        (self.root / "data/local/tmp").chmod(0o771)
        sh = self.root / "system/bin/sh"
        if not sh.is_symlink():
            sh.symlink_to("/bin/bash" if Path("/bin/bash").exists() else "/bin/sh")
        for name, text in (("getprop", GETPROP), ("dumpsys", DUMPSYS), ("cmd", CMD)):
            script = self.root / "system/bin" / name
            script.write_text(text)
            script.chmod(0o755)
        self.write_props()
        self.write_delegates()
        battery = self.sysfs_class / "power_supply" / "battery"
        battery.mkdir(parents=True, exist_ok=True)
        for name, value in (("present", "1"), ("health", "Good"), ("technology", "Li-ion"),
                            ("voltage_now", "4012000"), ("type", "Battery")):
            (battery / name).write_text(value + "\n")
        self.set_battery(level=level, temperature_c=temperature_c, status=status)
        for i, (zone_type, celsius) in enumerate(thermal):
            zone = self.sysfs_class / "thermal" / f"thermal_zone{i}"
            zone.mkdir(parents=True, exist_ok=True)
            (zone / "type").write_text(zone_type + "\n")
            (zone / "temp").write_text(f"{round(celsius * 1000)}\n")

    def write_props(self) -> None:
        lines = ["# TEST CODE: properties of a tflite-farm simulated phone (getprop reads them)"]
        lines += [f"{k}={v}" for k, v in self.props.items()]
        (self.root / "system/build.prop").write_text("\n".join(lines) + "\n")

    def set_prop(self, key: str, value: str) -> None:
        self.props[key] = value
        self.write_props()

    def write_delegates(self) -> None:
        build = {"delegates": self.delegates, "onnxruntime_providers": list(self.ort_providers)}
        self.path(STAND_IN_CONFIG).write_text(json.dumps(build, indent=1) + "\n")

    def set_delegates(self, delegates: dict[str, str]) -> None:
        self.delegates = dict(delegates)
        self.write_delegates()

    def set_battery(self, *, level: int | None = None, temperature_c: float | None = None,
                    status: str | None = None) -> None:
        """Battery as /sys/class/power_supply/battery (what `dumpsys battery` reports): level in %, temperature in
        degrees C (the file holds tenths), status Charging | Discharging | Not charging | Full."""
        battery = self.sysfs_class / "power_supply" / "battery"
        battery.mkdir(parents=True, exist_ok=True)
        if level is not None:
            (battery / "capacity").write_text(f"{int(level)}\n")
        if temperature_c is not None:
            (battery / "temp").write_text(f"{round(temperature_c * 10)}\n")
        if status is not None:
            (battery / "status").write_text(status + "\n")

    def set_temperature(self, zone: int | str, celsius: float) -> None:
        """Set a thermal zone's temperature, by index or by type (e.g. "cpu-0-0-usr")."""
        base = self.sysfs_class / "thermal"
        if isinstance(zone, int):
            folder = base / f"thermal_zone{zone}"
        else:
            matches = [z for z in sorted(base.glob("thermal_zone*")) if (z / "type").read_text().strip() == zone]
            if not matches:
                raise KeyError(f"{self.name} has no thermal zone of type {zone!r}")
            folder = matches[0]
        (folder / "temp").write_text(f"{round(celsius * 1000)}\n")

    # ---- life cycle

    def start(self, port: int | None = None, timeout: float = 15.0) -> "SimulatedPhone":
        """Start answering on 127.0.0.1:port (the same port as before when restarted)."""
        with self._lock:
            return self._start(port, timeout)

    def _start(self, port: int | None, timeout: float) -> "SimulatedPhone":
        if self.running:
            return self
        if port is not None:
            self.port = port
        if self.port is None:
            self.port = free_port(PHONE_PORTS)
        config = {"name": self.name, "port": self.port, "root": str(self.root),
                  "sysfs_class": str(self.sysfs_class), "tag": self.tag}
        if self.max_payload:
            config["max_payload"] = self.max_payload
        if self.features is not None:
            config["features"] = list(self.features)
        self.config_path.write_text(json.dumps(config, indent=1) + "\n")
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
        env[PHONE_TAG_VAR] = self.tag
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen([sys.executable, str(ADBD), str(self.config_path)], stdin=subprocess.DEVNULL,
                                          stdout=subprocess.PIPE, stderr=log, env=env, close_fds=True,
                                          # PR_SET_PDEATHSIG fires when the spawning *thread* exits: a phone
                                          # restarted from a helper thread would die with that thread.
                                          preexec_fn=_die_with_parent if threading.current_thread() is
                                          threading.main_thread() else None)
        deadline = time.monotonic() + timeout
        line = b""
        fd = self._proc.stdout.fileno()
        while time.monotonic() < deadline and b"\n" not in line:
            ready, _, _ = select.select([fd], [], [], 0.1)
            if ready:
                chunk = os.read(fd, 256)
                if not chunk:
                    break
                line += chunk
            elif self._proc.poll() is not None:
                break
        if not line.startswith(b"READY"):
            self._kill()
            raise LabError(f"simulated phone {self.name} did not start on 127.0.0.1:{self.port}: "
                           f"{self._log_tail()}")
        return self

    def kill(self) -> None:
        """A lost phone: the daemon and everything it started die at once (SIGKILL), every connection drops and the
        port stops answering."""
        with self._lock:
            self._kill()

    def _kill(self) -> None:
        if self._proc is not None:
            with contextlib.suppress(ProcessLookupError):
                self._proc.kill()
        kill_tagged(PHONE_TAG_VAR, self.tag)
        if self._proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(timeout=5)
            if self._proc.stdout:
                self._proc.stdout.close()
        self._proc = None

    def stop(self, timeout: float = 5.0) -> None:
        """A clean shutdown (SIGTERM), then kill() whatever is left."""
        with self._lock:
            if self.running:
                self._proc.terminate()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self._proc.wait(timeout=timeout)
            self._kill()

    def _log_tail(self, lines: int = 8) -> str:
        try:
            text = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return "(no log)"
        return " | ".join(text[-lines:]) or "(empty log)"


# --------------------------------------------------------------------------------------------------------------------
# The lab: one adb server, several phones

def find_adb() -> str:
    """The adb command: $FARM_TEST_ADB if set, else Debian's `adb` on PATH."""
    chosen = os.environ.get("FARM_TEST_ADB") or shutil.which("adb")
    if not chosen or not os.access(chosen, os.X_OK):
        raise LabError("the simulated phones need a real adb server and `adb` is not installed: `make test` installs "
                       "it (Debian package adb), or `apt-get install adb`; FARM_TEST_ADB=/path/to/adb picks another")
    return chosen


class Lab:
    """A real adb server on 127.0.0.1:port (a non-default port) and the simulated phones connected to it."""

    def __init__(self, folder: Path, *, adb: str | None = None, port: int | None = None):
        self.folder = Path(folder)
        self.adb = adb or find_adb()
        self.port = port
        self.phones: dict[str, SimulatedPhone] = {}
        self.owner = _owner_tag()
        self.tag = f"{self.owner}:{self.folder}"
        self.home = self.folder / "adb-home"
        self._started = False

    def __enter__(self) -> "Lab":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def __getitem__(self, name: str) -> SimulatedPhone:
        return self.phones[name]

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ADB_", "ANDROID_"))}
        # keys, the server's log (TMPDIR) and anything else adb writes stay in the lab's folder
        env.update(HOME=str(self.home), ANDROID_SDK_HOME=str(self.home), ANDROID_USER_HOME=str(self.home / ".android"),
                   TMPDIR=str(self.home), **{LAB_TAG_VAR: self.tag})
        return env

    def run_adb(self, *args: str, timeout: float = 30.0, check: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run([self.adb, "-P", str(self.port), *args], capture_output=True, text=True,
                              timeout=timeout, env=self.env, stdin=subprocess.DEVNULL)
        if check and proc.returncode != 0:
            raise LabError(f"adb {' '.join(args)} exited {proc.returncode}: {(proc.stderr or proc.stdout).strip()}")
        return proc

    def start(self) -> "Lab":
        reap_orphans()
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.home / ".android").mkdir(parents=True, exist_ok=True)
        if self.port is None:
            self.port = free_port(SERVER_PORTS)
        self.run_adb("start-server", timeout=60)
        self._started = True
        return self

    def version(self) -> str:
        return self.run_adb("version").stdout.strip()

    def add_phone(self, name: str, connect: bool = True, **options) -> SimulatedPhone:
        if name in self.phones:
            raise LabError(f"the lab already has a phone named {name}")
        taken = {p.port for p in self.phones.values() if p.port}
        phone = SimulatedPhone(name, self.folder / "phones" / name, owner=self.owner,
                               port=options.pop("port", None) or free_port(PHONE_PORTS, taken), **options)
        self.phones[name] = phone
        phone.start()
        if connect:
            self.connect(phone)
        return phone

    def devices(self) -> dict[str, str]:
        """serial -> state (device, offline, ...) as `adb devices` lists them."""
        out = self.run_adb("devices", timeout=15).stdout
        found = {}
        for line in out.splitlines()[1:]:
            parts = line.split()
            if len(parts) >= 2:
                found[parts[0]] = parts[1]
        return found

    def connect(self, phone: SimulatedPhone, timeout: float = 20.0) -> None:
        """`adb connect` the phone and wait until the server lists it as `device`."""
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            state = self.devices().get(phone.serial)
            if state == "device":
                return
            if state is None or state == "offline":
                proc = self.run_adb("connect", phone.serial, timeout=15, check=False)
                last = (proc.stdout + proc.stderr).strip()
            time.sleep(0.1)
        raise LabError(f"{phone.serial} did not come up as a device within {timeout:.0f} s (adb connect said: {last}; "
                       f"devices: {self.devices()}; phone log: {phone._log_tail()})")

    def disconnect(self, phone: SimulatedPhone) -> None:
        self.run_adb("disconnect", phone.serial, timeout=15, check=False)

    def client(self):
        import adbutils
        return adbutils.AdbClient(host="127.0.0.1", port=self.port)

    def device(self, phone: SimulatedPhone | str):
        serial = phone.serial if isinstance(phone, SimulatedPhone) else self.phones[phone].serial
        return self.client().device(serial)

    def heal(self) -> None:
        """Every phone running and connected (after a test that killed some)."""
        for phone in self.phones.values():
            if not phone.running:
                phone.start()
            self.connect(phone)

    def stop(self) -> None:
        for phone in self.phones.values():
            with contextlib.suppress(Exception):
                phone.kill()
        if self._started:
            with contextlib.suppress(Exception):
                self.run_adb("kill-server", timeout=15, check=False)
            deadline = time.monotonic() + 5
            while tagged_processes(LAB_TAG_VAR, self.tag) and time.monotonic() < deadline:
                time.sleep(0.05)
            kill_tagged(LAB_TAG_VAR, self.tag)
            self._started = False
