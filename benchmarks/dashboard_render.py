"""How long each dashboard page takes to render over a large store: 100k results and 10M raw latency samples.

    .venv/bin/python benchmarks/dashboard_render.py                 # build a store in a temporary folder, then time
    .venv/bin/python benchmarks/dashboard_render.py --store big.db  # keep the store there (reused when it exists)

The store is made with farm.store's own tables (seeded numpy, bulk inserts): 10 sweeps × 25 devices × 400
configurations (10 models × 5 variants × 2 delegates × 4 thread counts), 100 samples per result, plus failed and skipped
jobs with reasons. The variants include a pruned one (gzip size, sparsity) and an ONNX one; the runtimes differ by
device (ai_edge_litert in two versions, tflite_runtime, benchmark_model, onnxruntime and onnxruntime_perf_test), as the
pages label and filter them. Each page is run by Streamlit's AppTest as a first visit (caches empty: every query runs)
and again (cached); the target is under 3 s for a first visit. Figures only: nothing here asserts them.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from farm.store import Store  # noqa: E402
from farm.tables import DeviceRow, JobRow, ModelRow, ResultRow, SampleRow, SweepRow, VariantRow  # noqa: E402

SWEEPS, DEVICES, MODELS = 10, 25, 10
VARIANTS = ("fp32", "fp16", "int8", "pruned", "onnx")
DELEGATES = ("xnnpack", "none")
THREADS = (1, 2, 4, 8)
RUNS = 100
KINDS = ("pi", "jetson", "coral", "phone", "x86")  # device i is a KINDS[i % 5]
PAGES = ("sweeps", "leaderboard", "tradeoffs", "device", "compare", "export")
TARGET_S = 3.0


def runtime_of(device: int, kind: str) -> tuple[str, str]:
    """(runtime, version) that device number `device` runs a variant `kind` with."""
    phone = KINDS[device % 5] == "phone"
    if kind == "onnx":
        return ("onnxruntime_perf_test", "1.23.2") if phone else ("onnxruntime", "1.23.2")
    if phone:
        return "benchmark_model", "2.16.1"
    if KINDS[device % 5] == "jetson":
        return "tflite_runtime", "2.14.0"
    return "ai_edge_litert", "2.3.0" if device % 2 else "2.4.0"  # half the boards upgraded


def build(path: Path, seed: int = 0) -> None:
    """A store of SWEEPS × DEVICES × 400 results with RUNS samples each, written with executemany."""
    rng = np.random.default_rng(seed)
    store = Store(path)
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    devices = [{"name": f"{KINDS[i % 5]}-{i:02d}", "kind": "linux",
                "tags": json.dumps([KINDS[i % 5], "arm64" if i % 5 != 4 else "x86_64"]),
                "delegates": json.dumps(list(DELEGATES)),
                "facts": json.dumps({"board": f"{KINDS[i % 5]} board rev {i}", "cpu_model": "Cortex-A76", "cores": 4,
                                     "ram_mb": 8000, "platform": "Linux", "os_release": "6.6", "machine": "aarch64",
                                     "python_version": "3.11.2", "governor": "performance",
                                     "runtime": {"name": "ai_edge_litert", "version": "2.3.0"},
                                     "temps_c": {"cpu-thermal": 45.0}}),
                "last_seen": start} for i in range(DEVICES)]
    speed = rng.uniform(0.5, 8.0, DEVICES)  # device slowness factor
    models = [{"id": m + 1, "name": f"model-{m:02d}", "source": f"/models/{m}.keras", "source_sha": f"{m:064x}"}
              for m in range(MODELS)]
    variants, base = [], {}
    for m in range(MODELS):
        fp32_size = int(rng.uniform(1e5, 2e7))
        for k, kind in enumerate(VARIANTS):
            vid = m * len(VARIANTS) + k + 1
            size = {"fp16": fp32_size // 2, "int8": fp32_size // 4}.get(kind, fp32_size)
            pruned = kind == "pruned"  # as large as fp32, half as large compressed
            variants.append({"id": vid, "model_id": m + 1, "kind": kind, "sha256": f"{vid:064x}", "size": size,
                             "gzip_size": int(size * (0.5 if pruned else 0.9)),
                             "path": f"/cache/{vid}.{'onnx' if kind == 'onnx' else 'tflite'}",
                             "description": json.dumps({"sparsity": 0.5} if pruned else {}), "needs_flex": False,
                             "error": None})
            base[vid] = (rng.uniform(1.0, 50.0) / (1 + 0.3 * k), 0.95 - 0.01 * k - rng.uniform(0, 0.05))

    with store.engine.begin() as connection:
        connection.execute(DeviceRow.__table__.insert(), devices)
        connection.execute(ModelRow.__table__.insert(), models)
        connection.execute(VariantRow.__table__.insert(), variants)

    job_id = result_id = 0
    for s in range(SWEEPS):
        created = start + timedelta(days=s)
        sweeps, jobs, results, samples = [], [], [], []
        sweeps.append({"id": s + 1, "name": f"nightly-{s + 1:02d}", "spec": "{}", "created": created,
                       "finished": created + timedelta(hours=5), "state": "done"})
        drift = rng.uniform(0.97, 1.03)
        t = created
        for d, device in enumerate(devices):
            for variant in variants:
                vid = variant["id"]
                latency, accuracy = base[vid]
                runtime, version = runtime_of(d, variant["kind"])
                for delegate in DELEGATES:
                    for threads in THREADS:
                        job_id += 1
                        result_id += 1
                        t += timedelta(milliseconds=150)
                        jobs.append({"id": job_id, "sweep_id": s + 1, "device": device["name"], "variant_id": vid,
                                     "delegate": delegate, "threads": threads, "repeat": 0, "state": "done",
                                     "attempts": 1, "error": None, "started": t, "finished": t})
                        median = latency * speed[d] * drift * (1.6 if delegate == "none" else 1.0) / threads ** 0.6
                        x = np.round(median * 1000.0 * rng.lognormal(0.0, 0.04, RUNS), 3)
                        q = np.percentile(x, (50, 90, 95, 99)) / 1000.0
                        results.append({
                            "id": result_id, "job_id": job_id, "init_ms": 100 + 5 * median, "first_ms": 2 * median,
                            "warmup_ms": 1.2 * median, "count": RUNS, "mean_ms": x.mean() / 1000.0,
                            "std_ms": x.std(ddof=1) / 1000.0, "min_ms": x.min() / 1000.0, "max_ms": x.max() / 1000.0,
                            "p50_ms": q[0], "p90_ms": q[1], "p95_ms": q[2], "p99_ms": q[3],
                            "peak_mb": 30 + variant["size"] / 1e6, "peak_delta_mb": variant["size"] / 1e6,
                            "accuracy": accuracy, "agreement_with_fp32": 1.0 if variant["kind"] == "fp32" else 0.97,
                            "agreement_with_source": 1.0 if variant["kind"] in ("fp32", "onnx") else 0.97,
                            "predictions": None, "delegate_outcome": "applied", "delegated_nodes": 60,
                            "total_nodes": 60, "runtime": runtime, "runtime_version": version,
                            "env_before": json.dumps({"temps_c": {"cpu-thermal": 45.0 + d % 7},
                                                      "governor": "performance"}),
                            "env_after": json.dumps({"temps_c": {"cpu-thermal": 47.5 + d % 7},
                                                     "governor": "performance"}),
                            "host": "{}", "wall_ms": 900.0})
                        samples.append({"result_id": result_id, "latency_us": json.dumps(x.tolist())})
            for vid in (1, 2, 3):  # what cannot run, and what failed: jobs without a result
                job_id += 1
                jobs.append({"id": job_id, "sweep_id": s + 1, "device": device["name"], "variant_id": vid,
                             "delegate": "edgetpu", "threads": 1, "repeat": 0, "state": "skipped", "attempts": 0,
                             "error": f"device {device['name']} offers no edgetpu delegate", "started": None,
                             "finished": None})
            job_id += 1
            jobs.append({"id": job_id, "sweep_id": s + 1, "device": device["name"], "variant_id": 4,
                         "delegate": "gpu", "threads": 1, "repeat": 0, "state": "failed", "attempts": 3,
                         "error": "delegate not applied: gpu took 0 of 60 nodes", "started": t, "finished": t})
        with store.engine.begin() as connection:
            connection.execute(SweepRow.__table__.insert(), sweeps)
            connection.execute(JobRow.__table__.insert(), jobs)
            connection.execute(ResultRow.__table__.insert(), results)
            connection.execute(SampleRow.__table__.insert(), samples)
        print(f"  sweep {s + 1}/{SWEEPS}: {result_id} results, {result_id * RUNS:,} samples", flush=True)
    store.engine.dispose()


def time_pages(db: Path) -> list[tuple[str, float, float]]:
    """(page, first visit s, cached s) per page, each first visit with every cache emptied."""
    import logging

    import streamlit as st
    from streamlit.testing.v1 import AppTest

    def quiet() -> None:
        # Outside a script run, Streamlit warns that there is no runtime (and clears the caches all the same).
        for name in ("streamlit.runtime.caching.cache_data_api", "streamlit.runtime.scriptrunner_utils.script_run_context"):
            logging.getLogger(name).setLevel(logging.ERROR)

    quiet()
    sys.argv = ["app.py", "--db", str(db)]
    app = AppTest.from_file(str(ROOT / "dashboard" / "app.py"), default_timeout=120)
    app.run()  # imports and the sidebar, so that the first page's figure is its own
    timings = []
    for page in PAGES:
        app.switch_page(f"views/{page}.py")
        quiet()
        st.cache_data.clear()
        began = time.perf_counter()
        app.run()
        cold = time.perf_counter() - began
        began = time.perf_counter()
        app.run()
        warm = time.perf_counter() - began
        if app.exception:
            raise SystemExit(f"{page}: {app.exception[0].value}")
        if not app.title or app.title[0].value.lower().replace("-", "") != page:
            raise SystemExit(f"{page}: the page did not render (title {[t.value for t in app.title]})")
        timings.append((page, cold, warm))
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, help="where to keep the store (reused if it exists)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        db = args.store or Path(folder) / "farm.db"
        if not db.exists():
            print(f"building {db}: {SWEEPS * DEVICES * 400:,} results, {SWEEPS * DEVICES * 400 * RUNS:,} samples")
            began = time.perf_counter()
            build(db)
            print(f"built in {time.perf_counter() - began:.1f} s, {db.stat().st_size / 1e6:.0f} MB")
        print(f"\n{'page':<12} {'first visit':>12} {'cached':>8}   (target < {TARGET_S:.0f} s)")
        for page, cold, warm in time_pages(db):
            print(f"{page:<12} {cold:>10.2f} s {warm:>6.2f} s   {'ok' if cold < TARGET_S else 'SLOW'}")


if __name__ == "__main__":
    main()
