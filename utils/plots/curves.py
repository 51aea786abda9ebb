"""Line plots of a few named curves over a shared horizontal axis (loss histories, loss against a
parameter), with optional horizontal reference lines."""

from __future__ import annotations

import math

import plotly.graph_objects as go
import torch
from plotly.colors import qualitative

from utils.plots import inputs, layout

POINT_SYMBOLS = ("x", "circle-open", "diamond-open", "square-open")


def curves_figure(
    x: torch.Tensor,
    curves: dict[str, torch.Tensor],
    x_title: str = "x",
    y_title: str = "y",
    log_x: bool = False,
    log_y: bool = False,
    references: dict[str, float] | None = None,
    points: dict[str, tuple[torch.Tensor, torch.Tensor]] | None = None,
) -> go.Figure:
    """The lines (and markers) of `plot_curves` and `utils.plots.plot_curves_and_points`, not laid out yet.

    Args:
        x: `(n,)` the horizontal positions.
        curves: name -> `(n,)` values (NaN leaves a gap).
        references: name -> a constant drawn as a dashed horizontal line (e.g. a known optimum).
        points: name -> `(x, y)` measured values drawn as black markers over the lines.
    """
    x, curves = inputs.tensor(x, "x"), inputs.named_tensors(curves, "curves")
    references = inputs.named_numbers(references, "references")
    x = torch.as_tensor(x).detach().double().cpu().flatten()
    if not curves:
        raise ValueError("curves must hold at least one named curve")
    if points is not None and not isinstance(points, dict):
        raise TypeError(f"points must be a dict name -> (x, y), got {type(points).__name__}")
    fig = go.Figure()
    for index, (name, values) in enumerate(curves.items()):
        values = torch.as_tensor(values).detach().double().cpu().flatten()
        if values.shape != x.shape:
            raise ValueError(f"curve {name!r} has {values.numel()} values but x has {x.numel()}")
        colour = qualitative.Plotly[index % len(qualitative.Plotly)]
        fig.add_trace(
            go.Scatter(
                x=x.tolist(), y=values.tolist(), mode="lines+markers" if x.numel() <= 40 else "lines", name=name,
                line=dict(color=colour, width=2),
                hovertemplate=f"{name}<br>{x_title} = %{{x:.4g}}<br>{y_title} = %{{y:.4g}}<extra></extra>",
            )
        )  # fmt: skip
    for index, (name, (px, py)) in enumerate((points or {}).items()):
        px, py = (inputs.tensor(v, f"points[{name!r}]").double().flatten() for v in (px, py))
        if px.shape != py.shape:
            raise ValueError(f"points {name!r} have {px.numel()} x values but {py.numel()} y values")
        fig.add_trace(
            go.Scatter(
                x=px.tolist(),
                y=py.tolist(),
                mode="markers",
                name=name,
                marker=dict(size=10, color="black", symbol=POINT_SYMBOLS[index % len(POINT_SYMBOLS)]),
            )
        )
    for index, (name, value) in enumerate((references or {}).items()):
        fig.add_hline(y=float(value), line=dict(color="grey", dash=["dash", "dot", "dashdot"][index % 3]),
                      annotation_text=name, annotation_position="top left")  # fmt: skip
        if log_y and value > 0:  # on a log axis an annotation's y is log10 of the value, a line's y the value
            fig.layout.annotations[-1].y = math.log10(value)
    fig.update_xaxes(title_text=x_title, type="log" if log_x else "linear")
    fig.update_yaxes(title_text=y_title, type="log" if log_y else "linear")
    if log_x:
        xs = torch.cat([torch.as_tensor(trace.x, dtype=torch.float64) for trace in fig.data])
        fig.update_xaxes(**layout.log_ticks(float(xs[xs > 0].min()), float(xs.max()), fit=5))
    if log_y:
        values = torch.cat([torch.as_tensor(trace.y, dtype=torch.float64) for trace in fig.data])
        values = values[values > 0]
        positive = [float(v) for v in (references or {}).values() if v > 0]
        low, high = min([float(values.min()), *positive]), max([float(values.max()), *positive])
        fig.update_yaxes(**layout.log_ticks(low, high))
    fig.update_layout(plot_bgcolor="white")
    fig.update_xaxes(showgrid=True, gridcolor="#eee")
    fig.update_yaxes(showgrid=True, gridcolor="#eee")
    return fig


def plot_curves(
    x: torch.Tensor,
    curves: dict[str, torch.Tensor],
    x_title: str = "x",
    y_title: str = "y",
    title: str = "",
    log_x: bool = False,
    log_y: bool = False,
    references: dict[str, float] | None = None,
    height: int = 440,
) -> go.Figure:
    """One line per entry of `curves` over `x`, with the legend below the plot.

    Args:
        x: `(n,)` the horizontal positions.
        curves: name -> `(n,)` values (NaN leaves a gap).
        references: name -> a constant drawn as a dashed horizontal line (e.g. a known optimum).
    """
    fig = curves_figure(x, curves, x_title, y_title, log_x, log_y, references)
    layout.frame(fig, title, layout.NARROWEST, height - layout.CHROME, legend_names=layout.legend_entries(fig))
    return fig
