"""Neuron weights coloured by feature (chapters 5 and 7): which features each neuron reads and writes."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.colors
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from utils.plots import inputs

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
) -> go.Figure:
    """Each neuron's input and output weights as bars stacked by feature, one column per instance.

    Row 1: neuron h's input weights W1[k, h, i] (how strongly feature i drives it); row 2: its output
    weights W2[k, i, h] (how strongly it writes to feature i's output). Each feature has one colour
    in every panel; positive weights stack upwards and negative ones downwards. Hover shows the
    feature, the neuron and the weight.

    Args:
        W1: `(inst, d_hidden, feats)` input weights.
        W2: `(inst, feats, d_hidden)` output weights.
        legend_names: one legend entry per feature (default "feature i").
        subplot_titles: one title per instance (default "instance k").
    """
    W1, W2 = inputs.weights(W1, "W1"), inputs.weights(W2, "W2")
    legend_names = inputs.labels(legend_names, "legend_names")
    subplot_titles = inputs.labels(subplot_titles, "subplot_titles")
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

    colours = feature_colours(n_features)
    neurons = np.arange(d_hidden)
    fig = make_subplots(
        rows=2,
        cols=n_inst,
        shared_yaxes=True,
        subplot_titles=titles,
        vertical_spacing=0.1,
        horizontal_spacing=0.02 if n_inst > 4 else 0.05,
    )
    weights = {1: ("W1", W1.numpy()), 2: ("W2", W2.transpose(1, 2).numpy())}  # both (inst, d_hidden, feats)
    for row, (label, values) in weights.items():
        for k in range(n_inst):
            for i in range(n_features):
                fig.add_trace(
                    go.Bar(
                        x=neurons,
                        y=values[k, :, i],
                        name=names[i],
                        legendgroup=f"feature {i}",
                        showlegend=(row == 1 and k == 0),
                        marker=dict(color=colours[i], line=dict(width=0)),
                        hovertemplate=f"{names[i]}<br>neuron %{{x}}<br>{label} = %{{y:.3f}}<extra>instance {k}</extra>",
                    ),
                    row,
                    k + 1,
                )
    fig.update_layout(
        barmode="relative",
        title=title,
        height=560,
        bargap=0.15,
        legend=dict(title="feature", tracegroupgap=0),
    )
    fig.update_xaxes(title_text="neuron", row=2, tickmode="linear", dtick=1 if d_hidden <= 12 else 5)
    fig.update_xaxes(tickmode="linear", dtick=1 if d_hidden <= 12 else 5, row=1)
    fig.update_yaxes(title_text="W1: input weights", row=1, col=1)
    fig.update_yaxes(title_text="W2: output weights", row=2, col=1)
    fig.update_yaxes(zeroline=True, zerolinecolor="black", zerolinewidth=1)
    return fig
