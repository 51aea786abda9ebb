"""The phase-diagram figure (chapters 2 and 4): panels over two log axes, each cell coloured by a
two-variable colour map of a feature's norm and its superposition, with a legend square for the map.

The colour of a cell blends four corner colours bilinearly:

| | superposition 0 | superposition ≥ `superposition_max` |
| --- | --- | --- |
| norm ≥ `norm_max` | blue: the feature has a direction of its own | red: it shares its direction |
| norm 0 | pale grey: not represented | pale rose: not represented |

so the three regions of a phase diagram (not represented, own dimension, superposition) read as
grey, blue and red, and an averaged cell that mixes regions shows as an in-between colour.
"""

from __future__ import annotations

import math

import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from utils.plots import inputs, layout
from utils.validation import as_real

CORNER_COLOURS = {
    # (norm high?, superposition high?) -> RGB in [0, 1]
    (True, False): (0.16, 0.30, 0.80),
    (True, True): (0.84, 0.15, 0.20),
    (False, False): (0.90, 0.91, 0.93),
    (False, True): (0.96, 0.90, 0.91),
}
REGION_LABELS = ("not represented", "own dimension", "superposition")
"""Names of the legend square's bottom edge, top-left and top-right corners."""
PANEL = 130
"""The narrowest phase-diagram panel, in px."""
LEGEND_SQUARE = 100
"""The colour legend's side at the figure's minimum width, in px."""


def phase_colours(
    norm: torch.Tensor, superposition: torch.Tensor, norm_max: float = 1.0, superposition_max: float = 1.0
) -> torch.Tensor:
    """RGB colours in [0, 1] for per-cell metrics: `(...)` and `(...)` -> `(..., 3)`.

    Each metric is divided by its maximum and clipped to [0, 1] before blending the corner colours.
    """
    if not (isinstance(norm, torch.Tensor) and isinstance(superposition, torch.Tensor)):
        raise TypeError("norm and superposition must be torch tensors")
    norm_max, superposition_max = as_real(norm_max, "norm_max"), as_real(superposition_max, "superposition_max")
    if norm.shape != superposition.shape:
        raise ValueError(
            f"norm and superposition must have the same shape, got {tuple(norm.shape)} and {tuple(superposition.shape)}"
        )
    if not (norm_max > 0 and superposition_max > 0):
        raise ValueError(f"norm_max and superposition_max must be positive, got {norm_max} and {superposition_max}")
    n = (norm.detach().float().cpu() / norm_max).nan_to_num(0.0).clamp(0.0, 1.0)[..., None]
    s = (superposition.detach().float().cpu() / superposition_max).nan_to_num(0.0).clamp(0.0, 1.0)[..., None]
    corner = {key: torch.tensor(value) for key, value in CORNER_COLOURS.items()}
    return (
        n * (1 - s) * corner[True, False]
        + n * s * corner[True, True]
        + (1 - n) * (1 - s) * corner[False, False]
        + (1 - n) * s * corner[False, True]
    )


def _css(rgb: torch.Tensor) -> list[str]:
    return [f"rgb({r},{g},{b})" for r, g, b in (rgb.reshape(-1, 3) * 255).round().int().tolist()]


def _significant(values: torch.Tensor, digits: int = 4) -> list:
    """Nested lists of `values` rounded to `digits` significant digits (smaller figures, same read-outs)."""
    if values.dim() == 0:
        return float(f"{values.item():.{digits}g}")
    return [_significant(v, digits) for v in values]


def _rgb_heatmap(rgb: torch.Tensor, x: list[float], y: list[float], **kwargs) -> go.Heatmap:
    """A heatmap whose cell (i, j) has exactly the colour `rgb[i, j]`: `rgb: (ny, nx, 3)`.

    Cell k (row-major) gets the value k and the colour scale has one stop per cell, at k.
    """
    ny, nx = rgb.shape[:2]
    count = ny * nx
    index = torch.arange(count, dtype=torch.float32).reshape(ny, nx)
    colours = _css(rgb)
    if count == 1:
        scale = [[0.0, colours[0]], [1.0, colours[0]]]
    else:
        scale = [[k / (count - 1), colour] for k, colour in enumerate(colours)]
    return go.Heatmap(
        z=index.tolist(), x=x, y=y, colorscale=scale, zmin=0, zmax=max(count - 1, 1), showscale=False, **kwargs
    )


