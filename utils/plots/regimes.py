"""The regime map (chapter 4): panels over two log axes, each cell coloured by what the model does with
a feature (one colour per regime: dropped, own dimension, antipodal or same-sign sharing) with an
intensity that grows with the feature's norm, plus a legend of regimes against norms.

Unlike the two-variable map of `utils.plots.phase`, it tells antipodal from same-sign sharing, and a
feature kept only in part shows as a pale version of its regime's colour.
"""

from __future__ import annotations

import math

import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from utils.plots import layout
from utils.plots.phase import _log_axis_values, _log_ticks

REGIME_COLOURS = {
    # colour-blind-safe (Okabe-Ito) hues
    "dropped": (0.62, 0.62, 0.62),
    "own dimension": (0.00, 0.45, 0.70),
    "antipodal": (0.84, 0.37, 0.00),
    "same sign": (0.00, 0.62, 0.45),
}
LEVELS = 5
"""Intensity steps per regime."""
LIGHTEST = 0.3
"""The share of the full colour at the lowest intensity (the rest is white)."""
PANEL = 130
"""The narrowest regime panel, in px."""
LEGEND_WIDTH = 70
"""The legend's width (its `LEVELS` columns) at the figure's minimum width, in px."""
LEGEND_ROW = 26
"""The height of one regime's row of the legend, in px, at most."""


def regime_levels(norm: torch.Tensor, norm_min: float, norm_max: float) -> torch.Tensor:
    """Intensity step 0..LEVELS-1 of each cell: `norm` from `norm_min` (step 0) to `norm_max` and above (the last)."""
    fraction = ((norm.detach().float().cpu() - norm_min) / (norm_max - norm_min)).nan_to_num(0.0).clamp(0.0, 1.0)
    return (fraction * (LEVELS - 1)).round().long()


def regime_palette(regimes: tuple[str, ...]) -> list[str]:
    """CSS colours, `LEVELS` per regime in order: regime r at step k is entry r·LEVELS + k (dropped: one grey)."""
    colours = []
    for name in regimes:
        if name not in REGIME_COLOURS:
            raise ValueError(f"no colour for regime {name!r}; known: {list(REGIME_COLOURS)}")
        full = torch.tensor(REGIME_COLOURS[name])
        for k in range(LEVELS):
            share = 1.0 if name == "dropped" else LIGHTEST + (1 - LIGHTEST) * k / (LEVELS - 1)
            rgb = (1 - share) * torch.ones(3) + share * full
            colours.append("rgb({},{},{})".format(*(rgb * 255).round().int().tolist()))
    return colours


def _discrete_heatmap(z: torch.Tensor, palette: list[str], x: list[float], y: list[float], **kwargs) -> go.Heatmap:
    """A heatmap where integer z = i has exactly colour palette[i]."""
    n = len(palette)
    scale = []
    for i, colour in enumerate(palette):
        scale += [[i / n, colour], [(i + 1) / n, colour]]
    return go.Heatmap(z=z.tolist(), x=x, y=y, colorscale=scale, zmin=-0.5, zmax=n - 0.5, showscale=False, **kwargs)


