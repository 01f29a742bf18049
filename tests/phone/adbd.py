#!/usr/bin/env python3
"""TEST CODE, not part of tflite-farm: the device side of the ADB wire protocol for the suite's SIMULATED PHONES.

One simulated phone is one process running this file (`python adbd.py CONFIG.json`, started by phone.SimulatedPhone):
an asyncio server on 127.0.0.1:PORT that speaks what a real adbd speaks over TCP (the transport of
`adb connect HOST:PORT`), so a real adb server (Debian's `adb`) and real clients (adbutils, the adb command line)
drive it exactly as they drive a phone. Stdlib only.

The phone's file system. Before it serves, the process enters a private mount namespace (it is root) and chroots into
the phone's sandbox folder (CONFIG["root"]): the sandbox holds the Android side (/data/local/tmp, /sdcard, /system/bin
with sh, getprop, dumpsys, /system/build.prop, /vendor), and every other top-level folder of the host (/usr, /etc,
/proc, /dev, /tmp, /work, /root, ...) is bind-mounted into it at the same path, so the host's tools and Python run
there unchanged. /sys is the host's, except /sys/class, which is the sandbox's CONFIG["sysfs_class"] folder
(thermal/thermal_zoneN, power_supply/battery) so a test controls temperatures and the battery with plain files. The
mounts exist only in that namespace: the host sees none of them, and they vanish with the phone's processes. So
`/data/local/tmp/x` means the same file to the sync service, to `sh`, and to anything a shell command starts, with no
path rewriting anywhere.

Protocol, as AOSP's adbd does it (packages/modules/adb: protocol.txt, SYNC.TXT, file_sync_protocol.h,
shell_protocol.h, daemon/file_sync_service.cpp, daemon/shell_service.cpp, adb.cpp):
  messages   24-byte little-endian header (command, arg0, arg1, data length, data checksum, magic = command ^
             0xffffffff) and a payload. CNXN(version, maxdata, "device::ro.product.name=..;ro.product.model=..;
             ro.product.device=..;features=..") answers the host's CNXN; no AUTH. The version is
             min(host, 0x01000001): from 0x01000001 on the checksum is sent as 0 (adbd's send_packet), below it is the
             byte sum; received checksums are not checked (adbd's check_header checks magic and length only). The
             payload size is min(host maxdata, ours).
  streams    OPEN(host id, 0, "service\\0") -> OKAY(our id, host id) or CLSE(0, host id) for an unknown service;
             WRTE in both directions, one at a time per direction until the other side's OKAY; CLSE from either side
             (never answered). No delayed_ack window (the feature is not advertised).
  services   shell:CMD, shell,v2[,raw|,pty][,TERM=..]:CMD (shell protocol v2: [id u8][len u32 LE][data]; 0 stdin,
             1 stdout, 2 stderr, 3 exit code (1 byte; 128 + signal for a killed process), 4 close stdin, 5 window
             size), exec:CMD, sync: (STAT, LST2/STA2, LIST/LIS2, SEND, RECV, QUIT; SEND makes missing parent
             folders, copies the user's permission bits to group and other as adbd does, sets the mtime of DONE).
             The command runs as `/system/bin/sh -c CMD` in its own session, cwd /, with an Android-like environment;
             without the shell protocol stdout and stderr share one stream (a raw pipe where adbd uses a raw pty).
             When the host closes a running shell's stream, or the connection drops, the shell process gets SIGHUP,
             as from adbd.

Every process this phone starts carries PHONE_TAG_VAR=<tag> in its environment: SimulatedPhone.kill() finds them all
with it, even after the daemon is gone.
"""
from __future__ import annotations

import asyncio
import ctypes
import json
import os
import signal
import stat
import struct
import sys
import time

A_SYNC = 0x434E5953
A_CNXN = 0x4E584E43
A_AUTH = 0x48545541
A_OPEN = 0x4E45504F
A_OKAY = 0x59414B4F
A_CLSE = 0x45534C43
A_WRTE = 0x45545257
A_STLS = 0x534C5453
COMMANDS = {A_SYNC, A_CNXN, A_AUTH, A_OPEN, A_OKAY, A_CLSE, A_WRTE, A_STLS}