def _as_panels(value: torch.Tensor, name: str) -> torch.Tensor:
    if not isinstance(value, torch.Tensor) or value.dim() not in (2, 3):
        shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
        raise ValueError(f"{name} must have shape (ny, nx) or (panels, ny, nx), got {shape}")
    value = value.detach().float().cpu()
    return value[None] if value.dim() == 2 else value


def _log_axis_values(values: torch.Tensor, size: int, name: str) -> list[float]:
    if not isinstance(values, torch.Tensor) or values.dim() != 1 or values.numel() != size:
        shape = tuple(values.shape) if isinstance(values, torch.Tensor) else type(values).__name__
        raise ValueError(f"{name} must have shape ({size},) to match the metrics, got {shape}")
    if not (values > 0).all():
        raise ValueError(f"{name} must be positive: the axis is logarithmic")
    return values.detach().double().cpu().log10().tolist()


def _log_ticks(log_values: list[float]) -> dict:
    low, high = min(log_values), max(log_values)
    powers = list(range(math.floor(low + 1e-6), math.ceil(high - 1e-6) + 1))
    ticks = [p for p in powers if low - 1e-6 <= p <= high + 1e-6]
    if len(ticks) < 2:  # less than a decade: mark the ends
        ticks = [low, high]
    return dict(tickvals=ticks, ticktext=[f"{10**t:.3g}" for t in ticks])


def plot_phase_diagram(
    norm: torch.Tensor,
    superposition: torch.Tensor,
    loss: torch.Tensor,
    x_values: torch.Tensor,
    y_values: torch.Tensor,
    x_title: str = "x",
    y_title: str = "y",
    panel_titles: list[str] | None = None,
    n_cols: int | None = None,
    norm_title: str = "norm",
    superposition_title: str = "superposition",
    norm_max: float = 1.0,
    superposition_max: float = 1.0,
    title: str = "Phase diagram",
    panel_height: int = 260,
) -> go.Figure:
    """Phase diagrams over two log axes, one panel per set of metrics, plus the colour legend square.

    Args:
        norm, superposition, loss: per-cell metrics, `(ny, nx)` for one panel or `(panels, ny, nx)`;
            row i of a panel is `y_values[i]`, column j is `x_values[j]`.
        x_values: `(nx,)` positive values of the horizontal axis (drawn on a log scale).
        y_values: `(ny,)` positive values of the vertical axis (drawn on a log scale).
        panel_titles: one title per panel.
        n_cols: panels per row (default: up to 3).
        norm_title, superposition_title: names of the two metrics in hover read-outs and the legend.
        norm_max, superposition_max: metric values that get the full colour (larger ones are clipped).
        panel_height: pixels per row of panels (with its titles); the width follows the page (no fixed width).

    Hovering a cell reads out both axis values and the three metrics.
    """
    fig, room = phase_figure(
        norm, superposition, loss, x_values, y_values, x_title, y_title, panel_titles, n_cols, norm_title,
        superposition_title, norm_max, superposition_max, panel_height,
    )  # fmt: skip
    layout.frame(fig, title, **room)
    return fig


