"""A sweep from spec to results: convert the models, plan the jobs, record them, and run the lanes."""
from __future__ import annotations

import asyncio
import functools
from pathlib import Path
from typing import Callable

from farm.convert import convert_model
from farm.datasets import check_fits, load_npz
from farm.errors import FarmError
from farm.inventory import load_inventory
from farm.paths import cache_dir, sha256_file
from farm.reference import MAX_VALUES, source_outputs
from farm.stats import eval_task
from farm.plan import PlannedVariant, SweepSpec, plan_jobs, select_devices
from farm.run import Event, SweepRunner
from farm.store import Store
from farm.tables import SweepRow


def create_sweep(store: Store, spec: SweepSpec, where: str, name: str | None = None,
                 log: Callable[[str], None] = functools.partial(print, flush=True)) -> SweepRow:
    """Convert every model of the spec (cached), check the eval data, and record the sweep with all its jobs. `log`
    says what happens meanwhile: each variant's conversion as it starts and ends, and warnings."""
    devices = select_devices(spec, load_inventory(*spec.inventory).devices, where)
    names = [m.name for m in spec.models]
    if len(set(names)) != len(names):
        raise FarmError(f"{where}: models: two models are named {sorted(n for n in names if names.count(n) > 1)[0]!r}")
    planned: list[PlannedVariant] = []
    for model in spec.models:
        calibration = Path(model.calibration) if model.calibration else None
        variants = convert_model(Path(model.source), model.variants, name=model.name, calibration=calibration,
                                 calibration_samples=model.calibration_samples, train=model.train, qat=model.qat,
                                 pruning=model.pruning, static_shapes=model.static_shapes, cache=cache_dir(),
                                 progress=log)
        if model.eval:
            x, _ = load_npz(model.eval)
            for variant in variants:
                if not variant.error:
                    check_fits(x, variant.description["inputs"][0]["shape"], model.eval)
        for variant in variants:
            if variant.error:
                log(f"warning: {model.name} {variant.kind}: unusable, its jobs are skipped: {variant.error}")
            variant_id = store.add_variant(variant)
            planned.append(PlannedVariant(variant_id, model.name, variant.kind,
                                          bool(variant.description.get("needs_flex")), variant.error))
        if model.eval and planned:
            _keep_source_outputs(store, model, spec.eval_limit, store.variant(planned[-1].id).model_id, log)
    for device in devices:
        store.upsert_device(device)
    jobs = plan_jobs(spec, devices, planned)
    return store.create_sweep(store.unique_sweep_name(name or spec.name), spec.model_dump(), jobs)


def _keep_source_outputs(store: Store, model, limit: int | None, model_id: int, log: Callable[[str], None]) -> None:
    """The source model's own outputs on the eval set, kept in the store for the runner to validate every variant
    against: top-1 predictions for a classification, the values for a regression."""
    outputs = source_outputs(Path(model.source), Path(model.eval), limit, cache_dir())
    if outputs is None:
        return  # a .tflite or .onnx source: the variant is the source
    _, labels = load_npz(model.eval)
    task = eval_task(labels, outputs.shape[1])
    if task == "classification":
        values = outputs.argmax(axis=1).tolist()
    elif outputs.size <= MAX_VALUES:
        values = outputs.tolist()
    else:
        log(f"warning: {model.name}: {outputs.size} source output values on the eval set, more than {MAX_VALUES} "
            f"kept; no comparison with the source model")
        return
    store.set_source_outputs(model_id, sha256_file(model.eval), limit, task, values)


def run_sweep(store: Store, sweep: SweepRow, notify: Callable[[Event], None] = lambda event: None,
              wait: bool = True) -> SweepRunner:
    """Run (or resume) the pending jobs of a recorded sweep; returns the finished runner (counts, bytes uploaded).
    Refused while another live coordinator drives the sweep; `wait=False` fails the jobs of a busy device at once."""
    spec = SweepSpec.model_validate_json(sweep.spec)
    devices = {device.name: device for device in load_inventory(*spec.inventory).devices}
    runner = SweepRunner(store, sweep, spec, devices, notify, wait=wait)
    asyncio.run(runner.run())
    return runner

