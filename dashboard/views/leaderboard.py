"""Leaderboard: every configuration on every device of a sweep, coloured by the metric picked; then each configuration's
sizes and scores (top-1 agreement for a classification model, errors for a regression model)."""
import pandas as pd
import streamlit as st

from farm.dashboard import charts, filters, queries
from farm.dashboard.plain import md_frame

MAX_ROWS = 120  # heatmap rows; the table below has them all
SOURCE = "a Keras or SavedModel source (a .tflite or .onnx source has no other model to agree with)"
# Why a selection has none of a score, and how to get it.
HINTS = {"accuracy": "give the sweep's models an `eval:` set (inputs and labels)",
         "agreement_with_fp32": "give the sweep's models an `eval:` set and an fp32 variant to agree with",
         "agreement_with_source": f"give the sweep's models an `eval:` set and {SOURCE}",
         "rmse": "it scores regression models, whose `eval:` set has values as targets",
         "max_abs_error": "it scores regression models, whose `eval:` set has values as targets",
         "rmse_vs_source": f"it scores regression models with an `eval:` set and {SOURCE}",
         "max_abs_vs_source": f"it scores regression models with an `eval:` set and {SOURCE}"}
TITLES = {column: title for title, (column, _) in queries.METRICS.items()}
SIZES = ["size_kb", "gzip_kb", "sparsity"]


def sizes_as_text(rows: pd.DataFrame) -> pd.DataFrame:
    """Plain and gzip size (KB) and sparsity as a small st.table shows them; a dash for what is not recorded."""
    def kb(value):
        return "—" if pd.isna(value) else f"{value:,.0f}"

    return pd.DataFrame({"size (KB)": rows["size_kb"].map(kb), "gzip (KB)": rows["gzip_kb"].map(kb),
                         "sparsity": rows["sparsity"].map(lambda s: "" if pd.isna(s) else f"{s:.0%}")})


selection = filters.current()
st.title("Leaderboard")
st.markdown(filters.describe(selection))
if selection.sweep["state"] == "running":
    st.info("This sweep is still running: the board shows the jobs done so far.", icon=":material/sync:")

metric = st.radio("Metric", list(queries.METRICS), horizontal=True, key="leaderboard_metric")
column, higher_better = queries.METRICS[metric]
table = queries.configs(selection.db, selection.sweep_id, selection.filters)
if table.empty:
    st.info(filters.no_results(selection), icon=":material/filter_alt_off:")
    st.stop()
table = table.assign(config=charts.config_label(table))
regression = table["rmse"].notna()  # a regression model's rows: errors, not top-1 scores
instead = column in queries.CLASSIFICATION_SCORES and regression.any()
ranked = table.dropna(subset=[column])
if ranked.empty:
    hint = ("these are regression models, scored by RMSE and max abs error: pick one of those" if instead
            else HINTS.get(column, "no result recorded it"))
    st.info(f"No {metric} in this selection: {hint}.", icon=":material/info:")
else:
    matrix = ranked.pivot_table(index="config", columns="device", values=column, aggfunc="first")
    order = matrix.median(axis=1).sort_values(ascending=not higher_better).index
    matrix = matrix.loc[order]
    if ranked["repeats"].max() > 1:
        st.caption(f"Each cell is the mean over a configuration's repeats (up to {ranked['repeats'].max()}).")
    if instead:
        st.caption(f"{int(regression.sum())} configurations of regression models have RMSE and max abs error instead "
                   f"of {metric}: they are in the table of regression scores below.")
    if len(matrix) > MAX_ROWS:
        st.caption(f"Showing the {MAX_ROWS} best of {len(matrix)} configurations by their median over devices; "
                   "narrow them with the sidebar's filters. The table below has every one.")
    st.plotly_chart(charts.heatmap(matrix.head(MAX_ROWS), metric, higher_better))

    best = ranked.sort_values(column, ascending=not higher_better).groupby("device", sort=True).head(1)
    st.subheader(f"Best per device by {metric}")
    best = best.set_index("device")
    st.table(md_frame(pd.concat([best[["config", column]].rename(columns={column: metric}), sizes_as_text(best)],
                                axis=1)))
    st.subheader("Every configuration")
    st.dataframe(matrix)

st.subheader("Sizes and scores")
columns = ["device", "config", *SIZES]
if not table[~regression].empty:
    st.dataframe(table.loc[~regression, columns + queries.CLASSIFICATION_SCORES].rename(columns=TITLES),
                 hide_index=True, column_config=queries.SIZE_COLUMNS)
if regression.any():
    st.markdown("**Regression models**: errors against the eval set's targets, and against the source model's own "
                "outputs")
    st.dataframe(table.loc[regression, columns + queries.REGRESSION_SCORES].rename(columns=TITLES),
                 hide_index=True, column_config=queries.SIZE_COLUMNS)
