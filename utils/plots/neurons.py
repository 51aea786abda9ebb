"""Figures of chapters 5 and 6: neurons as stacked bars of feature weights, and the measurements of an MLP
computing ReLU in superposition (per-feature errors, response curves, matrices, error decomposition).

Every function returns a `go.Figure` (height set, width left to the page) and never modifies its inputs.
"""

from __future__ import annotations

import plotly.graph_objects as go
import torch
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from utils.plots import inputs, layout

INTERFERENCE_SCALE = "Viridis"


def _tensor(values, name: str, dims: int) -> torch.Tensor:
    if not isinstance(values, torch.Tensor) or values.dim() != dims:
        shape = tuple(values.shape) if isinstance(values, torch.Tensor) else type(values).__name__
        raise ValueError(f"{name} must be a tensor with {dims} dimensions, got {shape}")
    return values.detach().double().cpu().clone()


def neuron_bar_traces(W: torch.Tensor, interference: torch.Tensor, showscale: bool = False, top: int = 5) -> list[go.Bar]:
    """Bars for one instance: one column per neuron h, stacked from each feature's weight W[h, i]
    (positive up, negative down), coloured by feature i's interference (dark: alone; bright: shared).

    Each neuron shows its `top` largest weights of each sign (those of at least 1% of the largest
    weight) as their own segments; the rest of that side is one grey segment, "other features", so
    every stack still ends at the neuron's total. This keeps a figure of several instances of 100
    features in 40 neurons to a few thousand bars, which a browser draws in a second or two.

    Args:
        W: `(d_hidden, feats)` one instance's weights.
        interference: `(feats,)` Σ_{j≠i} (Ŵ_i·W_j)² of each feature.

    Returns:
        Two traces: the features' segments (bars with their own `base`, the stack below them),
        then the grey remainders.
    """
    W, interference = inputs.tensor(W, "W"), inputs.tensor(interference, "interference")
    top = inputs.as_integer(top, "top")
    W = _tensor(W, "W", 2)
    interference = _tensor(interference, "interference", 1)
    d_hidden, n_features = W.shape
    if interference.numel() != n_features:
        raise ValueError(f"interference needs one value per feature ({n_features}), got {interference.numel()}")
    if top < 1:
        raise ValueError(f"top must be at least 1 (segments per neuron and sign), got {top}")
    shown = torch.zeros_like(W, dtype=torch.bool)
    for side in (W.clamp(min=0), -W.clamp(max=0)):
        largest = side.topk(min(top, n_features), dim=1).indices  # (d_hidden, top)
        shown |= torch.zeros_like(shown).scatter_(1, largest, True) & (side > 0)
    shown &= W.abs() >= 0.01 * W.abs().max()
    kept = torch.where(shown, W, 0.0)
    up, down = kept.clamp(min=0), kept.clamp(max=0)
    base = torch.where(W >= 0, up.cumsum(1) - up, down.cumsum(1) - down)  # the segments below, same side
    h, i = shown.nonzero(as_tuple=True)
    features = go.Bar(
        x=h.tolist(), y=W[h, i].round(decimals=3).tolist(), base=base[h, i].round(decimals=3).tolist(), width=0.8,
        customdata=torch.stack([i.double(), interference[i]], -1).round(decimals=2).tolist(), showlegend=False,
        marker=dict(color=interference.clamp(0, 1)[i].round(decimals=3).tolist(), colorscale=INTERFERENCE_SCALE,
                    cmin=0, cmax=1, line=dict(width=0.3, color="white"), showscale=showscale,
                    colorbar=dict(title="interference", len=0.3, y=0.14)),
        hovertemplate="feature %{customdata[0]}<br>neuron %{x}<br>W = %{y:.3f}<extra>interference %{customdata[1]:.2f}</extra>",
    )  # fmt: skip
    rest = W - kept
    x, y, bases, counts = [], [], [], []
    for sign, total, stacked in ((1, rest.clamp(min=0), up), (-1, rest.clamp(max=0), down)):
        heights, columns = total.sum(1), (sign * total > 0).sum(1)
        for neuron in (heights.abs() >= 0.01 * W.abs().max()).nonzero().flatten().tolist():
            x.append(neuron), y.append(round(float(heights[neuron]), 3))
            bases.append(round(float(stacked[neuron].sum()), 3)), counts.append(int(columns[neuron]))
    others = go.Bar(  # width set: plotly would take it from the gaps between this trace's few bars
        x=x, y=y, base=bases, width=0.8, customdata=counts, showlegend=False, marker=dict(color="lightgrey", line=dict(width=0.3, color="white")),
        hovertemplate="%{customdata} other features<br>neuron %{x}<br>sum of W = %{y:.3f}<extra></extra>",
    )  # fmt: skip
    return [features, others]


