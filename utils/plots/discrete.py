"""Neuron weights coloured by feature (chapters 5 and 7): which features each neuron reads and writes."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.colors
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from utils.plots import inputs, layout

_PALETTE = [
    *plotly.colors.qualitative.Plotly,
    *plotly.colors.qualitative.Dark24,
    *plotly.colors.qualitative.Light24,
]


def feature_colours(n_features: int) -> list[str]:
    """A fixed qualitative colour per feature: plotly's 10 defaults first, then Dark24 and Light24;
    beyond those 58, evenly spaced hues (distinct, but no longer qualitative)."""
    if n_features <= len(_PALETTE):
        return _PALETTE[:n_features]
    return plotly.colors.sample_colorscale("HSV", list(np.linspace(0, 1, n_features, endpoint=False)))


def _as_weights(W, name: str, dims: str) -> torch.Tensor:
    if not isinstance(W, torch.Tensor) or W.dim() != 3:
        shape = tuple(W.shape) if isinstance(W, torch.Tensor) else type(W).__name__
        raise ValueError(f"{name} must be a tensor of shape {dims}, got {shape}")
    return W.detach().cpu().float().clone()


def plot_features_in_Nd_discrete(
    W1: torch.Tensor,
    W2: torch.Tensor,
    title: str | None = None,
    legend_names: Sequence[str] | None = None,
    subplot_titles: Sequence[str] | None = None,
    n_cols: int | None = None,
    panel_height: int = 170,
) -> go.Figure:
    """Each neuron's input and output weights as bars stacked by feature, one column per instance
    (`n_cols` instances per row, default up to 3).

    Row 1: neuron h's input weights W1[k, h, i] (how strongly feature i drives it); row 2: its output
    weights W2[k, i, h] (how strongly it writes to feature i's output). Each feature has one colour
    in every panel; positive weights stack upwards and negative ones downwards. Hover shows the
    feature, the neuron and the weight.

    Args:
        W1: `(inst, d_hidden, feats)` input weights.
        W2: `(inst, feats, d_hidden)` output weights.
        legend_names: one legend entry per feature (default "feature i").
        subplot_titles: one title per instance (default "instance k").
        panel_height: pixels of each panel's plot area; the width follows the page.
    """
    W1, W2 = inputs.weights(W1, "W1"), inputs.weights(W2, "W2")
    legend_names = inputs.labels(legend_names, "legend_names")
    subplot_titles = inputs.labels(subplot_titles, "subplot_titles")
    n_cols = inputs.optional_count(n_cols, "n_cols")
    W1 = _as_weights(W1, "W1", "(inst, d_hidden, feats)")
    W2 = _as_weights(W2, "W2", "(inst, feats, d_hidden)")
    n_inst, d_hidden, n_features = W1.shape
    if tuple(W2.shape) != (n_inst, n_features, d_hidden):
        raise ValueError(
            f"W2 must have shape (inst, feats, d_hidden) = {(n_inst, n_features, d_hidden)} to match "
            f"W1 {tuple(W1.shape)} = (inst, d_hidden, feats), got {tuple(W2.shape)}"
        )
    names = [f"feature {i}" for i in range(n_features)] if legend_names is None else list(legend_names)
    if len(names) != n_features:
        raise ValueError(f"legend_names needs one name per feature ({n_features}), got {len(names)}")
    titles = [f"instance {k}" for k in range(n_inst)] if subplot_titles is None else list(subplot_titles)
    if len(titles) != n_inst:
        raise ValueError(f"subplot_titles needs one title per instance ({n_inst}), got {len(titles)}")

    n_cols = min(n_inst, 3) if n_cols is None else n_cols
    n_blocks = -(-n_inst // n_cols)
    left, right, gap = 70, 20, 30
    width = max(layout.NARROWEST, left + right + n_cols * 150 + (n_cols - 1) * gap)
    spacing, panel = layout.columns(n_cols, width, left, right, gap)
    colours = feature_colours(n_features)
    neurons = np.arange(d_hidden)
    fig = make_subplots(rows=2 * n_blocks, cols=n_cols, shared_yaxes=True, horizontal_spacing=spacing)
    wrapped = [layout.wrap(t, panel, layout.PANEL_TITLE_SIZE) for t in titles]
    above = layout.titles_height(wrapped)
    below = layout.TICK_LABEL_HEIGHT + layout.AXIS_TITLE_HEIGHT
    heights = [panel_height] * (2 * n_blocks)
    gaps = [0.0] + [layout.TICK_LABEL_HEIGHT + 6 if r % 2 else below + above + 8 for r in range(1, 2 * n_blocks)]
    plot_height = layout.stack_rows(fig, heights, gaps)
    weights = {0: ("W1", W1.numpy()), 1: ("W2", W2.transpose(1, 2).numpy())}  # both (inst, d_hidden, feats)
    for k in range(n_inst):
        block, col = divmod(k, n_cols)
        layout.panel_title(fig, titles[k], 2 * block + 1, col + 1, panel)
        for offset, (label, values) in weights.items():
            for i in range(n_features):
                fig.add_trace(
                    go.Bar(
                        x=neurons,
                        y=values[k, :, i],
                        name=names[i],
                        legendgroup=f"feature {i}",
                        showlegend=(offset == 0 and k == 0),
                        marker=dict(color=colours[i], line=dict(width=0)),
                        hovertemplate=f"{names[i]}<br>neuron %{{x}}<br>{label} = %{{y:.3f}}<extra>instance {k}</extra>",
                    ),
                    2 * block + offset + 1,
                    col + 1,
                )
    dtick = layout.thinned_dtick(d_hidden, panel, layout.text_width(str(d_hidden - 1), layout.TICK_SIZE))
    fig.update_xaxes(tickmode="linear", tick0=0, dtick=dtick, tickangle=0)
    for block in range(n_blocks):
        cols = min(n_cols, n_inst - block * n_cols)
        layout.row_x_title(fig, "neuron", 2 * block + 2, cols)
        fig.update_yaxes(title_text="W1: input weights", row=2 * block + 1, col=1)
        fig.update_yaxes(title_text="W2: output weights", row=2 * block + 2, col=1)
    fig.update_yaxes(zeroline=True, zerolinecolor="black", zerolinewidth=1)
    fig.update_layout(barmode="relative", bargap=0.15, legend=dict(tracegroupgap=0))
    layout.frame(fig, title, width, plot_height, top=above, bottom=below, legend_names=names, legend_title="feature",
                 left=left, right=right)  # fmt: skip
    return fig
