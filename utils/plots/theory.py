"""Figures that put theory next to training (chapter 2): phase diagrams with closed-form boundaries
drawn over every panel and chosen cells marked, and a map of one number per cell (e.g. the share of
seeds that reach the exact optimum)."""

from __future__ import annotations

import plotly.graph_objects as go
import torch

from utils.plots import inputs, layout
from utils.plots.curves import curves_figure
from utils.plots.phase import _log_axis_values, _log_ticks, phase_figure

BOUNDARY_DASHES = ("solid", "dash", "dot", "dashdot")


def _curves(
    boundaries: dict[str, tuple[torch.Tensor, torch.Tensor]] | None,
) -> list[tuple[str, list[float], list[float]]]:
    """name -> (x, y) in data units, as log10 lists (points with a non-positive coordinate dropped)."""
    curves = []
    for name, (x, y) in (boundaries or {}).items():
        x, y = (torch.as_tensor(v, dtype=torch.float64).detach().cpu().flatten() for v in (x, y))
        if x.shape != y.shape:
            raise ValueError(f"boundary {name!r} has {x.numel()} x values but {y.numel()} y values")
        keep = (x > 0) & (y > 0)
        curves.append((name, x[keep].log10().tolist(), y[keep].log10().tolist()))
    return curves


def plot_phase_with_boundaries(
    norm: torch.Tensor,
    superposition: torch.Tensor,
    loss: torch.Tensor,
    x_values: torch.Tensor,
    y_values: torch.Tensor,
    boundaries: dict[str, tuple[torch.Tensor, torch.Tensor]] | None = None,
    marks: torch.Tensor | None = None,
    mark_name: str = "marked",
    n_cols: int | None = None,
    **phase_kwargs,
) -> go.Figure:
    """`utils.plots.plot_phase_diagram` (same metrics and keywords) with curves drawn over every panel.

    Args:
        boundaries: name -> `(x, y)` a curve in data units (e.g. where two closed-form losses are
            equal), drawn on the panels' log axes; one legend entry per curve.
        marks: `(panels, ny, nx)` or `(ny, nx)` booleans: cells to mark with a cross (e.g. where
            training misses the optimum); named `mark_name` in the legend.
        n_cols: panels per row, as in `plot_phase_diagram`.

    The curves and marks are named in a legend below the panels.
    """
    title = phase_kwargs.pop("title", "Phase diagram")
    fig, room = phase_figure(norm, superposition, loss, x_values, y_values, n_cols=n_cols, **phase_kwargs)
    norm = inputs.tensor(norm, "norm")  # checked by phase_figure
    x_values, y_values = inputs.tensor(x_values, "x_values"), inputs.tensor(y_values, "y_values")
    n_panels = 1 if norm.dim() == 2 else norm.shape[0]
    ny, nx = norm.shape[-2:]
    n_cols = n_cols or min(n_panels, 3)
    log_x = _log_axis_values(x_values, nx, "x_values")
    log_y = _log_axis_values(y_values, ny, "y_values")
    half_x, half_y = (log_x[-1] - log_x[0]) / (2 * (nx - 1)), (log_y[-1] - log_y[0]) / (2 * (ny - 1))
    x_range = sorted([log_x[0] - half_x, log_x[-1] + half_x])
    y_range = sorted([log_y[0] - half_y, log_y[-1] + half_y])
    curves = _curves(boundaries)
    if marks is not None:
        marks = torch.as_tensor(marks, dtype=torch.bool).detach().cpu()
        marks = marks[None] if marks.dim() == 2 else marks
        if marks.shape != (n_panels, ny, nx):
            raise ValueError(f"marks must have shape {(n_panels, ny, nx)} (panels, ny, nx), got {tuple(marks.shape)}")
    for k in range(n_panels):
        row, col = k // n_cols + 1, k % n_cols + 1
        for index, (name, xs, ys) in enumerate(curves):
            fig.add_trace(
                go.Scatter(
                    x=xs,
                    y=ys,
                    mode="lines",
                    name=name,
                    legendgroup=name,
                    showlegend=k == 0,
                    line=dict(color="black", width=2, dash=BOUNDARY_DASHES[index % len(BOUNDARY_DASHES)]),
                    hoverinfo="skip",
                ),
                row,
                col,
            )
        if marks is not None and marks[k].any():
            rows, cols = marks[k].nonzero(as_tuple=True)
            fig.add_trace(
                go.Scatter(
                    x=[log_x[j] for j in cols.tolist()],
                    y=[log_y[i] for i in rows.tolist()],
                    mode="markers",
                    marker=dict(symbol="x-thin", size=9, line=dict(width=2, color="black")),
                    name=mark_name,
                    legendgroup=mark_name,
                    showlegend=not any(m.any() for m in marks[:k]),
                    hoverinfo="skip",
                ),
                row,
                col,
            )
        fig.update_xaxes(range=x_range, row=row, col=col)
        fig.update_yaxes(range=y_range, row=row, col=col)
    names = layout.legend_entries(fig)
    fig.update_layout(showlegend=bool(names))
    layout.frame(fig, title, **room, legend_names=names or None)
    return fig


