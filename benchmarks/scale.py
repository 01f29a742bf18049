"""What one coordinator costs as its farm grows: 10, 100 and 1,000 Linux boards, 10 jobs each.

The boards are simulated (benchmarks/simulated_boards.py): asyncssh servers in a few processes of their own, each
device its own SSH connection, host key checked against a known_hosts file made for the run, answering the commands of
farm's SSH transport and the warm agent's protocol with what the real agent printed once on this machine, after a
fixed job duration. The coordinator is the real one (farm.run.SweepRunner, a SQLite store, a spec and an inventory of
`kind: linux` devices, the live display `farm sweep run` shows on a terminal, drawn to /dev/null), in a fresh process
per size, so that its peak RSS and CPU time are its own. Printed per size:

  * makespan / lower bound: the sweep's wall time (connecting every device included) over the busiest lane's job time,
    10 x the job duration (goal at 1,000: <= 1.10)
  * peak RSS of the coordinator's process (goal at 1,000: <= 1 GB)
  * the coordinator's CPU seconds per job, over the sweep's run (its imports and the sweep's creation left out)
  * lane gap p50 and p99: on a device, from one job's answer to the next job's request, as the device saw them
  * the store's size (the database and its write-ahead log)
  * last start: when the last device got its first job, from the sweep's start (what connecting them all took)

The default job duration, 30 s, puts the lower bound at 300 s. Starting a device costs the coordinator 10-15 ms of
CPU (the SSH handshake, the workspace, the agent's upload and start, the model's upload) and the simulated boards,
on the same 2 cores, about as much again: a thousand devices took 12-16 s to start here, whatever the coordinator
does between jobs. At 30 s jobs that fixed cost is about 5 % of the lower bound, and what the goal's 10 % measures is
mostly the coordinator's work between jobs; at 5 s jobs the start alone is a quarter of it (ratio 1.28 at 1,000).
CPU per job at 10 devices is mostly what the coordinator spends per second rather than per job (the display's redraws
and the SSH keepalives), spread over few jobs.

    .venv/bin/python benchmarks/scale.py [--sizes 10,100,1000] [--job-secs 30] [--servers 2]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
JOBS_PER_DEVICE = 10
BOARDS = Path(__file__).with_name("simulated_boards.py")


def raise_file_limit() -> None:
    """A connection per device: a thousand of them need more descriptors than the usual soft limit."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


# --------------------------------------------------------------------------------------------------------------------
# The coordinator, one size, in its own process


def child(workdir: Path) -> None:
    """Run the sweep of workdir/sweep.yaml as `farm sweep run` does, and print one line of JSON about it."""
    from rich.console import Console

    from farm.inventory import load_inventory
    from farm.plan import load_spec
    from farm.progress import SweepDisplay
    from farm.run import SweepRunner
    from farm.store import Store
    from farm.sweep import create_sweep

    raise_file_limit()
    spec = load_spec(workdir / "sweep.yaml")
    store = Store(workdir / "farm.db")
    sweep = create_sweep(store, spec, "sweep.yaml", log=lambda line: None)
    devices = {d.name: d for d in load_inventory(*spec.inventory).devices}
    with open(os.devnull, "w") as screen:
        console = Console(file=screen, force_terminal=True, width=120, height=50)
        with SweepDisplay(sweep.name, store.counts(sweep.id), console) as display:
            runner = SweepRunner(store, sweep, spec, devices, display.notify)
            before, start, started_at = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter(), time.time()
            asyncio.run(runner.run())
            makespan, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF)
    store_bytes = sum(path.stat().st_size for path in workdir.glob("farm.db*") if path.is_file())
    problems = Counter(f"{row['status']}: {row['error']}" for row in store.report(sweep.id) if row["status"] != "done")
    print(json.dumps({"makespan_s": makespan, "started_at": started_at, "counts": runner.counts,
                      "problems": problems.most_common(5),
                      "cpu_s": after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime,
                      "rss_mb": after.ru_maxrss / 1024, "store_mb": store_bytes / 1e6}), flush=True)