A_VERSION_MIN = 0x01000000
A_VERSION_SKIP_CHECKSUM = 0x01000001
A_VERSION = A_VERSION_SKIP_CHECKSUM
MAX_PAYLOAD_V1 = 4 * 1024
MAX_PAYLOAD = 1024 * 1024

HEADER = struct.Struct("<6I")
DEFAULT_FEATURES = ("shell_v2", "cmd", "stat_v2", "ls_v2", "fixed_push_mkdir", "fixed_push_symlink_timestamp")
PHONE_TAG_VAR = "TFLITE_FARM_TEST_PHONE"

# shell protocol v2 packet ids (shell_protocol.h)
SHELL_STDIN, SHELL_STDOUT, SHELL_STDERR, SHELL_EXIT, SHELL_CLOSE_STDIN, SHELL_WINDOW = 0, 1, 2, 3, 4, 5
SHELL_PACKET = struct.Struct("<BI")

# sync ids (file_sync_protocol.h)
SYNC_DATA_MAX = 64 * 1024
SYNC_PATH_MAX = 1024
SYNC_HEADER = struct.Struct("<4sI")
STAT_V1 = struct.Struct("<4sIII")
STAT_V2 = struct.Struct("<4sIQQIIIIQqqq")
DENT_V1 = struct.Struct("<4sIIII")
DENT_V2 = struct.Struct("<4sIQQIIIIQqqqI")

SHELL = "/system/bin/sh"
# A phone's PATH (Android's, then the host's tools standing in for toybox).
ANDROID_PATH = ("/product/bin:/apex/com.android.runtime/bin:/apex/com.android.art/bin:/system_ext/bin:/system/bin:"
                "/system/xbin:/odm/bin:/vendor/bin:/vendor/xbin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:"
                "/sbin:/bin")
# Top-level names the phone owns: never bound from the host.
PHONE_OWNED = {"data", "sdcard", "storage", "system", "system_ext", "vendor", "product", "odm", "apex", "sys"}


def log(message: str) -> None:
    sys.stderr.write(f"{time.strftime('%H:%M:%S')} adbd[{os.getpid()}]: {message}\n")
    sys.stderr.flush()


# --------------------------------------------------------------------------------------------------------------------
# The phone's file system: private mount namespace + chroot.

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = (ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_void_p)
CLONE_NEWNS = 0x00020000
MS_BIND, MS_REC, MS_PRIVATE = 4096, 16384, 1 << 18


def _mount(source: str | None, target: str, flags: int) -> None:
    if _libc.mount(source.encode() if source else None, target.encode(), None, flags, None) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {source} on {target}: {os.strerror(err)}")


def enter_phone_root(root: str, sysfs_class: str) -> None:
    """Private mount namespace, host folders bound into the sandbox root, /sys/class from the sandbox, chroot."""
    if _libc.unshare(CLONE_NEWNS) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"unshare(CLONE_NEWNS): {os.strerror(err)} (the simulated phones need root and "
                           "permission to create mount namespaces)")
    _mount(None, "/", MS_REC | MS_PRIVATE)  # nothing below propagates back to the host
    root = os.path.realpath(root)
    names = sorted(os.listdir("/"))
    # A folder holding the sandbox (e.g. /tmp) is bound first: later mounts inside the sandbox must not be copied
    # into it by its recursive bind.
    names.sort(key=lambda n: 0 if (root + "/").startswith(f"/{n}/") else 1)
    for name in names:
        host, target = f"/{name}", os.path.join(root, name)
        if name in PHONE_OWNED or name.startswith("."):
            continue
        if os.path.islink(host):
            if not os.path.lexists(target):
                os.symlink(os.readlink(host), target)
        elif os.path.isdir(host):
            os.makedirs(target, exist_ok=True)
            _mount(host, target, MS_BIND | MS_REC)
    os.makedirs(os.path.join(root, "sys"), exist_ok=True)
    _mount("/sys", os.path.join(root, "sys"), MS_BIND | MS_REC)
    _mount(sysfs_class, os.path.join(root, "sys", "class"), MS_BIND)
    os.chroot(root)
    os.chdir("/")


def read_props(path: str = "/system/build.prop") -> dict[str, str]:
    props: dict[str, str] = {}
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                line = line.strip()
                if line and not line.startswith("#") and "=" in line:
                    key, _, value = line.partition("=")
                    props[key.strip()] = value.strip()
    except OSError:
        pass
    return props


