"""The agent as local and SSH devices run it: its file, with its digest, the JSON request it reads, and the warm
agent (`--serve`) that answers a device's jobs one after another."""
from __future__ import annotations

import asyncio
import functools
import json
import time
from typing import Awaitable, Callable

from farm import AGENT_PATH
from farm.errors import one_line
from farm.paths import sha256_file
from farm.results import AGENT, DeviceLost, JobFailed, RawResult
from farm.transports import BenchmarkJob, LocalFile

SERVE_HEADER_BYTES = 128  # agents/litert_agent.py's serve() writes exactly this many before each answer
IDLE_EXIT_S = 600  # the agent's own: it ends after this long without a request (a coordinator that vanished)


@functools.cache
def agent_file() -> LocalFile:
    return LocalFile(AGENT_PATH, sha256_file(AGENT_PATH))


def agent_request(job: BenchmarkJob, model: str, eval_data: str | None) -> dict:
    """The agent's request for a job whose files are at `model` and `eval_data` on the device."""
    delegate: dict = {"name": job.delegate.name}
    if job.delegate.library:
        delegate["library"] = job.delegate.library
    if job.delegate.options:
        delegate["options"] = dict(job.delegate.options)
    # The warm agent kills the job's process past timeout_s, or once its reply passes max_reply_bytes.
    request = {"model": model, "delegate": delegate, "threads": job.threads, "warmup_runs": job.warmup_runs,
               "runs": job.runs, "min_secs": job.min_secs, "max_secs": job.max_secs, "timeout_s": job.timeout_s,
               "max_reply_bytes": job.max_reply_bytes}
    if eval_data is not None:
        request["eval"] = eval_data
        if job.eval_limit:
            request["eval_limit"] = job.eval_limit
        if job.eval_outputs:
            request["eval_outputs"] = True
    return request


def request_line(request: dict) -> bytes:
    """A request as the agent reads it from a stdin that stays open: one line of JSON."""
    return json.dumps(request).encode() + b"\n"


def decoded(stdout: bytes) -> str:
    """The agent's output as text: the agent writes UTF-8 JSON, so anything else is a failed job (not a lost device)."""
    try:
        return stdout.decode("utf-8")
    except UnicodeDecodeError as error:
        raise JobFailed(f"agent output is not UTF-8 (byte {error.start})") from None


class ReplyTooLarge(JobFailed):
    """A device sent back more than the sweep allows for one job."""

    def __init__(self, limit: int):
        super().__init__(f"agent reply: more than {limit / (1 << 20):g} MB (max_reply_bytes)")


class Capped:
    """Bytes read from a stream up to a limit: past it, ReplyTooLarge (stdout) or only the tail is kept (stderr)."""

    def __init__(self, limit: int, keep_tail: bool = False):
        self.limit, self.keep_tail = limit, keep_tail
        self.chunks: list[bytes] = []
        self.size = 0

    def add(self, chunk: bytes) -> None:
        self.size += len(chunk)
        self.chunks.append(chunk)
        if self.size > self.limit:
            if not self.keep_tail:
                raise ReplyTooLarge(self.limit)
            tail = b"".join(self.chunks)[-self.limit:]
            self.chunks, self.size = [tail], len(tail)

    def bytes(self) -> bytes:
        return b"".join(self.chunks)

    async def drain(self, stream) -> None:
        """Read an asyncio or asyncssh stream to its end into this cap."""
        while chunk := await stream.read(1 << 16):
            self.add(chunk)


async def together(*steps) -> None:
    """Await every step; the first failure cancels the others, so no reader outlives the exchange it belongs to."""
    tasks = [asyncio.ensure_future(step) for step in steps]
    try:
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()


STDERR_TAIL = 64 << 10  # of a process's stderr, only the end is kept: the reason is in its last lines


class AgentStopped(DeviceLost):
    """The warm agent ended (or broke its answer off) while the device itself still answers."""


