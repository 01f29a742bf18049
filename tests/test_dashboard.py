"""The dashboard: its math with plain numbers, and every page run by Streamlit's AppTest on a seeded store, checked for
the numbers it shows (a known p50, a failure's reason, the Pareto front, a 2x slowdown flagged and noise not)."""
from __future__ import annotations

import base64
import json
import re
import sqlite3
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from farm.dashboard import analysis
from farm.export import export_per_device
from farm.inventory import parse_device
from farm.stats import summarize
from farm.store import Store
from farm.tables import SCHEMA_VERSION

REPO = Path(__file__).resolve().parent.parent
APP = REPO / "dashboard" / "app.py"

# --- a seeded store -------------------------------------------------------------------------------------------------


@dataclass
class SeedVariant:
    """A conversion result as farm.convert returns it (the fields the store reads)."""

    model: str
    kind: str
    sha256: str
    size: int
    path: Path = Path("/models/x.tflite")
    source_sha: str = "src"
    description: dict = field(default_factory=lambda: {"inputs": [], "outputs": [], "needs_flex": False})
    error: str | None = None
    gzip_size: int | None = None


FACTS = {
    "pi4": {"board": "Raspberry Pi 4 Model B Rev 1.4", "cpu_model": "Cortex-A72", "cores": 4, "ram_mb": 3792,
            "platform": "Linux", "os_release": "6.6.51+rpt-rpi-v8", "machine": "aarch64", "python_version": "3.11.2",
            "runtime": {"name": "ai_edge_litert", "version": "2.3.0"}, "governor": "ondemand",
            "temps_c": {"cpu-thermal": 51.1}, "jetson": None, "edgetpu": {"present": False}},
    "local": {"board": None, "cpu_model": "AMD EPYC 7B13", "cores": 2, "ram_mb": 24000, "platform": "Linux",
              "os_release": "6.1.0", "machine": "x86_64", "python_version": "3.11.7",
              "runtime": {"name": "ai_edge_litert", "version": "2.3.0"}, "governor": None, "temps_c": {},
              "jetson": None, "edgetpu": {"present": False}},
    "orin": {"board": "NVIDIA Jetson Orin Nano Developer Kit", "jetson": "# R36 (release), REVISION: 4.0",
             "cpu_model": "ARMv8 Processor rev 1 (v8l)", "cores": 6, "ram_mb": 7620, "platform": "Linux",
             "os_release": "5.15.148-tegra", "machine": "aarch64", "python_version": "3.10.12",
             "runtime": {"name": "tflite_runtime", "version": "2.14.0"}, "governor": "schedutil",
             "temps_c": {"cpu-thermal": 44.0, "gpu-thermal": 43.5}, "edgetpu": {"present": False}},
}
# (model, variant) -> (size in bytes, p50 latency on the pi in ms, accuracy); `local` runs everything 4x faster.
VARIANTS = {
    ("mnv2", "fp32"): (14_000_000, 40.0, 0.92),
    ("mnv2", "fp16"): (7_000_000, 38.0, 0.92),  # as accurate as fp32 and faster: fp32 is off the front
    ("mnv2", "int8"): (3_600_000, 15.0, 0.90),
    ("digits", "fp32"): (120_000, 2.0, 0.85),
    ("digits", "int8"): (40_000, 1.0, 0.80),
}
FRONT_ON_PI = {("digits", "int8"), ("digits", "fp32"), ("mnv2", "int8"), ("mnv2", "fp16")}
FAILED_REASON = "delegate not applied: gpu took 0 of 65 nodes"
SKIPPED_REASON = "device pi4 offers no edgetpu delegate"
# pi4's op profiles in the candidate sweep (profile: true): (op, name, avg ms per call, calls) in run order; repeat r
# adds r * 0.01 ms to every node, so the pooled means are those below plus 0.01.
OPS = {
    ("digits", "fp32"): [("CONV_2D", "[conv1]:0", 0.6, 1), ("CONV_2D", "[conv2]:1", 0.9, 1),
                         ("FULLY_CONNECTED", "[dense]:2", 0.3, 1), ("SOFTMAX", "[<b>probs</b> *x*]:3", 0.2, 1)],
    ("digits", "int8"): [("QUANTIZE", "[q]:0", 0.05, 1), ("Convolution (NHWC, QC8) GEMM", "Delegate/GEMM:0", 0.02, 13),
                         ("FULLY_CONNECTED", "[dense]:2", 0.1, 1), ("SOFTMAX", "[probs]:3", 0.1, 1)],
}
RUNS = 101
REPEATS = 3  # the finished sweeps' repeats of each configuration; the live one has one


def samples_around(median_ms: float, rng: np.random.Generator | None = None) -> list[float]:
    """RUNS samples (µs) whose median is exactly `median_ms`, or drawn around it when given a generator."""
    if rng is None:
        return list(np.linspace(median_ms * 950.0, median_ms * 1050.0, RUNS))
    return list(np.round(rng.normal(median_ms * 1000.0, median_ms * 20.0, RUNS), 3))


def read(markdown):
    """Markdown as a person reads it once rendered: the dashboard backslash-escapes every punctuation of store text."""
    if not isinstance(markdown, str):
        return markdown
    return re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", markdown).replace("\u2060", "")  # joiners are invisible


def shown(table) -> pd.DataFrame:
    """An st.table as a person reads it (its cells are markdown)."""
    frame = table.value.map(read)
    frame.index = frame.index.map(read)
    frame.columns = frame.columns.map(read)
    return frame