# --------------------------------------------------------------------------------------------------------------------
# Messages and streams.

class ProtocolError(Exception):
    pass


class Stream:
    """One OPENed stream: bytes from the host (WRTE) to read, bytes to the host written one WRTE at a time."""

    HIGH_WATER = 2 * MAX_PAYLOAD  # past this much unread data the host's next WRTE waits for our OKAY

    def __init__(self, conn: "Connection", local_id: int, remote_id: int, service: str):
        self.conn, self.local_id, self.remote_id, self.service = conn, local_id, remote_id, service
        self.buf = bytearray()
        self.eof = False          # the host closed the stream
        self.closed = False       # closed either way
        self.okay_pending = False
        self.data = asyncio.Event()
        self.ready = asyncio.Event()  # the host acknowledged our last WRTE (OPEN implies a READY)
        self.ready.set()
        self.host_closed = asyncio.Event()

    # from the connection
    def on_write(self, payload: bytes) -> None:
        if self.closed:
            return
        self.buf += payload
        if len(self.buf) <= self.HIGH_WATER:
            self.conn.send(A_OKAY, self.local_id, self.remote_id)
        else:
            self.okay_pending = True
        self.data.set()

    def on_ready(self) -> None:
        self.ready.set()

    def on_close(self) -> None:
        self.eof = True
        self._closed()
        self.host_closed.set()

    def _closed(self) -> None:
        if not self.closed:
            self.closed = True
            self.conn.streams.pop(self.local_id, None)
        self.ready.set()
        self.data.set()

    def _consumed(self) -> None:
        if self.okay_pending and len(self.buf) <= self.HIGH_WATER and not self.closed:
            self.okay_pending = False
            self.conn.send(A_OKAY, self.local_id, self.remote_id)

    # for services
    async def read(self, limit: int = SYNC_DATA_MAX) -> bytes:
        """Up to limit bytes; b"" once the stream is closed and drained."""
        while not self.buf and not self.closed:
            self.data.clear()
            await self.data.wait()
        chunk = bytes(self.buf[:limit])
        del self.buf[:limit]
        self._consumed()
        return chunk

    async def readexactly(self, n: int) -> bytes:
        while len(self.buf) < n and not self.closed:
            self.data.clear()
            await self.data.wait()
        if len(self.buf) < n:
            raise EOFError(f"stream {self.service!r} closed")
        chunk = bytes(self.buf[:n])
        del self.buf[:n]
        self._consumed()
        return chunk

    async def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            await self.ready.wait()
            if self.closed:
                raise BrokenPipeError(f"stream {self.service!r} closed by the host")
            chunk, view = view[:self.conn.max_payload], view[self.conn.max_payload:]
            self.ready.clear()
            self.conn.send(A_WRTE, self.local_id, self.remote_id, bytes(chunk))
            await self.conn.drain()

    def close(self) -> None:
        if not self.closed:
            self.conn.send(A_CLSE, self.local_id, self.remote_id)
            self._closed()


