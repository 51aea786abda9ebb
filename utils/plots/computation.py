"""Figures of chapter 6's geometry and error measures: the weights of one model as heatmaps over the
features, the distribution of signed cosines, the frame spectrum against random frames, and errors
split into stacked parts per feature.

Every function returns a `go.Figure` (height set, width left to the page, text laid out for its minimum
width by `utils.plots.layout`) and never modifies its inputs.
"""

from __future__ import annotations

import plotly.graph_objects as go
import torch
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from utils.plots import layout


def _tensor(values, name: str, dims: int) -> torch.Tensor:
    if not isinstance(values, torch.Tensor) or values.dim() != dims:
        shape = tuple(values.shape) if isinstance(values, torch.Tensor) else type(values).__name__
        raise ValueError(f"{name} must be a tensor with {dims} dimensions, got {shape}")
    return values.detach().double().cpu().clone()


def plot_weight_heatmaps(W_in: torch.Tensor, W_out: torch.Tensor, title: str = "", height: int = 480) -> go.Figure:
    """One model's input and output weights as two heatmaps over the same axes, neurons x features, on one
    symmetric colour scale: W_in (what each neuron reads from feature i) above W_outᵀ (what it writes into
    output i).

    Args:
        W_in: `(d_hidden, feats)`.
        W_out: `(feats, d_hidden)`.
    """
    W_in = _tensor(W_in, "W_in", 2)
    W_out = _tensor(W_out, "W_out", 2)
    if W_out.shape != W_in.T.shape:
        raise ValueError(f"W_out must have shape (feats, d_hidden) = {tuple(W_in.T.shape)}, got {tuple(W_out.shape)}")
    limit = max(float(W_in.abs().max()), float(W_out.abs().max())) or 1.0
    d_hidden, n_feats = W_in.shape
    left, right = 70, 90
    width = layout.NARROWEST + right - 20
    panel = width - left - right
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True)
    titles = ["W_in: what neuron h reads from feature i", "W_outᵀ: what neuron h writes into output i"]
    texts = [layout.panel_title(fig, text, row, 1, panel) for row, text in enumerate(titles, start=1)]
    row_height = (height - layout.CHROME) / 2
    plot_height = layout.stack_rows(fig, [row_height, row_height], [0.0, layout.titles_height(texts[1:]) + 8])
    x_step = layout.thinned_dtick(n_feats, panel, layout.text_width(str(n_feats - 1), layout.TICK_SIZE))
    y_step = layout.thinned_dtick(d_hidden, row_height, layout.TICK_SIZE * layout.LINE)
    for row, (name, M) in enumerate((("W_in", W_in), ("W_out", W_out.T)), start=1):
        hover = "W_in[%{y}, %{x}] = %{z:.3f}" if name == "W_in" else "W_out[%{x}, %{y}] = %{z:.3f}"
        fig.add_trace(
            go.Heatmap(z=M.round(decimals=3).tolist(), colorscale="RdBu", zmid=0, zmin=-limit, zmax=limit,
                       showscale=row == 1, colorbar=dict(thickness=14), hovertemplate=hover + "<extra></extra>"),
            row, 1,
        )
        fig.update_yaxes(autorange="reversed", dtick=y_step, row=row, col=1)
    fig.update_xaxes(dtick=x_step)
    layout.column_y_title(fig, "neuron h", 0.0, 1.0, 30)
    layout.row_x_title(fig, "feature i", 2, 1)
    fig.update_layout(plot_bgcolor="white")
    layout.frame(fig, title, width, plot_height, top=layout.titles_height(texts[:1]), left=left, right=right)
    return fig


def plot_cosine_distribution(cosines: dict[str, torch.Tensor], title: str = "", height: int = 420, bins: int = 60) -> go.Figure:
    """Overlaid histograms (as densities, on shared bins from -1 to 1) of signed cosine similarities, with
    each set's mean marked.

    Args:
        cosines: name -> `(n,)` cosines (e.g. the off-diagonal entries for a trained model and for random directions).
    """
    if not cosines:
        raise ValueError("cosines must hold at least one named set")
    named = {name: _tensor(values, f"cosines[{name!r}]", 1) for name, values in cosines.items()}
    edges = torch.linspace(-1, 1, bins + 1, dtype=torch.float64)
    centres = ((edges[1:] + edges[:-1]) / 2).tolist()
    width = 2 / bins
    fig = go.Figure()
    for index, (name, values) in enumerate(named.items()):
        colour = qualitative.Plotly[index % 10]
        counts = torch.histc(values.clamp(-1, 1), bins=bins, min=-1, max=1)
        density = counts / (counts.sum().clamp_min(1) * width)
        mean = float(values.mean())
        # the mean is named in the legend (labels by the lines would collide when the means are close)
        fig.add_trace(go.Bar(x=centres, y=density.tolist(), name=f"{name} (dashed: mean {mean:+.3f})",
                             marker_color=colour, opacity=0.55, width=width,
                             hovertemplate=f"{name}<br>cos ≈ %{{x:.2f}}<br>density %{{y:.2f}}<extra></extra>"))
        fig.add_vline(x=mean, line=dict(color=colour, dash="dash"))
    fig.update_layout(barmode="overlay", plot_bgcolor="white", showlegend=True)
    # a little room beyond ±1: the x label "−1" would sit on the y label "0" at the corner
    fig.update_xaxes(title_text="cosine similarity between two feature directions", range=[-1.08, 1.08], gridcolor="#eee")
    fig.update_yaxes(title_text="density", gridcolor="#eee")
    layout.frame(fig, title, layout.NARROWEST, height - layout.CHROME, legend_names=layout.legend_entries(fig))
    return fig


