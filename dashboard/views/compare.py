"""Compare: two sweeps side by side, the change in median latency of each configuration and whether it is real.

A change is flagged when a Mann-Whitney U test on the raw samples says the two runs differ (p below the level picked)
and the median moved by at least the minimum picked; anything else is noise.
"""
import pandas as pd
import streamlit as st

from farm.dashboard import analysis, charts, filters, queries
from farm.dashboard.plain import md, md_frame

KEYS = ["device", "model", "variant", "delegate", "threads"]
CHART_ROWS = 40


@st.cache_data(ttl=queries.RESULTS_TTL, show_spinner=False)
def comparison(db: str, a: int, b: int, filters: queries.Filters, alpha: float, min_change: float):
    return analysis.compare_samples(queries.latency_samples(db, a, filters), queries.latency_samples(db, b, filters),
                                    KEYS, alpha, min_change)


selection = filters.current()
st.title("Compare")
names = selection.sweeps["name"].tolist()[::-1]  # newest first
if len(names) < 2:
    st.info("Comparing needs two sweeps, and this store has one. Run the sweep again (`farm sweep run` gives the new "
            "one its own name) and come back.", icon=":material/compare_arrows:")
    st.stop()
candidate = names.index(selection.sweep["name"])
left, right = st.columns(2)
# The sweep before the sidebar's is the natural baseline; the oldest sweep is compared with the newest.
a = left.selectbox("Baseline (A)", names, index=candidate + 1 if candidate + 1 < len(names) else 0, key="compare_a")
b = right.selectbox("Candidate (B)", names, index=candidate, key="compare_b")
left, right = st.columns(2)
alpha = left.select_slider("Significance level (p below)", [0.001, 0.005, 0.01, 0.05], value=analysis.ALPHA,
                           key="compare_alpha")
min_change = right.slider("Smallest change that matters (%)", 0.0, 20.0, analysis.MIN_CHANGE * 100, 0.5,
                          key="compare_min_change") / 100.0
if a == b:
    st.warning("Pick two different sweeps.")
    st.stop()
ids = dict(zip(selection.sweeps["name"], selection.sweeps["id"]))
st.markdown(filters.describe(selection).replace(f"Sweep **{md(selection.sweep['name'])}**", f"**{md(a)}** → **{md(b)}**"))
for name in (a, b):
    if selection.sweeps.loc[selection.sweeps["name"] == name, "state"].iloc[0] == "running":
        st.info(f"Sweep {md(name)} is still running: only its jobs done so far are compared.", icon=":material/sync:")

pairs = comparison(selection.db, int(ids[a]), int(ids[b]), selection.filters, alpha, min_change)
if pairs.empty:
    st.info("Neither sweep has results for the current filters.", icon=":material/filter_alt_off:")
    st.stop()
counts = pairs["verdict"].value_counts()
columns = st.columns(5)
for column, (title, verdict) in zip(columns, (("slower", "slower"), ("faster", "faster"), ("within noise", "noise"),
                                              ("only in A", "only in A"), ("only in B", "only in B"))):
    column.metric(title, int(counts.get(verdict, 0)))

matched = pairs[pairs["verdict"].isin(["slower", "faster", "noise"])].assign(
    label=lambda f: f["device"] + " · " + charts.config_label(f), change_pct=lambda f: f["change"] * 100.0)
if matched.empty:
    st.info(f"No configuration ran in both {md(a)} and {md(b)}.")
    st.stop()
flagged = matched[matched["verdict"] != "noise"].sort_values("change_pct", key=abs, ascending=False)
st.subheader("Beyond noise")
if flagged.empty:
    st.success("No configuration changed beyond noise.")
else:
    shown = flagged.head(30)
    st.table(md_frame(pd.DataFrame({
        "configuration": shown["label"], "verdict": shown["verdict"],
        f"median {a} (ms)": shown["median_a"].map("{:.4g}".format),
        f"median {b} (ms)": shown["median_b"].map("{:.4g}".format),
        "change": shown["change_pct"].map("{:+.1f} %".format), "p": shown["p"].map("{:.2g}".format),
    }).set_index("configuration")))
    if len(flagged) > len(shown):
        st.caption(f"The {len(shown)} largest of {len(flagged)}; every one is in the table below.")
top = matched.reindex(matched["change_pct"].abs().sort_values(ascending=False).index).head(CHART_ROWS)
st.subheader(f"Largest changes{f' (top {CHART_ROWS} of {len(matched)})' if len(matched) > CHART_ROWS else ''}")
st.plotly_chart(charts.changes(top))
st.subheader("Every configuration")
st.dataframe(pairs.rename(columns={"median_a": "median A (ms)", "median_b": "median B (ms)"}), hide_index=True,
             column_config={"change": st.column_config.NumberColumn("change", format="percent"),
                            "p": st.column_config.NumberColumn("p", format="%.2g")})
