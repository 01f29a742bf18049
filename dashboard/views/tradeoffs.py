"""Trade-offs: latency against accuracy, marker size by model size, and the Pareto front of each device."""
import numpy as np
import streamlit as st

from farm.dashboard import analysis, charts, filters, queries

LATENCIES = {label: column for label, (column, _) in queries.METRICS.items()
             if column in ("p50_ms", "p90_ms", "p99_ms")}
ALL = "All devices"

selection = filters.current()
st.title("Trade-offs")
st.markdown(filters.describe(selection))
if selection.sweep["state"] == "running":
    st.info("This sweep is still running: the plot shows the jobs done so far.", icon=":material/sync:")

table = queries.configs(selection.db, selection.sweep_id, selection.filters)
points = table.dropna(subset=["accuracy"])
if points.empty:
    st.info("No accuracy figures in this selection: give the sweep's models an `eval:` set (inputs and labels) to "
            "measure accuracy." if not table.empty else filters.no_results(selection),
            icon=":material/info:")
    st.stop()

left, right = st.columns(2)
label = left.radio("Latency", list(LATENCIES), horizontal=True, key="tradeoffs_latency")
scope = right.selectbox("Devices", [ALL, *sorted(points["device"].unique())], key="tradeoffs_scope")
latency = LATENCIES[label]
points = points.dropna(subset=[latency])
if scope != ALL:
    points = points[points["device"] == scope]
points = points.assign(config=charts.config_label(points), size_kb=points["size_bytes"] / 1024.0,
                       on_front=np.zeros(len(points), dtype=bool))
for _, rows in points.groupby("device"):
    points.loc[rows.index, "on_front"] = analysis.pareto_front(rows[latency], rows["accuracy"])

st.caption("A point is on its device's Pareto front when no other configuration on that device is at least as fast and "
           "as accurate, and better at one of the two. Compare models of one task: narrow with the model filter.")
st.plotly_chart(charts.tradeoff(points, latency, label, "device" if scope == ALL else "variant"))
st.subheader("On the Pareto front")
front = points[points["on_front"]].sort_values(["device", latency])
st.dataframe(front[["device", "model", "variant", "delegate", "threads", latency, "accuracy", "size_kb"]]
             .rename(columns={latency: label, "size_kb": "size (KB)"}), hide_index=True)