def seed_store(path: Path | str) -> dict:
    """Three sweeps on three devices: `baseline` and `candidate` done, 3 repeats each (pi4's mnv2 fp32 2x slower in
    candidate), and `live` still running. Returns what the pages should show."""
    store = Store(path)
    for name, kind, tags, delegates in (("pi4", "linux", ["pi", "arm64"], ["xnnpack", "none"]),
                                        ("local", "local", ["x86"], ["xnnpack", "none"]),
                                        ("orin", "linux", ["jetson", "arm64"], ["xnnpack", "none", "gpu"])):
        device = parse_device(dict(name=name, kind=kind, tags=tags, delegates=delegates,
                                   **({"host": f"{name}.lab", "user": "farm"} if kind == "linux" else {})))
        store.upsert_device(device, FACTS[name])
    ids = {key: store.add_variant(SeedVariant(key[0], key[1], f"{i:064x}", size))
           for i, (key, (size, _, _)) in enumerate(VARIANTS.items())}
    labels = list(range(10)) * 2

    def job(device, key, delegate="xnnpack", repeat=0, **extra):
        return {"device": device, "variant_id": ids[key], "delegate": delegate, "threads": 1, "repeat": repeat, **extra}

    def finish(store, job_row, key, latency_ms, samples, ops=None):
        size, _, accuracy = VARIANTS[key]
        predictions = labels if key[1] == "fp32" else labels[:-2] + [0, 0]  # 18 of 20 agree with fp32
        result = {**summarize(samples), "init_ms": 120.0 + latency_ms, "first_ms": 2 * latency_ms,
                  "peak_mb": 30.0 + size / 1e6, "peak_delta_mb": size / 1e6, "accuracy": accuracy,
                  "predictions": json.dumps(predictions), "delegate_outcome": "applied", "delegated_nodes": 65,
                  "total_nodes": 65, "runtime": "ai_edge_litert", "runtime_version": "2.3.0",
                  "env_before": json.dumps({"temps_c": {"cpu-thermal": 48.0}, "governor": "ondemand"}),
                  "env_after": json.dumps({"temps_c": {"cpu-thermal": 52.5}, "governor": "ondemand"})}
        store.start_job(job_row.id)
        store.finish_job(job_row.id, result, samples, ops)

    expected = {"samples": {}}
    for sweep_name, seed in (("baseline", 1), ("candidate", 2)):
        rng = np.random.default_rng(seed)
        jobs = []
        for repeat in range(REPEATS):  # interleaved, as a plan orders them
            jobs += [job(d, key, repeat=repeat) for d in ("pi4", "local") for key in VARIANTS]
            jobs.append(job("orin", ("mnv2", "fp32"), "gpu", repeat=repeat))
            jobs.append(job("pi4", ("mnv2", "int8"), "edgetpu", repeat=repeat, state="skipped", error=SKIPPED_REASON))
        sweep = store.create_sweep(sweep_name, {"name": sweep_name}, jobs)
        store.set_sweep_state(sweep.id, "running")
        for row in store.jobs(sweep.id, ("pending",)):
            model, kind = store.variant_names(row.variant_id)
            key = (model, kind)
            if row.device == "orin":
                store.start_job(row.id)
                store.fail_job(row.id, FAILED_REASON)
                continue
            latency = VARIANTS[key][1] * (1.0 if row.device == "pi4" else 0.25)
            if (row.device, key, sweep_name) == ("pi4", ("mnv2", "fp32"), "candidate"):
                latency *= 2.0  # the regression the Compare page must flag
            exact = row.device == "pi4"  # pi4's medians are exact; local's are drawn from one distribution per key
            samples = samples_around(latency, None if exact else rng)
            expected["samples"].setdefault((sweep_name, row.device, key), []).append(samples)  # one list per repeat
            ops = None
            if (sweep_name, row.device) == ("candidate", "pi4") and key in OPS:
                ops = [{"position": i, "node": i, "op": op, "name": name, "first_ms": ms, "avg_ms": ms + row.repeat * 0.01,
                        "pct": None, "times_called": calls} for i, (op, name, ms, calls) in enumerate(OPS[key])]
            finish(store, row, key, latency, samples, ops)
        store.update_agreement(sweep.id)
        store.set_sweep_state(sweep.id, "done")

    live = store.create_sweep("live", {"name": "live"}, [job("pi4", key) for key in VARIANTS])
    store.set_sweep_state(live.id, "running")
    first, second = store.jobs(live.id)[:2]
    finish(store, first, ("mnv2", "fp32"), 40.0, samples_around(40.0))
    store.start_job(second.id)
    store.engine.dispose()
    expected["live"] = {"done": 1, "running": 1, "pending": len(VARIANTS) - 2}
    return expected


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def seeded(request, tmp_path_factory) -> tuple[Path | str, dict]:
    """The seeded store, on each backend (the pages read both alike)."""
    if request.param == "sqlite":
        db = tmp_path_factory.mktemp("dashboard") / "farm.db"
    else:
        db = request.getfixturevalue("postgres_cluster").new_database()
    return db, seed_store(db)


