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


def _log_axis(values: torch.Tensor, size: int, name: str) -> list[float]:
    if not isinstance(values, torch.Tensor) or values.dim() != 1 or values.numel() != size:
        shape = tuple(values.shape) if isinstance(values, torch.Tensor) else type(values).__name__
        raise ValueError(f"{name} must have shape ({size},) to match the regimes, got {shape}")
    if not (values > 0).all():
        raise ValueError(f"{name} must be positive: the axis is logarithmic")
    return values.detach().double().cpu().log10().tolist()


def _decade_ticks(log_values: list[float]) -> dict:
    low, high = min(log_values), max(log_values)
    ticks = [p for p in range(math.floor(low), math.ceil(high) + 1) if low - 1e-6 <= p <= high + 1e-6]
    ticks = ticks if len(ticks) >= 2 else [low, high]
    return dict(tickvals=ticks, ticktext=[f"{10**t:.3g}" for t in ticks])


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
        panel_height: pixels per row of panels; the width follows the page.
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
    log_x, log_y = _log_axis(x_values, nx, "x_values"), _log_axis(y_values, ny, "y_values")
    if panel_titles is not None and len(panel_titles) != n_panels:
        raise ValueError(f"panel_titles has {len(panel_titles)} titles for {n_panels} panels")
    n_cols = n_cols or min(n_panels, 3)
    n_rows = math.ceil(n_panels / n_cols)

    titles = []
    for row in range(n_rows):
        titles += [
            panel_titles[k] if panel_titles and k < n_panels else "" for k in range(row * n_cols, (row + 1) * n_cols)
        ]
        if row == 0:
            titles.append("legend")
    fig = make_subplots(
        rows=n_rows,
        cols=n_cols + 1,
        specs=[[{} for _ in range(n_cols)] + [{} if row == 0 else None] for row in range(n_rows)],
        subplot_titles=titles,
        column_widths=[1.0] * n_cols + [0.55],
        horizontal_spacing=0.06,
        vertical_spacing=0.12 if n_rows > 1 else 0.08,
    )
    palette = regime_palette(regimes)
    x_real, y_real = [10**v for v in log_x], [10**v for v in log_y]
    extra = "".join(f"<br>{name} = %{{customdata[{3 + i}]:.3g}}" for i, name in enumerate(hover))
    template = (
        f"{x_title} = %{{customdata[0]:.3g}}<br>{y_title} = %{{customdata[1]:.3g}}<br>%{{customdata[2]}}"
        f"{extra}<extra></extra>"
    )
    x_ticks, y_ticks = _decade_ticks(log_x), _decade_ticks(log_y)
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
        fig.update_xaxes(**x_ticks, title_text=x_title if row == n_rows else None, row=row, col=col)
        fig.update_yaxes(**y_ticks, title_text=y_title if col == 1 else None, row=row, col=col)

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
        row=1,
        col=n_cols + 1,
    )
    fig.update_yaxes(tickvals=list(range(len(regimes))), ticktext=list(regimes), side="right", row=1, col=n_cols + 1)
    fig.update_xaxes(showgrid=False, zeroline=False)
    fig.update_yaxes(showgrid=False, zeroline=False)
    fig.update_layout(
        title=title, height=int(panel_height * n_rows) + 110, plot_bgcolor="white", margin=dict(t=90, l=70, r=20, b=60)
    )
    return fig


def _panels(value: torch.Tensor, name: str) -> torch.Tensor:
    if not isinstance(value, torch.Tensor) or value.dim() not in (2, 3):
        shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
        raise ValueError(f"{name} must have shape (ny, nx) or (panels, ny, nx), got {shape}")
    value = value.detach().cpu()
    return value[None] if value.dim() == 2 else value
