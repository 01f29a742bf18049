"""Trade-offs: latency against a score (accuracy, agreement, or a regression's error) with marker size by model size,
and latency against size; each device's Pareto front on both. Points are coloured by device, runtime, variant, model
or delegate, so an int8 TFLite configuration and the ONNX one of the same model sit on the same axes."""
import numpy as np
import pandas as pd
import streamlit as st

from farm.dashboard import analysis, charts, filters, queries

LATENCIES = {label: column for label, (column, _) in queries.METRICS.items()
             if column in ("p50_ms", "p90_ms", "p99_ms")}
SCORES = {label: (column, higher_better) for label, (column, higher_better) in queries.METRICS.items()
          if column in queries.CLASSIFICATION_SCORES + queries.REGRESSION_SCORES}
SIZES = {"plain": ("size_kb", "size (KB)"), "gzip": ("gzip_kb", "gzip (KB)")}
ALL = "All devices"


def on_front(points: pd.DataFrame, latency: str, better: pd.Series) -> np.ndarray:
    """Whether each point is on its own device's Pareto front of `latency` (lower is better) against `better`."""
    mask = np.zeros(len(points), dtype=bool)
    for rows in points.groupby("device").indices.values():
        mask[rows] = analysis.pareto_front(points[latency].to_numpy()[rows], better.to_numpy()[rows])
    return mask


selection = filters.current()
st.title("Trade-offs")
st.markdown(filters.describe(selection))
if selection.sweep["state"] == "running":
    st.info("This sweep is still running: the plots show the jobs done so far.", icon=":material/sync:")

table = queries.configs(selection.db, selection.sweep_id, selection.filters)
if table.empty:
    st.info(filters.no_results(selection), icon=":material/filter_alt_off:")
    st.stop()

left, middle, right = st.columns(3)
label = left.radio("Latency", list(LATENCIES), horizontal=True, key="tradeoffs_latency")
scope = middle.selectbox("Devices", [ALL, *sorted(table["device"].unique())], key="tradeoffs_scope")
color = right.selectbox("Colour by", queries.DIMENSIONS, key="tradeoffs_color")
latency = LATENCIES[label]
points = table.dropna(subset=[latency])
if scope != ALL:
    points = points[points["device"] == scope]
if points.empty:
    st.info(f"No {label} in this selection: its results' tool printed none.", icon=":material/info:")
    st.stop()
points = points.assign(config=charts.config_label(points)).reset_index(drop=True)
scores = [name for name, (column, _) in SCORES.items() if points[column].notna().any()]
left, right = st.columns([2, 1])
size_name = right.radio("Size", list(SIZES), horizontal=True, key="tradeoffs_size",
                        help="gzip: what the variant ships at compressed, where a pruned model's zeros pay off")
size, size_label = SIZES[size_name]
unknown = int(points[size].isna().sum())
if unknown:
    st.caption(f"{unknown} of {len(points)} configurations have no {size_label} recorded (variants converted before "
               "tflite-farm kept it): the smallest markers, and left out of the size plot.")

if not scores:
    st.info("No scores in this selection: give the sweep's models an `eval:` set (inputs with labels, or with targets "
            "for a regression) to plot latency against accuracy. The plot of latency against size below has every "
            "configuration.", icon=":material/info:")
else:
    score = left.selectbox("Score", scores, key="tradeoffs_score")
    column, higher_better = SCORES[score]
    scored = points.dropna(subset=[column])
    scored = scored.assign(on_front=on_front(scored, latency, scored[column] if higher_better else -scored[column]))
    st.caption("A point is on its device's Pareto front when no other configuration on that device is at least as fast "
               f"and as good by {score}, and better at one of the two. Compare models of one task: narrow with the model "
               "filter; colour by runtime or variant to set a TFLite int8 configuration beside the model's ONNX one.")
    st.plotly_chart(charts.tradeoff(scored, latency, label, column, score, color, size, size_label))
    st.subheader("On the Pareto front")
    front = scored[scored["on_front"]].sort_values(["device", latency])
    st.dataframe(front[["device", "model", "variant", "runtime", "delegate", "threads", latency, column, "size_kb",
                        "gzip_kb", "sparsity"]].rename(columns={latency: label, column: score}),
                 hide_index=True, column_config=queries.SIZE_COLUMNS)

st.subheader(f"Latency against {size_label}")
sized = points.dropna(subset=[size])
if sized.empty:
    st.info(f"No configuration here has a {size_label} recorded.", icon=":material/info:")
else:
    sized = sized.assign(on_front=on_front(sized, latency, -sized[size]))
    st.plotly_chart(charts.tradeoff(sized, latency, label, size, size_label, color))
