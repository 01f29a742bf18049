"""Ops: where a configuration spends its time, node by node, from the op profiles of a sweep run with `profile: true`
(benchmark_model's --enable_op_profiling), and how two variants of the model compare by op type."""
import pandas as pd
import streamlit as st

from farm.dashboard import analysis, charts, filters, queries
from farm.dashboard.plain import md

TOP = 20

selection = filters.current()
st.title("Ops")
ran = [name for name in queries.sweep_devices(selection.db, selection.sweep_id) if name in selection.devices]
profiles = {name: queries.op_profiles(selection.db, selection.sweep_id, name) for name in ran}
profiled = {name: rows for name, rows in profiles.items() if not rows.empty}
if not profiled:
    st.info(f"No op profiles in sweep {md(selection.sweep['name'])}. Run a sweep with `profile: true` (or `farm sweep "
            "run --profile`): phones profile with benchmark_model, and other devices when their inventory entry names "
            "a benchmark_model build.", icon=":material/account_tree:")
    st.stop()
device = st.selectbox("Device", sorted(profiled), key="ops_device")
rows = profiled[device]
for column, values in (("model", selection.filters.models), ("variant", selection.filters.variants),
                       ("delegate", selection.filters.delegates), ("runtime", selection.filters.runtimes)):
    if values is not None:
        rows = rows[rows[column].isin(values)]
if rows.empty:
    st.info("No op profile of this device matches the sidebar's filters.", icon=":material/filter_alt_off:")
    st.stop()
setups = rows[["model", "delegate", "threads"]].drop_duplicates().sort_values(["model", "delegate", "threads"])
labels = [f"{m} · {d} · {t} thr" for m, d, t in setups.itertuples(index=False)]
setup = setups.iloc[labels.index(st.selectbox("Model, delegate and threads", labels, key="ops_setup"))]
rows = rows[(rows["model"] == setup["model"]) & (rows["delegate"] == setup["delegate"])
            & (rows["threads"] == setup["threads"])]
variants = sorted(rows["variant"].unique())
left, right = st.columns(2)
variant = left.selectbox("Variant", variants, key="ops_variant")
other = right.selectbox("Compare with", ["(none)", *[v for v in variants if v != variant]], key="ops_other")

nodes = analysis.ops_by_node(rows[rows["variant"] == variant])
st.subheader(f"Top {min(TOP, len(nodes))} of {len(nodes)} nodes: {md(setup['model'])} {md(variant)}")
st.caption("Time per run is a node's time per call times its calls, averaged over the repeats that profiled it. "
           "benchmark_model profiles with its own timer around each node: the sum can exceed a plain run's latency.")
st.dataframe(nodes.sort_values("ms_per_run", ascending=False).head(TOP)[
    ["position", "op", "name", "ms_per_run", "times_called", "pct", "repeats"]], hide_index=True)

shown = [variant] if other == "(none)" else [variant, other]
times = pd.concat({v: analysis.ops_by_type(rows[rows["variant"] == v]) for v in shown}, axis=1).fillna(0.0)
times = times.sort_values(variant, ascending=False)
st.subheader("Time per run by op type" + (f": {md(variant)} against {md(other)}" if other != "(none)" else ""))
st.plotly_chart(charts.op_types(times.head(TOP)))
if other != "(none)":
    st.dataframe(times.assign(change_ms=times[other] - times[variant]).reset_index(names="op"), hide_index=True)