def plot_feature_errors(
    errors: dict[str, torch.Tensor],
    references: dict[str, float] | None = None,
    title: str = "Error per feature (when the feature is active)",
    y_title: str = "mean squared error",
    height: int = 420,
) -> go.Figure:
    """Bars of each feature's error for several models, features sorted by the first model's error.

    Args:
        errors: model name -> `(feats,)` error per feature.
        references: name -> a constant drawn as a dashed line (e.g. the error of an ignored feature, 1/6).
    """
    errors, references = inputs.named_tensors(errors, "errors"), inputs.named_numbers(references, "references")
    if not errors:
        raise ValueError("errors must hold at least one model")
    named = {name: _tensor(values, f"errors[{name!r}]", 1) for name, values in errors.items()}
    first = next(iter(named.values()))
    if any(values.numel() != first.numel() for values in named.values()):
        raise ValueError("every model in errors needs one value per feature, the same number of features")
    order = first.argsort()
    fig = go.Figure()
    for index, (name, values) in enumerate(named.items()):
        fig.add_trace(
            go.Bar(
                x=list(range(first.numel())), y=values[order].tolist(), name=name, customdata=order.tolist(),
                marker_color=qualitative.Plotly[index % 10],
                hovertemplate=f"{name}<br>feature %{{customdata}}<br>error = %{{y:.4f}}<extra></extra>",
            )
        )
    for index, (name, value) in enumerate((references or {}).items()):
        fig.add_hline(y=float(value), line=dict(color="grey", dash=["dash", "dot"][index % 2]), annotation_text=name,
                      annotation_position="top left")
    fig.update_layout(barmode="group", bargap=0.1, plot_bgcolor="white")
    fig.update_xaxes(title_text=f"feature, sorted by {next(iter(named))}", showticklabels=False)
    fig.update_yaxes(title_text=y_title, gridcolor="#eee")
    layout.frame(fig, title, layout.NARROWEST, height - layout.CHROME, bottom=layout.AXIS_TITLE_HEIGHT + 12,
                 legend_names=layout.legend_entries(fig))  # fmt: skip
    return fig


def plot_response_curves(
    x: torch.Tensor,
    curves: torch.Tensor,
    gain: float | None = None,
    title: str = "Response of each feature to itself",
    height: int = 440,
) -> go.Figure:
    """Output y_i against input x_i with every other feature at 0, one faint line per feature, with
    the target ReLU(x) and, if given, the line gain · ReLU(x).

    Args:
        x: `(n_x,)` input values.
        curves: `(n_x, feats)` one instance's responses.
    """
    x, curves, gain = inputs.tensor(x, "x"), inputs.tensor(curves, "curves"), inputs.optional_number(gain, "gain")
    x = _tensor(torch.as_tensor(x, dtype=torch.float32), "x", 1)
    curves = _tensor(curves, "curves", 2)
    if curves.shape[0] != x.numel():
        raise ValueError(f"curves must be (n_x, feats) with n_x = {x.numel()}, got {tuple(curves.shape)}")
    fig = go.Figure()
    for i in range(curves.shape[1]):
        fig.add_trace(
            go.Scatter(
                x=x.tolist(), y=curves[:, i].round(decimals=4).tolist(), mode="lines", line=dict(color="rgba(31,119,180,0.25)", width=1),
                name="features" if i == 0 else f"feature {i}", legendgroup="features", showlegend=i == 0,
                hovertemplate=f"feature {i}<br>x = %{{x:.2f}}<br>y = %{{y:.3f}}<extra></extra>",
            )
        )
    fig.add_trace(go.Scatter(x=x.tolist(), y=x.clamp_min(0).tolist(), mode="lines", name="target ReLU(x)",
                             line=dict(color="black", dash="dash", width=2)))
    if gain is not None:
        fig.add_trace(go.Scatter(x=x.tolist(), y=(gain * x.clamp_min(0)).tolist(), mode="lines",
                                 name=f"{gain:.3f} · ReLU(x)", line=dict(color="#d62728", width=2)))
    fig.update_layout(plot_bgcolor="white")
    fig.update_xaxes(title_text="input x_i (others 0)", gridcolor="#eee")
    fig.update_yaxes(title_text="output y_i", gridcolor="#eee")
    layout.frame(fig, title, layout.NARROWEST, height - layout.CHROME, legend_names=layout.legend_entries(fig))
    return fig


