"""Leases: while a coordinator holds a device, no other runs anything there, and while it drives a sweep, no other
drives it. They hold across every process and machine that shares one store, and stand on locks that the store's own
backend frees when their holder dies (SIGKILL, a lost machine), so nobody ever has to clean one up:

  SQLite store      an flock on a file per lease, in the folder `<db>.leases/` beside the database file
  PostgreSQL store  a session-level advisory lock, on one connection of the coordinator's own (its TCP keepalive is
                    short, so the server drops the locks of a machine that vanished within about half a minute)

Who holds a lease (sweep, pid, host, since) is written to the store's `leases` table by the holder once it has the
lock, so a waiter can say whom it waits for. A row whose lock is free is only history, and never shown as a holder.
"""
from __future__ import annotations

import fcntl
import hashlib
import os
import socket
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import bindparam, create_engine, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from farm.store import Store
from farm.tables import LeaseRow, now

POLL_S = 0.5  # how often a waiting lane tries its device's lease again
NAMESPACE = 0x7F1A  # the first key of farm's advisory locks, so they never meet another application's
LEASES = LeaseRow.__table__
# One lease's recorded holder, a statement built once: each waiting lane reads its own lease's row every POLL_S.
_HOLDER = select(LEASES.c.sweep, LEASES.c.pid, LEASES.c.host, LEASES.c.since).where(LEASES.c.name == bindparam("name"))


@dataclass(frozen=True)
class Holder:
    sweep: str
    pid: int
    host: str
    since: datetime

    def __str__(self) -> str:
        return f"sweep {self.sweep} (pid {self.pid} on {self.host}) since {self.since.astimezone():%H:%M:%S}"


def device_lease(name: str) -> str:
    return f"device:{name}"


def sweep_lease(name: str) -> str:
    return f"sweep:{name}"


class Leases:
    """The leases one coordinator holds on one store, on behalf of one sweep. Close it to free them all."""

    def __init__(self, store: Store, sweep: str):
        self.store = store
        self.sweep = sweep
        url = make_url(store.url)
        if url.get_backend_name() == "postgresql":
            self._locks: _FileLocks | _AdvisoryLocks = _AdvisoryLocks(store)
        else:
            path = url.database if url.database not in (None, "", ":memory:") else None
            folder = Path(f"{path}.leases") if path else Path(tempfile.mkdtemp(prefix="farm-leases-"))
            self._locks = _FileLocks(folder)

    def try_hold(self, name: str) -> bool:
        """Take the lease if it is free; False when someone else holds it."""
        if not self._locks.acquire(name):
            return False
        self.store.set_lease(name, self.sweep, os.getpid(), socket.gethostname(), now())
        return True

    def release(self, name: str) -> None:
        self._locks.release(name)

    def holder(self, name: str) -> Holder | None:
        """Who holds the lease now; None when it is free."""
        if name in self._locks.mine:
            return Holder(self.sweep, os.getpid(), socket.gethostname(), now())
        if not self._locks.taken(name):
            return None
        # That lease's row alone: reading every lease's row for each waiting lane took a thousand waiting lanes 18 s of
        # the event loop per round of polls; this read takes 0.1 ms.
        with self.store.engine.connect() as connection:
            row = connection.execute(_HOLDER, {"name": name}).first()
        if row is None:
            return Holder("?", 0, "another coordinator", now())
        sweep, pid, host, since = row
        return Holder(sweep, pid, host, since.replace(tzinfo=since.tzinfo or timezone.utc))

    def held(self) -> dict[str, Holder]:
        """Every lease someone holds now, by name."""
        return {name: Holder(*row) for name, row in self.store.leases().items()
                if name in self._locks.mine or self._locks.taken(name)}

    def close(self) -> None:
        self._locks.close()

    def __enter__(self) -> "Leases":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _FileLocks:
    """flock(2) on one file per lease: the kernel frees it when the holding process dies, however it dies."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.mine: dict[str, int] = {}  # lease → the open file that holds it

    def _path(self, name: str) -> Path:
        return self.folder / (hashlib.sha256(name.encode()).hexdigest()[:32] + ".lock")

    def _try(self, name: str) -> int | None:
        self.folder.mkdir(exist_ok=True)
        fd = os.open(self._path(name), os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        return fd

    def acquire(self, name: str) -> bool:
        if name in self.mine:
            return True
        fd = self._try(name)
        if fd is not None:
            self.mine[name] = fd
        return fd is not None

    def release(self, name: str) -> None:
        fd = self.mine.pop(name, None)
        if fd is not None:
            os.close(fd)  # closing the file frees its flock

    def taken(self, name: str) -> bool:
        """Held by another process (tried, and let go at once when free)."""
        if name in self.mine:
            return False
        if not self._path(name).exists():
            return False
        fd = self._try(name)
        if fd is None:
            return True
        os.close(fd)
        return False

    def close(self) -> None:
        for name in list(self.mine):
            self.release(name)


class _AdvisoryLocks:
    """PostgreSQL session-level advisory locks, on one connection that lives as long as the coordinator: the server
    frees them when that session ends, a dead process's included."""

    def __init__(self, store: Store):
        # Its own connection, outside the store's pool: closing it ends the session, and every lock it held with it.
        engine = create_engine(store.engine.url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
        self.connection = engine.connect()
        # A machine that vanishes without closing its connection: the server notices within ~10 + 3 × 5 s.
        for setting in ("tcp_keepalives_idle = 10", "tcp_keepalives_interval = 5", "tcp_keepalives_count = 3"):
            self.connection.execute(text(f"SET {setting}"))
        self.mine: set[str] = set()

    @staticmethod
    def _key(name: str) -> int:
        return int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "big") & 0x7FFFFFFF

    def _try(self, name: str) -> bool:
        query = text("SELECT pg_try_advisory_lock(:namespace, :key)")
        return bool(self.connection.execute(query, {"namespace": NAMESPACE, "key": self._key(name)}).scalar())

    def _unlock(self, name: str) -> None:
        self.connection.execute(text("SELECT pg_advisory_unlock(:namespace, :key)"),
                                {"namespace": NAMESPACE, "key": self._key(name)})

    def acquire(self, name: str) -> bool:
        if name in self.mine:
            return True
        if self._try(name):
            self.mine.add(name)
            return True
        return False

    def release(self, name: str) -> None:
        if name in self.mine:
            self.mine.discard(name)
            self._unlock(name)

    def taken(self, name: str) -> bool:
        if name in self.mine:
            return False
        if self._try(name):
            self._unlock(name)
            return False
        return True

    def close(self) -> None:
        self.mine.clear()
        self.connection.close()