# A sweep of TFLite variants and the ONNX model beside them, on three devices and four runtimes, and a regression model.
# (model, variant) -> (plain size, gzip size, description): pruned is as large as fp32, and half as large zipped.
RUNTIME_VARIANTS = {
    ("digits", "fp32"): (120_000, 110_000, {}),
    ("digits", "int8"): (40_000, 30_000, {}),
    ("digits", "pruned"): (120_000, 60_000, {"sparsity": 0.5, "target_sparsity": 0.5}),
    ("digits", "onnx"): (130_000, 115_000, {}),
    ("housing", "fp32"): (20_000, 18_000, {}),
    ("housing", "int8"): (8_000, 7_000, {}),
}
# (device, model, variant, delegate, runtime, version) -> what its one repeat measured: p50 (ms) and scores. The phone's
# tools print aggregates (no samples) and score nothing.
RUNTIME_RESULTS = {
    ("local", "digits", "fp32", "xnnpack", "ai_edge_litert", "2.3.0"):
        {"p50": 2.0, "accuracy": 0.85, "agreement_with_fp32": 1.0, "agreement_with_source": 1.0},
    ("local", "digits", "int8", "xnnpack", "ai_edge_litert", "2.3.0"):
        {"p50": 1.0, "accuracy": 0.80, "agreement_with_fp32": 0.9, "agreement_with_source": 0.9},
    ("local", "digits", "pruned", "xnnpack", "ai_edge_litert", "2.3.0"):
        {"p50": 2.0, "accuracy": 0.84, "agreement_with_fp32": 0.95, "agreement_with_source": 0.95},
    ("local", "digits", "onnx", "none", "onnxruntime", "1.23.2"):
        {"p50": 1.5, "accuracy": 0.85, "agreement_with_fp32": 1.0, "agreement_with_source": 1.0},
    ("local", "housing", "fp32", "xnnpack", "ai_edge_litert", "2.3.0"):
        {"p50": 0.5, "rmse": 0.52, "max_abs_error": 1.9, "rmse_vs_source": 1e-4, "max_abs_vs_source": 4e-4},
    ("local", "housing", "int8", "xnnpack", "ai_edge_litert", "2.3.0"):
        {"p50": 0.3, "rmse": 0.55, "max_abs_error": 2.1, "rmse_vs_source": 0.04, "max_abs_vs_source": 0.2},
    ("pi5", "digits", "int8", "xnnpack", "ai_edge_litert", "2.4.0"):
        {"p50": 3.0, "accuracy": 0.80, "agreement_with_fp32": 0.9, "agreement_with_source": 0.9},
    ("pixel", "digits", "int8", "xnnpack", "benchmark_model", "2.16.1"): {"p50": 4.0},
    ("pixel", "digits", "onnx", "none", "onnxruntime_perf_test", "1.23.2"): {"p50": 6.0},
}
ORT_FACTS = {"version": "1.23.2", "providers": ["XnnpackExecutionProvider", "CPUExecutionProvider"]}


def seed_runtimes(path: Path | str) -> None:
    """Two sweeps, `runtimes` and `rerun`, each with RUNTIME_RESULTS (one repeat each) written through the store."""
    store = Store(path)
    for entry, facts in (({"name": "local", "kind": "local", "tags": ["x86"]},
                          FACTS["local"] | {"onnxruntime": ORT_FACTS}),
                         ({"name": "pi5", "kind": "linux", "host": "pi5.lab", "user": "farm", "tags": ["pi"]},
                          FACTS["pi4"]),
                         ({"name": "pixel", "kind": "android", "serial": "X1", "tags": ["phone"],
                           "binaries": {"arm64-v8a": "bin/benchmark_model"},
                           "onnxruntime_perf_test": {"arm64-v8a": "bin/onnxruntime_perf_test"}}, {"sdk": 34})):
        store.upsert_device(parse_device({**entry, "delegates": ["xnnpack", "none"]}), facts)
    ids = {key: store.add_variant(SeedVariant(*key, f"{i:064x}", size, gzip_size=gzip,
                                              description={"inputs": [], "outputs": [], **described}))
           for i, (key, (size, gzip, described)) in enumerate(RUNTIME_VARIANTS.items())}
    for name in ("runtimes", "rerun"):
        sweep = store.create_sweep(name, {"name": name}, [
            {"device": device, "variant_id": ids[(model, variant)], "delegate": delegate, "threads": 1, "repeat": 0}
            for device, model, variant, delegate, _, _ in RUNTIME_RESULTS])
        for job, (key, measured) in zip(store.jobs(sweep.id), RUNTIME_RESULTS.items()):
            runtime, version, p50 = key[4], key[5], measured["p50"]
            scores = {name: value for name, value in measured.items() if name != "p50"}
            samples = [] if key[0] == "pixel" else samples_around(p50)
            figures = summarize(samples) if samples else {
                "count": 50, "mean_ms": p50, "std_ms": 0.1, "min_ms": p50 * 0.9, "max_ms": p50 * 1.2, "p50_ms": p50}
            store.start_job(job.id)
            store.finish_job(job.id, {**figures, **scores, "init_ms": 20.0, "first_ms": 2 * p50,
                                      "delegate_outcome": "applied" if key[3] != "none" else "cpu", "runtime": runtime,
                                      "runtime_version": version}, samples)
        store.set_sweep_state(sweep.id, "done")
    store.engine.dispose()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def runtimes(request, tmp_path_factory) -> Path | str:
    """The store of seed_runtimes, on each backend."""
    if request.param == "sqlite":
        db = tmp_path_factory.mktemp("runtimes") / "farm.db"
    else:
        db = request.getfixturevalue("postgres_cluster").new_database()
    seed_runtimes(db)
    return db


# --- the math -------------------------------------------------------------------------------------------------------


def test_pareto_front_keeps_only_undominated_points():
    latency = [40, 38, 15, 2, 1, 5, 5, np.nan]
    accuracy = [.92, .92, .90, .85, .80, .85, .85, .99]
    assert analysis.pareto_front(latency, accuracy).tolist() == [False, True, True, True, True, False, False, False]
    # Identical points do not dominate each other; an equally fast but less accurate point is dominated.
    assert analysis.pareto_front([1, 1, 1], [.5, .5, .4]).tolist() == [True, True, False]
    assert analysis.pareto_front([], []).tolist() == []


def test_box_stats_and_hottest_zone():
    box = analysis.box_stats([1, 2, 3, 4, 5, 6, 7, 8, 100])
    assert (box["q1"], box["median"], box["q3"]) == (3.0, 5.0, 7.0)
    assert (box["lowerfence"], box["upperfence"]) == (1.0, 8.0)  # 100 is beyond 7 + 1.5 * 4
    assert analysis.hottest({"temps_c": {"cpu": 51.5, "gpu": 48.0}}) == 51.5
    assert analysis.hottest({"temps_c": {}}) is None and analysis.hottest(None) is None


def test_duration_text():
    assert [analysis.duration_text(s) for s in (12, 187, 7500, None, float("nan"))] == [
        "12 s", "3 min 07 s", "2 h 05 min", "—", "—"]