# --------------------------------------------------------------------------------------------------------------------
# The benchmark


def write_keys(tmp: Path) -> tuple[Path, str, Path, Path]:
    """(host key, its public key as known_hosts lists it, client key, authorized_keys), made for this run."""
    import asyncssh

    host_key, client_key = asyncssh.generate_private_key("ssh-ed25519"), asyncssh.generate_private_key("ssh-ed25519")
    host_key.write_private_key(tmp / "host_key")
    client_key.write_private_key(tmp / "client_key")
    (tmp / "client_key").chmod(0o600)
    (tmp / "authorized_keys").write_bytes(client_key.export_public_key())
    host_public = host_key.export_public_key().decode().strip()
    return tmp / "host_key", host_public, tmp / "client_key", tmp / "authorized_keys"


def capture_replies(model: Path, path: Path) -> None:
    """What the real agent prints on this machine: its probe, and one job's result on the model (50 samples)."""
    from farm import AGENT_PATH

    def agent(*args: str, request: str = "") -> dict:
        run = subprocess.run([sys.executable, str(AGENT_PATH), *args], input=request, capture_output=True, text=True,
                             check=True, timeout=120)
        return json.loads(run.stdout)

    request = {"model": str(model), "delegate": {"name": "xnnpack"}, "threads": 1, "warmup_runs": 5, "runs": 50}
    path.write_text(json.dumps({"probe": agent("--probe"), "result": agent(request=json.dumps(request))}))


class Servers:
    """The processes of simulated boards, started for one size."""

    def __init__(self, count: int, host_key: Path, authorized_keys: Path, replies: Path, job_secs: float):
        self.processes = [subprocess.Popen(
            [sys.executable, str(BOARDS), "--host-key", str(host_key), "--authorized-keys", str(authorized_keys),
             "--replies", str(replies), "--job-secs", str(job_secs)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) for _ in range(count)]
        self.ports = [json.loads(process.stdout.readline())["port"] for process in self.processes]

    def stop(self) -> tuple[dict[str, list], float]:
        """Each device's jobs as (request_at, answer_at), and the servers' CPU seconds."""
        jobs, cpu_s = {}, 0.0
        for process in self.processes:
            process.stdin.close()
            report = json.loads(process.stdout.readline() or "{}")
            jobs.update(report.get("jobs", {}))
            cpu_s += report.get("cpu_s", 0.0)
            process.wait(timeout=30)
        return jobs, cpu_s


def lane_gaps_ms(jobs: dict[str, list]) -> list[float]:
    """On each device, from one job's answer to the next job's request."""
    gaps = []
    for times in jobs.values():
        times = sorted(times)
        gaps += [(arrived - answered) * 1000 for (_, answered), (arrived, _) in zip(times, times[1:])]
    return gaps


def percentile(values: list[float], share: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(share * len(values)))] if values else float("nan")


