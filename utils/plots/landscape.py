"""The loss as a function of the direction of W (chapter 1's one-hidden-dimension linear model)."""

from __future__ import annotations

import math

import plotly.graph_objects as go
import torch
from plotly.colors import qualitative

from utils.plots import inputs, layout

MAX_POINTS = 720
"""Curves are thinned to about this many points: the figure stays small, the shape does not change."""


def plot_direction_landscape(
    angles: torch.Tensor,
    curves: dict[str, torch.Tensor],
    marks: dict[str, torch.Tensor] | None = None,
    relative: bool = True,
    title: str = "Loss against the direction of W",
) -> go.Figure:
    """One curve per case of the loss (minimised over ‖W‖ and b) against W's direction.

    Args:
        angles: `(n_angles,)` directions in radians, in [0, π).
        curves: label -> `(n_angles,)` loss at each direction.
        marks: label -> `(k,)` directions (radians) that training reached, drawn on that label's curve.
        relative: divide each curve by its minimum, so flat and steep landscapes compare at a glance.
    """
    angles, curves = inputs.tensor(angles, "angles"), inputs.named_tensors(curves, "curves")
    marks = inputs.named_tensors(marks or {}, "marks")
    stride = math.ceil(len(angles) / MAX_POINTS)
    degrees = (angles.detach().cpu() * 180 / math.pi).numpy()
    fig = go.Figure()
    for index, (label, curve) in enumerate(curves.items()):
        if curve.shape != angles.shape:
            raise ValueError(f"curve {label!r} has shape {tuple(curve.shape)}; expected (n_angles,) = {tuple(angles.shape)}")
        colour = qualitative.Plotly[index % len(qualitative.Plotly)]
        values = curve.detach().cpu()
        values = values / values.min() if relative else values
        fig.add_trace(
            go.Scatter(x=degrees[::stride], y=values[::stride].numpy(), mode="lines", line=dict(color=colour), name=label)
        )
        if marks and label in marks:
            at = (marks[label].detach().cpu() % math.pi) / math.pi * len(angles)
            nearest = at.round().long().clamp(0, len(angles) - 1)
            fig.add_trace(
                go.Scatter(
                    x=degrees[nearest.numpy()],
                    y=values[nearest].numpy(),
                    mode="markers",
                    marker=dict(color=colour, size=9, symbol="x"),
                    name=f"{label}: trained",
                    showlegend=False,
                )
            )
    shown = torch.cat([trace_values for trace_values in (torch.as_tensor(t.y) for t in fig.data)])
    fig.update_layout(xaxis_title="direction of W (degrees)", yaxis_title="loss / its minimum" if relative else "loss")
    fig.update_yaxes(type="log", **layout.log_ticks(float(shown.min()), float(shown.max())))
    fig.update_xaxes(tickvals=[0, 45, 90, 135, 180])
    layout.frame(fig, title, layout.NARROWEST, plot_height=310, legend_names=layout.legend_entries(fig))
    return fig