def plot_matrices(
    matrices: dict[str, torch.Tensor],
    title: str = "",
    height: int = 420,
    limit: float | None = None,
) -> go.Figure:
    """Square matrices side by side as heatmaps on one symmetric colour scale (e.g. W_eff and the
    cross-gains), rows = outputs j, columns = inputs i.

    Args:
        matrices: name -> `(n, n)`.
        limit: the colour scale's range ±limit (default: the largest magnitude).
    """
    matrices, limit = inputs.named_tensors(matrices, "matrices"), inputs.optional_number(limit, "limit")
    if not matrices:
        raise ValueError("matrices must hold at least one matrix")
    named = {name: _tensor(M, f"matrices[{name!r}]", 2) for name, M in matrices.items()}
    limit = limit or max(float(M.abs().max()) for M in named.values()) or 1.0
    n = len(named)
    left, right, gap = 70, 90, 36
    width = max(layout.NARROWEST, left + right + n * 160 + (n - 1) * gap)
    fig = make_subplots(rows=1, cols=n, horizontal_spacing=gap / (width - left - right))
    panel = (width - left - right - (n - 1) * gap) / n
    texts = [layout.panel_title(fig, name, 1, index + 1, panel) for index, name in enumerate(named)]
    for index, (name, M) in enumerate(named.items()):
        fig.add_trace(
            go.Heatmap(
                z=M.round(decimals=3).tolist(), colorscale="RdBu", zmid=0, zmin=-limit, zmax=limit,
                showscale=index == n - 1, colorbar=dict(thickness=14),
                hovertemplate=f"{name}[%{{y}}, %{{x}}] = %{{z:.3f}}<extra></extra>",
            ),
            1, index + 1,
        )  # fmt: skip
        fig.update_yaxes(autorange="reversed", title_text="output j" if index == 0 else None, row=1, col=index + 1)
    layout.row_x_title(fig, "input i", 1, n)
    fig.update_layout(plot_bgcolor="white")
    layout.frame(fig, title, width, height - layout.CHROME, top=layout.titles_height(texts), left=left, right=right)
    return fig


def plot_error_decomposition(
    attenuation: torch.Tensor,
    interference: torch.Tensor,
    title: str = "Each feature's error: attenuation (alone) plus interference",
    height: int = 420,
) -> go.Figure:
    """Stacked bars per feature, sorted by total: the error a feature makes alone (attenuation and
    leak) and what the other features add (interference). Both `(feats,)`."""
    attenuation, interference = inputs.tensor(attenuation, "attenuation"), inputs.tensor(interference, "interference")
    attenuation = _tensor(attenuation, "attenuation", 1)
    interference = _tensor(interference, "interference", 1)
    if attenuation.shape != interference.shape:
        raise ValueError(f"attenuation and interference need the same shape, got {tuple(attenuation.shape)} and {tuple(interference.shape)}")
    order = (attenuation + interference).argsort()
    fig = go.Figure()
    for name, values, colour in (("attenuation (alone)", attenuation, "#1f77b4"), ("interference", interference, "#d62728")):
        fig.add_trace(go.Bar(x=list(range(order.numel())), y=values[order].tolist(), name=name, marker_color=colour,
                             customdata=order.tolist(), hovertemplate=f"feature %{{customdata}}<br>{name} = %{{y:.4f}}<extra></extra>"))
    fig.update_layout(barmode="relative", bargap=0.05, plot_bgcolor="white")
    fig.update_xaxes(title_text="feature, sorted by total error", showticklabels=False)
    fig.update_yaxes(title_text="mean squared error", gridcolor="#eee")
    layout.frame(fig, title, layout.NARROWEST, height - layout.CHROME, bottom=layout.AXIS_TITLE_HEIGHT + 12,
                 legend_names=layout.legend_entries(fig))  # fmt: skip
    return fig
