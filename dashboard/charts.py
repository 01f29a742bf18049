"""The dashboard's plotly figures, each built from a small DataFrame the page has already reduced."""
from __future__ import annotations

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

from farm.dashboard.plain import svg

VERDICT_COLORS = {"slower": "#d62728", "faster": "#2ca02c", "noise": "#9e9e9e"}
_ROW_PX = 22


def config_label(frame: pd.DataFrame) -> pd.Series:
    """'model · variant · delegate · N thr · runtime' for each row: how a configuration is named on every page."""
    label = (frame["model"].astype(str) + " · " + frame["variant"].astype(str) + " · "
             + frame["delegate"].astype(str) + " · " + frame["threads"].astype(str) + " thr")
    return label + " · " + runtime_label(frame) if "runtime" in frame else label


def runtime_label(frame: pd.DataFrame) -> pd.Series:
    """Each row's runtime, with its version where that runtime comes with several versions in `frame` (ai_edge_litert
    2.3.0 on one board and 2.4.0 on another are two things to rank; one version everywhere is just noise)."""
    runtime = frame["runtime"].astype(str)
    if "runtime_version" not in frame or frame.empty:
        return runtime
    versions = frame.groupby(runtime)["runtime_version"].transform("nunique")
    return runtime.where(versions <= 1, runtime + " " + frame["runtime_version"].astype(str))


def _tall(rows: int, base: int = 160) -> int:
    return max(320, base + _ROW_PX * rows)


def heatmap(matrix: pd.DataFrame, metric: str, higher_better: bool) -> go.Figure:
    """Configurations (rows) × devices (columns), coloured from worst to best, the value written in each cell."""
    figure = go.Figure(go.Heatmap(
        z=matrix.to_numpy(), x=[svg(c) for c in matrix.columns], y=[svg(i) for i in matrix.index],
        colorscale="RdYlGn" if higher_better else "RdYlGn_r", colorbar={"title": {"text": metric}},
        texttemplate="%{z:.3~r}" if matrix.size <= 1500 else None,
        hovertemplate="%{y}<br>device %{x}<br>" + svg(metric) + " %{z:.4~r}<extra></extra>", hoverongaps=False))
    figure.update_layout(height=_tall(len(matrix)), margin={"l": 10, "r": 10, "t": 30, "b": 10},
                         yaxis={"autorange": "reversed", "type": "category"}, xaxis={"side": "top", "type": "category"})
    return figure


def tradeoff(points: pd.DataFrame, latency: str, latency_label: str, y: str, y_label: str, color: str,
             size: str | None = None, size_label: str = "") -> go.Figure:
    """Latency against `y` (a score, or a size), marker area by `size` when given, and each device's Pareto front
    (the points' `on_front`) as a staircase."""
    spread = points[latency].max() / max(points[latency].min(), 1e-9)
    points = _plain(points, *{"config", "device", color})
    hover = {"device": True, latency: ":.3f", y: ":.4g", color: False, "config": False}  # the legend names colours
    marker = None
    if size:
        hover[size] = ":.0f"
        if points[size].notna().any():  # an unknown size (NaN in the hover) gets the smallest marker
            points, marker = points.assign(marker=points[size].fillna(0.0)), "marker"
            hover["marker"] = False
    figure = px.scatter(points, x=latency, y=y, size=marker, color=color, size_max=28,
                        log_x=bool(spread > 50),  # latencies over orders of magnitude (fast boards and slow ones)
                        hover_name="config", hover_data=hover,
                        labels={latency: latency_label, y: y_label, **({size: size_label} if size else {})})
    if marker:
        figure.update_traces(marker={"sizemin": 6})  # a 40 KB model next to a 7 MB one must still be visible
    colors = {trace.name: trace.marker.color for trace in figure.data} if color == "device" else {}
    for device, front in points[points["on_front"]].groupby("device", sort=True):
        front = front.sort_values(latency)
        figure.add_trace(go.Scatter(x=front[latency], y=front[y], mode="lines", line_shape="hv",
                                    line={"dash": "dot", "width": 1.5, "color": colors.get(device, "#444")},
                                    hoverinfo="skip", name=f"Pareto front · {device}", legendgroup=device,
                                    showlegend=not colors))
    figure.update_layout(height=520, margin={"l": 10, "r": 10, "t": 30, "b": 10}, legend={"itemsizing": "constant"})
    return figure


def latency_boxes(boxes: pd.DataFrame, color: str = "variant") -> go.Figure:
    """One box per configuration from precomputed quartiles and whiskers (the raw samples stay on the server), a
    colour per value of `color`."""
    figure = go.Figure()
    boxes = _plain(boxes, "config", color)
    for value, rows in boxes.groupby(color, sort=True):
        figure.add_trace(go.Box(
            y=rows["config"], q1=rows["q1"], median=rows["median"], q3=rows["q3"], lowerfence=rows["lowerfence"],
            upperfence=rows["upperfence"], mean=rows["mean"], orientation="h", name=str(value), boxpoints=False))
    figure.update_layout(height=_tall(len(boxes), 120), margin={"l": 10, "r": 10, "t": 30, "b": 10},
                         xaxis_title="latency (ms)", yaxis={"autorange": "reversed", "type": "category",
                                                            "categoryorder": "array",
                                                            "categoryarray": list(boxes["config"])})
    return figure