def test_a_configuration_is_labelled_with_the_runtime_version_where_the_boards_in_view_differ_in_it():
    from farm.dashboard.charts import config_label

    # A Pi that takes only tflite-runtime beside boards on two ai-edge-litert releases (farm provision's choices).
    frame = pd.DataFrame({"device": ["x86", "pi5", "pi4"], "model": "digits", "variant": "int8", "delegate": "xnnpack",
                          "threads": 1, "runtime": ["ai_edge_litert", "ai_edge_litert", "tflite_runtime"],
                          "runtime_version": ["2.3.0", "2.4.0", "2.14.0"]})
    assert config_label(frame).tolist() == ["digits · int8 · xnnpack · 1 thr · ai_edge_litert 2.3.0",
                                            "digits · int8 · xnnpack · 1 thr · ai_edge_litert 2.4.0",
                                            "digits · int8 · xnnpack · 1 thr · tflite_runtime"]
    # The boards in view (a device tag filter) agree on each runtime's version: the runtime names them apart.
    assert config_label(frame[frame["device"] != "pi5"]).tolist() == [
        "digits · int8 · xnnpack · 1 thr · ai_edge_litert", "digits · int8 · xnnpack · 1 thr · tflite_runtime"]


# --- the pages, run by AppTest ----------------------------------------------------------------------------------------


def open_app(db: Path, monkeypatch, sweep: str | None = None):
    """The dashboard over `db` as `streamlit run dashboard/app.py -- --db DB` runs it, after its first run."""
    from streamlit.testing.v1 import AppTest

    monkeypatch.setattr(sys, "argv", ["app.py", "--db", str(db)])
    app = AppTest.from_file(str(APP), default_timeout=60).run()
    if sweep:
        app.selectbox(key="sweep").set_value(sweep).run()
    return app


def visit(app, page: str):
    app.switch_page(f"views/{page}.py").run()
    assert not app.exception, [e.value for e in app.exception]
    assert app.title[0].value.lower().replace("-", "") == page
    return app


def texts(app) -> str:
    """Everything a page says in words (markdown, captions, alerts), as one string."""
    parts = [e.value for kind in ("markdown", "caption", "info", "warning", "error", "success", "subheader")
             for e in getattr(app, kind)]
    return "\n".join(read(str(p)) for p in parts)


def figure(app, index: int = 0) -> list[dict]:
    """The traces of a page's plotly chart, with plotly's base64-packed arrays unpacked into lists."""
    def unpack(value):
        if isinstance(value, dict) and set(value) == {"dtype", "bdata"}:
            return np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"]).tolist()
        if isinstance(value, dict):  # error_x and the like hold packed arrays too
            return {key: unpack(inner) for key, inner in value.items()}
        return value

    return [{key: unpack(value) for key, value in trace.items()}
            for trace in json.loads(app.get("plotly_chart")[index].proto.spec)["data"]]


def test_an_interrupted_sweep_says_so_with_the_command_that_carries_on(tmp_path, monkeypatch):
    db = tmp_path / "farm.db"
    seed_store(db)
    store = Store(db)
    live = store.sweep("live")
    store.requeue_running(live.id)  # what an interrupted coordinator does before it exits
    store.set_sweep_state(live.id, "interrupted")
    app = open_app(db, monkeypatch)
    assert not app.exception
    assert "Sweep live was interrupted: 1 of 5 jobs finished, 4 pending." in texts(app)
    assert "farm sweep resume live --db" in texts(app).replace("\\", "")


def test_sweeps_page_counts_jobs_and_gives_reasons(seeded, monkeypatch):
    db, _ = seeded
    app = open_app(db, monkeypatch)
    assert not app.exception
    # The newest sweep is still running: the page says so, with its progress, rather than failing.
    assert "Sweep live is still running:** 1 of 5 jobs finished, 1 running now, 3 pending" in texts(app)
    overview = app.dataframe[0].value.set_index("sweep")
    assert overview.loc["baseline", ["done", "failed", "skipped", "pending", "running", "jobs"]].tolist() == [
        30, 3, 3, 0, 0, 36]
    assert overview.loc["live", ["done", "running", "pending"]].tolist() == [1, 1, 3]
    running = app.dataframe[1].value
    assert running[["device", "model", "variant"]].values.tolist() == [["pi4", "mnv2", "fp16"]]

    app.selectbox(key="sweep").set_value("baseline").run()
    assert {m.label: m.value for m in app.metric} == {
        "done": "30", "failed": "3", "skipped": "3", "pending": "0", "running": "0"}
    reasons = shown(app.table[0])
    assert set(reasons["reason"]) == {FAILED_REASON, SKIPPED_REASON}
    problems = app.dataframe[1].value.set_index("state")
    failed, skipped = problems.loc[["failed"]], problems.loc[["skipped"]]
    assert len(failed) == len(skipped) == REPEATS and failed["repeat"].tolist() == list(range(REPEATS))
    assert set(failed["device"]) == {"orin"} and set(failed["reason"]) == {FAILED_REASON}
    assert set(skipped["delegate"]) == {"edgetpu"}


def test_leaderboard_shows_the_known_figures(seeded, monkeypatch):
    db, expected = seeded
    app = visit(open_app(db, monkeypatch, "baseline"), "leaderboard")
    board = app.dataframe[0].value
    assert board.loc["mnv2 · fp32 · xnnpack · 1 thr · ai_edge_litert", "pi4"] == pytest.approx(40.0)
    local = np.mean([summarize(repeat)["p50_ms"] for repeat in expected["samples"][("baseline", "local", ("mnv2", "int8"))]])
    assert board.loc["mnv2 · int8 · xnnpack · 1 thr · ai_edge_litert", "local"] == pytest.approx(local)
    assert board.index[0] == "digits · int8 · xnnpack · 1 thr · ai_edge_litert"  # fastest first
    assert len(app.get("plotly_chart")) == 1
    best = shown(app.table[0])
    assert best.loc["pi4", "config"] == "digits · int8 · xnnpack · 1 thr · ai_edge_litert"

    app.radio(key="leaderboard_metric").set_value("agreement with fp32").run()
    board = app.dataframe[0].value
    assert board.loc["mnv2 · int8 · xnnpack · 1 thr · ai_edge_litert", "pi4"] == pytest.approx(0.9)
    assert board.loc["mnv2 · fp32 · xnnpack · 1 thr · ai_edge_litert", "pi4"] == pytest.approx(1.0)
    app.radio(key="leaderboard_metric").set_value("agreement with source").run()
    assert ("No agreement with source in this selection: give the sweep's models an `eval:` set and a Keras or "
            "SavedModel source") in texts(app)
    app.radio(key="leaderboard_metric").set_value("init (ms)").run()
    board = app.dataframe[0].value
    assert board.loc["mnv2 · fp32 · xnnpack · 1 thr · ai_edge_litert", "pi4"] == pytest.approx(160.0)