class WarmAgent:
    """An agent started with --serve on a device: it imported numpy and the runtimes once, and runs each job in a
    child forked for it (a runtime that crashes ends that child, never the lane). It ends when its stdin does, so a
    coordinator that dies takes its jobs with it.

    Everything it sends is the device's word: each answer's header is checked and bounded before a byte more is read,
    and after any failure to read a whole answer the agent is closed (the stream's place is lost); the next job
    starts a new one."""

    def __init__(self, stdin, stdout, stderr, stop: Callable[[], Awaitable[None]]):
        self.stdin, self.stdout = stdin, stdout
        self.errors = Capped(STDERR_TAIL, keep_tail=True)  # its own stderr: why it stopped, if it does
        self._errors = asyncio.ensure_future(self.errors.drain(stderr))
        self._stop = stop
        self.last_used = time.monotonic()

    def stale(self) -> bool:
        """Idle for so long that it may be ending on its own: a new one is started rather than asked."""
        return time.monotonic() - self.last_used > IDLE_EXIT_S / 2

    async def ask(self, request: dict, limit: int) -> RawResult:
        """The agent's answer to one request (a job, or {"probe": true}): RawResult as a one-shot agent's run would
        give; TimeoutError or ReplyTooLarge when the agent killed the job for it; JobFailed for an answer that breaks
        the protocol; DeviceLost when the agent is gone."""
        try:
            self.stdin.write(request_line(dict(request, max_reply_bytes=limit)))
            await self.stdin.drain()
            header = await self.stdout.readexactly(SERVE_HEADER_BYTES)
        except (asyncio.IncompleteReadError, BrokenPipeError, ConnectionResetError):
            raise AgentStopped(f"agent stopped{self.last_words()}") from None
        code, out_bytes, err_bytes, why = read_header(header, limit)
        try:
            out = await self.stdout.readexactly(out_bytes)
            err = await self.stdout.readexactly(err_bytes)
        except asyncio.IncompleteReadError:
            raise AgentStopped(f"agent stopped in the middle of an answer{self.last_words()}") from None
        self.last_used = time.monotonic()
        if why == "timeout":
            raise TimeoutError(f"no result within {request.get('timeout_s', 0):g} s")
        if why == "too_large":
            raise ReplyTooLarge(limit)
        return RawResult(AGENT, decoded(out), err.decode(errors="replace"), code)

    def last_words(self) -> str:
        words = one_line(self.errors.bytes().decode(errors="replace")[-300:])
        return f": {words}" if words else ""

    async def close(self) -> None:
        self._errors.cancel()
        await asyncio.wait([self._errors], timeout=1)  # its reader gone before stop() empties the pipes
        await self._stop()


def read_header(header: bytes, limit: int) -> tuple[int, int, int, str | None]:
    """(exit, out, err, why) of a warm agent's answer header, each checked: the lengths bound what is read next."""
    try:
        fields = json.loads(header.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        raise JobFailed(f"agent reply: not an answer header: {header[:40]!r}") from None
    if not isinstance(fields, dict) or set(fields) != {"exit", "out", "err", "why"}:
        raise JobFailed(f"agent reply: not an answer header: {header[:40]!r}")
    code, out, err, why = fields["exit"], fields["out"], fields["err"], fields["why"]
    if not all(type(value) is int for value in (code, out, err)) or not -64 <= code <= 255:
        raise JobFailed(f"agent reply: header: exit, out and err must be small integers: {header[:60]!r}")
    if why not in (None, "timeout", "too_large"):
        raise JobFailed(f"agent reply: header: unknown why: {str(why)[:40]!r}")
    if out > limit:
        raise ReplyTooLarge(limit)
    if out < 0 or not 0 <= err <= STDERR_TAIL:
        raise JobFailed(f"agent reply: header: out and err must be between 0 and their caps: {header[:60]!r}")
    return code, out, err, why
