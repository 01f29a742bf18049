"""The agent as local and SSH devices run it: its file, with its digest, and the JSON request it reads."""
from __future__ import annotations

import asyncio
import functools
import json

from farm import AGENT_PATH
from farm.paths import sha256_file
from farm.results import JobFailed
from farm.transports import BenchmarkJob, LocalFile


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
    # The transport keeps the agent's stdin open until the reply: if the coordinator dies, the agent goes with it.
    request = {"model": model, "delegate": delegate, "threads": job.threads, "warmup_runs": job.warmup_runs,
               "runs": job.runs, "min_secs": job.min_secs, "max_secs": job.max_secs, "exit_with_coordinator": True}
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
