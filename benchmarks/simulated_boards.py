"""Simulated Linux boards for benchmarks/scale.py: one process of asyncssh servers that answers, for hundreds of
devices at once, exactly the commands farm's SSH transport (farm/transports/ssh.py) sends to a board. Benchmark code:
nothing here runs a model, and it trusts its client.

Every device is its own SSH connection to this process's one port, told apart by its user name. Per device it keeps
the files uploaded to it (path and sha256, so a second sweep would find them) and, for each job, when its request
arrived and when its answer was sent (time.time(); the coordinator is on this machine).

    python benchmarks/simulated_boards.py --host-key KEY --authorized-keys FILE --replies replies.json --job-secs S

replies.json holds what the real agent printed once on this machine: {"probe": its --probe facts, "result": a job's
result}. Each job is answered after sleeping S seconds, with that result made the request's (model path, delegate,
threads). Prints {"port": N} once it listens; when its stdin ends it prints one line of JSON, {"jobs": {device:
[[request_at, answer_at], ...]}, "cpu_s": this process's CPU seconds}, and exits.
"""
from __future__ import annotations

import argparse
import asyncio
import copy
import hashlib
import json
import re
import resource
import shlex
import sys
import time

import asyncssh

HEADER_BYTES = 128  # the warm agent's answer header (agents/litert_agent.py serve())
SHA256 = re.compile(r"\b[0-9a-f]{64}\b")


class Boards:
    """Every simulated device of this process: the files each was sent, and the times of each of its jobs."""

    def __init__(self, probe: dict, result: dict, job_secs: float):
        self.probe, self.result, self.job_secs = probe, result, job_secs
        self.files: dict[str, dict[str, str]] = {}  # device -> remote path -> sha256 of what arrived
        self.jobs: dict[str, list[tuple[float, float]]] = {}

    async def handle(self, process: asyncssh.SSHServerProcess) -> None:
        """One command of one device, matched by the distinctive part of what the transport sends."""
        device = process.get_extra_info("username")
        command = process.command or ""
        status = 0
        try:
            if command.endswith(" --serve"):
                await self.serve(process, device)
            elif command.startswith("cat > "):
                status = await self.receive(process, device, command)
            elif command.startswith("sha256sum -- "):
                path = shlex.split(command)[2]
                sha256 = self.files.get(device, {}).get(path)
                if sha256:
                    process.stdout.write(f"{sha256}  {path}\n".encode())
            elif 'mkdir -p -- "$ws/files"' in command:  # the workspace, and no venv line: python3 runs the agent
                process.stdout.write(f"/sim/{device}\n".encode())
            elif "thermal_zone" in command or "scaling_governor" in command:
                pass  # a board without thermal zones or cpufreq policies
            else:
                process.stderr.write(f"simulated board: unknown command: {command[:80]}\n".encode())
                status = 127
        except (asyncssh.Error, ConnectionError, asyncio.IncompleteReadError):
            status = 255  # the coordinator went away mid-command
        process.exit(status)

    async def receive(self, process: asyncssh.SSHServerProcess, device: str, command: str) -> int:
        """An upload: stdin to its end, kept under its final name when it hashes to the sha256 the command names."""
        data = await process.stdin.read()
        tokens = shlex.split(command)
        remote = tokens[tokens.index("mv") + 4]  # mv -f -- <partial> <remote>
        sha256 = hashlib.sha256(data).hexdigest()
        if sha256 != SHA256.search(command).group():
            process.stderr.write(b"the copy that arrived does not hash to its sha256\n")
            return 1
        self.files.setdefault(device, {})[remote] = sha256
        return 0

    async def serve(self, process: asyncssh.SSHServerProcess, device: str) -> None:
        """The warm agent: a request per line, each answered with the 128-byte header and the reply."""
        jobs = self.jobs.setdefault(device, [])
        while line := await process.stdin.readline():
            request = json.loads(line)
            if request.get("probe"):
                out = json.dumps(dict(self.probe, hostname=device)).encode() + b"\n"
            else:
                arrived = time.time()
                await asyncio.sleep(self.job_secs)
                out = self.reply(request)
                jobs.append((arrived, time.time()))
            header = json.dumps({"exit": 0, "out": len(out), "err": 0, "why": None}).encode()
            process.stdout.write(header.ljust(HEADER_BYTES - 1) + b"\n" + out)

    def reply(self, request: dict) -> bytes:
        result = copy.deepcopy(self.result)
        result["model"]["path"] = request["model"]
        result["delegate"]["name"] = request["delegate"]["name"]
        result["threads"] = request["threads"]
        result["agent_ms"] = round(self.job_secs * 1000, 3)
        return json.dumps(result).encode() + b"\n"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host-key", required=True)
    parser.add_argument("--authorized-keys", required=True)
    parser.add_argument("--replies", required=True, help="JSON: the real agent's probe facts and one job's result")
    parser.add_argument("--job-secs", type=float, required=True)
    parser.add_argument("--backlog", type=int, default=4096, help="pending connects the listening socket holds")
    args = parser.parse_args()
    # A connection per device: a thousand of them need more descriptors than the usual soft limit.
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    with open(args.replies) as f:
        replies = json.load(f)
    boards = Boards(replies["probe"], replies["result"], args.job_secs)
    server = await asyncssh.listen("127.0.0.1", 0, server_host_keys=[args.host_key],
                                   authorized_client_keys=args.authorized_keys, process_factory=boards.handle,
                                   encoding=None, backlog=args.backlog)
    print(json.dumps({"port": server.get_port()}), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until the benchmark closes it
    server.close()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"jobs": boards.jobs, "cpu_s": usage.ru_utime + usage.ru_stime}), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
