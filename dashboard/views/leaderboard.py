"""Leaderboard: every configuration on every device of a sweep, coloured by the metric picked."""
import streamlit as st

from farm.dashboard import charts, filters, queries
from farm.dashboard.plain import md_frame

MAX_ROWS = 120  # heatmap rows; the table below has them all

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
table = table.assign(config=charts.config_label(table)).dropna(subset=[column])
if table.empty:
    hint = {"accuracy": "give the sweep's models an `eval:` set (inputs and labels)",
            "agreement_with_fp32": "give the sweep's models an `eval:` set and an fp32 variant to agree with"}
    st.info(f"No {metric} in this selection: {hint.get(column, 'no result recorded it')}.", icon=":material/info:")
    st.stop()

matrix = table.pivot_table(index="config", columns="device", values=column, aggfunc="first")
order = matrix.median(axis=1).sort_values(ascending=not higher_better).index
matrix = matrix.loc[order]
if table["repeats"].max() > 1:
    st.caption(f"Each cell is the mean over a configuration's repeats (up to {table['repeats'].max()}).")
if len(matrix) > MAX_ROWS:
    st.caption(f"Showing the {MAX_ROWS} best of {len(matrix)} configurations by their median over devices; narrow "
               "them with the sidebar's filters. The table below has every one.")
st.plotly_chart(charts.heatmap(matrix.head(MAX_ROWS), metric, higher_better))

best = table.sort_values(column, ascending=not higher_better).groupby("device", sort=True).head(1)
st.subheader(f"Best per device by {metric}")
st.table(md_frame(best.set_index("device")[["config", column]].rename(columns={column: metric})))
st.subheader("Every configuration")
st.dataframe(matrix)