def measure(size: int, tmp: Path, keys: tuple[Path, str, Path, Path], model: Path, replies: Path,
            args: argparse.Namespace) -> dict:
    """One size: its boards started, its coordinator run in a fresh process, the boards' timings read."""
    host_key, host_public, client_key, authorized_keys = keys
    workdir = tmp / f"size-{size}"
    workdir.mkdir()
    servers = Servers(min(args.servers, size), host_key, authorized_keys, replies, args.job_secs)
    try:
        (workdir / "known_hosts").write_text("".join(f"[127.0.0.1]:{port} {host_public}\n" for port in servers.ports))
        devices = [{"name": f"d{i:04d}", "kind": "linux", "host": "127.0.0.1", "user": f"d{i:04d}",
                    "port": servers.ports[i % len(servers.ports)], "key": str(client_key),
                    "known_hosts": str(workdir / "known_hosts"), "delegates": ["xnnpack"]} for i in range(size)]
        (workdir / "lab.yaml").write_text(yaml.safe_dump({"devices": devices}))
        (workdir / "sweep.yaml").write_text(yaml.safe_dump({
            "name": "scale", "inventory": [str(workdir / "lab.yaml")],
            "models": [{"name": "tiny", "source": str(model), "variants": ["fp32"]}],
            "delegates": ["xnnpack"], "threads": [1], "repeats": JOBS_PER_DEVICE, "runs": 50}))
        run = subprocess.run([sys.executable, __file__, "--child", str(workdir)], capture_output=True, text=True,
                             env=dict(os.environ, FARM_CACHE=str(tmp / "cache")))
    finally:
        jobs, servers_cpu_s = servers.stop()
    if run.returncode != 0:
        sys.exit(f"the coordinator of {size} devices failed:\n{run.stderr[-3000:]}")
    found = json.loads(run.stdout.splitlines()[-1])
    for problem, count in found["problems"]:  # a sweep that did not run all its jobs measured something else
        print(f"{size} devices: {count} jobs {problem}", file=sys.stderr)
    gaps = lane_gaps_ms(jobs)
    done = found["counts"]["done"]
    first_jobs = [min(times)[0] for times in jobs.values() if times]
    return {"devices": size, "jobs": done, "makespan_s": found["makespan_s"],
            "lower_bound_s": JOBS_PER_DEVICE * args.job_secs, "rss_mb": found["rss_mb"],
            "cpu_ms_per_job": found["cpu_s"] / max(done, 1) * 1000, "gap_p50_ms": percentile(gaps, 0.5),
            "gap_p99_ms": percentile(gaps, 0.99), "store_mb": found["store_mb"],
            "last_start_s": max(first_jobs) - found["started_at"] if first_jobs else float("nan"),
            "counts": found["counts"], "servers_cpu_s": servers_cpu_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,100,1000", help="device counts, comma-separated")
    parser.add_argument("--job-secs", type=float, default=30.0, help="how long each simulated job takes")
    parser.add_argument("--servers", type=int, default=2, help="processes of simulated boards")
    parser.add_argument("--child", metavar="WORKDIR", help=argparse.SUPPRESS)  # the coordinator of one size
    args = parser.parse_args()
    if args.child:
        child(Path(args.child))
        return

    from phone.models import tiny_mlp  # (the test suite's TensorFlow-free .tflite writer)

    raise_file_limit()
    rows = []
    with tempfile.TemporaryDirectory(prefix="farm-scale-") as tmp:
        tmp = Path(tmp)
        keys = write_keys(tmp)
        model = tiny_mlp(tmp / "tiny.tflite", sizes=(16, 32, 10))
        capture_replies(model, tmp / "replies.json")
        for size in (int(n) for n in args.sizes.split(",")):
            row = measure(size, tmp, keys, model, tmp / "replies.json", args)
            rows.append(row)
            print(f"{size} devices: {json.dumps(row)}", file=sys.stderr, flush=True)
    header = ("devices", "jobs", "makespan s", "lower bound s", "ratio", "peak RSS MB", "CPU ms/job", "gap p50 ms",
              "gap p99 ms", "store MB", "last start s")
    print(("{:>14}" * len(header)).format(*header))
    for row in rows:
        print(("{:>14}" * len(header)).format(
            row["devices"], row["jobs"], f"{row['makespan_s']:.1f}", f"{row['lower_bound_s']:.1f}",
            f"{row['makespan_s'] / row['lower_bound_s']:.3f}", f"{row['rss_mb']:.0f}", f"{row['cpu_ms_per_job']:.1f}",
            f"{row['gap_p50_ms']:.1f}", f"{row['gap_p99_ms']:.1f}", f"{row['store_mb']:.2f}",
            f"{row['last_start_s']:.1f}"))
    print(f"goals at 1,000 devices: ratio <= 1.10, peak RSS <= 1024 MB; job duration {args.job_secs:g} s, "
          f"{JOBS_PER_DEVICE} jobs per device")


if __name__ == "__main__":
    main()
