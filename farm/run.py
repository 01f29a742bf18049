"""The scheduler. One idea carries it: a lane per device.

Each device has one lane that runs its jobs one after another (a device never runs two benchmarks at once, or the
numbers would measure the contention), and all lanes run concurrently (SSH and adb are I/O, so one coordinator drives
many devices). Every state change goes to the store as it happens, through the sweep's writer thread (farm.writer), so
a coordinator that dies can be resumed and no lane waits on the store.
"""
from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from farm import hints
from farm.datasets import load_npz
from farm.errors import FarmError, one_line
from farm.inventory import Device
from farm.leases import POLL_S, Leases, device_lease, sweep_lease
from farm.parse import parse
from farm.paths import sha256_file
from farm.plan import SweepSpec
from farm.results import DeviceLost, DeviceRefused, JobFailed, Measurement
from farm.stats import accuracy, agreement, errors, eval_task
from farm.store import Store
from farm.tables import JobRow, SweepRow, VariantRow, now
from farm.variants import ONNX_KINDS
from farm.transports import BenchmarkJob, Delegate, LocalFile, Transport, open_transport
from farm.writer import StoreWriteFailed, StoreWriter

BACKOFF_S = (1.0, 3.0, 10.0, 30.0)
# The thermal gate's "stopped falling": over the last PLATEAU_READINGS readings the hottest zone fell less than this.
PLATEAU_READINGS, PLATEAU_DROP_C = 4, 0.5
log = logging.getLogger(__name__)


def onnx_skip_reason(facts: dict, kind: str, delegate: str, onnxruntime_fix: str = "farm provision --onnxruntime") -> str | None:
    """Why an agent device can't run an onnx job, from its probe's onnxruntime facts (None: it can, or the device
    has no agent probe to tell)."""
    ort = facts.get("onnxruntime") if kind in ONNX_KINDS else None
    if not isinstance(ort, dict):
        return None
    if not ort.get("version"):
        return f"no onnxruntime on the device to run onnx models (install it: {onnxruntime_fix})"
    if delegate not in ("none", "xnnpack"):
        return (f"{delegate} is a TFLite delegate; ONNX Runtime runs onnx models with delegate none (its "
                f"CPUExecutionProvider) or xnnpack (its XnnpackExecutionProvider)")
    providers = ort.get("providers") or []
    if delegate == "xnnpack" and "XnnpackExecutionProvider" not in providers:
        return (f"this device's onnxruntime {ort['version']} has no XnnpackExecutionProvider (it has: "
                f"{', '.join(providers)}); onnx models run on its CPUExecutionProvider with delegate none")
    return None


def _probe_failure(error: Exception) -> str | None:
    """Why a lane cannot start, for the errors a device can cause; None for anything else (a bug)."""
    if isinstance(error, DeviceRefused):
        return f"device refused: {one_line(error)}"
    if isinstance(error, TimeoutError):
        return f"probe timed out: {one_line(error)}"
    if isinstance(error, (DeviceLost, OSError)):
        return f"device unreachable: {one_line(error)}"
    if isinstance(error, JobFailed):
        return f"probe failed: {one_line(error)}"
    return None


@dataclass
class Event:
    """What the progress display is told: a device started or finished a job."""

    device: str
    label: str
    state: str  # waiting (for the device's lease), cooling (the thermal gate), note, running, done, failed, retry
    detail: str = ""