def samples_in_order(samples_ms, label: str) -> go.Figure:
    """One result's samples in the order they were measured: drift here is heat, throttling or a noisy neighbour."""
    figure = go.Figure(go.Scattergl(y=samples_ms, mode="lines+markers", marker={"size": 3}, name=svg(label)))
    figure.update_layout(height=300, margin={"l": 10, "r": 10, "t": 30, "b": 10}, xaxis_title="run",
                         yaxis_title="latency (ms)")
    return figure


def memory(results: pd.DataFrame) -> go.Figure:
    """Peak memory per configuration (peak RSS from the agent, the tool's footprint on phones), and the part above
    the runtime's own import baseline."""
    results = _plain(results, "config")
    figure = go.Figure([
        go.Bar(y=results["config"], x=results["peak_mb"], orientation="h", name="peak memory (MB)"),
        go.Bar(y=results["config"], x=results["peak_delta_mb"], orientation="h", name="above import baseline (MB)"),
    ])
    figure.update_layout(barmode="group", height=_tall(len(results), 120), margin={"l": 10, "r": 10, "t": 30, "b": 10},
                         yaxis={"autorange": "reversed", "type": "category"})
    return figure


def temperatures(results: pd.DataFrame) -> go.Figure:
    """The hottest thermal zone before and after each job, jobs in the order they ran, joined by a line per job."""
    order = list(range(1, len(results) + 1))
    results = _plain(results, "config")
    segments_x, segments_y = [], []
    for x, before, after in zip(order, results["temp_before_c"], results["temp_after_c"]):
        segments_x += [x, x, None]
        segments_y += [before, after, None]
    figure = go.Figure(go.Scatter(x=segments_x, y=segments_y, mode="lines", line={"color": "#bbb"}, hoverinfo="skip",
                                  showlegend=False))
    for when, symbol in (("before", "circle-open"), ("after", "circle")):
        figure.add_trace(go.Scatter(x=order, y=results[f"temp_{when}_c"], mode="markers", marker={"symbol": symbol},
                                    name=f"{when} the job", text=results["config"],
                                    hovertemplate="job %{x}: %{text}<br>%{y:.1f} °C<extra></extra>"))
    figure.update_layout(height=320, margin={"l": 10, "r": 10, "t": 30, "b": 10}, xaxis_title="job, in run order",
                         yaxis_title="hottest zone (°C)")
    return figure


def intervals(rows: pd.DataFrame) -> go.Figure:
    """Each configuration's p50 with the error bar of its 95% interval over the repeats."""
    rows = _plain(rows, "config")
    figure = go.Figure(go.Scatter(
        x=rows["p50_ms"], y=rows["config"], mode="markers", marker={"size": 9},
        error_x={"type": "data", "symmetric": False, "array": rows["p50_ci_high_ms"] - rows["p50_ms"],
                 "arrayminus": rows["p50_ms"] - rows["p50_ci_low_ms"]},
        customdata=rows[["p50_ci_low_ms", "p50_ci_high_ms", "repeats"]],
        hovertemplate="%{y}<br>p50 %{x:.4g} ms (95%: %{customdata[0]:.4g} – %{customdata[1]:.4g}, "
                      "%{customdata[2]} repeats)<extra></extra>"))
    figure.update_layout(height=_tall(len(rows), 120), margin={"l": 10, "r": 10, "t": 30, "b": 10},
                         xaxis_title="p50 latency (ms)", yaxis={"autorange": "reversed", "type": "category"})
    return figure


def changes(pairs: pd.DataFrame) -> go.Figure:
    """Change of median latency per configuration, coloured by whether it is beyond noise."""
    figure = go.Figure()
    pairs = _plain(pairs, "label")
    for verdict, rows in pairs.groupby("verdict", sort=False):
        figure.add_trace(go.Bar(y=rows["label"], x=rows["change_pct"], orientation="h", name=verdict,
                                marker_color=VERDICT_COLORS.get(verdict), customdata=rows[["median_a", "median_b"]],
                                hovertemplate="%{y}<br>%{x:+.1f} % (%{customdata[0]:.3f} → %{customdata[1]:.3f} ms)"
                                              "<extra></extra>"))
    figure.update_layout(height=_tall(len(pairs), 120), margin={"l": 10, "r": 10, "t": 30, "b": 10},
                         xaxis_title="change of median latency (%)",
                         yaxis={"autorange": "reversed", "type": "category", "categoryorder": "array",
                                "categoryarray": list(pairs["label"])})
    return figure


def op_types(times: pd.DataFrame) -> go.Figure:
    """Time per run in each op type (rows), a bar per variant (columns of `times`)."""
    labels = [svg(op) for op in times.index]
    figure = go.Figure([go.Bar(y=labels, x=times[column], orientation="h", name=svg(column),
                               hovertemplate="%{y}: %{x:.4g} ms per run<extra>" + svg(column) + "</extra>")
                        for column in times.columns])
    figure.update_layout(barmode="group", height=_tall(len(times) * len(times.columns), 120),
                         margin={"l": 10, "r": 10, "t": 30, "b": 10}, xaxis_title="time per run (ms)",
                         yaxis={"autorange": "reversed", "type": "category"})
    return figure


def _plain(frame: pd.DataFrame, *columns: str) -> pd.DataFrame:
    """The frame with its text columns made safe for plotly's labels (names from the store are never HTML)."""
    return frame.assign(**{column: frame[column].map(svg) for column in columns})
