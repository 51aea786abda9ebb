"""Figures for chapter 8: per-feature trajectories during training, the terms of an adversarial
read-out shift, and the hidden vectors of training points next to the feature directions."""

from __future__ import annotations

import plotly.colors
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from utils.plots import inputs, layout


def plot_feature_trajectories(
    steps: torch.Tensor, values: torch.Tensor, y_title: str, title: str = "", height: int = 420
) -> go.Figure:
    """One line per feature over training, on a log step axis, coloured from dark (feature 0, the most
    important) to light (the last).

    Args:
        steps: `(n_log,)` recorded steps (0-based; drawn at step + 1 so step 0 fits a log axis).
        values: `(n_log, feats)` e.g. feature norms or dimensionalities D_i of one instance.
    """
    steps, values = inputs.tensor(steps, "steps").flatten(), inputs.tensor(values, "values")
    if values.dim() != 2 or values.shape[0] != steps.numel():
        raise ValueError(
            f"values must have shape (n_log, feats) with n_log = {steps.numel()}, got {tuple(values.shape)}"
        )
    n_feats = values.shape[1]
    colours = plotly.colors.sample_colorscale("Viridis", [0.9 * i / max(1, n_feats - 1) for i in range(n_feats)])
    fig = go.Figure()
    for i in range(n_feats):
        fig.add_trace(
            go.Scatter(
                x=(steps + 1).tolist(), y=values[:, i].tolist(), mode="lines", name=f"feature {i}", showlegend=False,
                line=dict(color=colours[i], width=1.5),
                hovertemplate=f"feature {i}<br>step %{{x}}<br>{y_title} = %{{y:.3f}}<extra></extra>",
            )
        )
    fig.update_xaxes(title_text="training step (dark: important features)", type="log")
    fig.update_xaxes(**layout.log_ticks(1.0, float(steps.max()) + 1 if float(steps.max()) > 0 else 2.0, fit=5))
    fig.update_yaxes(title_text=y_title)
    fig.update_layout(plot_bgcolor="white", showlegend=False)
    fig.update_xaxes(showgrid=True, gridcolor="#eee")
    fig.update_yaxes(showgrid=True, gridcolor="#eee")
    layout.frame(fig, title, layout.NARROWEST, height - layout.CHROME)
    return fig


def plot_attack_terms(terms: dict[str, torch.Tensor], title: str = "", height: int = 380) -> go.Figure:
    """Bars of the terms (W_j · W_k) δ_k of a read-out shift, one group of bars per perturbation.

    Args:
        terms: name -> `(feats,)` the terms of each perturbation (the shift is their sum, shown in the legend).
    """
    terms = inputs.named_tensors(terms, "terms")
    if not terms:
        raise ValueError("terms must hold at least one named perturbation")
    fig = go.Figure()
    for name, values in terms.items():
        values = values.flatten()
        fig.add_trace(
            go.Bar(
                x=list(range(values.numel())), y=values.tolist(), name=f"{name} (sum {values.sum().item():+.3f})",
                hovertemplate=f"{name}<br>feature k = %{{x}}<br>term = %{{y:.4f}}<extra></extra>",
            )
        )
    fig.update_xaxes(title_text="feature k")
    fig.update_yaxes(title_text="(W_j · W_k) δ_k")
    fig.update_layout(barmode="group", plot_bgcolor="white")
    fig.update_yaxes(showgrid=True, gridcolor="#eee", zeroline=True, zerolinecolor="#999")
    layout.frame(fig, title, layout.NARROWEST, height - layout.CHROME, legend_names=layout.legend_entries(fig))
    return fig


def plot_hidden_points(
    points: list[torch.Tensor], W: torch.Tensor, titles: list[str], title: str = "", panel_height: int = 300
) -> go.Figure:
    """For each panel, the hidden vectors h_t = W x_t of the training points (dots) and the feature
    directions W_i (grey lines from the origin), in a 2-D hidden space.

    Args:
        points: one `(T, 2)` tensor of hidden vectors per panel.
        W: `(panels, 2, feats)` the feature directions of each panel's model.
        titles: one title per panel.
    """
    points = [inputs.tensor(p, f"points[{i}]") for i, p in enumerate(points)]
    W, titles = inputs.weights(W), inputs.labels(titles, "titles")
    if W.dim() != 3 or W.shape[1] != 2 or W.shape[0] != len(points) or len(titles or []) != len(points):
        raise ValueError(
            f"need W: (panels, 2, feats) and one points tensor and title per panel, got W {tuple(W.shape)}, "
            f"{len(points)} points, {len(titles or [])} titles"
        )
    if any(p.dim() != 2 or p.shape[1] != 2 for p in points):
        raise ValueError("each points tensor must have shape (T, 2)")
    n = len(points)
    fig = make_subplots(rows=1, cols=n, subplot_titles=titles, horizontal_spacing=0.03)
    for c, (h, w) in enumerate(zip(points, W), start=1):
        reach = 1.1 * max(float(h.norm(dim=1).max()), float(w.norm(dim=0).max()), 1e-3)
        xs, ys = [], []
        for i in range(w.shape[1]):
            xs += [0.0, float(w[0, i]), None]
            ys += [0.0, float(w[1, i]), None]
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", line=dict(color="#aaa", width=1), name="features W_i",
                                 showlegend=c == 1, hoverinfo="skip"), row=1, col=c)  # fmt: skip
        fig.add_trace(
            go.Scatter(x=h[:, 0].tolist(), y=h[:, 1].tolist(), mode="markers", marker=dict(color="#d62728", size=6),
                       name="training points W x_t", showlegend=c == 1,
                       hovertemplate="h = (%{x:.2f}, %{y:.2f})<extra></extra>"),
            row=1, col=c,
        )  # fmt: skip
        fig.update_xaxes(range=[-reach, reach], showticklabels=False, row=1, col=c)
        anchor = f"x{c if c > 1 else ''}"
        fig.update_yaxes(range=[-reach, reach], showticklabels=False, scaleanchor=anchor, row=1, col=c)
    fig.update_layout(plot_bgcolor="white")
    layout.frame(fig, title, max(layout.NARROWEST, 90 + 130 * n), panel_height, top=layout.titles_height(titles),
                 bottom=10, legend_names=layout.legend_entries(fig))  # fmt: skip
    return fig