class SweepRunner:
    """Runs the pending jobs of one sweep on their devices."""

    def __init__(self, store: Store, sweep: SweepRow, spec: SweepSpec, devices: dict[str, Device],
                 notify: Callable[[Event], None] = lambda event: None,
                 transport_for: Callable[[Device], Transport] = open_transport, wait: bool = True):
        self.store = store
        self.sweep = sweep
        self.sweep_id = sweep.id
        self.wait = wait  # for a device another coordinator holds; or fail its jobs at once
        self.spec = spec
        self.devices = devices
        self.notify = notify
        self.transport_for = transport_for
        self.models = {m.name: m for m in spec.models}
        self._labels: dict[str, np.ndarray | None] = {}
        self._tasks: dict[int, str] = {}
        self._sources: dict[int, list | None] = {}
        self._variants: dict[int, VariantRow] = {}
        self._digests: dict[str, str] = {}
        self.bytes_uploaded: dict[str, int] = {}  # per device: what this run had to copy there
        self.counts: dict[str, int] = {}

    async def run(self) -> dict[str, int]:
        """Run every pending job; returns the sweep's job counts by state. Refused (FarmError, nothing changed) while
        another live coordinator drives the sweep: a sweep has one driver."""
        with Leases(self.store, self.sweep.name) as self.leases:
            if not self.leases.try_hold(sweep_lease(self.sweep.name)):
                holder = self.leases.holder(sweep_lease(self.sweep.name))
                who = f"pid {holder.pid} on {holder.host}" if holder else "another coordinator"
                raise FarmError(f"sweep {self.sweep.name} is being run by {who}")
            self.writer = StoreWriter(self.store)
            try:
                return await self._run()
            finally:
                # Whatever ended the run (its end, a cancel, a lane's bug): what the lanes queued is committed first.
                self.writer.close()

    async def _run(self) -> dict[str, int]:
        # Only this sweep's driver runs its jobs, so a job still `running` is one its dead driver left behind.
        self.store.requeue_running(self.sweep_id)
        self.store.set_sweep_state(self.sweep_id, "running")
        lanes: dict[str, list[JobRow]] = {}
        for job in self.store.jobs(self.sweep_id, ("pending",)):
            lanes.setdefault(job.device, []).append(job)
        for name in [name for name in lanes if name not in self.devices]:
            for job in lanes.pop(name):
                self.writer.submit(self.store.write_end, job.id, "failed",
                                   f"device {name!r} is no longer in the inventory", now())
        # A lane that dies (a bug) takes no other lane with it; its jobs stay for `resume`.
        outcomes = await asyncio.gather(*(self._lane(self.devices[name], jobs) for name, jobs in lanes.items()),
                                        return_exceptions=True)
        for name, outcome in zip(lanes, outcomes):
            if isinstance(outcome, Exception) and not isinstance(outcome, StoreWriteFailed):  # said once, below
                log.error("lane %s stopped", name, exc_info=outcome)
        await self.writer.flush()  # raises StoreWriteFailed when the writer stopped: every lane stopped with it
        self.store.update_agreement(self.sweep_id)
        self.counts = self.store.counts(self.sweep_id)
        if self.counts["pending"] == 0 and self.counts["running"] == 0:
            self.store.set_sweep_state(self.sweep_id, "done")
        return self.counts

    async def _lane(self, device: Device, jobs: list[JobRow]) -> None:
        if not await self._hold(device, jobs):
            return
        try:
            await self._run_lane(device, jobs)
        finally:
            self.leases.release(device_lease(device.name))

    async def _hold(self, device: Device, jobs: list[JobRow]) -> bool:
        """Hold the device's lease: a device runs one benchmark at a time across every coordinator of the store. While
        another has it, wait and say for whom; without waiting, its jobs fail at once with that reason."""
        lease, shown = device_lease(device.name), None
        while not self.leases.try_hold(lease):
            holder = self.leases.holder(lease)
            reason = f"held by {holder}" if holder else "held by another coordinator"
            if not self.wait:
                for job in jobs:
                    self.writer.submit(self.store.write_start, job.id, now())
                    self._fail(job, self._label(job), f"device busy: {reason}")
                return False
            if reason != shown:
                self.notify(Event(device.name, "", "waiting", reason))
                shown = reason
            await asyncio.sleep(POLL_S)
            self.writer.check()  # a lane that waits for its device stops with the writer too
        return True

    async def _run_lane(self, device: Device, jobs: list[JobRow]) -> None:
        transport = self.transport_for(device)
        loop = asyncio.get_running_loop()
        # Each upload is said as it starts, with its size (a phone's transport pushes from a worker thread: the event
        # goes through the loop, as every other event does).
        transport.on_upload = lambda note: loop.call_soon_threadsafe(
            self.notify, Event(device.name, "", "note", note))
        try:
            try:
                facts = await self._with_retries(transport.probe)
            except Exception as error:  # noqa: BLE001 - whatever the probe met, this lane's jobs fail with it
                reason = _probe_failure(error)
                if reason is None:
                    log.exception("probe of %s", device.name)
                    reason = f"probe failed: {type(error).__name__}: {one_line(error)}"
                for job in jobs:
                    self.writer.submit(self.store.write_start, job.id, now())
                    self._fail(job, self._label(job), reason)
                return
            self.writer.submit(self.store.write_device, device, facts, now())
            jobs = self._runnable(device, jobs, facts)
            previous = await self._pin_governor(transport, device) if self.spec.pin_governor else None
            try:
                for job in jobs:
                    await self._job(transport, job)
            finally:
                if previous:  # as the device was, whatever the jobs did
                    await self._restore_governors(transport, device, previous)
        finally:
            self.bytes_uploaded[device.name] = transport.bytes_uploaded
            await transport.close()

    def _runnable(self, device: Device, jobs: list[JobRow], facts: dict) -> list[JobRow]:
        """The jobs the device's probed runtimes can run; the others are skipped with the reason (what only the device
        can tell: whether it has onnxruntime, and with which execution providers)."""
        runnable, skipped = [], {}
        # A board's runtimes are provisioned by farm; this machine's are its Python's (the coordinator's).
        fix = (hints.for_device("provision", device, "--onnxruntime") if device.kind == "linux"
               else "pip install onnxruntime")
        for job in jobs:
            reason = onnx_skip_reason(facts, self.store.variant_names(job.variant_id)[1], job.delegate, fix)
            if reason is None:
                runnable.append(job)
            else:
                self.writer.submit(self.store.write_end, job.id, "skipped", reason, now())
                skipped[reason] = skipped.get(reason, 0) + 1
        for reason, count in skipped.items():
            self.notify(Event(device.name, "", "note", f"{count} job{'s' * (count > 1)} skipped: {reason}"))
        return runnable

    async def _pin_governor(self, transport: Transport, device: Device) -> dict[str, str] | None:
        """Every cpufreq policy of the device on the spec's governor; the governors to restore after, or None when
        there is nothing to pin or it is not permitted (said, and the sweep goes on with the device as it is)."""
        wanted, previous = self.spec.pin_governor, None
        try:
            previous = await transport.governors()
            if not previous:
                self.notify(Event(device.name, "", "note", f"governor not pinned to {wanted}: no cpufreq policies"))
                return None
            await transport.governors({policy: wanted for policy in previous})
            return previous
        except (DeviceRefused, DeviceLost, JobFailed, OSError) as error:
            self.notify(Event(device.name, "", "note", f"governor not pinned to {wanted}: {one_line(error)}"))
            if previous:
                await self._restore_governors(transport, device, previous)
            return None

    async def _restore_governors(self, transport: Transport, device: Device, previous: dict[str, str]) -> None:
        try:
            await transport.governors(previous)
        except Exception as error:  # noqa: BLE001 - said, never raised over the lane's own outcome
            self.notify(Event(device.name, "", "note", f"governor not restored ({previous}): {one_line(error)}"))

    async def _with_retries(self, call: Callable):
        """`call()`, tried again with backoff while the device is lost, up to the sweep's attempts."""
        for attempt in range(1, self.spec.attempts + 1):
            try:
                return await call()
            except DeviceLost:
                if attempt == self.spec.attempts:
                    raise
                await asyncio.sleep(BACKOFF_S[min(attempt - 1, len(BACKOFF_S) - 1)])

    async def _job(self, transport: Transport, job: JobRow) -> None:
        label = self._label(job)
        attempt = job.attempts  # a sweep has one driver: it counts the attempts from the store's count at its start
        while True:
            attempt += 1
            self.writer.submit(self.store.write_start, job.id, now())
            self.notify(Event(job.device, label, "running"))
            try:
                cooldown = await self._cool_down(transport, job, label) if self.spec.cooldown else None
                measurement, wall_ms = await self._measure(transport, job)
            except DeviceLost as error:
                if attempt >= self.spec.attempts:
                    self.writer.submit(self.store.write_end, job.id, "failed",
                                       f"device lost on attempt {attempt} of {self.spec.attempts}: {error}", now())
                    self.notify(Event(job.device, label, "failed", str(error)))
                    return
                self.writer.submit(self.store.write_end, job.id, "pending", f"device lost: {error}", now())
                self.notify(Event(job.device, label, "retry", str(error)))
                await asyncio.sleep(BACKOFF_S[min(attempt - 1, len(BACKOFF_S) - 1)])
                try:
                    await transport.reconnect()
                except Exception:  # noqa: BLE001 - the next attempt meets it again and reports it
                    pass
                continue
            except TimeoutError:  # the one timeout type of the transports (an OSError too, so caught first)
                self.writer.submit(self.store.write_end, job.id, "failed", f"timed out after {self.spec.timeout_s:g} s",
                                   now())
                self.notify(Event(job.device, label, "failed", "timeout"))
                return
            except (JobFailed, DeviceRefused, OSError) as error:
                self._fail(job, label, one_line(error))
                return
            except Exception as error:  # noqa: BLE001 - a bug fails its job, with a traceback in the log, not the sweep
                log.exception("job %s on %s", job.id, job.device)
                self._fail(job, label, f"internal error: {type(error).__name__}: {one_line(error)}")
                return
            try:
                result = await self._store_result(job, measurement, wall_ms, cooldown)
            except StoreWriteFailed:
                raise  # the writer stopped: so does the lane
            except Exception as error:  # noqa: BLE001 - e.g. a value the store refuses: that job fails, not the lane
                log.exception("storing the result of job %s on %s", job.id, job.device)
                self._fail(job, label, f"result not stored: {type(error).__name__}: {one_line(error)}")
                return
            # Older benchmark_model builds print no median: then the mean is what there is to show.
            shown = ("p50", result["p50_ms"]) if result.get("p50_ms") is not None else ("mean", result["mean_ms"])
            self.notify(Event(job.device, label, "done", f"{shown[0]} {shown[1]:.3f} ms"))
            return

    def _fail(self, job: JobRow, label: str, reason: str) -> None:
        self.writer.submit(self.store.write_end, job.id, "failed", reason, now())
        self.notify(Event(job.device, label, "failed", reason))

    async def _store_result(self, job: JobRow, measurement: Measurement, wall_ms: float,
                            cooldown: dict | None) -> dict:
        result = dict(measurement.result, wall_ms=wall_ms)
        if cooldown is not None:  # the thermal gate's wait, kept with the state the device was in before the job
            result["env_before"] = json.dumps({**json.loads(result.get("env_before") or "{}"), "cooldown": cooldown})
        if self._task(job) == "regression":
            result.update(self._regression_scores(job, measurement.outputs))
        elif measurement.predictions is not None:
            result["predictions"] = json.dumps(measurement.predictions)
            labels, source = self._eval_labels(job), self._source(job)
            if labels is not None and len(labels) == len(measurement.predictions):
                result["accuracy"] = accuracy(measurement.predictions, labels)
            if source is not None:
                result["agreement_with_source"] = agreement(measurement.predictions, source)
        # Waited for: the job is done (and said so) only once its result is stored.
        await self.writer.wait(self.store.write_result, job.id, result, measurement.samples_us, measurement.ops, now())
        return result

    async def _cool_down(self, transport: Transport, job: JobRow, label: str) -> dict:
        """The thermal gate: wait until the device's hottest zone is at most the spec's max_temp_c, or has stopped
        falling, or max_wait_s has passed; what happened, for the result."""
        gate = self.spec.cooldown
        start = time.monotonic()
        readings: list[float] = []
        while True:
            temps = await transport.temperatures()
            if not temps:
                return {"until": "no thermal zones", "waited_s": 0.0, "max_temp_c": gate.max_temp_c}
            readings.append(max(temps.values()))
            waited = time.monotonic() - start
            if readings[-1] <= gate.max_temp_c:
                until = "cool"
            elif len(readings) >= PLATEAU_READINGS and readings[-PLATEAU_READINGS] - readings[-1] < PLATEAU_DROP_C:
                until = "stopped falling"
            elif waited >= gate.max_wait_s:
                until = "max_wait_s"
            else:
                if len(readings) == 1:
                    hottest = max(temps, key=temps.get)
                    self.notify(Event(job.device, label, "cooling",
                                      f"{hottest} at {readings[-1]:.1f} °C, above {gate.max_temp_c:g} °C"))
                await asyncio.sleep(min(gate.poll_s, max(gate.max_wait_s - waited, 0.0)))
                continue
            return {"until": until, "waited_s": round(waited, 2), "start_c": readings[0], "end_c": readings[-1],
                    "max_temp_c": gate.max_temp_c}

    async def _measure(self, transport: Transport, job: JobRow) -> tuple[Measurement, float]:
        start = time.perf_counter()
        benchmark = self._benchmark_job(transport.device, job)
        measurement = parse(await transport.run_job(benchmark))
        if benchmark.eval is not None and measurement.predictions is None and measurement.outputs is None:
            # Only a run that counts is scored: a failed run or a delegate that did not apply has raised by now.
            found = await transport.eval_predictions(benchmark)
            if benchmark.eval_outputs:
                measurement.outputs = found
            else:
                measurement.predictions = found
        return measurement, (time.perf_counter() - start) * 1000

    def _benchmark_job(self, device: Device, job: JobRow) -> BenchmarkJob:
        variant = self._variant(job)
        model = self.models[self._model_name(job)]
        return BenchmarkJob(
            model=LocalFile(Path(variant.path), variant.sha256, " ".join(self.store.variant_names(job.variant_id))),
            description=json.loads(variant.description),
            delegate=Delegate.of(device, job.delegate),
            threads=job.threads,
            warmup_runs=self.spec.warmup_runs,
            runs=self.spec.runs,
            min_secs=self.spec.min_secs,
            max_secs=self.spec.max_secs,
            timeout_s=self.spec.timeout_s,
            max_reply_bytes=self.spec.max_reply_bytes,
            eval=LocalFile(Path(model.eval), self._sha256(model.eval)) if model.eval else None,
            eval_limit=self.spec.eval_limit,
            eval_outputs=model.eval is not None and self._task(job) == "regression",
            profile=self.spec.profile,
        )

    def _variant(self, job: JobRow) -> VariantRow:
        """The job's variant, read once per run: a variant never changes while a sweep runs."""
        if job.variant_id not in self._variants:
            self._variants[job.variant_id] = self.store.variant(job.variant_id)
        return self._variants[job.variant_id]

    def _model_name(self, job: JobRow) -> str:
        return self.store.variant_names(job.variant_id)[0]

    def _label(self, job: JobRow) -> str:
        model, kind = self.store.variant_names(job.variant_id)
        return f"{model} {kind} {job.delegate} t{job.threads}" + (f" r{job.repeat}" if self.spec.repeats > 1 else "")

    def _sha256(self, path: str) -> str:
        if path not in self._digests:
            self._digests[path] = sha256_file(path)
        return self._digests[path]

    def _targets(self, job: JobRow):
        """The eval set's y (labels or regression targets) within eval_limit, or None; read once per model."""
        model = self.models[self._model_name(job)]
        if model.name not in self._labels:
            _, y = load_npz(model.eval)
            limit = self.spec.eval_limit
            self._labels[model.name] = None if y is None else (y[:limit] if limit else y)
        return self._labels[model.name]

    def _eval_labels(self, job: JobRow) -> list[int] | None:
        y = self._targets(job)
        return None if y is None else [int(v) for v in y]

    def _task(self, job: JobRow) -> str | None:
        """classification or regression (farm.stats.eval_task), from the eval set's y and the variant's output size;
        None without an eval set."""
        if self.models[self._model_name(job)].eval is None:
            return None
        if job.variant_id not in self._tasks:
            outputs = json.loads(self._variant(job).description).get("outputs") or [{"shape": [1]}]
            size = int(np.prod([max(int(d), 1) for d in outputs[0]["shape"]]))
            self._tasks[job.variant_id] = eval_task(self._targets(job), size)
        return self._tasks[job.variant_id]

    def _source(self, job: JobRow) -> list | None:
        """The source model's own outputs on this eval set (farm.sweep keeps them in the store), or None."""
        if job.variant_id not in self._sources:  # read once per variant, not per job
            model_id = self._variant(job).model_id
            model = self.models[self._model_name(job)]
            kept = self.store.source_outputs(model_id, self._sha256(model.eval), self.spec.eval_limit)
            self._sources[job.variant_id] = kept[1] if kept else None
        return self._sources[job.variant_id]

    def _regression_scores(self, job: JobRow, outputs: list[list[float]] | None) -> dict:
        """RMSE and max-abs error of a regression's outputs against the targets y and the source model's outputs."""
        if not outputs:
            return {}
        scores = {}
        y, source = self._targets(job), self._source(job)
        if y is not None and (found := errors(outputs, y)) is not None:
            scores["rmse"], scores["max_abs_error"] = found
        if source is not None and (found := errors(outputs, source)) is not None:
            scores["rmse_vs_source"], scores["max_abs_vs_source"] = found
        return scores