def phase_figure(
    norm: torch.Tensor,
    superposition: torch.Tensor,
    loss: torch.Tensor,
    x_values: torch.Tensor,
    y_values: torch.Tensor,
    x_title: str = "x",
    y_title: str = "y",
    panel_titles: list[str] | None = None,
    n_cols: int | None = None,
    norm_title: str = "norm",
    superposition_title: str = "superposition",
    norm_max: float = 1.0,
    superposition_max: float = 1.0,
    panel_height: int = 260,
) -> tuple[go.Figure, dict]:
    """The figure of `plot_phase_diagram` (same arguments but the title) before `layout.frame`, and the
    keywords that frame it: its minimum width, plot height, and the room around the plot area."""
    norm, superposition = inputs.tensor(norm, "norm"), inputs.tensor(superposition, "superposition")
    loss = inputs.tensor(loss, "loss")
    x_values, y_values = inputs.tensor(x_values, "x_values"), inputs.tensor(y_values, "y_values")
    norm_max, superposition_max = as_real(norm_max, "norm_max"), as_real(superposition_max, "superposition_max")
    n_cols, panel_titles = inputs.optional_count(n_cols, "n_cols"), inputs.labels(panel_titles, "panel_titles")
    norm, superposition, loss = (
        _as_panels(v, n) for v, n in ((norm, "norm"), (superposition, "superposition"), (loss, "loss"))
    )
    if not norm.shape == superposition.shape == loss.shape:
        raise ValueError(
            f"norm, superposition and loss must have the same shape, got {tuple(norm.shape)}, "
            f"{tuple(superposition.shape)} and {tuple(loss.shape)}"
        )
    n_panels, ny, nx = norm.shape
    log_x = _log_axis_values(x_values, nx, "x_values")
    log_y = _log_axis_values(y_values, ny, "y_values")
    if panel_titles is not None and len(panel_titles) != n_panels:
        raise ValueError(f"panel_titles has {len(panel_titles)} titles for {n_panels} panels")
    n_cols = n_cols or min(n_panels, 3)
    if not (isinstance(n_cols, int) and n_cols >= 1):
        raise ValueError(f"n_cols must be a positive integer, got {n_cols!r}")
    n_rows = math.ceil(n_panels / n_cols)

    legend_col = n_cols + 1
    specs = [[{} for _ in range(n_cols)] + [{} if row == 0 else None] for row in range(n_rows)]
    fig = make_subplots(rows=n_rows, cols=legend_col, specs=specs)
    left, right, gap, legend_gap = 66, 20, 20, 46
    least = max(PANEL, 260 / n_cols)  # a lone panel gets the room of two
    grid = layout.key_grid(
        fig, n_panels, n_cols, panel_titles, LEGEND_SQUARE, "colour legend", panel_height, least, left, right, gap,
        legend_gap,
    )  # fmt: skip
    width, above, plot_height = grid.width, grid.above, grid.plot_height
    # the legend square: its own height at the minimum width, at the top of its cell
    square = fig.get_subplot(1, legend_col)
    top = square.yaxis.domain[1]
    square.yaxis.domain = [max(0.0, top - LEGEND_SQUARE / plot_height), top]
    fig.add_annotation(  # over the square itself, wherever its column puts it
        text="colour legend", x=0.5, y=1, xref=f"{square.xaxis.plotly_name.replace('axis', '')} domain",
        yref=f"{square.yaxis.plotly_name.replace('axis', '')} domain", yanchor="bottom", yshift=4, showarrow=False,
        font=dict(size=layout.PANEL_TITLE_SIZE),
    )  # fmt: skip

    x_real = 10 ** torch.tensor(log_x)
    y_real = 10 ** torch.tensor(log_y)
    hover = (
        f"{x_title} = %{{customdata[0]:.3g}}<br>{y_title} = %{{customdata[1]:.3g}}<br>"
        f"{norm_title} = %{{customdata[2]:.3f}}<br>{superposition_title} = %{{customdata[3]:.3f}}<br>"
        "loss = %{customdata[4]:.3e}<extra></extra>"
    )
    x_ticks, y_ticks = _log_ticks(log_x), _log_ticks(log_y)
    for k in range(n_panels):
        row, col = k // n_cols + 1, k % n_cols + 1
        custom = torch.stack(
            [
                x_real[None, :].expand(ny, nx),
                y_real[:, None].expand(ny, nx),
                norm[k].double(),
                superposition[k].double(),
                loss[k].double(),
            ],
            dim=-1,
        )
        rgb = phase_colours(norm[k], superposition[k], norm_max, superposition_max)
        fig.add_trace(_rgb_heatmap(rgb, log_x, log_y, customdata=_significant(custom), hovertemplate=hover), row, col)
        # tick labels on the left column and under the lowest panel of each column only: all panels share both axes
        fig.update_xaxes(**x_ticks, showticklabels=k + n_cols >= n_panels, row=row, col=col)
        fig.update_yaxes(**y_ticks, showticklabels=col == 1, row=row, col=col)
    bottom_row = fig.get_subplot(n_rows, 1).yaxis.domain[0]
    last_full = fig.get_subplot(n_rows if n_panels % n_cols == 0 else max(1, n_rows - 1), n_cols)
    fig.add_annotation(
        text=x_title, x=(fig.get_subplot(1, 1).xaxis.domain[0] + last_full.xaxis.domain[1]) / 2, y=bottom_row,
        xref="paper", yref="paper", xanchor="center", yanchor="top", yshift=-layout.TICK_LABEL_HEIGHT - 4,
        showarrow=False, font=dict(size=layout.AXIS_TITLE_SIZE),
    )  # fmt: skip
    y_span = fig.get_subplot(1, 1).yaxis.domain[1]
    layout.column_y_title(fig, y_title, bottom_row, y_span, shift=layout.text_width("0.001", layout.TICK_SIZE) + 10)

    steps = torch.linspace(0.0, 1.0, 21)
    legend_s = steps[None, :].expand(21, 21)
    legend_n = steps[:, None].expand(21, 21)
    legend_custom = torch.stack([legend_n * norm_max, legend_s * superposition_max], dim=-1)
    fig.add_trace(
        _rgb_heatmap(
            phase_colours(legend_n, legend_s),
            (steps * superposition_max).tolist(),
            (steps * norm_max).tolist(),
            customdata=_significant(legend_custom, 2),
            hovertemplate=f"{norm_title} = %{{customdata[0]:.2f}}<br>{superposition_title} = "
            f"%{{customdata[1]:.2f}}<extra></extra>",
        ),
        1,
        legend_col,
    )
    legend_axis = fig.get_subplot(1, legend_col).xaxis.plotly_name.replace("axis", "")
    fig.update_xaxes(
        title_text=superposition_title, title_standoff=4, tickvals=[0, superposition_max], row=1, col=legend_col
    )
    fig.update_yaxes(title_text=norm_title, title_standoff=4, tickvals=[0, norm_max], scaleanchor=legend_axis,
                     constrain="domain", row=1, col=legend_col)  # fmt: skip
    fig.update_xaxes(constrain="domain", constraintoward="left", row=1, col=legend_col)  # next to the panels
    # the region names: bottom edge, top left, and the right side a line lower (two names side by side
    # would not fit a small square)
    for label, x, y, anchor in zip(
        REGION_LABELS,
        (0.5 * superposition_max, 0.0, superposition_max),
        (0.1 * norm_max, 0.92 * norm_max, 0.75 * norm_max),
        ("center", "left", "right"),
    ):
        fig.add_annotation(x=x, y=y, text=label, showarrow=False, font=dict(size=10, color="black"), xanchor=anchor,
                           row=1, col=legend_col)  # fmt: skip
    fig.update_xaxes(showgrid=False, zeroline=False, ticks="outside", ticklen=4)
    fig.update_yaxes(showgrid=False, zeroline=False, ticks="outside", ticklen=4)
    fig.update_layout(plot_bgcolor="white")
    bottom = layout.TICK_LABEL_HEIGHT + layout.AXIS_TITLE_HEIGHT + 8
    room = dict(width=width, plot_height=plot_height, top=above, bottom=bottom, left=left, right=right)
    return fig, room