class Connection:
    """One TCP connection from an adb server: the transport of one `adb connect`."""

    def __init__(self, daemon: "Daemon", reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.daemon, self.reader, self.writer = daemon, reader, writer
        self.version = A_VERSION_MIN
        self.max_payload = MAX_PAYLOAD_V1
        self.online = False
        self.streams: dict[int, Stream] = {}
        self.tasks: set[asyncio.Task] = set()
        self._drain_lock = asyncio.Lock()

    def send(self, command: int, arg0: int, arg1: int, data: bytes = b"") -> None:
        if self.writer.is_closing():
            return
        check = 0 if self.version >= A_VERSION_SKIP_CHECKSUM else sum(data) & 0xFFFFFFFF
        self.writer.write(HEADER.pack(command, arg0, arg1, len(data), check, command ^ 0xFFFFFFFF) + data)

    async def drain(self) -> None:
        async with self._drain_lock:
            await self.writer.drain()

    async def read_message(self) -> tuple[int, int, int, bytes]:
        command, arg0, arg1, length, _check, magic = HEADER.unpack(await self.reader.readexactly(HEADER.size))
        if magic != command ^ 0xFFFFFFFF:
            raise ProtocolError(f"bad magic {magic:#x} for command {command:#x}")
        if length > max(self.daemon.max_payload, MAX_PAYLOAD_V1):
            raise ProtocolError(f"payload of {length} bytes exceeds {self.daemon.max_payload}")
        data = await self.reader.readexactly(length) if length else b""
        return command, arg0, arg1, data

    async def run(self) -> None:
        peer = self.writer.get_extra_info("peername")
        try:
            while True:
                command, arg0, arg1, data = await self.read_message()
                if command == A_CNXN:
                    self.connect(arg0, arg1, data)
                elif command not in COMMANDS:
                    raise ProtocolError(f"unknown command {command:#x}")
                elif not self.online:
                    continue  # protocol.txt: anything before CONNECT is ignored
                elif command == A_OPEN:
                    self.open(arg0, arg1, data)
                elif command == A_OKAY:
                    s = self.streams.get(arg1)
                    if s is not None and arg0 == s.remote_id:
                        s.on_ready()
                elif command == A_WRTE:
                    s = self.streams.get(arg1)
                    if s is not None and arg0 == s.remote_id:
                        s.on_write(data)
                elif command == A_CLSE:
                    s = self.streams.get(arg1)
                    if s is not None and arg0 in (0, s.remote_id):
                        s.on_close()
                await self.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ProtocolError, OSError) as exc:
            if not isinstance(exc, asyncio.IncompleteReadError):
                log(f"connection {peer}: {exc}")
        finally:
            self.shutdown()

    def connect(self, version: int, max_payload: int, banner: bytes) -> None:
        if version < A_VERSION_MIN:
            raise ProtocolError(f"host protocol version {version:#x} is too old")
        if self.online:  # a new CNXN on a live transport: start over (adb.cpp handle_new_connection)
            for s in list(self.streams.values()):
                s.on_close()
        self.version = min(version, A_VERSION)
        self.max_payload = max(MAX_PAYLOAD_V1, min(max_payload, self.daemon.max_payload))
        self.online = True
        host = banner.split(b"\0", 1)[0].decode(errors="replace")
        log(f"CNXN from {host!r}: version {self.version:#x}, max payload {self.max_payload}")
        self.send(A_CNXN, A_VERSION, self.max_payload, self.daemon.banner().encode())

    def open(self, remote_id: int, arg1: int, data: bytes) -> None:
        if remote_id == 0:
            return
        name = data.split(b"\0", 1)[0].decode(errors="replace")
        handler = self.daemon.service(name)
        if handler is None:
            log(f"OPEN {name!r}: no such service")
            self.send(A_CLSE, 0, remote_id)
            return
        local_id = self.daemon.new_id()
        s = Stream(self, local_id, remote_id, name)
        self.streams[local_id] = s
        self.send(A_OKAY, local_id, remote_id)
        task = asyncio.get_running_loop().create_task(self._serve(handler, s))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _serve(self, handler, s: Stream) -> None:
        try:
            await handler(s)
        except (BrokenPipeError, EOFError, ConnectionError):
            pass
        except Exception as exc:  # a bug in the simulation: say so, close the stream like a crashed service
            log(f"service {s.service!r} failed: {type(exc).__name__}: {exc}")
        finally:
            s.close()

    def shutdown(self) -> None:
        for s in list(self.streams.values()):
            s.on_close()
        for task in list(self.tasks):
            task.cancel()
        self.writer.close()
        self.daemon.connections.discard(self)


# --------------------------------------------------------------------------------------------------------------------
# Services.