def test_leaderboard_of_a_running_sweep_shows_what_is_done(seeded, monkeypatch):
    db, _ = seeded
    app = visit(open_app(db, monkeypatch), "leaderboard")
    assert "still running" in texts(app)
    assert app.dataframe[0].value.to_dict() == {"pi4": {"mnv2 · fp32 · xnnpack · 1 thr · ai_edge_litert": 40.0}}


def test_tradeoffs_draw_the_pareto_front(seeded, monkeypatch):
    db, _ = seeded
    app = visit(open_app(db, monkeypatch, "baseline"), "tradeoffs")
    front = app.dataframe[0].value
    assert {(m, v) for m, v in front.loc[front["device"] == "pi4", ["model", "variant"]].values} == FRONT_ON_PI
    assert set(front["device"]) == {"pi4", "local"}  # a front per device
    app.selectbox(key="tradeoffs_scope").set_value("pi4").run()
    front = app.dataframe[0].value
    assert front[["model", "variant"]].values.tolist() == [["digits", "int8"], ["digits", "fp32"], ["mnv2", "int8"],
                                                           ["mnv2", "fp16"]]
    assert front[["p50 latency (ms)", "accuracy"]].values.ravel().tolist() == pytest.approx(
        [1.0, 0.80, 2.0, 0.85, 15.0, 0.90, 38.0, 0.92])  # means over the repeats
    fronts = [trace for trace in figure(app) if trace.get("name", "").startswith("Pareto front")]
    assert [trace["x"] for trace in fronts] == [[1.0, 2.0, 15.0, 38.0]]
    # These variants were stored without a gzip size (as before tflite-farm kept it): said, and nothing breaks.
    app.radio(key="tradeoffs_size").set_value("gzip").run()
    assert not app.exception
    assert "5 of 5 configurations have no gzip (KB) recorded" in texts(app)
    assert "No configuration here has a gzip (KB) recorded." in texts(app)
    assert len(app.get("plotly_chart")) == 1
    assert "size" not in figure(app)[0]["marker"]  # markers all alike, none sized by an unknown


def test_device_page_shows_facts_percentiles_and_temperatures(seeded, monkeypatch):
    db, _ = seeded
    app = visit(open_app(db, monkeypatch, "baseline"), "device")
    app.selectbox(key="device_name").set_value("pi4").run()
    assert not app.exception
    facts = shown(app.table[0])["value"]
    assert facts["board"] == "Raspberry Pi 4 Model B Rev 1.4"
    assert facts["SoC / CPU"] == "Cortex-A72" and facts["runtime"] == "ai_edge_litert 2.3.0"
    assert facts["delegates"] == "xnnpack, none" and facts["tags"] == "pi, arm64"
    percentiles = app.dataframe[0].value.set_index("config")
    fp32 = percentiles.loc["mnv2 · fp32 · xnnpack · 1 thr · ai_edge_litert"]
    assert fp32["p50_ms"] == pytest.approx(40.0) and fp32["count"] == REPEATS * RUNS and fp32["repeats"] == REPEATS
    assert fp32["p50_ci_low_ms"] <= 40.0 <= fp32["p50_ci_high_ms"]
    (bars,) = figure(app, 0)  # the p50s with the error bars of their intervals
    at = bars["y"].index("mnv2 · fp32 · xnnpack · 1 thr · ai_edge_litert")
    assert bars["x"][at] == pytest.approx(40.0) and bars["error_x"]["array"][at] >= 0
    assert "Hottest zone 48.0–52.5 °C; a job warmed it by 4.5 °C" in texts(app)
    assert "CPU governor during the jobs: ondemand." in texts(app)
    medians = {y: m for trace in figure(app, 1) for y, m in zip(trace["y"], trace["median"])}
    assert medians["mnv2 · fp32 · xnnpack · 1 thr · ai_edge_litert"] == pytest.approx(40.0)

    app.selectbox(key="device_name").set_value("orin").run()  # it only failed: facts, and no results to show
    assert not app.exception
    assert shown(app.table[0])["value"]["Jetson"] == "# R36 (release), REVISION: 4.0"
    assert "No results of orin in this sweep for the current filters" in texts(app)


def test_compare_flags_the_2x_slowdown_and_not_noise(seeded, monkeypatch):
    db, _ = seeded
    app = visit(open_app(db, monkeypatch, "candidate"), "compare")
    assert (app.selectbox(key="compare_a").value, app.selectbox(key="compare_b").value) == ("baseline", "candidate")
    counts = {m.label: m.value for m in app.metric}
    assert counts == {"slower": "1", "faster": "0", "within noise": "9", "too few repeats": "0", "only in A": "0",
                      "only in B": "0"}
    flagged = shown(app.table[0])
    assert flagged.index.tolist() == ["pi4 · mnv2 · fp32 · xnnpack · 1 thr · ai_edge_litert"]
    assert flagged["change"].tolist() == ["+100.0 %"]
    pairs = app.dataframe[0].value.set_index(["device", "model", "variant"])
    assert pairs.loc[("pi4", "mnv2", "fp32"), "verdict"] == "slower"
    assert pairs.loc[("local", "mnv2", "fp32"), "verdict"] == "noise"  # new draws from the same distribution
    assert pairs.loc[("pi4", "mnv2", "fp16"), "verdict"] == "noise"
    assert pairs.loc[("pi4", "mnv2", "fp32"), ["runtime A", "runtime B"]].tolist() == ["ai_edge_litert 2.3.0"] * 2
    assert not app.warning  # measured alike: nothing to warn of
    assert "Welch's test on the repeats' log medians gives p below 0.05, and the median moved by at least 2.0%" in texts(app)

    app.selectbox(key="compare_a").set_value("candidate").run()
    assert "Pick two different sweeps." in texts(app)