def plot_frame_spectra(spectra: dict[str, torch.Tensor], random: torch.Tensor, title: str = "", height: int = 420) -> go.Figure:
    """Eigenvalues of frame operators, largest first: one line per named frame, against the mean and the
    1st-99th percentile band of random frames of the same size.

    Args:
        spectra: name -> `(d,)` eigenvalues, largest first.
        random: `(n_frames, d)` eigenvalues of random frames, largest first.
    """
    random = _tensor(random, "random", 2)
    named = {name: _tensor(values, f"spectra[{name!r}]", 1) for name, values in spectra.items()}
    d = random.shape[1]
    if any(values.numel() != d for values in named.values()):
        raise ValueError(f"every spectrum needs {d} eigenvalues, like the random frames")
    rank = list(range(1, d + 1))
    low, high = random.quantile(0.01, dim=0), random.quantile(0.99, dim=0)
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=rank + rank[::-1], y=high.tolist() + low.flip(0).tolist(), fill="toself", line=dict(width=0),
                             fillcolor="rgba(150,150,150,0.3)", name="random frames, 1st-99th percentile", hoverinfo="skip"))
    fig.add_trace(go.Scatter(x=rank, y=random.mean(dim=0).tolist(), mode="lines", line=dict(color="grey", dash="dash"),
                             name="random frames, mean", hovertemplate="eigenvalue %{x}: %{y:.2f}<extra>random mean</extra>"))
    for index, (name, values) in enumerate(named.items()):
        fig.add_trace(go.Scatter(x=rank, y=values.tolist(), mode="lines+markers", name=name, line=dict(color=qualitative.Plotly[index % 10]),
                                 hovertemplate=f"{name}<br>eigenvalue %{{x}}: %{{y:.2f}}<extra></extra>"))
    fig.update_layout(plot_bgcolor="white")
    panel = layout.NARROWEST - 90
    step = layout.thinned_dtick(d, panel, layout.text_width(str(d), layout.TICK_SIZE))
    fig.update_xaxes(title_text="eigenvalue rank", tick0=1, dtick=step, gridcolor="#eee")
    fig.update_yaxes(title_text="eigenvalue of Σᵢ ûᵢ ûᵢᵀ", gridcolor="#eee")
    layout.frame(fig, title, layout.NARROWEST, height - layout.CHROME, legend_names=layout.legend_entries(fig))
    return fig


def plot_error_parts(parts: dict[str, torch.Tensor], title: str = "", y_title: str = "error", height: int = 420) -> go.Figure:
    """Stacked bars per feature, features sorted by their total: the parts an error splits into.

    Args:
        parts: part name -> `(feats,)` (non-negative), stacked in the given order.
    """
    if not parts:
        raise ValueError("parts must hold at least one named part")
    named = {name: _tensor(values, f"parts[{name!r}]", 1) for name, values in parts.items()}
    first = next(iter(named.values()))
    if any(values.shape != first.shape for values in named.values()):
        raise ValueError("every part needs one value per feature, the same number of features")
    order = sum(named.values()).argsort()
    fig = go.Figure()
    for index, (name, values) in enumerate(named.items()):
        fig.add_trace(go.Bar(x=list(range(order.numel())), y=values[order].tolist(), name=name, customdata=order.tolist(),
                             marker_color=qualitative.Plotly[index % 10],
                             hovertemplate=f"feature %{{customdata}}<br>{name} = %{{y:.3g}}<extra></extra>"))
    fig.update_layout(barmode="relative", bargap=0.05, plot_bgcolor="white", showlegend=True)
    fig.update_xaxes(title_text="feature, sorted by total", showticklabels=False)
    fig.update_yaxes(title_text=layout.wrap(y_title, height - layout.CHROME, layout.AXIS_TITLE_SIZE), gridcolor="#eee")
    layout.frame(fig, title, layout.NARROWEST, height - layout.CHROME, bottom=layout.AXIS_TITLE_HEIGHT + 12,
                 legend_names=layout.legend_entries(fig))
    return fig
