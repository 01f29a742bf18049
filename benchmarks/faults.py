"""Real faults injected into real sweeps, and what the store holds afterwards.

Each fault below is repeated --reps times (10 by default). A repetition is one small sweep (a 25 MB MLP or two 1.6 MB
ones, a few jobs per device, a few hundred runs per job) with the fault injected at the chosen moment, then the fault
healed and the sweep resumed until it is done (at most 3 resumes). Everything is real: OpenSSH servers of the test
fleet (tests/fleet), simulated phones speaking the real ADB protocol to a real adb server (tests/phone), the real agent
and LiteRT, the real store; the coordinator runs in this process (farm.sweep.run_sweep), except for the rows where the
coordinator itself is killed, which drive `python -m farm sweep run` and `farm sweep resume` as subprocesses.

    sshd-kill             a board's sshd and all its sessions SIGKILLed while its agent measures; back 0.5 s after
                          the coordinator noticed
    sigstop               a board frozen (SIGSTOP of sshd and its sessions) while its agent measures; thawed 0.5 s
                          after the coordinator noticed
    link-drop             a board in a network namespace this script creates, behind a veth pair: the host end set
                          down while its agent measures (packets vanish, no reset); up again 0.5 s after detection
    phone-kill-push       a phone killed while the coordinator pushes the model to it; restarted and reconnected
    phone-kill-run        a phone killed while benchmark_model runs on it; restarted and reconnected
    adb-restart           `adb kill-server` while a phone runs benchmark_model; the server started again and the
                          phones reconnected
    coordinator-kill-upload  `farm sweep run` SIGKILLed (its process group) while it uploads the model to a board,
                          once a random share (2-95 %) of the model's bytes is there
    coordinator-kill-job     ... at a random moment while the board's agent runs
    coordinator-kill-commit  ... 0-50 ms after the board's agent exited (its reply read, parsed, committed: the
                          commit lands some 20-65 ms after the exit here, so the kills fall on both sides of it)
                          (then `farm sweep resume` until done; every repetition uses a fresh board workspace, so the
                          agent and model are uploaded again, and a local device runs beside the board)
    disk-full             a board whose workspace is a small tmpfs, filled up while the first model's job runs: the
                          second model's upload meets ENOSPC; the space is freed after the sweep, then resume
    hostile-reply         a board whose "python" replays replies crafted by hypothesis (tests/hostile), beside a
                          healthy board; --replies in all, spread over the repetitions (hypothesis's first example,
                          its simplest: the same missing field in every reply, is drawn but not run)

The table (stdout), one row per fault:

    reps       repetitions in which the fault was really injected at the chosen moment
    lost       jobs that should have ended done but have no result after the resumes, plus result rows that were
               stored once and later disappeared. Should end done: every job of a healthy device, and every job of a
               healed device (in those rows a job that failed is lost too, since `farm sweep resume` does not retry a
               failed job); on the full disk, the jobs of the model already on the board; on the hostile board, none
    dup        jobs with more than one result row, plus jobs run twice at the same time: an agent (or phone run)
               from before the fault still measuring on the device when the retried job's new one starts (seen in
               /proc)
    wrong      stored results that are not a clean measurement: from the hostile device; whose job is not done (or
               a done job without one); whose sample count is not the sweep's `runs` (or not the stored samples'
               count); whose p50 is not the median of its stored samples (or outside min..max where a phone's tool
               stores no samples); or a stored result changed later
    failed     jobs that ended failed with a reason (expected on the full disk and the hostile board)
    detect     seconds from the injection to the moment the coordinator recorded the fault (its job marked for retry
               or failed), median and max over the repetitions. Hostile replies: from the job's start to its failure
               (per reply). Disk full: from the disk filled to the first job failing. Coordinator kills: the time
               `farm sweep resume` took to bring the sweep to done (nobody is left to notice a coordinator's death)

Progress goes to stderr, the table and its notes to stdout. Needs root (network namespace, veth, tmpfs mount) and what
`make test` installs (openssh-server, adb). The default run takes about a quarter of an hour on a 2-core machine.

    sudo .venv/bin/python benchmarks/faults.py [--reps N] [--only FAULT[,FAULT]] [--seed S] [--replies N]
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import math
import os
import random
import re
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable
from unittest import mock

import numpy as np
import yaml
from ai_edge_litert import schema_py_generated as tflite_schema

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from fleet import SshHost, start_fleet  # noqa: E402  (the real sshd fleet of the test suite)
from hostile import Replayer, faults  # noqa: E402  (crafted agent replies)
from phone import CPU_ONLY_BUILD, Lab, write_benchmark_model  # noqa: E402  (simulated phones, real adb server)
from phone.models import tiny_mlp  # noqa: E402
from phone.phone import PHONE_TAG_VAR, tagged_processes  # noqa: E402

from farm.plan import parse_spec  # noqa: E402
from farm.store import Store  # noqa: E402
from farm.sweep import create_sweep, run_sweep  # noqa: E402

MAX_RESUMES = 3
HEAL_AFTER_DETECT_S = 0.5
DETECT_TIMEOUT_S = 45.0  # a fault not noticed by then is healed anyway (and reported as undetected)
ARM_TIMEOUT_S = 90.0  # waiting for the moment to inject
PHONE_ROOT = "/data/local/tmp/tflite-farm"
HOSTILE_LIMIT = 256 << 10  # max_reply_bytes of the hostile sweeps (as tests/test_hostile_board.py)
SSH_RUNS, PHONE_RUNS, COORDINATOR_RUNS, DISK_RUNS, HOSTILE_RUNS = 200, 200, 200, 2000, 50

FAULTS = ["sshd-kill", "sigstop", "link-drop", "phone-kill-push", "phone-kill-run", "adb-restart",
          "coordinator-kill-upload", "coordinator-kill-job", "coordinator-kill-commit", "disk-full", "hostile-reply"]


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------------------------------
# Processes, from /proc


def _stat_state(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0].decode()
    except (OSError, IndexError):
        return None


def alive(pid: int) -> bool:
    state = _stat_state(pid)
    return state is not None and state not in ("Z", "X")


def running(pid: int) -> bool:
    """Alive and not stopped (a frozen process measures nothing)."""
    state = _stat_state(pid)
    return state is not None and state not in ("Z", "X", "T", "t")


def _argv(pid: int) -> list[bytes]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().split(b"\0")
    except OSError:
        return []


def agent_pids(workspace: Path) -> set[int]:
    """The agents measuring now with their file in this board workspace (not probes, not the `timeout` wrapper)."""
    prefix = str(workspace).encode() + b"/"
    found = set()
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        argv = _argv(int(name))
        if len(argv) >= 2 and argv[1].startswith(prefix) and argv[1].endswith(b".py") and b"--probe" not in argv \
                and alive(int(name)):
            found.add(int(name))
    return found


def phone_runs(phone) -> set[int]:
    """benchmark_model runs (not the accuracy loop's single runs) on a simulated phone now."""
    found = set()
    for pid in tagged_processes(PHONE_TAG_VAR, phone.tag):
        argv = _argv(pid)
        if argv and os.path.basename(argv[0]) != b"timeout" and any(arg.startswith(b"--graph=") for arg in argv) \
                and b"--num_runs=1" not in argv and alive(pid):
            found.add(pid)
    return found


def poll(check: Callable[[], object], timeout: float, interval: float = 0.002,
         stop: threading.Event | None = None) -> object:
    """check()'s first true value within timeout (None when it never came, or when `stop` is set)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        if stop is not None and stop.is_set():
            return check() or None
        time.sleep(interval)
    return None


def ip(*args: str, netns: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    command = (["ip", "netns", "exec", netns] if netns else []) + ["ip", *args]
    return subprocess.run(command, check=check, capture_output=True, text=True, timeout=30)


# --------------------------------------------------------------------------------------------------------------------
# What the coordinator said, and what the store holds


class Watch:
    """The coordinator's events (farm.run.Event), each with the monotonic time it was told."""

    def __init__(self):
        self.events: list[tuple[float, object]] = []
        self.cond = threading.Condition()
        self.finished = threading.Event()  # the faulted run is over

    def __call__(self, event) -> None:
        with self.cond:
            self.events.append((time.monotonic(), event))
            self.cond.notify_all()

    def first(self, predicate: Callable[[object], bool], after: float, timeout: float):
        """(time, event) of the first event at or after `after` that matches; None within timeout."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for at, event in self.events:
                    if at >= after and predicate(event):
                        return at, event
                left = deadline - time.monotonic()
                if left <= 0 or self.finished.is_set():
                    return None
                self.cond.wait(min(left, 0.2))


class Overlap(threading.Thread):
    """Watches the measuring processes that were on the device when the fault hit (`stale`) until they are gone: if
    one of them still runs (alive, not stopped) while a new one measures there, the job ran twice at the same time."""

    def __init__(self, name: str, stale: set[int], measuring: Callable[[], set[int]], since: float,
                 timeout: float = 120.0):
        super().__init__(daemon=True)
        self.name = name
        self.stale, self.measuring, self.since, self.timeout = set(stale), measuring, since, timeout
        self.count = len(self.stale)
        self.first: float | None = None  # when both ran, seconds after the fault
        self.together = 0.0  # how long both ran (sampled every 20 ms)
        self.gone: float | None = None  # when the last stale process ended, seconds after the fault
        self.stop = threading.Event()

    def run(self) -> None:
        deadline = time.monotonic() + self.timeout
        while self.stale and time.monotonic() < deadline and not self.stop.is_set():
            self.stale = {pid for pid in self.stale if alive(pid)}
            if any(running(pid) for pid in self.stale) and self.measuring() - self.stale:
                self.first = self.first if self.first is not None else time.monotonic() - self.since
                self.together += 0.02
            time.sleep(0.02)
        if not self.stale:
            self.gone = time.monotonic() - self.since

    @property
    def found(self) -> str | None:
        if self.first is None:
            return None
        return (f"a run from before the fault was still measuring {self.first:.2f} s after it, beside the retry's "
                f"new run, for about {self.together:.2f} s")

    def summary(self) -> str:
        if not self.count:
            return "nothing left measuring"
        ended = f"ended {self.gone:.2f} s after the fault" if self.gone is not None else "still there"
        return f"{self.count} process(es) left measuring, {ended}"


def db_rows(db: Path, query: str, args: tuple = ()) -> list[tuple]:
    connection = sqlite3.connect(db, timeout=30)
    try:
        return connection.execute(query, args).fetchall()
    finally:
        connection.close()


def sweep_done(db: Path, sweep: str) -> bool:
    state = db_rows(db, "SELECT state FROM sweeps WHERE name = ?", (sweep,))
    left = db_rows(db, "SELECT count(*) FROM jobs j JOIN sweeps s ON s.id = j.sweep_id WHERE s.name = ? "
                       "AND j.state IN ('pending', 'running')", (sweep,))
    return bool(state) and state[0][0] == "done" and left[0][0] == 0


def results_snapshot(db: Path, sweep: str) -> dict[int, tuple]:
    """result id -> (job id, count, p50) of every result of the sweep now."""
    return {rid: (job, count, p50) for rid, job, count, p50 in db_rows(
        db, "SELECT r.id, r.job_id, r.count, r.p50_ms FROM results r JOIN jobs j ON j.id = r.job_id "
            "JOIN sweeps s ON s.id = j.sweep_id WHERE s.name = ?", (sweep,))}


@dataclass
class Audit:
    lost: int = 0
    duplicated: int = 0
    wrong: int = 0
    failed: int = 0
    problems: list[str] = field(default_factory=list)
    reasons: Counter = field(default_factory=Counter)


def audit(db: Path, sweep: str, runs: int, expect_done: Callable[[str, int], bool],
          hostile: tuple[str, ...] = (), snapshots: tuple[dict, ...] = ()) -> Audit:
    """Count lost, duplicated and wrong results of one sweep (see the module's docstring). expect_done(device,
    variant_id) says whether a job should have ended done."""
    out = Audit()
    lost_jobs = set()
    jobs = db_rows(db, """
        SELECT j.id, j.device, j.variant_id, j.state, j.error, count(r.id) FROM jobs j JOIN sweeps s ON s.id = j.sweep_id
        LEFT JOIN results r ON r.job_id = j.id WHERE s.name = ? GROUP BY j.id ORDER BY j.id""", (sweep,))
    for job_id, device, variant_id, state, error, results in jobs:
        if state == "failed":
            if error:
                out.failed += 1
                out.reasons[f"{device}: {_reason_kind(error)}"] += 1
            else:
                out.problems.append(f"job {job_id} on {device} failed without a reason")
        if expect_done(device, variant_id) and results == 0:
            out.lost += 1
            lost_jobs.add(job_id)
            out.problems.append(f"lost: job {job_id} on {device} ended {state}: {error}")
        if results > 1:
            out.duplicated += results - 1
            out.problems.append(f"duplicated: job {job_id} on {device} has {results} results")
        if state == "done" and results == 0:
            out.wrong += 1
            out.problems.append(f"wrong: job {job_id} on {device} is done without a result")
    stored = db_rows(db, """
        SELECT r.id, r.job_id, j.device, j.state, r.count, r.p50_ms, r.min_ms, r.max_ms, r.runtime, sm.latency_us
        FROM results r JOIN jobs j ON j.id = r.job_id JOIN sweeps s ON s.id = j.sweep_id
        LEFT JOIN samples sm ON sm.result_id = r.id WHERE s.name = ?""", (sweep,))
    now = {}
    for rid, job_id, device, state, count, p50, low, high, runtime, latency in stored:
        now[rid] = (job_id, count, p50)
        why = []
        if device in hostile:
            why.append("stored from the hostile device")
        if state != "done":
            why.append(f"its job is {state}")
        if count != runs:
            why.append(f"{count} samples, the sweep asked for {runs}")
        if runtime == "benchmark_model":  # a phone's tool prints aggregates: no samples to check against
            if p50 is None or not (low <= p50 <= high):
                why.append(f"p50 {p50} outside min {low} .. max {high}")
        elif latency is None:
            why.append("no samples stored")
        else:
            samples = np.asarray(json.loads(latency), dtype=np.float64) / 1000.0
            if samples.size != count:
                why.append(f"count {count} but {samples.size} samples stored")
            elif p50 is None or not math.isclose(p50, float(np.median(samples)), rel_tol=1e-9, abs_tol=1e-12):
                why.append(f"p50 {p50} is not the samples' median {float(np.median(samples))}")
        if why:
            out.wrong += 1
            out.problems.append(f"wrong: result {rid} (job {job_id} on {device}): {'; '.join(why)}")
    for snapshot in snapshots:
        for rid, seen in snapshot.items():
            if rid not in now:
                out.lost += seen[0] not in lost_jobs  # (a job already counted is not counted twice)
                out.problems.append(f"lost: result {rid} of job {seen[0]} disappeared")
            elif now[rid] != seen:
                out.wrong += 1
                out.problems.append(f"wrong: result {rid} changed from {seen} to {now[rid]}")
    return out


def _plain(message: str) -> str:
    """A message without its addresses and byte strings' quoting, to tally alike ones."""
    message = re.sub(r"(phone )?\b\d+\.\d+\.\d+\.\d+:\d+:?\s*", "", message)
    return message.replace("b'", "'").replace("\\n'", "'")[:70].strip()


def _reason_kind(error: str) -> str:
    """A failure reason without what varies between repetitions (addresses, counts), for the notes."""
    for key in ("No space left on device", "device lost", "agent reply", "agent output is not UTF-8",
                "agent exited", "agent killed", "timed out", "probe failed", "device unreachable"):
        if key in error:
            return key
    return error[:60]


# --------------------------------------------------------------------------------------------------------------------
# Rows of the table


@dataclass
class Row:
    fault: str
    reps: int = 0
    lost: int = 0
    duplicated: int = 0
    wrong: int = 0
    failed: int = 0
    detect: list[float] = field(default_factory=list)
    undetected: int = 0
    notes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    reasons: Counter = field(default_factory=Counter)
    not_injected: int = 0
    seconds: float = 0.0
    noticed: Counter = field(default_factory=Counter)  # how the coordinator put the fault, in its own words

    def add(self, result: Audit, rep: int) -> None:
        self.lost += result.lost
        self.duplicated += result.duplicated
        self.wrong += result.wrong
        self.failed += result.failed
        self.reasons.update(result.reasons)
        self.problems.extend(f"rep {rep}: {p}" for p in result.problems)


@dataclass
class Plan:
    """One in-process fault: when it may go in, how, and how it is healed."""

    arm: Callable[[], object]  # polled until true: the moment has come (e.g. an agent measures on the victim)
    delay: tuple[float, float]  # then a random wait, in seconds
    still: Callable[[], bool]  # checked right before injecting: the moment is still on (else wait for the next)
    inject: Callable[[], None]
    heal: Callable[[], None]
    detect_on: tuple[str, ...]  # devices whose job marked for retry or failed is the coordinator noticing
    measuring: dict[str, Callable[[], set[int]]] = field(default_factory=dict)  # per victim: the pids measuring
    heal_after_run: bool = False  # heal once the faulted run is over (else HEAL_AFTER_DETECT_S after detection)
    detect_state: tuple[str, ...] = ("retry", "failed")
    interval: float = 0.01  # how often arm() is polled (it may scan /proc)


@dataclass
class Injected:
    at: float | None = None
    detected: float | None = None
    detail: str = ""
    overlaps: list[Overlap] = field(default_factory=list)  # watching what was left measuring on each device
    error: str | None = None
    said: str | None = None


class Bench:
    def __init__(self, args, folder: Path):
        self.args = args
        self.folder = folder
        self.cleanups: list[tuple[str, Callable[[], None]]] = []
        self._fleet = self._lab = self._link = None
        self.models: dict[str, Path] = {}

    # ---- the lab, started once and on demand

    def build_models(self) -> None:
        folder = self.folder / "models"
        folder.mkdir()
        with mock.patch.object(tflite_schema, "BufferT", _FastBuffer):
            self.models["mlp25"] = tiny_mlp(folder / "mlp25.tflite", sizes=(1024, 2048, 2048, 10))
        self.models["mlp-a"] = tiny_mlp(folder / "mlp-a.tflite", seed=0)
        self.models["mlp-b"] = tiny_mlp(folder / "mlp-b.tflite", seed=1)

    @property
    def fleet(self):
        if self._fleet is None:
            self._fleet = start_fleet(4, self.folder / "fleet")
            self.cleanups.append(("ssh fleet", self._fleet.stop))
        return self._fleet

    @property
    def lab(self) -> Lab:
        if self._lab is None:
            lab = Lab(self.folder / "adb-lab")
            self.cleanups.append(("adb lab", lab.stop))
            lab.start()
            lab.add_phone("pixel")
            lab.add_phone("galaxy", delegates=CPU_ONLY_BUILD)
            self.binary = write_benchmark_model(self.folder / "phone-binaries" / "arm64-v8a" / "benchmark_model")
            self._lab = lab
        return self._lab

    @property
    def link(self) -> tuple[SshHost, str]:
        """A board behind a link of its own: sshd in a network namespace, reached over a veth pair."""
        if self._link is None:
            fleet = self.fleet
            tag = f"{os.getpid() % 100000}"
            netns, outside, inside = f"tflite-farm-faults-{tag}", f"tff{tag}h", f"tff{tag}n"
            subnet = next((n for n in range(231, 255) if f"10.{n}.0." not in ip("-4", "addr").stdout), None)
            if subnet is None:
                raise RuntimeError("no free 10.N.0.0/24 for the veth pair")
            subprocess.run(["ip", "netns", "add", netns], check=True, capture_output=True, timeout=30)
            self.cleanups.append(("network namespace", lambda: subprocess.run(
                ["ip", "netns", "del", netns], capture_output=True, timeout=30)))
            ip("link", "add", outside, "type", "veth", "peer", "name", inside)
            self.cleanups.append(("veth pair", lambda: ip("link", "del", outside, check=False)))
            ip("link", "set", inside, "netns", netns)
            ip("addr", "add", f"10.{subnet}.0.1/24", "dev", outside)
            ip("link", "set", outside, "up")
            ip("link", "set", "lo", "up", netns=netns)
            ip("addr", "add", f"10.{subnet}.0.2/24", "dev", inside, netns=netns)
            ip("link", "set", inside, "up", netns=netns)
            model = fleet[0]
            host = SshHost("linkboard", f"10.{subnet}.0.2", model.port, fleet.root / "hosts" / "linkboard",
                           user=model.user, client_key=fleet.client_key, known_hosts=fleet.known_hosts,
                           sshd=model.sshd, ssh_keygen=model.ssh_keygen, netns=netns)
            host.setup()
            self.cleanups.append(("link board", host.stop))
            host.start()
            fleet.hosts.append(host)  # in the fleet's known_hosts, healed and stopped with it
            fleet.write_known_hosts()
            self._link = (host, outside)
        return self._link

    def close(self) -> None:
        for name, cleanup in reversed(self.cleanups):
            try:
                cleanup()
            except Exception as error:  # noqa: BLE001 - keep cleaning up the rest
                say(f"cleanup of the {name} failed: {error}")
        self.cleanups.clear()

    # ---- in-process sweeps with one fault each

    def write_inventory(self, folder: Path, devices: list[dict]) -> Path:
        path = folder / f"inventory-{len(list(folder.glob('inventory-*')))}.yaml"
        path.write_text(yaml.safe_dump({"devices": devices}))
        return path

    def spec(self, folder: Path, inventory: Path, name: str, models: list[str], runs: int, repeats: int, **extra):
        raw = {"name": name, "inventory": [str(inventory)], "models": [
            {"name": model, "source": str(self.models[model])} for model in models],
            "delegates": ["xnnpack"], "threads": [1], "repeats": repeats, "runs": runs, "warmup_runs": 2, **extra}
        return parse_spec(raw, name).resolve(folder)

    def faulted_rep(self, row: Row, store: Store, db: Path, spec, plan: Plan, rng: random.Random,
                    expect_done: Callable[[str, int], bool], rep: int) -> bool:
        """One sweep with plan's fault, healed, resumed until done, audited into row. False when the fault could
        not be injected at its moment (the sweep ran without it)."""
        sweep = create_sweep(store, spec, spec.name, log=lambda line: None)
        watch, injected = Watch(), Injected()
        injector = threading.Thread(target=self._inject, args=(plan, watch, injected, rng), daemon=True)
        injector.start()
        try:
            run_sweep(store, sweep, watch)
        finally:
            watch.finished.set()
            injector.join(timeout=DETECT_TIMEOUT_S + 30)
            if plan.heal_after_run or injected.at is None or injector.is_alive():
                plan.heal()
        if injected.error:
            raise RuntimeError(f"injection failed: {injected.error}")
        if injected.at is None:
            return False
        snapshot = results_snapshot(db, sweep.name)
        resumes = 0
        while not sweep_done(db, sweep.name) and resumes < MAX_RESUMES:
            resumes += 1
            run_sweep(store, store.sweep(sweep.name), watch)
        result = audit(db, sweep.name, spec.runs, expect_done, snapshots=(snapshot,))
        for overlap in injected.overlaps:
            overlap.join(timeout=120)
            overlap.stop.set()
            injected.detail += f"; on {overlap.name}: {overlap.summary()}"
            if overlap.found:
                result.duplicated += 1
                result.problems.append(f"job run twice at once on {overlap.name}: {overlap.found}")
        row.add(result, rep)
        if injected.detected is None:
            row.undetected += 1
        else:
            row.detect.append(injected.detected)
            row.noticed[injected.said] += 1
        say(f"{row.fault} {rep}: injected{injected.detail}; "
            + (f"detected after {injected.detected:.3f} s" if injected.detected is not None else "not detected")
            + f"; {resumes} resume(s); lost {result.lost}, dup {result.duplicated}, wrong {result.wrong}, "
              f"failed {result.failed}" + "".join(f"\n    {p}" for p in result.problems))
        return True

    def _inject(self, plan: Plan, watch: Watch, injected: Injected, rng: random.Random) -> None:
        """The injector thread: wait for the moment, inject, time the detection, heal."""
        try:
            for _ in range(20):  # the moment may pass during the random wait: then the next one
                if not poll(plan.arm, ARM_TIMEOUT_S, plan.interval, stop=watch.finished):
                    return
                time.sleep(rng.uniform(*plan.delay))
                if plan.still():
                    break
            else:
                return
            injected.at = time.monotonic()
            plan.inject()
            for name, measuring in plan.measuring.items():
                injected.overlaps.append(Overlap(name, measuring(), measuring, injected.at))
                injected.overlaps[-1].start()
            seen = watch.first(lambda e: e.device in plan.detect_on and e.state in plan.detect_state,
                               injected.at, DETECT_TIMEOUT_S)
            if seen is not None:
                injected.detected = seen[0] - injected.at
                injected.said = f"{seen[1].state}: {_plain(str(seen[1].detail))}"
                injected.detail = f" ({seen[1].device}: {seen[1].state}: {str(seen[1].detail)[:90]})"
            if not plan.heal_after_run:
                time.sleep(HEAL_AFTER_DETECT_S)
                plan.heal()
        except Exception:  # noqa: BLE001 - reported by the repetition
            injected.error = traceback.format_exc()

    def repeat(self, row: Row, once: Callable[[int], bool]) -> None:
        """Run once(rep) until row.reps reaches --reps (a repetition whose fault missed its moment is run again)."""
        rep = 0
        while row.reps < self.args.reps and rep < 3 * self.args.reps:
            rep += 1
            try:
                ok = once(rep)
            except Exception:  # noqa: BLE001 - the repetition is reported, not counted, and the row goes on
                row.problems.append(f"rep {rep}: the benchmark itself failed: {traceback.format_exc()[-800:]}")
                say(f"{row.fault} {rep}: the benchmark itself failed:\n{traceback.format_exc()}")
                continue
            if ok:
                row.reps += 1
            else:
                row.not_injected += 1
                say(f"{row.fault} {rep}: the moment passed before the fault went in; the repetition is run again")

    # ---- SSH boards

    def ssh_row(self, fault: str) -> Row:
        row = Row(fault)
        rng = random.Random(f"{self.args.seed}-{fault}")
        folder = self.folder / fault
        folder.mkdir()
        fleet = self.fleet
        bystander = fleet["board2"]
        if fault == "link-drop":
            victim, outside = self.link
        else:
            victim, outside = fleet["board1"], None
        inventory = self.write_inventory(folder, [
            victim.device(python=sys.executable, delegates=["xnnpack"]),
            bystander.device(python=sys.executable, delegates=["xnnpack"])])
        db = folder / "farm.db"
        store = Store(db)

        def measuring() -> set[int]:
            return agent_pids(victim.workspace)

        if fault == "sshd-kill":
            inject, heal = victim.kill, victim.start
        elif fault == "sigstop":
            inject, heal = victim.freeze, victim.thaw
        else:
            inject = lambda: ip("link", "set", "dev", outside, "down")  # noqa: E731
            heal = lambda: ip("link", "set", "dev", outside, "up")  # noqa: E731
        plan = Plan(arm=measuring, delay=(0.1, 0.6), still=lambda: bool(measuring()), inject=inject, heal=heal,
                    detect_on=(victim.name,), measuring={victim.name: measuring})
        try:
            def once(rep: int) -> bool:
                spec = self.spec(folder, inventory, f"{fault}-{rep}", ["mlp25"], SSH_RUNS, 3)
                return self.faulted_rep(row, store, db, spec, plan, rng, lambda device, variant: True, rep)
            self.repeat(row, once)
        finally:
            heal()
            fleet.heal()
        return row

    def disk_row(self) -> Row:
        fault = "disk-full"
        row = Row(fault)
        rng = random.Random(f"{self.args.seed}-{fault}")
        folder = self.folder / fault
        folder.mkdir()
        fleet = self.fleet
        victim, bystander = fleet["board3"], fleet["board2"]
        mount = folder / "tmpfs"
        mount.mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m,mode=0755", "tmpfs", str(mount)], check=True,
                       capture_output=True, timeout=30)
        self.cleanups.append(("tmpfs", lambda: subprocess.run(["umount", "-l", str(mount)], capture_output=True,
                                                              timeout=30)))
        workspace = mount / "workspace"
        filler = mount / "filler"
        inventory = self.write_inventory(folder, [
            victim.device(python=sys.executable, delegates=["xnnpack"], workspace=str(workspace)),
            bystander.device(python=sys.executable, delegates=["xnnpack"])])
        db = folder / "farm.db"
        store = Store(db)
        leftovers = []

        def fill() -> None:
            with open(filler, "ab") as f:
                chunk = b"\0" * (64 << 10)
                try:
                    while True:
                        f.write(chunk)
                        f.flush()
                except OSError:
                    pass

        def free() -> None:
            parts = list((workspace / "files").glob("*.part-*")) if (workspace / "files").is_dir() else []
            leftovers.append(len(parts))
            filler.unlink(missing_ok=True)

        try:
            def once(rep: int) -> bool:
                shutil.rmtree(workspace, ignore_errors=True)  # a fresh workspace: the agent and models go up again
                filler.unlink(missing_ok=True)
                spec = self.spec(folder, inventory, f"{fault}-{rep}", ["mlp-a", "mlp-b"], DISK_RUNS, 2)

                def expect(device: str, variant: int) -> bool:
                    # the disk fills while the first model's job runs: the second model's files never got there
                    return device != victim.name or store.variant_names(variant)[0] == "mlp-a"

                plan = Plan(arm=lambda: agent_pids(workspace), delay=(0.0, 0.1), still=lambda: True, inject=fill,
                            heal=free, detect_on=(victim.name,), heal_after_run=True, detect_state=("failed",))
                return self.faulted_rep(row, store, db, spec, plan, rng, expect, rep)
            self.repeat(row, once)
        finally:
            filler.unlink(missing_ok=True)
        if leftovers:
            row.notes.append(f"partial uploads ('.part-*' files) the failed uploads left in the board's workspace: "
                             f"{sum(leftovers)} in {sum(1 for n in leftovers if n)} of {len(leftovers)} repetitions")
        return row

    # ---- phones

    def phone_row(self, fault: str) -> Row:
        row = Row(fault)
        rng = random.Random(f"{self.args.seed}-{fault}")
        folder = self.folder / fault
        folder.mkdir()
        lab = self.lab
        pixel = lab["pixel"]
        devices = [{"name": name, "kind": "android", "serial": lab[name].serial, "adb_server": f"127.0.0.1:{lab.port}",
                    "binaries": {"arm64-v8a": str(self.binary)}, "delegates": ["xnnpack"]}
                   for name in ("pixel", "galaxy")]
        inventory = self.write_inventory(folder, devices)
        db = folder / "farm.db"
        store = Store(db)

        def measuring() -> set[int]:
            return phone_runs(pixel)

        def model_part() -> bool:
            try:
                return any(name.endswith(".tflite.part") for name in os.listdir(pixel.path(PHONE_ROOT)))
            except OSError:
                return False

        def heal_phone() -> None:
            if not pixel.running:
                pixel.start()
            lab.connect(pixel)

        def restart_server() -> None:
            lab.run_adb("start-server", timeout=60)
            lab.heal()

        if fault == "phone-kill-push":
            plan = Plan(arm=model_part, delay=(0.0, 0.05), still=model_part, inject=pixel.kill, heal=heal_phone,
                        detect_on=("pixel",), interval=0.002)
        elif fault == "phone-kill-run":
            plan = Plan(arm=measuring, delay=(0.1, 0.5), still=lambda: bool(measuring()), inject=pixel.kill,
                        heal=heal_phone, detect_on=("pixel",), measuring={"pixel": measuring})
        else:  # adb-restart
            plan = Plan(arm=measuring, delay=(0.1, 0.5), still=lambda: bool(measuring()),
                        inject=lambda: lab.run_adb("kill-server", timeout=30, check=False), heal=restart_server,
                        detect_on=("pixel", "galaxy"),
                        measuring={"pixel": measuring, "galaxy": lambda: phone_runs(lab["galaxy"])})
        try:
            def once(rep: int) -> bool:
                if fault == "phone-kill-push":  # nothing on the phone yet: the model is pushed in this sweep
                    shutil.rmtree(pixel.path(PHONE_ROOT), ignore_errors=True)
                spec = self.spec(folder, inventory, f"{fault}-{rep}", ["mlp25"], PHONE_RUNS, 2)
                return self.faulted_rep(row, store, db, spec, plan, rng, lambda device, variant: True, rep)
            self.repeat(row, once)
        finally:
            try:
                lab.run_adb("start-server", timeout=60)
                lab.heal()
            except Exception as error:  # noqa: BLE001
                say(f"healing the lab failed: {error}")
        return row

    # ---- the coordinator itself

    def coordinator_row(self, phase: str) -> Row:
        fault = f"coordinator-kill-{phase}"
        row = Row(fault)
        rng = random.Random(f"{self.args.seed}-{fault}")
        folder = self.folder / fault
        folder.mkdir()
        board = self.fleet["board4"]
        db = folder / "farm.db"
        model_sha = _sha256(self.models["mlp25"])
        model_size = self.models["mlp25"].stat().st_size
        landed: Counter = Counter()

        def once(rep: int) -> bool:
            workspace = board.workspace / f"{fault}-{rep}"  # fresh: the agent and the model are uploaded again
            files = workspace / "files"
            inventory = self.write_inventory(folder, [
                board.device(python=sys.executable, delegates=["xnnpack"], workspace=str(workspace)),
                {"name": "local", "kind": "local", "delegates": ["xnnpack"]}])
            name = f"{fault}-{rep}"
            spec = folder / f"{name}.yaml"
            spec.write_text(yaml.safe_dump({
                "name": name, "inventory": [str(inventory)],
                "models": [{"name": "mlp25", "source": str(self.models["mlp25"])}],
                "delegates": ["xnnpack"], "threads": [1], "repeats": 2, "runs": COORDINATOR_RUNS, "warmup_runs": 2}))
            log = open(folder / f"{name}.log", "wb")
            coordinator = subprocess.Popen([sys.executable, "-m", "farm", "sweep", "run", str(spec), "--db", str(db)],
                                           cwd=folder, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            try:
                def uploaded() -> int | None:
                    """Bytes of the model's upload so far (its partial file), None when no upload is under way."""
                    try:
                        parts = [n for n in os.listdir(files) if n.startswith(model_sha) and ".part-" in n]
                        return sum((files / n).stat().st_size for n in parts) if parts else None
                    except OSError:
                        return None

                stop = threading.Event()
                threading.Thread(target=lambda: (coordinator.wait(), stop.set()), daemon=True).start()
                moment = None
                if phase == "upload":  # a random point of the model's upload: when a random share of it is there
                    share = rng.uniform(0.02, 0.95)
                    if poll(lambda: (uploaded() or 0) >= share * model_size, ARM_TIMEOUT_S, 0.001, stop):
                        moment = "upload" if uploaded() is not None else None
                elif phase == "job":  # a random point of an agent's run on the board (the first one still running)
                    for _ in range(10):
                        pids = poll(lambda: agent_pids(workspace), ARM_TIMEOUT_S, 0.005, stop)
                        if not pids:
                            break
                        time.sleep(rng.uniform(0.05, 1.0))
                        if any(alive(pid) for pid in pids):
                            moment = "job"
                            break
                        poll(lambda: not agent_pids(workspace), 30, 0.005, stop)
                else:  # 0-50 ms after the agent exited: its reply read, parsed, committed (or not yet)
                    pids = poll(lambda: agent_pids(workspace), ARM_TIMEOUT_S, 0.005, stop)
                    measured = db_rows(db, "SELECT j.id FROM jobs j JOIN sweeps s ON s.id = j.sweep_id WHERE s.name = ? "
                                           "AND j.device = ? AND j.state = 'running'", (name, board.name)) if pids else []
                    if measured and poll(lambda: not any(alive(pid) for pid in pids), 60, 0.0005, stop):
                        time.sleep(rng.uniform(0.0, 0.05))
                        moment = "commit"
                if moment is None or coordinator.poll() is not None:
                    return False
                os.killpg(coordinator.pid, signal.SIGKILL)
                killed_at = time.monotonic()
                coordinator.wait(timeout=30)
            finally:
                if coordinator.poll() is None:
                    os.killpg(coordinator.pid, signal.SIGKILL)
                    coordinator.wait(timeout=30)
                log.close()
            if phase == "commit":
                # did the kill land before or after the measured job's result was committed?
                state = db_rows(db, "SELECT state FROM jobs WHERE id = ?", (measured[0][0],))[0][0]
                moment = "commit (after it)" if state == "done" else f"commit (before it: job {state})"
            landed[moment] += 1
            survivors = agent_pids(workspace)
            leftover_parts = [p.name for p in files.glob("*.part-*")] if files.is_dir() else []
            truncated = [p.name for p in files.glob("*.tflite") if p.stat().st_size != model_size]
            overlap = Overlap(board.name, survivors, lambda: agent_pids(workspace), killed_at)
            overlap.start()
            snapshot = results_snapshot(db, name)
            started = time.monotonic()
            resumes = 0
            while resumes < MAX_RESUMES and not sweep_done(db, name):
                resumes += 1
                with open(folder / f"{name}.log", "ab") as log:
                    log.write(f"\n--- farm sweep resume {name} ({resumes})\n".encode())
                    log.flush()
                    code = subprocess.run([sys.executable, "-m", "farm", "sweep", "resume", name, "--db", str(db)],
                                          cwd=folder, stdout=log, stderr=subprocess.STDOUT, timeout=600,
                                          check=False).returncode
                if code not in (0, 1):
                    tail = (folder / f"{name}.log").read_text(errors="replace")[-500:]
                    row.problems.append(f"rep {rep}: farm sweep resume exited {code}: {tail}")
            took = time.monotonic() - started
            overlap.join(timeout=60)
            overlap.stop.set()
            result = audit(db, name, COORDINATOR_RUNS, lambda device, variant: True, snapshots=(snapshot,))
            if overlap.found:
                result.duplicated += 1
                result.problems.append(f"job run twice at once on {overlap.name}: {overlap.found}")
            if not sweep_done(db, name):
                result.problems.append(f"sweep not done after {resumes} resumes")
            row.add(result, rep)
            row.detect.append(took)
            if truncated:
                landed["a truncated model left under its final name"] += 1
            say(f"{fault} {rep}: killed at: {moment}; on the board: {overlap.summary()}; "
                f"{len(leftover_parts)} partial upload(s) left"
                f"{', truncated model under its final name' if truncated else ''}; "
                f"{resumes} resume(s) took {took:.2f} s; lost {result.lost}, dup {result.duplicated}, "
                f"wrong {result.wrong}" + "".join(f"\n    {p}" for p in result.problems))
            if survivors:
                landed["an agent outlived the coordinator on the board"] += 1
            return True

        self.repeat(row, once)
        row.notes.append("where the kills landed: " + ", ".join(f"{k}: {v}" for k, v in sorted(landed.items())))
        start = time.monotonic()
        subprocess.run([sys.executable, "-m", "farm", "sweep", "status", "--db", str(db)], cwd=folder,
                       capture_output=True, timeout=300, check=False)
        row.notes.append(f"of each resume's time, the command's own start (`farm sweep status` alone) takes "
                         f"{time.monotonic() - start:.1f} s here")
        return row

    # ---- hostile replies

    def hostile_row(self) -> Row:
        from hypothesis import HealthCheck, Phase, given, seed, settings
        from hypothesis import strategies as st

        fault = "hostile-reply"
        row = Row(fault)
        folder = self.folder / fault
        folder.mkdir()
        fleet = self.fleet
        replayer = Replayer(folder / "replies", agent_python=sys.executable)
        liar, healthy = fleet["board1"], fleet["board2"]
        inventory = self.write_inventory(folder, [
            liar.device(name="liar", python=str(replayer.script), delegates=["xnnpack"]),
            healthy.device(python=sys.executable, delegates=["xnnpack"])])
        db = folder / "farm.db"
        store = Store(db)
        spec = self.spec(folder, inventory, "hostile", ["mlp-a"], HOSTILE_RUNS, 1, max_reply_bytes=HOSTILE_LIMIT)
        first = create_sweep(store, spec, "hostile", log=lambda line: None)  # records the model and the devices
        variant_id = store.jobs(first.id)[0].variant_id
        per_sweep = max(1, -(-self.args.replies // self.args.reps))
        mismatched: list[str] = []
        kinds: Counter = Counter()

        def job(device: str, repeat: int) -> dict:
            return {"device": device, "variant_id": variant_id, "delegate": "xnnpack", "threads": 1,
                    "repeat": repeat, "state": "pending", "error": None}

        drawn = []

        @seed(self.args.seed)
        @settings(max_examples=self.args.reps + 1, deadline=None, database=None, phases=[Phase.generate],
                  suppress_health_check=list(HealthCheck))
        @given(replies=st.lists(faults(HOSTILE_LIMIT), min_size=per_sweep, max_size=per_sweep))
        def sweep_with(replies) -> None:
            drawn.append(len(replies))
            if len(drawn) == 1:  # hypothesis's first example is its simplest: the same missing field every time
                return
            rep = row.reps + 1
            replayer.load(replies)
            jobs = [job("liar", r) for r in range(len(replies))] + [job(healthy.name, r) for r in range(3)]
            sweep = store.create_sweep(store.unique_sweep_name(f"hostile-{rep}"), spec.model_dump(), jobs)
            watch = Watch()
            run_sweep(store, sweep, watch)
            snapshot = results_snapshot(db, sweep.name)
            resumes = 0
            while not sweep_done(db, sweep.name) and resumes < MAX_RESUMES:
                resumes += 1
                run_sweep(store, store.sweep(sweep.name), watch)
            result = audit(db, sweep.name, HOSTILE_RUNS, lambda device, variant: device == healthy.name,
                           hostile=("liar",), snapshots=(snapshot,))
            started: dict[str, float] = {}
            for at, event in watch.events:  # one liar job at a time: its running event, then its end
                if event.device != "liar":
                    continue
                if event.state == "running":
                    started["liar"] = at
                elif event.state in ("failed", "done", "retry") and "liar" in started:
                    row.detect.append(at - started.pop("liar"))
            answered = replayer.answered()
            if answered != len(replies):
                result.problems.append(f"the liar answered {answered} jobs for {len(replies)} replies: some reply "
                                       "was taken for a lost device and its job retried")
            rows = db_rows(db, "SELECT j.state, j.error FROM jobs j JOIN sweeps s ON s.id = j.sweep_id "
                               "WHERE s.name = ? AND j.device = 'liar' ORDER BY j.id", (sweep.name,))
            for (state, error), crafted in zip(rows, replies):
                kinds[crafted.kind] += 1
                if state != "failed" or not (error or "").startswith(crafted.reason):
                    mismatched.append(f"{crafted.kind}: expected {crafted.reason!r}, got {state} {error!r}"[:300])
            row.add(result, rep)
            row.reps += 1
            say(f"{fault} {rep}: {len(replies)} crafted replies; {resumes} resume(s); lost {result.lost}, "
                f"dup {result.duplicated}, wrong {result.wrong}, failed {result.failed}"
                + "".join(f"\n    {p}" for p in result.problems))

        sweep_with()
        row.notes.append(f"{sum(kinds.values())} crafted replies: " + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items())))
        if mismatched:
            row.notes.append(f"{len(mismatched)} liar jobs failed with another reason than the one their fault "
                             f"names, e.g. {mismatched[0]}")
        else:
            row.notes.append("every liar job failed with the reason its crafted reply calls for")
        row.reasons = Counter()  # each reply's reason is checked above; the tally by device is no news here
        return row


class _FastBuffer(tflite_schema.BufferT):
    """A model buffer packed as one numpy vector: tiny_mlp writes the 25 MB model in a second instead of half a minute
    (the generated code packs a bytes buffer one byte at a time). The same bytes come out."""

    def Pack(self, builder):
        if isinstance(self.data, (bytes, bytearray)):
            self.data = np.frombuffer(self.data, np.uint8)
        return super().Pack(builder)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --------------------------------------------------------------------------------------------------------------------
# The table


def table(rows: list[Row]) -> str:
    header = ["fault", "reps", "lost", "dup", "wrong", "failed (with reason)", "detect s median", "detect s max"]
    lines = []
    for row in rows:
        marker = {"hostile-reply": " ‡", "disk-full": " §"}.get(row.fault, " †" if row.fault.startswith("coordinator") else "")
        median = f"{statistics.median(row.detect):.3f}" if row.detect else "-"
        worst = f"{max(row.detect):.3f}" if row.detect else "-"
        if row.undetected:
            worst += f" ({row.undetected} undetected)"
        lines.append([row.fault + marker, str(row.reps), str(row.lost), str(row.duplicated), str(row.wrong),
                      str(row.failed), median, worst])
    widths = [max(len(r[i]) for r in [header] + lines) for i in range(len(header))]
    fmt = lambda r: "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))  # noqa: E731
    return "\n".join([fmt(header), "  ".join("-" * w for w in widths)] + [fmt(r) for r in lines])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=10, help="repetitions of each fault (default 10)")
    parser.add_argument("--only", default="", help="comma-separated faults (or prefixes of their names) to run: "
                                                   + ", ".join(FAULTS))
    parser.add_argument("--seed", type=int, default=0, help="seeds the moments of injection and the crafted replies")
    parser.add_argument("--replies", type=int, default=1000,
                        help="hostile replies in all, spread over the repetitions (default 1000; make test runs 500)")
    parser.add_argument("--workdir", type=Path, help="keep every store, log and inventory in this new folder "
                                                      "(default: a temporary folder, removed at the end)")
    args = parser.parse_args()
    wanted = [f for f in FAULTS if not args.only or any(f.startswith(p.strip()) for p in args.only.split(",") if p.strip())]
    if not wanted:
        parser.error(f"--only: no such fault; known: {', '.join(FAULTS)}")
    if os.geteuid() != 0 and any(f in ("link-drop", "disk-full") for f in wanted):
        parser.error("link-drop and disk-full need root (a network namespace, a tmpfs mount); or leave them out")

    started = time.monotonic()
    rows: list[Row] = []
    with contextlib.ExitStack() as stack:
        if args.workdir:
            args.workdir.mkdir(parents=True)
            tmp = args.workdir.resolve()
        else:
            tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="farm-faults-"))
        os.environ["FARM_CACHE"] = str(Path(tmp) / "cache")  # conversions of this run only, never the user's cache
        bench = Bench(args, Path(tmp))
        try:
            bench.build_models()
            for fault in wanted:
                t0 = time.monotonic()
                say(f"{fault}: {args.reps} repetitions")
                try:
                    if fault in ("sshd-kill", "sigstop", "link-drop"):
                        row = bench.ssh_row(fault)
                    elif fault in ("phone-kill-push", "phone-kill-run", "adb-restart"):
                        row = bench.phone_row(fault)
                    elif fault.startswith("coordinator-kill-"):
                        row = bench.coordinator_row(fault.rsplit("-", 1)[1])
                    elif fault == "disk-full":
                        row = bench.disk_row()
                    else:
                        row = bench.hostile_row()
                except Exception:  # noqa: BLE001 - the row says it broke, the others still run
                    row = Row(fault)
                    row.problems.append("the benchmark itself failed: " + traceback.format_exc()[-1500:])
                    say(f"{fault}: the benchmark failed:\n{traceback.format_exc()}")
                row.seconds = time.monotonic() - t0
                rows.append(row)
                say(f"{fault}: done in {row.seconds:.0f} s")
        finally:
            bench.close()
    total = time.monotonic() - started

    print(table(rows))
    print()
    print("lost / dup / wrong / failed: jobs (or results) summed over the repetitions; see the script's docstring.")
    print("detect: seconds from the injection to the coordinator recording the fault (its job marked for retry or "
          "failed).")
    print("  † coordinator kills: seconds `farm sweep resume` took to bring the sweep to done.")
    print("  ‡ hostile replies: seconds from each crafted reply's job start to its failure recorded, over every reply.")
    print("  § disk full: seconds from the disk filled to the first job failing for it.")
    for row in rows:
        extra = list(row.notes)
        if row.noticed:
            extra.append("the coordinator said: " + ", ".join(f"{k!r} ×{v}" for k, v in row.noticed.most_common()))
        if row.reasons:
            extra.append("failure reasons: " + ", ".join(f"{k} ×{v}" for k, v in sorted(row.reasons.items())))
        if row.not_injected:
            extra.append(f"{row.not_injected} sweep(s) ran without the fault (its moment passed) and were repeated")
        extra.append(f"{row.seconds:.0f} s")
        print(f"{row.fault}: " + "; ".join(extra))
        for problem in row.problems[:20]:
            print(f"    {problem}")
        if len(row.problems) > 20:
            print(f"    ... and {len(row.problems) - 20} more")
    print()
    print(f"total: {total:.0f} s ({total / 60:.1f} min), reps {args.reps}, seed {args.seed}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
