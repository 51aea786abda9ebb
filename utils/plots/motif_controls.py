"""Figures for chapter 7's controls: how tightly each kind of shared pair is cancelled, and what cutting
the motif's inhibitor paths costs next to a matched control."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from utils.plots import inputs, layout

_KINDS = ("asymmetric", "reverse", "near-symmetric", "other")
_KIND_NAMES = {
    "asymmetric": "asymmetric (i → j, the large leak)",
    "reverse": "reverse (j → i, the small leak)",
    "near-symmetric": "near-symmetric",
    "other": "other shared pairs",
}
_FLOOR = 1e-7  # loss increases below this are drawn at it on the log scale


def plot_cancellation_by_kind(pairs: pd.DataFrame, cap: float = 3.0, title: str | None = None) -> go.Figure:
    """Inhibition / leak for every shared pair, one box per kind (from `utils.motif.shared_pairs`), capped
    at `cap`; the dashed line at 1 is exact cancellation."""
    pairs = inputs.frame(pairs, "pairs")
    cap = inputs.optional_number(cap, "cap")
    if missing := {"kind", "leak", "inhibition"} - set(pairs.columns):
        raise ValueError(f"pairs lack the columns {sorted(missing)}; make them with utils.motif.shared_pairs")
    width, left, right = 480, 80, 20
    room = (width - left - right) / len(_KINDS) - 12  # a box's share of the axis, less a gap between labels
    fig = go.Figure()
    for kind in _KINDS:
        rows = pairs[pairs["kind"] == kind]
        ratio = (rows["inhibition"] / rows["leak"]).clip(upper=cap)
        # the names are the tick labels under the boxes: wrapped to a box's width
        name = layout.wrap(_KIND_NAMES[kind], room, layout.TICK_SIZE) + f"<br>({len(rows)} pairs)"
        fig.add_trace(go.Box(y=ratio, name=name, boxpoints=False))
    fig.add_hline(y=1.0, line=dict(color="black", dash="dash"))
    plot_height = 300
    y_title = layout.wrap(f"inhibition / leak (capped at {cap:g})", plot_height, layout.AXIS_TITLE_SIZE)
    fig.update_layout(yaxis_title=y_title, showlegend=False)
    lines = max(layout.line_count(trace.name) for trace in fig.data)
    bottom = lines * layout.TICK_SIZE * layout.LINE + 12
    layout.frame(fig, title, width, plot_height, bottom=bottom, left=left, right=right)
    return fig


def plot_path_ablation(results: pd.DataFrame, title: str | None = None) -> go.Figure:
    """For each detected motif (from `utils.motif.path_ablation_study`): the loss increase on "only x_i
    active" inputs against the strength of the paths cut, for the motif's inhibitor -> j paths and for
    the matched control; log-log."""
    results = inputs.frame(results, "results")
    needed = {"instance", "loss intact", "loss, paths cut", "loss, control", "strength cut", "control strength"}
    if missing := needed - set(results.columns):
        raise ValueError(f"results lack the columns {sorted(missing)}; make them with utils.motif.path_ablation_study")
    fig = go.Figure()
    series = (
        ("loss, paths cut", "strength cut", "inhibitor → j paths cut", "#EF553B"),
        ("loss, control", "control strength", "matched control: other pull-downs cut", "#636EFA"),
    )
    for loss, strength, name, colour in series:
        rows = results.dropna(subset=[loss])
        increase = (rows[loss] - rows["loss intact"]).clip(lower=_FLOOR)
        fig.add_trace(
            go.Scatter(
                x=rows[strength],
                y=increase,
                mode="markers",
                name=name,
                marker=dict(color=colour, size=7, opacity=0.8),
                customdata=rows["instance"],
                hovertemplate="instance %{customdata}<br>strength %{x:.2f}<br>loss increase %{y:.2e}<extra></extra>",
            )
        )
    width, left, right, plot_height = layout.NARROWEST, 88, 20, 320
    size = layout.AXIS_TITLE_SIZE
    x_title = layout.wrap("strength of the cut paths, Σ s·W1[m, i]·|W2[f, m]|", width - left - right, size)
    y_title = layout.wrap(f"loss increase on 'only x_i' inputs (below {_FLOOR:g} drawn at it)", plot_height, size)
    fig.update_xaxes(type="log", title_text=x_title)
    fig.update_yaxes(type="log", title_text=y_title)
    xs = [float(x) for trace in fig.data for x in trace.x if x > 0]
    ys = [float(y) for trace in fig.data for y in trace.y]
    if xs:  # tick labels that fit: at most as many as the axis has room for
        label = layout.text_width("0.001", layout.TICK_SIZE)
        fig.update_xaxes(**layout.log_ticks(min(xs), max(xs), fit=layout.max_ticks(width - left - right, label)))
        fig.update_yaxes(**layout.log_ticks(min(ys), max(ys), fit=6))
    fig.update_layout(showlegend=True)
    bottom = layout.TICK_LABEL_HEIGHT + layout.line_count(x_title) * layout.AXIS_TITLE_HEIGHT
    layout.frame(fig, title, width, plot_height, bottom=bottom, legend_names=layout.legend_entries(fig),
                 left=left, right=right)  # fmt: skip
    return fig