def test_compare_says_what_two_sweeps_were_not_measured_alike_in_before_its_verdicts(tmp_path, monkeypatch):
    from test_compare import UNALIKE, seed

    seed(tmp_path / "farm.db", {"base": {"fp32": (10.0, 0.95)}, "new": {"fp32": (10.0, 0.95)}}, **UNALIKE)
    app = visit(open_app(tmp_path / "farm.db", monkeypatch, "new"), "compare")
    (warning,) = app.warning
    assert read(warning.value).splitlines() == [
        "**base and new were not measured alike**, so a change below may come from this, not from the models:", "",
        "- runs: 30 in A, 300 in B", "- local: CPU: Cortex-A72 in A, **A72** [docs](http://x.example) in B",
        "- local: cores: 4 in A, 2 in B", "- local: kernel: 6.1.0 in A, 6.6.51 in B",
        "- local: runtime: x 2.3.0 in A, x 2.4.0 in B"]
    assert "\\*\\*A72\\*\\* \\[docs\\]" in warning.value  # the device's markup stays text
    order = [type(element).__name__ for element in app.main]
    assert order.index("Warning") < order.index("Metric")  # said before the verdicts


def test_ops_page_shows_a_configurations_nodes_and_two_variants_by_op_type(seeded, monkeypatch):
    db, _ = seeded
    app = visit(open_app(db, monkeypatch, "baseline"), "ops")
    assert "No op profiles in sweep baseline" in texts(app)

    app = visit(open_app(db, monkeypatch, "candidate"), "ops")
    assert app.selectbox(key="ops_device").options == ["pi4"]  # the only device that profiled
    assert app.selectbox(key="ops_setup").value == "digits · xnnpack · 1 thr"
    app.selectbox(key="ops_variant").set_value("fp32").run()
    nodes = app.dataframe[0].value
    assert nodes["name"].tolist() == ["[conv2]:1", "[conv1]:0", "[dense]:2", "[<b>probs</b> *x*]:3"]  # slowest first
    assert nodes["ms_per_run"].tolist() == pytest.approx([0.91, 0.61, 0.31, 0.21])  # repeats 0, 1, 2 pooled
    assert nodes["repeats"].tolist() == [REPEATS] * 4
    app.selectbox(key="ops_other").set_value("int8").run()
    assert not app.exception
    bars = {trace["name"]: dict(zip(trace["y"], trace["x"])) for trace in figure(app, 0)}
    assert bars["fp32"]["CONV_2D"] == pytest.approx(1.52) and bars["fp32"]["QUANTIZE"] == 0.0
    # 13 calls of 0.03 ms: XNNPACK's operators are timed per call
    assert bars["int8"]["Convolution (NHWC, QC8) GEMM"] == pytest.approx(0.39)
    by_type = app.dataframe[1].value.set_index("op")
    assert by_type.loc["FULLY_CONNECTED", "change_ms"] == pytest.approx(0.11 - 0.31)


def test_export_is_the_farm_export_csv(seeded, monkeypatch, tmp_path):
    db, _ = seeded
    app = visit(open_app(db, monkeypatch, "baseline"), "export")
    app.selectbox(key="export_device").set_value("pi4").run()
    written = export_per_device(Store(db, create=False), "baseline", tmp_path)
    csv = (tmp_path / "baseline-pi4.csv").read_text()
    preview = app.dataframe[0].value
    pd.testing.assert_frame_equal(preview, pd.read_csv(tmp_path / "baseline-pi4.csv"))
    assert len(written) == 3 and len(preview) == 6  # pi4: 5 done and 1 skipped
    button = app.get("download_button")[0]
    assert button.proto.label == "Download baseline-pi4.csv"

    from farm.dashboard import queries
    sweep_id = Store(db, create=False).sweep("baseline").id
    assert queries.device_csv(str(db), sweep_id, "pi4") == csv  # byte for byte
    assert queries.device_csv(str(db), sweep_id, "orin") == (tmp_path / "baseline-orin.csv").read_text()


def test_filters_carry_across_pages_and_into_the_url(seeded, monkeypatch):
    db, _ = seeded
    app = visit(open_app(db, monkeypatch, "baseline"), "leaderboard")
    app.multiselect(key="model").set_value(["digits"]).run()
    app.multiselect(key="tag").set_value(["pi"]).run()
    assert app.dataframe[0].value.columns.tolist() == ["pi4"]
    assert set(app.dataframe[0].value.index) == {"digits · fp32 · xnnpack · 1 thr · ai_edge_litert",
                                                 "digits · int8 · xnnpack · 1 thr · ai_edge_litert"}
    visit(app, "tradeoffs")
    assert app.multiselect(key="model").value == ["digits"]
    front = app.dataframe[0].value
    assert set(front["model"]) == {"digits"} and set(front["device"]) == {"pi4"}
    assert app.query_params["model"] == "digits" and app.query_params["sweep"] == "baseline"

    # A link with filters in its query string opens on them.
    from streamlit.testing.v1 import AppTest
    shared = AppTest.from_file(str(APP), default_timeout=60)
    shared.query_params.update({"sweep": "candidate", "variant": ["int8", "fp16"], "model": "no-such-model"})
    shared.run()
    assert shared.selectbox(key="sweep").value == "candidate"
    assert shared.multiselect(key="variant").value == ["int8", "fp16"]
    assert shared.multiselect(key="model").value == []