class Daemon:
    def __init__(self, config: dict):
        self.config = config
        self.port = int(config["port"])
        self.max_payload = int(config.get("max_payload") or MAX_PAYLOAD)
        self.features = tuple(config.get("features") or DEFAULT_FEATURES)
        self.tag = config.get("tag", "")
        self.connections: set[Connection] = set()
        self.children: set[int] = set()
        self._next_id = 0

    def new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def banner(self) -> str:
        props = read_props()
        fields = [f"{k}={props.get(k, '')}" for k in ("ro.product.name", "ro.product.model", "ro.product.device")]
        fields.append("features=" + ",".join(self.features))
        return "device::" + ";".join(fields)

    def shell_env(self) -> dict[str, str]:
        props = read_props()
        env = {
            "PATH": ANDROID_PATH, "HOME": "/", "SHELL": SHELL, "TMPDIR": "/data/local/tmp", "USER": "root",
            "LOGNAME": "root", "HOSTNAME": props.get("ro.product.device", "localhost"),
            "ANDROID_DATA": "/data", "ANDROID_ROOT": "/system", "ANDROID_STORAGE": "/storage",
            "EXTERNAL_STORAGE": "/sdcard", "ASEC_MOUNTPOINT": "/mnt/asec", "LANG": "C.UTF-8",
            PHONE_TAG_VAR: self.tag,
        }
        for key, value in os.environ.items():  # see .library env notes: OpenBLAS needs these on some CPUs
            if key.startswith("OPENBLAS_"):
                env[key] = value
        return env

    def service(self, name: str):
        if name.startswith("shell"):
            head, sep, command = name.partition(":")
            if not sep:
                return None
            args = head.split(",")[1:]
            v2 = "v2" in args
            return lambda s: self.shell(s, command, v2)
        if name.startswith("exec:"):
            return lambda s: self.shell(s, name[5:], False)
        if name == "sync:":
            return self.sync
        return None

    # ---- shell

    async def shell(self, s: Stream, command: str, v2: bool) -> None:
        argv = [SHELL, "-c", command] if command else [SHELL, "-"]
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE if v2 else asyncio.subprocess.STDOUT,
            cwd="/", env=self.shell_env(), start_new_session=True)
        self.children.add(proc.pid)
        loop = asyncio.get_running_loop()

        async def pump(reader: asyncio.StreamReader, packet_id: int) -> None:
            while True:
                chunk = await reader.read(SYNC_DATA_MAX)
                if not chunk:
                    return
                await s.write(SHELL_PACKET.pack(packet_id, len(chunk)) + chunk if v2 else chunk)

        async def feed() -> None:
            stdin = proc.stdin
            try:
                while True:
                    if v2:
                        packet_id, length = SHELL_PACKET.unpack(await s.readexactly(SHELL_PACKET.size))
                        payload = await s.readexactly(length) if length else b""
                        if packet_id == SHELL_STDIN and stdin is not None:
                            stdin.write(payload)
                            await stdin.drain()
                        elif packet_id == SHELL_CLOSE_STDIN and stdin is not None:
                            stdin.close()
                            stdin = None
                    else:
                        chunk = await s.read()
                        if not chunk:
                            return
                        if stdin is not None:
                            stdin.write(chunk)
                            await stdin.drain()
            except (EOFError, BrokenPipeError, ConnectionResetError):
                return

        feeder = loop.create_task(feed())
        outputs = [loop.create_task(pump(proc.stdout, SHELL_STDOUT))]
        if v2:
            outputs.append(loop.create_task(pump(proc.stderr, SHELL_STDERR)))
        hangup = loop.create_task(s.host_closed.wait())

        def hang_up() -> None:
            # adbd: the protocol socket died -> SIGHUP to the subprocess (the shell only), close its pipes
            try:
                os.kill(proc.pid, signal.SIGHUP)
            except ProcessLookupError:
                pass
            for t in outputs:
                t.cancel()
            loop.create_task(self._reap(proc))

        try:
            while not hangup.done():
                waiting = [t for t in outputs if not t.done()]
                if not waiting:
                    break
                await asyncio.wait([*waiting, hangup], return_when=asyncio.FIRST_COMPLETED)
            for t in outputs:
                if t.done() and not t.cancelled() and t.exception() is not None:
                    s.host_closed.set()  # a write to the host failed: the stream is gone
            if s.host_closed.is_set() or s.closed:
                hang_up()
                return
            code = await proc.wait()
            code = (0x80 | -code) if code < 0 else code
            if v2:
                await s.write(SHELL_PACKET.pack(SHELL_EXIT, 1) + bytes([code & 0xFF]))
        except asyncio.CancelledError:
            # The whole connection went (the host's adb server dropped it, `adb disconnect`): every service of it is
            # cancelled, and adbd's shells get their SIGHUP all the same.
            if proc.returncode is None:
                hang_up()
            raise
        finally:
            feeder.cancel()
            hangup.cancel()
            if proc.stdin is not None and not proc.stdin.is_closing():
                proc.stdin.close()
            if proc.returncode is not None:
                self.children.discard(proc.pid)

    async def _reap(self, proc) -> None:
        try:
            await asyncio.wait_for(proc.wait(), timeout=3600)
        finally:
            self.children.discard(proc.pid)

    # ---- sync

    async def sync(self, s: Stream) -> None:
        while True:
            try:
                ident, length = SYNC_HEADER.unpack(await s.readexactly(SYNC_HEADER.size))
            except EOFError:
                return
            if length > SYNC_PATH_MAX:
                await self._fail(s, "path too long")
                return
            path = (await s.readexactly(length)).decode("utf-8", errors="surrogateescape")
            if ident == b"STAT":
                await s.write(self._stat_v1(path))
            elif ident in (b"STA2", b"LST2"):
                await s.write(self._stat_v2(ident, path))
            elif ident in (b"LIST", b"LIS2"):
                await self._list(s, path, ident == b"LIS2")
            elif ident == b"SEND":
                if not await self._send(s, path):
                    return
            elif ident == b"RECV":
                if not await self._recv(s, path):
                    return
            elif ident == b"QUIT":
                return
            else:
                await self._fail(s, "unknown command %08x" % struct.unpack("<I", ident)[0])
                return

    @staticmethod
    async def _fail(s: Stream, reason: str) -> None:
        data = reason.encode()
        await s.write(SYNC_HEADER.pack(b"FAIL", len(data)) + data)

    @staticmethod
    def _stat_v1(path: str) -> bytes:
        try:
            st = os.lstat(path)
        except OSError:
            return STAT_V1.pack(b"STAT", 0, 0, 0)
        return STAT_V1.pack(b"STAT", st.st_mode & 0xFFFFFFFF, st.st_size & 0xFFFFFFFF, int(st.st_mtime) & 0xFFFFFFFF)

    @staticmethod
    def _stat_v2(ident: bytes, path: str) -> bytes:
        try:
            st = os.stat(path) if ident == b"STA2" else os.lstat(path)
        except OSError as exc:
            return STAT_V2.pack(ident, exc.errno or 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        return STAT_V2.pack(ident, 0, st.st_dev, st.st_ino, st.st_mode, st.st_nlink, st.st_uid, st.st_gid,
                            st.st_size, int(st.st_atime), int(st.st_mtime), int(st.st_ctime))

    @staticmethod
    async def _list(s: Stream, path: str, v2: bool) -> None:
        try:
            names = [".", ".."] + os.listdir(path)
        except OSError:
            names = []
        out = bytearray()
        for name in names:
            raw = name.encode("utf-8", errors="surrogateescape")
            try:
                st = os.lstat(os.path.join(path, name))
            except OSError as exc:
                if v2:
                    out += DENT_V2.pack(b"DNT2", exc.errno or 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, len(raw)) + raw
                continue
            if v2:
                out += DENT_V2.pack(b"DNT2", 0, st.st_dev, st.st_ino, st.st_mode, st.st_nlink, st.st_uid,
                                    st.st_gid, st.st_size, int(st.st_atime), int(st.st_mtime), int(st.st_ctime),
                                    len(raw)) + raw
            else:
                out += DENT_V1.pack(b"DENT", st.st_mode, st.st_size & 0xFFFFFFFF, int(st.st_mtime), len(raw)) + raw
            if len(out) >= SYNC_DATA_MAX:
                await s.write(bytes(out))
                out.clear()
        out += (DENT_V2.pack(b"DONE", *([0] * 12)) if v2 else DENT_V1.pack(b"DONE", 0, 0, 0, 0))
        await s.write(bytes(out))

    async def _send(self, s: Stream, spec: str) -> bool:
        path, comma, mode_text = spec.rpartition(",")
        if not comma:
            await self._fail(s, "missing , in ID_SEND_V1")
            return False
        try:
            mode = int(mode_text, 0)
        except ValueError:
            await self._fail(s, "bad mode")
            return False
        try:
            st = os.lstat(path)
            do_unlink = stat.S_ISREG(st.st_mode) or (stat.S_ISLNK(st.st_mode) and not stat.S_ISLNK(mode))
        except OSError:
            do_unlink = True
        if do_unlink:
            try:
                os.unlink(path)
            except OSError:
                pass
        if stat.S_ISLNK(mode):
            return await self._send_link(s, path)
        # adbd: copy the user's permission bits to group and other
        mode &= 0o777
        mode |= (mode >> 3) & 0o070
        mode |= (mode >> 3) & 0o007
        fd, failure = -1, None
        try:
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
            except FileNotFoundError:
                try:
                    os.makedirs(os.path.dirname(path), mode=0o775, exist_ok=True)
                except OSError as exc:
                    failure = f"secure_mkdirs failed: {exc.strerror}"
                    raise
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
            except FileExistsError:
                fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC, mode)
            os.fchmod(fd, mode)
        except OSError as exc:
            failure = failure or f"couldn't create file: {exc.strerror}"
        timestamp = None
        while True:  # on failure adbd keeps reading DATA until DONE, then reports
            ident, size = SYNC_HEADER.unpack(await s.readexactly(SYNC_HEADER.size))
            if ident == b"DONE":
                timestamp = size
                break
            if ident != b"DATA":
                failure = failure or "invalid data message"
                break
            if size > SYNC_DATA_MAX:
                failure = failure or "oversize data message"
                break
            payload = await s.readexactly(size)
            if fd >= 0 and failure is None:
                try:
                    view = memoryview(payload)
                    while view:
                        view = view[os.write(fd, view):]
                except OSError as exc:
                    failure = f"write failed: {exc.strerror}"
        if fd >= 0:
            os.close(fd)
        if failure is not None:
            if do_unlink:
                try:
                    os.unlink(path)
                except OSError:
                    pass
            await self._fail(s, failure)
            return False
        os.utime(path, (timestamp, timestamp), follow_symlinks=False)
        await s.write(SYNC_HEADER.pack(b"OKAY", 0))
        return True

    async def _send_link(self, s: Stream, path: str) -> bool:
        ident, size = SYNC_HEADER.unpack(await s.readexactly(SYNC_HEADER.size))
        if ident != b"DATA" or size > SYNC_DATA_MAX:
            await self._fail(s, "invalid data message: expected ID_DATA")
            return False
        target = (await s.readexactly(size)).split(b"\0", 1)[0].decode(errors="surrogateescape")
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            os.symlink(target, path)
        except OSError as exc:
            await self._fail(s, f"symlink failed: {exc.strerror}")
            return False
        ident, timestamp = SYNC_HEADER.unpack(await s.readexactly(SYNC_HEADER.size))
        if ident != b"DONE":
            await self._fail(s, "invalid data message: expected ID_DONE")
            return False
        os.utime(path, (timestamp, timestamp), follow_symlinks=False)
        await s.write(SYNC_HEADER.pack(b"OKAY", 0))
        return True

    async def _recv(self, s: Stream, path: str) -> bool:
        try:
            f = open(path, "rb")
        except OSError as exc:
            await self._fail(s, f"open failed: {exc.strerror}")
            return False
        with f:
            while True:
                try:
                    chunk = f.read(SYNC_DATA_MAX - SYNC_HEADER.size)
                except OSError as exc:
                    await self._fail(s, f"read failed: {exc.strerror}")
                    return False
                if not chunk:
                    break
                await s.write(SYNC_HEADER.pack(b"DATA", len(chunk)) + chunk)
        await s.write(SYNC_HEADER.pack(b"DONE", 0))
        return True

    # ---- server

    async def serve(self) -> None:
        server = await asyncio.start_server(self._accept, "127.0.0.1", self.port, reuse_address=True)
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        print(f"READY {self.port}", flush=True)
        log(f"serving on 127.0.0.1:{self.port}")
        async with server:
            await stop.wait()
        for conn in list(self.connections):
            conn.shutdown()
        for pid in list(self.children):
            try:
                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        if sock is not None:
            import socket
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn = Connection(self, reader, writer)
        self.connections.add(conn)
        await conn.run()


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        sys.stderr.write("usage: adbd.py CONFIG.json\n")
        return 2
    with open(argv[0], encoding="utf-8") as f:
        config = json.load(f)
    os.environ[PHONE_TAG_VAR] = config.get("tag", "")
    if config.get("chroot", True):
        enter_phone_root(config["root"], config["sysfs_class"])
    daemon = Daemon(config)
    try:
        asyncio.run(daemon.serve())
    except OSError as exc:
        log(f"cannot serve on 127.0.0.1:{daemon.port}: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