def plot_regime_diagram(
    regime: torch.Tensor,
    norm: torch.Tensor,
    x_values: torch.Tensor,
    y_values: torch.Tensor,
    regimes: tuple[str, ...],
    x_title: str = "x",
    y_title: str = "y",
    panel_titles: list[str] | None = None,
    hover: dict[str, torch.Tensor] | None = None,
    norm_title: str = "norm",
    norm_min: float = 0.2,
    norm_max: float = 1.0,
    n_cols: int | None = None,
    title: str = "Regimes",
    panel_height: int = 260,
) -> go.Figure:
    """Regime maps over two log axes, one panel per map, with a legend of regimes against norms.

    Args:
        regime: `(ny, nx)` or `(panels, ny, nx)` integer index into `regimes` per cell; row i is
            `y_values[i]`, column j is `x_values[j]`.
        norm: same shape, the feature's norm: it sets the intensity, from `norm_min` (lightest) to
            `norm_max` and above (full colour). Dropped cells are one grey.
        regimes: the regime names, each a key of `REGIME_COLOURS`.
        hover: extra read-outs, name -> tensor of the same shape (shown with 3 significant digits).
        panel_height: pixels per row of panels (with its titles); the width follows the page.
    """
    regime, norm = (_panels(v, name) for v, name in ((regime, "regime"), (norm, "norm")))
    if regime.shape != norm.shape:
        raise ValueError(f"regime and norm must have the same shape, got {tuple(regime.shape)} and {tuple(norm.shape)}")
    if regime.is_floating_point() or regime.min() < 0 or regime.max() >= len(regimes):
        raise ValueError(f"regime must hold integer indices into the {len(regimes)} regimes {regimes}")
    if not norm_max > norm_min:
        raise ValueError(f"norm_max must exceed norm_min, got {norm_min} and {norm_max}")
    hover = {name: _panels(value, name).float() for name, value in (hover or {}).items()}
    for name, value in hover.items():
        if value.shape != regime.shape:
            raise ValueError(f"hover value {name!r} has shape {tuple(value.shape)}; expected {tuple(regime.shape)}")
    n_panels, ny, nx = regime.shape
    log_x, log_y = _log_axis_values(x_values, nx, "x_values"), _log_axis_values(y_values, ny, "y_values")
    if panel_titles is not None and len(panel_titles) != n_panels:
        raise ValueError(f"panel_titles has {len(panel_titles)} titles for {n_panels} panels")
    n_cols = n_cols or min(n_panels, 3)
    n_rows = math.ceil(n_panels / n_cols)

    legend_col = n_cols + 1
    specs = [[{} for _ in range(n_cols)] + [{} if row == 0 else None] for row in range(n_rows)]
    fig = make_subplots(rows=n_rows, cols=legend_col, specs=specs)
    # the legend's regime names sit right of it, in the right margin
    left, gap, legend_gap = 66, 20, 30
    right = 20 + max(layout.text_width(name, layout.TICK_SIZE) for name in regimes) + 8
    least = max(PANEL, 260 / n_cols)  # a lone panel gets the room of two
    grid = layout.key_grid(
        fig, n_panels, n_cols, panel_titles, LEGEND_WIDTH, "legend", panel_height, least, left, right, gap, legend_gap
    )
    width, above, row_height, plot_height = grid.width, grid.above, grid.row_height, grid.plot_height
    # the legend: a row per regime at the top of its cell, its tick labels and title under it clear of the next row
    key = fig.get_subplot(1, legend_col)
    key_height = min(LEGEND_ROW * len(regimes), row_height - (50 if n_rows > 1 else 0))
    key.yaxis.domain = [max(0.0, key.yaxis.domain[1] - key_height / plot_height), key.yaxis.domain[1]]
    layout.panel_title(fig, "legend", 1, legend_col, LEGEND_WIDTH)
    palette = regime_palette(regimes)
    x_real, y_real = [10**v for v in log_x], [10**v for v in log_y]
    extra = "".join(f"<br>{name} = %{{customdata[{3 + i}]:.3g}}" for i, name in enumerate(hover))
    template = (
        f"{x_title} = %{{customdata[0]:.3g}}<br>{y_title} = %{{customdata[1]:.3g}}<br>%{{customdata[2]}}"
        f"{extra}<extra></extra>"
    )
    x_ticks, y_ticks = _log_ticks(log_x), _log_ticks(log_y)
    levels = regime_levels(norm, norm_min, norm_max)
    for k in range(n_panels):
        row, col = k // n_cols + 1, k % n_cols + 1
        names = [[regimes[r] for r in line] for line in regime[k].tolist()]
        values = [value[k].tolist() for value in hover.values()]
        custom = [
            [
                [
                    x_real[j],
                    y_real[i],
                    f"{names[i][j]}, {norm_title} = {norm[k, i, j].item():.2f}",
                    *(v[i][j] for v in values),
                ]
                for j in range(nx)
            ]
            for i in range(ny)
        ]
        z = regime[k] * LEVELS + levels[k]
        fig.add_trace(_discrete_heatmap(z, palette, log_x, log_y, customdata=custom, hovertemplate=template), row, col)
        # tick labels on the left column and under the lowest panel of each column only: all panels share both axes
        fig.update_xaxes(**x_ticks, showticklabels=k + n_cols >= n_panels, row=row, col=col)
        fig.update_yaxes(**y_ticks, showticklabels=col == 1, row=row, col=col)
    bottom_row = fig.get_subplot(n_rows, 1).yaxis.domain[0]
    last_full = fig.get_subplot(n_rows if n_panels % n_cols == 0 else max(1, n_rows - 1), n_cols)
    fig.add_annotation(
        text=layout.wrap(x_title, last_full.xaxis.domain[1] * (width - left - right), layout.AXIS_TITLE_SIZE),
        x=last_full.xaxis.domain[1] / 2, y=bottom_row, xref="paper", yref="paper", xanchor="center", yanchor="top",
        yshift=-layout.TICK_LABEL_HEIGHT - 4, showarrow=False, font=dict(size=layout.AXIS_TITLE_SIZE),
    )  # fmt: skip
    y_span = fig.get_subplot(1, 1).yaxis.domain[1]
    y_title = layout.wrap(y_title, (y_span - bottom_row) * plot_height, layout.AXIS_TITLE_SIZE)
    layout.column_y_title(fig, y_title, bottom_row, y_span, shift=layout.text_width("0.001", layout.TICK_SIZE) + 10)

    steps = [norm_min + (norm_max - norm_min) * k / (LEVELS - 1) for k in range(LEVELS)]
    legend_z = torch.arange(len(regimes))[:, None] * LEVELS + torch.arange(LEVELS)[None, :]
    legend_names = [[f"{name}, {norm_title} ≈ {step:.2g}" for step in steps] for name in regimes]
    fig.add_trace(
        _discrete_heatmap(
            legend_z,
            palette,
            list(range(LEVELS)),
            list(range(len(regimes))),
            customdata=legend_names,
            hovertemplate="%{customdata}<extra></extra>",
            xgap=1,
            ygap=1,
        ),
        1,
        n_cols + 1,
    )
    fig.update_xaxes(
        tickvals=[0, LEVELS - 1],
        ticktext=[f"{norm_min:.2g}", f"≥{norm_max:.2g}"],
        title_text=norm_title,
        title_standoff=4,
        row=1,
        col=legend_col,
    )
    fig.update_yaxes(tickvals=list(range(len(regimes))), ticktext=list(regimes), side="right", row=1, col=legend_col)
    fig.update_xaxes(showgrid=False, zeroline=False, ticks="outside", ticklen=4)
    fig.update_yaxes(showgrid=False, zeroline=False, ticks="outside", ticklen=4)
    fig.update_layout(plot_bgcolor="white")
    bottom = layout.TICK_LABEL_HEIGHT + layout.AXIS_TITLE_HEIGHT + 8
    layout.frame(fig, title, width, plot_height, top=above, bottom=bottom, left=left, right=right)
    return fig


def _panels(value: torch.Tensor, name: str) -> torch.Tensor:
    if not isinstance(value, torch.Tensor) or value.dim() not in (2, 3):
        shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
        raise ValueError(f"{name} must have shape (ny, nx) or (panels, ny, nx), got {shape}")
    value = value.detach().cpu()
    return value[None] if value.dim() == 2 else value
