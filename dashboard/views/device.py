"""Device: what a device is (board, SoC, OS, runtimes, delegates), and how its results of a sweep are spread:
latency distributions from the raw samples, percentiles, memory, and its temperature before and after each job."""
import numpy as np
import pandas as pd
import streamlit as st

from farm.dashboard import analysis, charts, filters, queries
from farm.dashboard.plain import md, md_frame

# What a result's peak_mb is, in words (MEMORY_KINDS in farm.tables).
MEMORY_KIND_WORDS = {"peak_rss": "the peak resident set (VmHWM) of the benchmark process",
                     "peak_footprint": "benchmark_model's peak memory footprint",
                     "footprint_delta": "benchmark_model's footprint rise over its own start",
                     "max_rss": "benchmark_model's max resident set size"}

MAX_BOXES = 40

selection = filters.current()
st.title("Device")
table = queries.devices(selection.db)
table = table[table["name"].isin(selection.devices)]
if table.empty:
    st.info("No device carries the chosen tags.", icon=":material/filter_alt_off:")
    st.stop()
ran = set(queries.sweep_devices(selection.db, selection.sweep_id))
names = sorted(table["name"], key=lambda n: (n not in ran, n))  # devices of the chosen sweep first
name = st.selectbox("Device", names, key="device_name",
                    format_func=lambda n: n if n in ran else f"{n} (not in sweep {selection.sweep['name']})")
device = table[table["name"] == name].iloc[0]
facts = device["facts"] or {}


def _fact(*keys: str) -> str:
    values = [facts.get(key) for key in keys]
    return next((str(v) for v in values if v not in (None, "", [], {})), "—")


runtime = facts.get("runtime") or {}
onnxruntime = facts.get("onnxruntime") or {}
edgetpu = facts.get("edgetpu") or {}
if facts.get("sdk"):
    system = f"Android (SDK {facts['sdk']}, {_fact('abi')})"
else:
    system = " ".join(str(facts[k]) for k in ("platform", "os_release", "machine") if facts.get(k)) or "—"
about = pd.DataFrame({"fact": [
    "board", "Jetson", "SoC / CPU", "cores and memory", "OS", "runtime", "ONNX Runtime", "Python", "delegates", "tags",
    "governor", "Edge TPU", "facts probed",
], "value": [
    _fact("board", "model"), _fact("jetson"), _fact("soc", "cpu_model"),
    f"{_fact('cores')} cores, {_fact('ram_mb')} MB RAM", system,
    f"{runtime.get('name') or '—'} {runtime.get('version') or ''}".strip(),
    f"{onnxruntime['version']} ({', '.join(map(str, onnxruntime.get('providers') or [])) or 'no providers'})"
    if onnxruntime.get("version") else "—",
    _fact("python_version"),
    ", ".join(device["delegates"] or []) or "—", ", ".join(device["tags"] or []) or "—", _fact("governor"),
    "present" if edgetpu.get("present") else "absent",
    f"{device['last_seen']:%Y-%m-%d %H:%M UTC}" if pd.notna(device["last_seen"]) else "never probed",
]}).set_index("fact")
left, right = st.columns([2, 3])
with left:
    st.subheader(f"{md(name)} ({md(device['kind'])})")
    st.table(md_frame(about))
with right:
    st.subheader("Every fact probed")
    st.json(facts, expanded=1)

st.subheader(f"{md(name)} in sweep {md(selection.sweep['name'])}")
st.markdown(filters.describe(selection))
if name not in ran:
    st.info(f"{md(name)} has no jobs in sweep {md(selection.sweep['name'])}: pick another sweep in the sidebar.")
    st.stop()
results = queries.device_results(selection.db, selection.sweep_id, name, selection.filters)
if results.empty:
    running = selection.sweep["state"] == "running"
    st.info(f"No results of {md(name)} in this sweep{' yet: it is still running' if running else ''} "
            f"{'' if running else 'for the current filters'}.", icon=":material/hourglass_empty:")
    st.stop()
results = results.assign(config=charts.config_label(results))

configurations = queries.configurations(selection.db, selection.sweep_id, name, selection.filters)
configurations = configurations.assign(config=charts.config_label(configurations))
st.markdown("**Latency percentiles (ms), repeats pooled, with 95% intervals over the repeats**")
st.plotly_chart(charts.intervals(configurations.sort_values("p50_ms").head(MAX_BOXES)))
st.dataframe(configurations[["config", "repeats", "count", "p50_ms", "p50_ci_low_ms", "p50_ci_high_ms", "p90_ms",
                             "p90_ci_low_ms", "p90_ci_high_ms", "p99_ms", "p99_ci_low_ms", "p99_ci_high_ms", "mean_ms",
                             "init_ms", "first_ms", "delegate_outcome", "flags"]], hide_index=True)

samples = queries.latency_samples(selection.db, selection.sweep_id, selection.filters, name)
st.markdown("**Latency distributions (raw samples)**")
if samples.empty:
    st.info("No raw samples: benchmark_model and onnxruntime_perf_test print aggregates, not every run's time. The "
            "percentiles above are the tools' own.", icon=":material/info:")
else:
    samples = samples.assign(config=charts.config_label(samples))
    by = st.radio("Colour by", ["variant", "runtime", "delegate"], horizontal=True, key="device_color")
    pooled = samples.groupby(["config", by], sort=False)["samples_ms"].agg(list)  # repeats pooled
    boxes = pd.DataFrame([{"config": config, by: value, **analysis.box_stats(np.concatenate(arrays))}
                          for (config, value), arrays in pooled.items()])
    boxes = boxes.sort_values("median")
    if len(boxes) > MAX_BOXES:
        st.caption(f"The {MAX_BOXES} fastest of {len(boxes)} configurations; narrow them with the sidebar's filters.")
    st.plotly_chart(charts.latency_boxes(boxes.head(MAX_BOXES), by))
    runs = samples["config"] + " · repeat " + samples["repeat"].astype(str)
    one = st.selectbox("Samples in the order they ran", runs, key="device_samples")
    st.plotly_chart(charts.samples_in_order(samples.loc[runs == one, "samples_ms"].iloc[0], one))

left, right = st.columns(2)
with left:
    st.markdown("**Memory**")
    memory = results.groupby("config", sort=False)[["peak_mb", "peak_delta_mb"]].mean().reset_index()
    if memory[["peak_mb", "peak_delta_mb"]].isna().all().all():
        st.info("No memory figures recorded for these results.")
    else:
        st.plotly_chart(charts.memory(memory.sort_values("peak_mb", ascending=False).head(MAX_BOXES)))
        kinds = sorted(results["memory_kind"].dropna().unique())
        st.text("peak memory is " + (", ".join(MEMORY_KIND_WORDS.get(k, k) for k in kinds) or "of an unknown kind"))
with right:
    st.markdown("**Temperature before and after each job**")
    if results[["temp_before_c", "temp_after_c"]].isna().all().all():
        st.info("This device reported no thermal zones.")
    else:
        st.plotly_chart(charts.temperatures(results))
        heat = results["temp_after_c"] - results["temp_before_c"]
        st.caption(f"Hottest zone {results['temp_before_c'].min():.1f}–{results['temp_after_c'].max():.1f} °C; a job "
                   f"warmed it by {heat.mean():.1f} °C on average (at most {heat.max():.1f} °C).")
    governors = sorted({str(g) for g in pd.concat([results["governor_before"], results["governor_after"]]).dropna()})
    st.caption(f"CPU governor during the jobs: {md(', '.join(governors)) or 'not reported'}.")
