"""Compare: two sweeps side by side, the change in median latency of each configuration and whether it is real.

The unit is the repeat, as in `farm compare`: each repeat's median is one observation, because the samples inside one
run are not independent trials. A change is flagged when Welch's test on the repeats' log medians says the two differ
(p below the level picked) and the median moved by at least the minimum picked; anything else is noise. A
configuration with fewer than two repeats on a side cannot be tested, and says so. Each configuration carries the
runtime it ran on in each sweep: an upgraded runtime is often what moved a median. Before any verdict, the page says
what the two sweeps were not measured alike in (run counts, runtime versions, the devices' facts): a test finds that
two sweeps differ, not why.
"""
import numpy as np
import pandas as pd
import streamlit as st

from farm.compare import ALPHA, compare
from farm.dashboard import analysis, charts, filters, queries
from farm.dashboard.plain import md, md_frame

KEYS = ["device", "model", "variant", "delegate", "threads"]
CHART_ROWS = 40


def runtimes(db: str, sweep_id: int, filters: queries.Filters) -> dict[tuple, tuple[str, str]]:
    """(runtime, version) of each configuration of a sweep, by its farm.compare key."""
    found = queries.configs(db, sweep_id, filters)[[*KEYS, "runtime", "runtime_version"]]
    return {tuple(row[:-2]): tuple(row[-2:]) for row in found.itertuples(index=False, name=None)}


@st.cache_data(ttl=queries.RESULTS_TTL, show_spinner=False)
def comparison(db: str, a: int, b: int, filters: queries.Filters, alpha: float, min_change: float) -> pd.DataFrame:
    trials_a, trials_b = queries.trials(db, a, filters), queries.trials(db, b, filters)
    ran_a, ran_b = runtimes(db, a, filters), runtimes(db, b, filters)

    def ran(key: tuple) -> dict:
        runtime, version = ran_b.get(key) or ran_a.get(key) or (None, None)
        return {"runtime": runtime, "runtime_version": version,
                **{f"runtime_{side}": " ".join(found[key]) if key in found else None
                   for side, found in (("a", ran_a), ("b", ran_b))}}

    rows = []
    for change in compare(trials_a, trials_b, None, None, alpha):
        if change.verdict.startswith("n/a: not in"):
            verdict = "only in B"
        elif change.verdict.startswith("n/a"):
            verdict = "too few repeats"
        elif change.verdict in ("slower", "faster") and abs(change.change) >= min_change:
            verdict = change.verdict
        else:
            verdict = "noise"
        key = tuple(getattr(change, k) for k in KEYS)
        rows.append({**dict(zip(KEYS, key)), **ran(key), "repeats_a": change.repeats[0],
                     "repeats_b": change.repeats[1], "median_a": change.baseline_ms, "median_b": change.candidate_ms,
                     "change": change.change, "change_low": change.change_low, "change_high": change.change_high,
                     "p": change.p_welch, "p_mann_whitney": change.p_mann_whitney, "verdict": verdict})
    for key in sorted(set(trials_a) - set(trials_b), key=str):
        rows.append({**dict(zip(KEYS, key)), **ran(key), "repeats_a": len(trials_a[key].medians), "repeats_b": 0,
                     "median_a": float(np.exp(np.mean(np.log(trials_a[key].medians)))), "median_b": np.nan,
                     "change": np.nan, "change_low": np.nan, "change_high": np.nan, "p": np.nan,
                     "p_mann_whitney": np.nan, "verdict": "only in A"})
    return pd.DataFrame(rows, columns=[*KEYS, "runtime", "runtime_version", "runtime_a", "runtime_b", "repeats_a",
                                       "repeats_b", "median_a", "median_b", "change", "change_low", "change_high", "p",
                                       "p_mann_whitney", "verdict"])


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
alpha = left.select_slider("Significance level (p below)", [0.001, 0.005, 0.01, 0.05], value=ALPHA,
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
shown_devices = set(pairs["device"])
unalike = [d for d in queries.differences(selection.db, int(ids[a]), int(ids[b]))
           if d.device is None or d.device in shown_devices]
if unalike:  # before the verdicts: each may be what moved a median; values from devices, shown as plain text
    st.warning(f"**{md(a)} and {md(b)} were not measured alike**, so a change below may come from this, not from the "
               "models:\n\n" + "\n".join(f"- {md(d.field)}: {md(d.baseline)} in A, {md(d.candidate)} in B"
                                         for d in unalike), icon=":material/warning:")
counts = pairs["verdict"].value_counts()
columns = st.columns(6)
for column, (title, verdict) in zip(columns, (("slower", "slower"), ("faster", "faster"), ("within noise", "noise"),
                                              ("too few repeats", "too few repeats"), ("only in A", "only in A"),
                                              ("only in B", "only in B"))):
    column.metric(title, int(counts.get(verdict, 0)))
if counts.get("too few repeats", 0):
    st.caption("A configuration needs two repeats or more in each sweep to be tested (`repeats:` in the sweep spec; "
               "3 by default).")

matched = pairs[pairs["verdict"].isin(["slower", "faster", "noise"])].assign(
    label=lambda f: f["device"] + " · " + charts.config_label(f), change_pct=lambda f: f["change"] * 100.0)
if matched.empty:
    st.info(f"No configuration ran in both {md(a)} and {md(b)}.")
    st.stop()
flagged = matched[matched["verdict"] != "noise"].sort_values("change_pct", key=abs, ascending=False)
st.subheader("Beyond noise")
st.caption(f"Flagged when both hold: Welch's test on the repeats' log medians gives p below {alpha:g}, and the median "
           f"moved by at least {min_change:.1%} (the smallest change that matters, picked above). Each shows its p and "
           "its change with the 95% interval.")
if flagged.empty:
    st.success("No configuration changed beyond noise.")
else:
    shown = flagged.head(30)
    st.table(md_frame(pd.DataFrame({
        "configuration": shown["label"], "verdict": shown["verdict"],
        f"median {a} (ms)": shown["median_a"].map("{:.4g}".format),
        f"median {b} (ms)": shown["median_b"].map("{:.4g}".format),
        "change": shown["change_pct"].map("{:+.1f} %".format),
        "95% interval": [f"{low * 100:+.1f} … {high * 100:+.1f} %" for low, high in
                         zip(shown["change_low"], shown["change_high"])],
        "p": shown["p"].map("{:.2g}".format), "p (Mann-Whitney)": shown["p_mann_whitney"].map("{:.2g}".format),
        "repeats": [f"{x}:{y}" for x, y in zip(shown["repeats_a"], shown["repeats_b"])],
    }).set_index("configuration")))
    if len(flagged) > len(shown):
        st.caption(f"The {len(shown)} largest of {len(flagged)}; every one is in the table below.")
top = matched.reindex(matched["change_pct"].abs().sort_values(ascending=False).index).head(CHART_ROWS)
st.subheader(f"Largest changes{f' (top {CHART_ROWS} of {len(matched)})' if len(matched) > CHART_ROWS else ''}")
st.plotly_chart(charts.changes(top))
st.subheader("Every configuration")
st.dataframe(pairs.drop(columns="runtime_version").rename(columns={
                 "median_a": "median A (ms)", "median_b": "median B (ms)", "runtime_a": "runtime A",
                 "runtime_b": "runtime B"}), hide_index=True,
             column_config={column: st.column_config.NumberColumn(column, format="percent")
                           for column in ("change", "change_low", "change_high")}
            | {column: st.column_config.NumberColumn(column, format="%.2g") for column in ("p", "p_mann_whitney")})
