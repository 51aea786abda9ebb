"""Figures of sparse autoencoders (chapter 9): the trade-off between sparsity (L0) and reconstruction."""

from __future__ import annotations

import math

import plotly.graph_objects as go
import torch
from plotly.colors import qualitative

from utils.plots import inputs, layout


def plot_sae_tradeoff(
    curves: dict[str, tuple[torch.Tensor, torch.Tensor]],
    labels: dict[str, list[str]] | None = None,
    true_l0: float | None = None,
    title: str = "Sparsity against reconstruction",
    height: int = 440,
) -> go.Figure:
    """One line of SAEs per entry of `curves`: each SAE a point at (L0, fraction of variance unexplained),
    with the legend below the plot.

    Args:
        curves: name -> `(l0, fvu)`, two `(n,)` tensors (one point per SAE, joined in the given order).
        labels: name -> one hover label per point (e.g. its L1 coefficient and MMCS).
        true_l0: the mean number of true features active per input, drawn as a dashed vertical line.
    """
    if not isinstance(curves, dict) or not curves:
        raise ValueError("curves must be a dict name -> (l0, fvu) with at least one entry")
    labels = labels or {}
    true_l0 = inputs.optional_number(true_l0, "true_l0")
    fig = go.Figure()
    for index, (name, pair) in enumerate(curves.items()):
        if not isinstance(pair, tuple | list) or len(pair) != 2:
            raise ValueError(f"curves[{name!r}] must be a pair (l0, fvu)")
        l0, fvu = (inputs.tensor(values, f"curves[{name!r}]").flatten() for values in pair)
        if l0.shape != fvu.shape:
            raise ValueError(f"curves[{name!r}]: l0 has {l0.numel()} values but fvu has {fvu.numel()}")
        text = inputs.labels(labels.get(name), f"labels[{name!r}]") or [""] * l0.numel()
        if len(text) != l0.numel():
            raise ValueError(f"labels[{name!r}] needs one label per point ({l0.numel()})")
        colour = qualitative.Plotly[index % len(qualitative.Plotly)]
        fig.add_trace(
            go.Scatter(
                x=l0.tolist(), y=fvu.tolist(), mode="lines+markers", name=name, text=text,
                line=dict(color=colour, width=2), marker=dict(size=8),
                hovertemplate=f"{name}<br>%{{text}}<br>L0 = %{{x:.3g}}<br>unexplained = %{{y:.3g}}<extra></extra>",
            )
        )
    l0_values = [x for trace in fig.data for x in trace.x if x > 0] + ([true_l0] if true_l0 else [])
    if true_l0 is not None:
        if true_l0 <= 0:
            raise ValueError(f"true_l0 must be positive (the L0 axis is logarithmic), got {true_l0}")
        fig.add_vline(x=true_l0, line=dict(color="grey", dash="dash"))
        # the label by hand: on a log axis an annotation's x is log10 of the value (add_vline's label would
        # sit at 10 ** true_l0); on the side of the line with more room
        low, high = math.log10(min(l0_values)), math.log10(max(l0_values))
        right_half = high > low and (math.log10(true_l0) - low) / (high - low) > 0.5
        fig.add_annotation(
            x=math.log10(true_l0), xref="x", y=1, yref="y domain", yanchor="top", showarrow=False,
            xanchor="right" if right_half else "left", xshift=-4 if right_half else 4,
            text="true features per input", font=dict(size=layout.LEGEND_SIZE, color="grey"),
        )  # fmt: skip
    fig.update_xaxes(title_text="L0: latents active per input", type="log", showgrid=True, gridcolor="#eee")
    if l0_values:
        fig.update_xaxes(**layout.log_ticks(min(l0_values), max(l0_values), fit=5))
    fig.update_yaxes(title_text="fraction of variance unexplained", showgrid=True, gridcolor="#eee")
    fig.update_layout(plot_bgcolor="white")
    layout.frame(fig, title, layout.NARROWEST, height - layout.CHROME, legend_names=layout.legend_entries(fig))
    return fig
