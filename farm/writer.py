"""The store's writer: one thread per running sweep owns the sweep's writes, so the event loop, and with it every lane,
never waits on the store (its commits, or another coordinator holding SQLite's write lock for up to busy_timeout).

Lanes submit writes in the order things happen, each with the time it happened, and go on; a lane waits only for a
write it must know the outcome of (a result: its job is `done` only once the result is stored). The thread takes
everything queued, up to MAX_BATCH writes, runs them in one transaction and commits once. A batch the store refuses is
rolled back and its writes run again one per transaction, so a refused write fails alone: a lane waiting for it gets
the store's error; a write nobody waits for (a job's state) stops the writer, and every lane at its next write, with
the store as it was last committed: the jobs whose writes were lost are still pending or running, for resume.
"""
from __future__ import annotations

import asyncio
import logging
import queue
import threading
from dataclasses import dataclass
from typing import Any, Callable

from farm.errors import FarmError, one_line
from farm.store import Store

# Writes per transaction: a burst of 1,000 lanes in a few commits, each holding the write lock (which other
# coordinators of the store wait for) about 0.2 s at most.
MAX_BATCH = 500
log = logging.getLogger(__name__)


class StoreWriteFailed(FarmError):
    """The writer stopped: the store refused a write, or the writer itself failed. Lanes stop; jobs stay for resume."""


@dataclass
class _Write:
    call: Callable[..., Any]  # a Store.write_* method, called with the batch's connection first
    args: tuple
    done: asyncio.Future | None  # for a lane that waits: settled in the event loop once committed or refused


class StoreWriter:
    """The writer thread of one running sweep; made in its event loop, closed (everything committed) before it ends."""

    def __init__(self, store: Store):
        self.store = store
        self.commits = 0
        self.error: BaseException | None = None
        self._loop = asyncio.get_running_loop()
        self._queue: queue.SimpleQueue[_Write | None] = queue.SimpleQueue()  # None: close
        self._waiting: set[asyncio.Future] = set()  # touched in the event loop only
        # A daemon: a coordinator that dies of something else is never kept alive by its writer.
        self._thread = threading.Thread(target=self._main, name="farm-store-writer", daemon=True)
        self._thread.start()

    def submit(self, call: Callable[..., Any], *args: Any) -> None:
        """Queue `call(connection, *args)`, committed soon after the writes before it; raises StoreWriteFailed once
        the writer has stopped."""
        self._put(_Write(call, args, None))

    async def wait(self, call: Callable[..., Any], *args: Any) -> None:
        """Queue `call(connection, *args)` and wait for its commit; raises what the store refused it with."""
        done = self._loop.create_future()
        self._put(_Write(call, args, done))
        self._waiting.add(done)
        try:
            await done
        finally:
            self._waiting.discard(done)

    async def flush(self) -> None:
        """Wait until every write submitted before is committed; raises StoreWriteFailed if the writer stopped."""
        await self.wait(_nothing)
        self.check()

    def check(self) -> None:
        """Raise StoreWriteFailed if the writer has stopped (a lane waiting for its device checks it too)."""
        if self.error is not None:
            raise self._stopped() from self.error

    def close(self) -> None:
        """Commit everything queued and stop the thread. Blocks: the lanes are over (finished, failed or cancelled),
        and what they queued for finished jobs is committed before the run returns or is marked interrupted."""
        self._queue.put(None)
        self._thread.join()

    def _put(self, write: _Write) -> None:
        self.check()
        self._queue.put(write)

    def _main(self) -> None:
        batch: list[_Write] = []
        try:
            while True:
                batch = [self._queue.get()]
                while batch[-1] is not None and len(batch) < MAX_BATCH:
                    try:
                        batch.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
                closing = batch[-1] is None
                batch = [write for write in batch if write is not None]
                self._commit(batch)
                if closing:
                    return
        except BaseException as error:  # noqa: BLE001 - a refused state or a bug of the writer: said to every lane
            self.error = error
            log.error("the store's writer stopped", exc_info=error)
            for write in batch:
                self._settle(write, self._stopped())
            # After every settle above (the event loop runs its callbacks in order): whoever still waits is told.
            self._loop.call_soon_threadsafe(self._abandon)

    def _commit(self, batch: list[_Write]) -> None:
        try:
            with self.store.engine.begin() as connection:
                for write in batch:
                    write.call(connection, *write.args)
        except Exception as error:
            if len(batch) == 1:
                self._refused(batch[0], error)
            else:  # rolled back whole: each alone now, so that only the write the store refuses fails
                for write in batch:
                    self._commit([write])
            return
        self.commits += 1
        for write in batch:
            self._settle(write, None)

    def _refused(self, write: _Write, error: Exception) -> None:
        if write.done is None:
            raise error  # a job's state the store will not take: nothing after it can be stored truthfully
        self._settle(write, error)

    def _settle(self, write: _Write, error: BaseException | None) -> None:
        if write.done is not None:
            self._loop.call_soon_threadsafe(_set, write.done, error)

    def _stopped(self) -> StoreWriteFailed:
        return StoreWriteFailed(f"the store's writer stopped ({type(self.error).__name__}: {one_line(self.error)}), "
                                "and the sweep with it; the jobs it did not store stay for resume")

    def _abandon(self) -> None:
        for done in self._waiting:
            _set(done, self._stopped())


def _nothing(connection: Any) -> None:
    """A write that writes nothing: flush() waits for it, and so for everything queued before it."""


def _set(done: asyncio.Future, error: BaseException | None) -> None:
    if done.done():  # its lane was cancelled: the write is committed all the same
        return
    if error is None:
        done.set_result(None)
    else:
        done.set_exception(error)