def plot_cell_values(
    values: torch.Tensor,
    x_values: torch.Tensor,
    y_values: torch.Tensor,
    x_title: str = "x",
    y_title: str = "y",
    value_title: str = "value",
    boundaries: dict[str, tuple[torch.Tensor, torch.Tensor]] | None = None,
    value_range: tuple[float, float] = (0.0, 1.0),
    title: str = "",
    height: int = 420,
) -> go.Figure:
    """One number per cell of a grid over two log axes, as a heatmap with its colour bar.

    Args:
        values: `(ny, nx)`, row i at `y_values[i]`, column j at `x_values[j]`.
        boundaries: curves drawn over the map, as in `plot_phase_with_boundaries`.
        value_range: the values that get the ends of the colour scale.
    """
    if not isinstance(values, torch.Tensor) or values.dim() != 2:
        raise ValueError(
            f"values must be a (ny, nx) tensor, got "
            f"{tuple(values.shape) if isinstance(values, torch.Tensor) else type(values).__name__}"
        )
    ny, nx = values.shape
    log_x = _log_axis_values(x_values, nx, "x_values")
    log_y = _log_axis_values(y_values, ny, "y_values")
    real_x = [10**v for v in log_x]
    real_y = [10**v for v in log_y]
    custom = [[[real_x[j], real_y[i]] for j in range(nx)] for i in range(ny)]
    fig = go.Figure(
        go.Heatmap(
            z=values.detach().double().cpu().tolist(),
            x=log_x,
            y=log_y,
            zmin=value_range[0],
            zmax=value_range[1],
            colorscale="Viridis",
            colorbar=dict(title=dict(text=value_title, side="right"), thickness=14),
            customdata=custom,
            hovertemplate=f"{x_title} = %{{customdata[0]:.3g}}<br>{y_title} = %{{customdata[1]:.3g}}<br>{value_title} "
            f"= %{{z:.2f}}<extra></extra>",
        )
    )
    for index, (name, xs, ys) in enumerate(_curves(boundaries)):
        fig.add_trace(
            go.Scatter(
                x=xs,
                y=ys,
                mode="lines",
                name=name,
                hoverinfo="skip",
                line=dict(color="white", width=2, dash=BOUNDARY_DASHES[index % len(BOUNDARY_DASHES)]),
            )
        )
    half_x, half_y = (log_x[-1] - log_x[0]) / (2 * max(nx - 1, 1)), (log_y[-1] - log_y[0]) / (2 * max(ny - 1, 1))
    left, right = 70, 90  # right: the colour bar, its tick labels and its title
    width = layout.NARROWEST + right - 20
    plot_width, plot_height = width - left - right, height - layout.CHROME
    x_title = layout.wrap(x_title, plot_width, layout.AXIS_TITLE_SIZE)
    y_title = layout.wrap(y_title, plot_height, layout.AXIS_TITLE_SIZE)
    fig.update_xaxes(title_text=x_title, range=sorted([log_x[0] - half_x, log_x[-1] + half_x]), **_log_ticks(log_x))
    fig.update_yaxes(title_text=y_title, range=sorted([log_y[0] - half_y, log_y[-1] + half_y]), **_log_ticks(log_y))
    names = layout.legend_entries(fig)
    fig.update_layout(plot_bgcolor="white", showlegend=bool(names))
    bottom = layout.TICK_LABEL_HEIGHT + layout.line_count(x_title) * layout.AXIS_TITLE_HEIGHT
    left += 18 * (layout.line_count(y_title) - 1)
    layout.frame(fig, title, width, plot_height, bottom=bottom, legend_names=names or None, left=left, right=right)
    return fig


def plot_curves_and_points(
    x: torch.Tensor,
    curves: dict[str, torch.Tensor],
    points: dict[str, tuple[torch.Tensor, torch.Tensor]],
    title: str = "",
    height: int = 440,
    **curve_kwargs,
) -> go.Figure:
    """`utils.plots.plot_curves` (theory as lines) with measured values drawn over it as markers.

    Args:
        points: name -> `(x, y)` the measured values (e.g. trained models), one marker each.
        curve_kwargs: as `plot_curves`' (`x_title`, `y_title`, `log_x`, `log_y`, `references`).
    """
    fig = curves_figure(x, curves, points=points, **curve_kwargs)
    layout.frame(fig, title, layout.NARROWEST, height - layout.CHROME, legend_names=layout.legend_entries(fig))
    return fig
