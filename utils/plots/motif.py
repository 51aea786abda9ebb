"""Figures for the asymmetric superposition motif (chapter 7): weight distributions, the asymmetry of
shared neurons, how often the motif appears, and its traced mechanism (the ablation and its control
are in `utils.plots.motif_controls`)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from utils.motif import MotifThresholds, check_weights, leak_and_inhibition
from utils.plots import inputs, layout
from utils.plots.discrete import feature_colours

_FLOOR = 1e-4  # weights below this are drawn in the first bin of the log-scale histograms


def _group_labels(groups: Sequence[str], n_inst: int) -> np.ndarray:
    labels = np.asarray(list(groups), dtype=object)
    if labels.shape != (n_inst,):
        raise ValueError(f"groups needs one label per instance ({n_inst}), got {labels.shape[0]}")
    return labels


def plot_weight_distributions(
    W1: torch.Tensor, W2: torch.Tensor, groups: Sequence[str], thresholds: MotifThresholds, title: str | None = None
) -> go.Figure:
    """Histograms of |W1| and |W2| entries on a log scale, one curve per group of instances, with the
    detector's `reads` and `writes` thresholds marked.

    Args:
        W1: `(inst, d_hidden, feats)`; W2: `(inst, feats, d_hidden)`.
        groups: one label per instance (e.g. "p = 0.1"); instances with equal labels are pooled.
    """
    W1, W2 = inputs.weights(W1, "W1"), inputs.weights(W2, "W2")
    inputs.thresholds(thresholds)
    groups = inputs.labels(groups, "groups")
    W1, W2 = check_weights(W1, W2)
    labels = _group_labels(groups, W1.shape[0])
    edges = np.linspace(np.log10(_FLOOR), 1.0, 61)
    centres = 10 ** ((edges[:-1] + edges[1:]) / 2)
    width, left, right, gap = 480, 70, 20, 40
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=gap / (width - left - right))
    panel = (width - left - right - gap) / 2
    panel_titles = ((1, "|W1| (input weights)"), (2, "|W2| (output weights)"))
    texts = [layout.panel_title(fig, text, 1, col, panel) for col, text in panel_titles]
    colours = feature_colours(len(dict.fromkeys(labels)))
    for colour, label in zip(colours, dict.fromkeys(labels)):
        chosen = torch.as_tensor(labels == label)
        for col, W in ((1, W1), (2, W2)):
            values = np.log10(W[chosen].abs().flatten().clamp_min(_FLOOR).cpu().numpy())
            counts, _ = np.histogram(values, edges)
            fig.add_trace(
                go.Scatter(
                    x=centres,
                    y=counts / max(1, values.size),
                    mode="lines",
                    line=dict(color=colour, shape="hvh"),
                    name=str(label),
                    legendgroup=str(label),
                    showlegend=col == 1,
                    hovertemplate=f"{label}<br>|w| ≈ %{{x:.3g}}<br>fraction %{{y:.3f}}<extra></extra>",
                ),
                1,
                col,
            )
    for col, value, name in ((1, thresholds.reads, "reads"), (2, thresholds.writes, "writes")):
        fig.add_vline(x=value, line=dict(color="black", dash="dash"), row=1, col=col)
        fig.add_annotation(x=np.log10(value), y=1, yref="y domain", text=f"{name} = {value:g}", showarrow=False,
                           xanchor="left", xshift=4, row=1, col=col)
    fit = layout.max_ticks(panel, layout.text_width("0.0001", 12))
    fig.update_xaxes(type="log", **layout.log_ticks(_FLOOR, 10.0, fit=fit))
    layout.row_x_title(fig, "|weight| (entries below 1e-4 in the first bin)", 1, 2)
    fractions = [v for trace in fig.data for v in trace.y if v > 0]
    y_ticks = layout.log_ticks(min(fractions), max(fractions), fit=5)
    fig.update_yaxes(type="log", **y_ticks, title_text="fraction of entries", col=1)
    fig.update_yaxes(type="log", **y_ticks, col=2)
    layout.frame(fig, title, width, plot_height=290, top=layout.titles_height(texts),
                 legend_names=layout.legend_entries(fig), legend_title="instances", left=left, right=right)  # fmt: skip
    return fig


def plot_asymmetry(
    W1: torch.Tensor, W2: torch.Tensor, thresholds: MotifThresholds, title: str | None = None
) -> go.Figure:
    """Every shared neuron: how much louder it stores i than j, against how much louder it reads j out.

    One dot per (instance k, neuron n, features i ≠ j) where n reads and writes both features above the
    thresholds and stores i at least as loudly as j: x = log₂ |W1[n, i]| / |W1[n, j]|, y = log₂ W2[j, n] /
    W2[i, n], colour = inhibition / leak (capped at 2). The asymmetric pairs lie right of and above the
    dashed lines at log₂ ratio; the motif needs colour at least `cancel`.
    """
    W1, W2 = inputs.weights(W1, "W1"), inputs.weights(W2, "W2")
    inputs.thresholds(thresholds)
    W1, W2 = check_weights(W1, W2)
    t = thresholds
    loudness, out = W1.abs(), W2.transpose(1, 2)
    used = (loudness > t.reads) & (out > t.writes)
    n_features = W1.shape[2]
    distinct = ~torch.eye(n_features, dtype=torch.bool, device=W1.device)
    shared = used[..., :, None] & used[..., None, :] & distinct & (loudness[..., :, None] >= loudness[..., None, :])
    leak, inhibition = leak_and_inhibition(W1, W2)
    k, n, i, j = shared.nonzero().unbind(1)
    x = torch.log2(loudness[k, n, i] / loudness[k, n, j]).cpu().numpy()
    y = torch.log2(out[k, n, j] / out[k, n, i]).cpu().numpy()
    cancelled = (inhibition[k, n, i, j] / leak[k, n, i, j]).clamp_max(2.0).cpu().numpy()
    custom = np.stack([t_.cpu().numpy() for t_ in (k, n, i, j)] + [cancelled], axis=1)
    fig = go.Figure(
        go.Scattergl(
            x=x,
            y=y,
            mode="markers",
            marker=dict(size=5, color=cancelled, colorscale="Viridis", cmin=0, cmax=2, opacity=0.7,
                        colorbar=dict(title=dict(text="inhibition / leak", side="right"), thickness=14)),
            customdata=custom,
            hovertemplate=(
                "instance %{customdata[0]}, neuron %{customdata[1]}<br>i = %{customdata[2]}, j = %{customdata[3]}"
                "<br>log₂ input ratio %{x:.2f}<br>log₂ output ratio %{y:.2f}<br>inhibition / leak %{customdata[4]:.2f}"
                "<extra></extra>"
            ),
            name="shared neurons",
        )
    )
    line = float(np.log2(t.ratio))
    fig.add_vline(x=line, line=dict(color="black", dash="dash"))
    fig.add_hline(y=line, line=dict(color="black", dash="dash"))
    fig.add_hline(y=0, line=dict(color="grey", width=1))
    width = layout.NARROWEST
    fig.update_layout(
        xaxis_title=layout.wrap("log₂ |W1[n, i]| / |W1[n, j]|  (i stored louder)", width - 150, layout.AXIS_TITLE_SIZE),
        yaxis_title=layout.wrap("log₂ W2[j, n] / W2[i, n]  (j read out louder)", 330, layout.AXIS_TITLE_SIZE),
    )
    layout.frame(fig, title, width, plot_height=350, bottom=layout.TICK_LABEL_HEIGHT + 2 * layout.AXIS_TITLE_HEIGHT,
                 left=80, right=80)  # fmt: skip
    return fig


def plot_motif_frequency(table: pd.DataFrame, x: str, colour: str, title: str | None = None) -> go.Figure:
    """The motif's frequency against `x`, one line per value of `colour`, with 95% intervals.

    Args:
        table: from `utils.motif.frequency_table`, with columns `x`, `colour`, `frequency`, `low`, `high`,
            `instances`, `with motif`.
    """
    table = inputs.frame(table, "table")
    missing = {x, colour, "frequency", "low", "high", "instances", "with motif"} - set(table.columns)
    if missing:
        raise ValueError(f"table lacks the columns {sorted(missing)}; make it with utils.motif.frequency_table")
    fig = go.Figure()
    values = sorted(table[colour].unique())
    for line_colour, value in zip(feature_colours(len(values)), values):
        rows = table[table[colour] == value].sort_values(x)
        fig.add_trace(
            go.Scatter(
                x=rows[x],
                y=rows["frequency"],
                error_y=dict(
                    type="data",
                    symmetric=False,
                    array=rows["high"] - rows["frequency"],
                    arrayminus=rows["frequency"] - rows["low"],
                    thickness=1,
                ),
                mode="lines+markers",
                line=dict(color=line_colour),
                name=f"{colour} = {value:g}",
                customdata=np.stack([rows["with motif"], rows["instances"]], axis=1),
                hovertemplate=f"{x} = %{{x:g}}<br>{colour} = {value:g}<br>"
                "%{customdata[0]} of %{customdata[1]} instances<br>frequency %{y:.2f}<extra></extra>",
            )
        )
    fig.update_layout(xaxis_title=x, yaxis_title="fraction of instances with the motif")
    fig.update_yaxes(range=[-0.03, 1.03])
    layout.frame(fig, title, layout.NARROWEST, plot_height=290, legend_names=layout.legend_entries(fig))
    return fig


def plot_motif_trace(trace: pd.DataFrame, title: str | None = None) -> go.Figure:
    """The traced mechanism (from `utils.motif.trace_motif`): for "i alone", "j alone" and "both", the
    parts of output j's pre-activation (the shared neuron, the inhibitors, the rest) stacked, with the
    pre-activation, the output after the ReLU and the target marked; output i alongside."""
    trace = inputs.frame(trace, "trace")
    needed = {
        "j from n",
        "j from inhibitors",
        "j from the rest",
        "pre_j",
        "out_j",
        "target_j",
        "pre_i",
        "out_i",
        "target_i",
    }
    if missing := needed - set(trace.columns):
        raise ValueError(f"trace lacks the columns {sorted(missing)}; make it with utils.motif.trace_motif")
    cases = list(trace.index)
    width, left, right, gap = 420, 60, 20, 50
    fig = make_subplots(rows=1, cols=2, column_widths=[0.62, 0.38], horizontal_spacing=gap / (width - left - right))
    panels = width - left - right - gap
    texts = [layout.panel_title(fig, text, 1, col, panels * share)
             for col, text, share in ((1, "output j: parts of its pre-activation", 0.62), (2, "output i", 0.38))]
    parts = (("j from n", "the shared neuron n", "#636EFA"), ("j from inhibitors", "the inhibitors", "#EF553B"),
             ("j from the rest", "other neurons and bias", "#B6B6B6"))
    for column, name, colour in parts:
        fig.add_trace(
            go.Bar(
                x=cases,
                y=trace[column],
                name=name,
                marker_color=colour,
                hovertemplate=f"{name}: %{{y:.3f}}<extra>%{{x}}</extra>",
            ),
            1,
            1,
        )
    markers = (
        ("pre", "pre-activation", "line-ew-open", "black"),
        ("out", "output (after ReLU)", "circle", "black"),
        ("target", "target |x|", "x-thin-open", "#00CC96"),
    )
    for col, feature in ((1, "j"), (2, "i")):
        for prefix, name, symbol, colour in markers:
            fig.add_trace(
                go.Scatter(
                    x=cases,
                    y=trace[f"{prefix}_{feature}"],
                    mode="markers",
                    name=name,
                    legendgroup=name,
                    showlegend=col == 1,
                    marker=dict(symbol=symbol, size=16, color=colour, line=dict(width=2, color=colour)),
                    hovertemplate=f"{name} of output {feature}: %{{y:.3f}}<extra>%{{x}}</extra>",
                ),
                1,
                col,
            )
    fig.update_layout(barmode="relative")
    fig.update_yaxes(zeroline=True, zerolinecolor="black")
    bottom = layout.TICK_LABEL_HEIGHT + 8
    layout.frame(fig, title, width, plot_height=300, top=layout.titles_height(texts), bottom=bottom,
                 legend_names=layout.legend_entries(fig), left=left, right=right)  # fmt: skip
    return fig
