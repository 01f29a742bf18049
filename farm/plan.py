"""Sweeps: a spec (models × variants × devices × delegates × threads × repeats) expanded into jobs.

Combinations that cannot run are kept as `skipped` jobs with the reason, so that the dashboard and the CSV show them.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from farm.errors import FarmError
from farm.optimize import FineTune, Pruning
from farm.inventory import INT8_ONLY_DELEGATES, Delegates, Device, Name, default_inventory, known, read_yaml
from farm.onnxruntime_perf_test import EXECUTION_PROVIDERS
from farm.replies import MAX_REPLY_BYTES
from farm.variants import ONNX_KINDS, VARIANT_KINDS


class ModelSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = None  # defaults to the source file's stem
    source: str
    variants: Annotated[list[str], known("variant", VARIANT_KINDS)] = Field(default_factory=lambda: ["fp32"])
    calibration: str | None = None
    calibration_samples: int = Field(default=200, gt=0)
    eval: str | None = None
    train: str | None = None  # .npz with x and y: what qat, pruned and pruned-int8 are fine-tuned on
    qat: FineTune = Field(default_factory=FineTune)
    pruning: Pruning = Field(default_factory=Pruning)
    static_shapes: bool = False  # convert with the batch fixed to 1: no shape computed at run time (farm.convert)


class Cooldown(BaseModel):
    """The thermal gate: before each job, wait until the device's hottest zone is at most `max_temp_c`, or has stopped
    falling, for at most `max_wait_s`."""

    model_config = ConfigDict(extra="forbid")
    max_temp_c: float = Field(gt=0, le=150)
    max_wait_s: float = Field(default=300.0, ge=0, le=24 * 3600)
    poll_s: float = Field(default=5.0, gt=0, le=600)  # how often the zones are read while waiting


class SweepSpec(BaseModel):
    """What to measure. Paths are relative to the spec file."""

    model_config = ConfigDict(extra="forbid")
    name: Name = "sweep"
    inventory: list[str] = Field(default_factory=list)  # none: inventory/local.yaml if it is here, else this machine
    models: list[ModelSpec] = Field(min_length=1)
    devices: list[str] = Field(default_factory=lambda: ["all"])  # device names, "tag:NAME", or "all"
    delegates: Delegates = Field(default_factory=lambda: ["xnnpack"])
    threads: list[int] = Field(default_factory=lambda: [1])
    repeats: int = Field(default=3, gt=0)  # independent trials of each configuration, each its own process
    warmup_runs: int = Field(default=5, ge=0)
    runs: int = Field(default=50, gt=0)
    min_secs: float = Field(default=0.0, ge=0)
    max_secs: float = Field(default=150.0, gt=0)
    eval_limit: int | None = Field(default=None, gt=0)
    timeout_s: float = Field(default=600.0, gt=0)  # per job attempt
    max_reply_bytes: int = Field(default=MAX_REPLY_BYTES, gt=0)  # what a device may send back for one job
    attempts: int = Field(default=3, gt=0)  # tries per job when the device is lost
    cooldown: Cooldown | None = None
    # The cpufreq governor every device's CPUs run the sweep with (e.g. performance), restored after; where permitted.
    pin_governor: str | None = Field(default=None, pattern=r"^[a-z_]{1,32}$")
    # An op profile with every result: phones run benchmark_model with --enable_op_profiling=true; other devices need
    # a benchmark_model build named in their inventory entry (LiteRT's Python API has no op profiler).
    profile: bool = False

    @field_validator("inventory", mode="before")
    @classmethod
    def _one_or_many(cls, value: object) -> object:
        return [value] if isinstance(value, str) else value

    @field_validator("threads")
    @classmethod
    def _threads(cls, value: list[int]) -> list[int]:
        if not value or any(t < 1 for t in value):
            raise ValueError("threads must be positive integers")
        return value

    def resolve(self, base: Path) -> "SweepSpec":
        """The same spec with every relative path made absolute against `base` (the spec file's folder)."""

        def absolute(path: str | None) -> str | None:
            return None if path is None else str((base / Path(path).expanduser()).resolve())

        models = [
            m.model_copy(
                update={
                    "source": absolute(m.source),
                    "calibration": absolute(m.calibration),
                    "eval": absolute(m.eval),
                    "train": absolute(m.train),
                    "name": m.name or Path(m.source).name.split(".")[0],
                }
            )
            for m in self.models
        ]
        inventory = [absolute(p) for p in self.inventory] if self.inventory else default_inventory()
        return self.model_copy(update={"models": models, "inventory": inventory})


def load_spec(path: str | Path) -> SweepSpec:
    path = Path(path)
    if not path.is_file():
        raise FarmError(f"{path}: sweep spec not found")
    raw = read_yaml(path)
    if not isinstance(raw, dict):
        raise FarmError(f"{path}: expected a mapping (name, models, devices, ...)")
    return parse_spec(raw, str(path)).resolve(path.parent)


def parse_spec(raw: dict, where: str) -> SweepSpec:
    try:
        return SweepSpec.model_validate(raw)
    except ValidationError as error:
        first = error.errors()[0]
        field = ".".join(str(p) for p in first["loc"] if not isinstance(p, int))
        message = "unknown field" if first["type"] == "extra_forbidden" else first["msg"].removeprefix("Value error, ")
        loc = first["loc"]
        if len(loc) >= 3 and loc[0] == "models" and isinstance(loc[1], int) and isinstance(raw["models"][loc[1]], dict):
            model = raw["models"][loc[1]]
            label = model.get("name") or model.get("source")
            rest = ".".join(str(p) for p in loc[2:] if not isinstance(p, int))
            field = f"model {label!r}: {rest}" if label else field
        raise FarmError(f"{where}: {field}: {message}") from None


def select_devices(spec: SweepSpec, devices: list[Device], where: str) -> list[Device]:
    """The inventory devices a spec names (by name, by `tag:NAME`, or `all`), in inventory order."""
    chosen: list[Device] = []
    for token in spec.devices:
        if token == "all":
            matched = devices
        elif token.startswith("tag:"):
            matched = [d for d in devices if token[4:] in d.tags]
            if not matched:
                raise FarmError(f"{where}: devices: no device has tag {token[4:]!r}")
        else:
            matched = [d for d in devices if d.name == token]
            if not matched:
                known = ", ".join(d.name for d in devices)
                raise FarmError(f"{where}: devices: unknown device {token!r} (inventory has: {known})")
        chosen.extend(d for d in matched if d not in chosen)
    return chosen


@dataclass(frozen=True)
class PlannedVariant:
    """What the planner needs to know of a variant."""

    id: int
    model: str
    kind: str
    needs_flex: bool = False
    error: str | None = None


def skip_reason(device: Device, variant: PlannedVariant, delegate: str) -> str | None:
    """Why this combination cannot run, or None when it can."""
    if variant.error:
        return f"variant {variant.kind} of {variant.model} is unusable: {variant.error}"
    if not device.offers(delegate):
        return f"device {device.name!r} does not offer the {delegate} delegate (it offers: {', '.join(device.delegates)})"
    if variant.kind == "onnx" and device.kind == "android":
        # A phone runs onnx models with ONNX Runtime's onnxruntime_perf_test, named per ABI in its inventory entry.
        if not getattr(device, "onnxruntime_perf_test", None):
            return (f"phone {device.name!r} has no onnxruntime_perf_test (name one in its inventory entry to run onnx "
                    "models)")
        if delegate not in EXECUTION_PROVIDERS:
            runs = ", ".join(d if d == p else f"{d} ({p})" for d, p in EXECUTION_PROVIDERS.items())
            return (f"the {delegate} delegate has no onnxruntime_perf_test execution provider (onnx models run "
                    f"with: {runs})")
    if variant.kind == "edgetpu" and delegate != "edgetpu":
        return "an Edge TPU model runs only on the edgetpu delegate"
    if delegate == "edgetpu" and variant.kind != "edgetpu":
        return "the edgetpu delegate needs an _edgetpu.tflite variant compiled by edgetpu_compiler"
    if delegate in INT8_ONLY_DELEGATES and variant.kind != "int8" and delegate != "edgetpu":
        return f"the {delegate} delegate runs only full-int8 models; {variant.kind} is not"
    if variant.needs_flex and not device.flex:
        return f"{variant.model} {variant.kind} needs Flex (SELECT_TF_OPS) ops; device {device.name!r} has no Flex runtime"
    return None


def plan_jobs(spec: SweepSpec, devices: list[Device], variants: list[PlannedVariant]) -> list[dict]:
    """Every (device, variant, delegate, threads, repeat) combination as a job row: pending, or skipped with its reason.

    A device runs its jobs in this order, and repeats are interleaved (A B C A B C, never A A A B B B), so that slow
    drift on a device (heat, clocks, neighbours) spreads over every configuration instead of biasing one."""
    jobs = []
    for device, repeat, variant in itertools.product(devices, range(spec.repeats), variants):
        for delegate, threads in itertools.product(delegates_of(spec, variant), spec.threads):
            jobs.append(_job(device, variant, delegate, threads, repeat))
    return jobs


def delegates_of(spec: SweepSpec, variant: PlannedVariant) -> list[str]:
    """The spec's delegates; an onnx variant also runs on ONNX Runtime's default, its CPU execution provider (delegate
    none), so that a sweep measures it whatever TFLite delegates it names."""
    if variant.kind in ONNX_KINDS and "none" not in spec.delegates:
        return [*spec.delegates, "none"]
    return list(spec.delegates)


def _job(device: Device, variant: PlannedVariant, delegate: str, threads: int, repeat: int) -> dict:
    reason = skip_reason(device, variant, delegate)
    return {"device": device.name, "variant_id": variant.id, "delegate": delegate, "threads": threads,
            "repeat": repeat, "state": "skipped" if reason else "pending", "error": reason}