def points_of(app, index: int) -> dict[str, dict[str, tuple[float, float]]]:
    """A scatter's points by trace (legend name), each by its configuration (the hover title): (x, y)."""
    return {trace["name"]: {label: (x, y) for label, x, y in zip(trace["hovertext"], trace["x"], trace["y"])}
            for trace in figure(app, index) if "hovertext" in trace}


def test_the_runtime_filter_narrows_every_page(runtimes, monkeypatch):
    app = visit(open_app(runtimes, monkeypatch), "leaderboard")
    assert app.multiselect(key="runtime").options == ["ai_edge_litert", "benchmark_model", "onnxruntime",
                                                      "onnxruntime_perf_test"]
    board = app.dataframe[0].value
    # ai_edge_litert in two versions (pi5's is newer): each is its own row. One version of a runtime: no version.
    assert board.loc["digits · int8 · xnnpack · 1 thr · ai_edge_litert 2.3.0", "local"] == pytest.approx(1.0)
    assert board.loc["digits · int8 · xnnpack · 1 thr · ai_edge_litert 2.4.0", "pi5"] == pytest.approx(3.0)
    assert board.loc["digits · onnx · none · 1 thr · onnxruntime", "local"] == pytest.approx(1.5)
    assert board.loc["digits · onnx · none · 1 thr · onnxruntime_perf_test", "pixel"] == pytest.approx(6.0)

    app.multiselect(key="runtime").set_value(["onnxruntime", "onnxruntime_perf_test"]).run()
    assert "runtimes: onnxruntime, onnxruntime_perf_test" in texts(app)
    onnx = [f"digits · onnx · none · 1 thr · {runtime}" for runtime in ("onnxruntime", "onnxruntime_perf_test")]
    board = app.dataframe[0].value
    assert board.index.tolist() == onnx and board.columns.tolist() == ["local", "pixel"]
    assert app.dataframe[1].value["config"].tolist() == onnx  # sizes and scores

    visit(app, "tradeoffs")
    front = app.dataframe[0].value  # the phone's tool scores nothing: only local's onnx has an accuracy
    assert front[["device", "variant", "runtime"]].values.tolist() == [["local", "onnx", "onnxruntime"]]
    assert {name: sorted(points) for name, points in points_of(app, 1).items()} == {
        "local": [onnx[0]], "pixel": [onnx[1]]}  # latency against size: every configuration

    visit(app, "device")
    app.selectbox(key="device_name").set_value("local").run()
    assert app.dataframe[0].value["config"].tolist() == [onnx[0]]
    assert shown(app.table[0])["value"]["ONNX Runtime"] == "1.23.2 (XnnpackExecutionProvider, CPUExecutionProvider)"
    app.selectbox(key="device_name").set_value("pixel").run()
    assert not app.exception
    assert app.dataframe[0].value[["config", "p50_ms"]].values.tolist() == [[onnx[1], 6.0]]
    assert "No raw samples: benchmark_model and onnxruntime_perf_test print aggregates" in texts(app)

    app.multiselect(key="runtime").set_value(["benchmark_model"]).run()
    assert app.query_params["runtime"] == "benchmark_model"
    assert app.dataframe[0].value["config"].tolist() == ["digits · int8 · xnnpack · 1 thr · benchmark_model"]

    visit(app, "compare")  # one repeat per configuration: counted, not tested
    assert {m.label: m.value for m in app.metric}["too few repeats"] == "1"
    app.multiselect(key="runtime").set_value([]).run()
    assert {m.label: m.value for m in app.metric}["too few repeats"] == str(len(RUNTIME_RESULTS))


def test_sizes_show_plain_and_gzip_side_by_side_and_sparsity(runtimes, monkeypatch):
    app = visit(open_app(runtimes, monkeypatch), "leaderboard")
    sizes = app.dataframe[1].value.set_index("config")
    pruned = sizes.loc["digits · pruned · xnnpack · 1 thr · ai_edge_litert 2.3.0"]
    fp32 = sizes.loc["digits · fp32 · xnnpack · 1 thr · ai_edge_litert 2.3.0"]
    # Pruning leaves the plain size as it was and halves the compressed one.
    assert pruned[["size_kb", "gzip_kb", "sparsity"]].tolist() == pytest.approx([120_000 / 1024, 60_000 / 1024, 0.5])
    assert fp32[["size_kb", "gzip_kb"]].tolist() == pytest.approx([120_000 / 1024, 110_000 / 1024])
    assert np.isnan(fp32["sparsity"])
    best = shown(app.table[0])
    assert best.loc["pi5", ["size (KB)", "gzip (KB)", "sparsity"]].tolist() == ["39", "29", ""]
    app.multiselect(key="variant").set_value(["pruned"]).run()
    assert shown(app.table[0]).loc["local", ["size (KB)", "gzip (KB)", "sparsity"]].tolist() == ["117", "59", "50%"]

    app.multiselect(key="variant").set_value([]).run()
    visit(app, "tradeoffs")
    app.selectbox(key="tradeoffs_scope").set_value("local").run()
    plain = {label: y for label, (_, y) in points_of(app, 1)["local"].items()}
    app.radio(key="tradeoffs_size").set_value("gzip").run()
    gzip = {label: y for label, (_, y) in points_of(app, 1)["local"].items()}
    pruned = "digits · pruned · xnnpack · 1 thr · ai_edge_litert"
    assert (plain[pruned], gzip[pruned]) == pytest.approx((120_000 / 1024, 60_000 / 1024))
    (accuracy,) = [trace for trace in figure(app, 0) if "hovertext" in trace]  # marker area by the gzip size
    assert dict(zip(accuracy["hovertext"], accuracy["marker"]["size"]))[pruned] == pytest.approx(60_000 / 1024)
    front = app.dataframe[0].value.set_index("variant")
    assert front.loc["onnx", ["size_kb", "gzip_kb"]].tolist() == pytest.approx([130_000 / 1024, 115_000 / 1024])


def test_tradeoffs_put_tflite_int8_beside_the_onnx_model(runtimes, monkeypatch):
    app = visit(open_app(runtimes, monkeypatch), "tradeoffs")
    app.multiselect(key="model").set_value(["digits"]).run()
    app.selectbox(key="tradeoffs_color").set_value("runtime").run()
    scored = points_of(app, 0)
    assert set(scored) == {"ai_edge_litert", "onnxruntime"}
    int8 = "digits · int8 · xnnpack · 1 thr · ai_edge_litert 2.3.0"
    assert scored["ai_edge_litert"][int8] == pytest.approx((1.0, 0.80))
    assert scored["onnxruntime"]["digits · onnx · none · 1 thr · onnxruntime"] == pytest.approx((1.5, 0.85))
    front = app.dataframe[0].value
    # On local, int8 is the fastest and onnx as accurate as fp32 and faster: both on its front, fp32 and pruned not.
    assert front.loc[front["device"] == "local", ["variant", "runtime"]].values.tolist() == [
        ["int8", "ai_edge_litert"], ["onnx", "onnxruntime"]]
    # The phone's tools measure no accuracy; against size, every runtime is there.
    assert set(points_of(app, 1)) == {"ai_edge_litert", "onnxruntime", "benchmark_model", "onnxruntime_perf_test"}
    app.selectbox(key="tradeoffs_color").set_value("variant").run()
    assert set(points_of(app, 0)) == {"fp32", "int8", "pruned", "onnx"}


def test_regression_models_show_their_errors_instead_of_accuracy(runtimes, monkeypatch):
    app = visit(open_app(runtimes, monkeypatch), "leaderboard")
    classification, regression = app.dataframe[1].value, app.dataframe[2].value
    assert sorted(regression["config"]) == ["housing · fp32 · xnnpack · 1 thr · ai_edge_litert 2.3.0",
                                            "housing · int8 · xnnpack · 1 thr · ai_edge_litert 2.3.0"]
    assert not classification["config"].str.startswith("housing").any()
    assert "accuracy" not in regression and "RMSE" not in classification
    fp32 = regression.set_index("config").loc["housing · fp32 · xnnpack · 1 thr · ai_edge_litert 2.3.0"]
    assert fp32[["RMSE", "max abs error", "RMSE vs source", "max abs vs source"]].tolist() == pytest.approx(
        [0.52, 1.9, 1e-4, 4e-4])

    app.radio(key="leaderboard_metric").set_value("RMSE").run()
    board = app.dataframe[0].value
    assert board["local"].tolist() == pytest.approx([0.52, 0.55])  # the smallest error first
    app.radio(key="leaderboard_metric").set_value("accuracy").run()
    assert "2 configurations of regression models have RMSE and max abs error instead of accuracy" in texts(app)
    app.multiselect(key="model").set_value(["housing"]).run()
    assert ("No accuracy in this selection: these are regression models, scored by RMSE and max abs error"
            in texts(app))

    visit(app, "tradeoffs")
    assert app.selectbox(key="tradeoffs_score").options == ["RMSE", "max abs error", "RMSE vs source",
                                                            "max abs vs source"]
    front = app.dataframe[0].value  # int8 is faster, fp32 more exact: both on the front, lower error being better
    assert front["variant"].tolist() == ["int8", "fp32"]
    assert front[["p50 latency (ms)", "RMSE"]].values.ravel().tolist() == pytest.approx([0.3, 0.55, 0.5, 0.52])


def test_a_selection_without_results_says_why(seeded, monkeypatch):
    db, _ = seeded
    app = visit(open_app(db, monkeypatch, "baseline"), "leaderboard")
    app.multiselect(key="tag").set_value(["jetson"]).run()  # orin: its one job failed
    for page in ("leaderboard", "tradeoffs", "compare"):
        visit(app, page)
        assert "No results in sweep baseline for the current filters" in texts(app) or "Neither sweep" in texts(app)
    visit(app, "device")
    assert "No results of orin in this sweep" in texts(app)


def test_a_missing_store_says_so(tmp_path, monkeypatch):
    app = open_app(tmp_path / "nothing-here.db", monkeypatch)
    assert not app.exception
    assert "no such store (run a sweep first, or pass --db)" in read(app.error[0].value)


def test_an_empty_store_says_how_to_fill_it(tmp_path, monkeypatch):
    Store(tmp_path / "farm.db").engine.dispose()
    app = open_app(tmp_path / "farm.db", monkeypatch)
    assert not app.exception
    assert "No sweeps in" in read(app.info[0].value) and "farm sweep run" in read(app.info[0].value)


def test_a_store_of_an_older_schema_says_so(tmp_path, monkeypatch):
    Store(tmp_path / "farm.db").engine.dispose()
    with sqlite3.connect(tmp_path / "farm.db") as connection:
        connection.execute("UPDATE meta SET value='0' WHERE key='schema_version'")
    app = open_app(tmp_path / "farm.db", monkeypatch)
    assert not app.exception
    assert f"store schema version 0, this tflite-farm needs {SCHEMA_VERSION}" in read(app.error[0].value)


def test_the_store_is_opened_read_only(seeded):
    from sqlalchemy import text
    from sqlalchemy.exc import InternalError, OperationalError

    from farm.store import Store

    db, _ = seeded
    store = Store(str(db), readonly=True)
    assert [s.name for s in store.sweeps()] == ["baseline", "candidate", "live"]
    with pytest.raises((OperationalError, InternalError), match="readonly|read-only"):
        with store.session() as session:
            session.execute(text("UPDATE sweeps SET name = 'x'"))
    store.engine.dispose()


def test_launch_command(tmp_path):
    from farm.dashboard.launch import APP as LAUNCHED, command

    argv = command("farm.db", 8599)
    assert argv[1:4] == ["-m", "streamlit", "run"] and argv[4] == str(LAUNCHED) == str(APP)
    assert argv[argv.index("--server.port") + 1] == "8599" and argv[argv.index("--server.address") + 1] == "127.0.0.1"
    assert argv[-2:] == ["--db", str(Path("farm.db").resolve())]
    assert command("postgresql://farm@db/farm", 1)[-1] == "postgresql://farm@db/farm"
