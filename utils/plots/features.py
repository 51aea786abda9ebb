"""Figures of learned feature directions `W: (inst, d_hidden, feats)` (column i of instance k is
feature i's direction): in 2D, as heatmaps with norm bars, as cosine similarities, and their geometry.

Each figure draws one panel per instance and never modifies `W`.
"""

from __future__ import annotations

import math
from fractions import Fraction

import plotly.graph_objects as go
import torch
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from utils import metrics
from utils.plots import inputs, layout
from utils.plots.neurons import neuron_bar_traces

FEATURE_COLOURS = qualitative.Plotly
STICKY_FRACTIONS = {
    "alone": 1.0,
    "tetrahedron": 3 / 4,
    "triangle": 2 / 3,
    "antipodal pair": 1 / 2,
    "pentagon": 2 / 5,
    "square antiprism": 3 / 8,
}
"""Per-feature dimensionality of features in known geometries (Elhage et al., 2022)."""
INTERFERENCE_SCALE = "Viridis"
PANEL_2D = 95
"""The narrowest panel of features in 2D, in px."""
PANEL_ND = 110
"""The narrowest panel of a heatmap of features, in px."""


def _weights(W: torch.Tensor, d_hidden: int | None = None) -> torch.Tensor:
    """`W` detached, copied to the CPU as float; checks `(inst, d_hidden, feats)`."""
    if not isinstance(W, torch.Tensor) or W.dim() != 3:
        shape = tuple(W.shape) if isinstance(W, torch.Tensor) else type(W).__name__
        raise ValueError(f"W must have shape (inst, d_hidden, feats), got {shape}")
    if d_hidden is not None and W.shape[1] != d_hidden:
        raise ValueError(f"this figure needs d_hidden = {d_hidden}, but W has shape {tuple(W.shape)}")
    return W.detach().float().cpu().clone()


def _rounded(values: torch.Tensor, decimals: int = 3) -> list:
    """`values` as nested lists rounded to `decimals` (figures carry less data; hover shows 3 decimals)."""
    return values.double().round(decimals=decimals).tolist()


def _titles(titles: list[str] | None, n: int) -> list[str]:
    if titles is None:
        return [f"instance {k}" for k in range(n)]
    if len(titles) != n:
        raise ValueError(f"got {len(titles)} subplot titles for {n} instances")
    return list(titles)


def grouped_order(W: torch.Tensor, threshold: float = 0.3) -> torch.Tensor:
    """A feature order that puts features sharing directions next to each other, for each instance.

    Learned features come first, strongest first, each followed (breadth first) by the features whose
    |cosine similarity| with it exceeds `threshold`; unlearned features (norm < 0.1) come last.

    `W: (inst, d_hidden, feats) -> (inst, feats)` indices into feats.
    """
    W = _weights(W)
    norms = metrics.feature_norms(W)
    strong = metrics.cosine_similarities(W).abs() > threshold
    orders = []
    for k in range(W.shape[0]):
        by_norm = norms[k].argsort(descending=True).tolist()
        placed, order = set(), []
        for start in by_norm:
            if start in placed or norms[k, start] < 0.1:
                continue
            queue = [start]
            placed.add(start)
            while queue:
                i = queue.pop(0)
                order.append(i)
                for j in by_norm:
                    if j not in placed and norms[k, j] >= 0.1 and strong[k, i, j]:
                        placed.add(j)
                        queue.append(j)
        order += [i for i in by_norm if i not in placed]
        orders.append(order)
    return torch.tensor(orders)


def colorbar(title: str, domain: tuple[float, float]) -> dict:
    """A slim colour bar beside the panels spanning `domain` (paper fractions), its title on its right."""
    return dict(title=dict(text=title, side="right"), thickness=12, len=domain[1] - domain[0], y=sum(domain) / 2,
                yanchor="middle")  # fmt: skip


def _order(W: torch.Tensor, order: str) -> torch.Tensor:
    if order == "given":
        return torch.arange(W.shape[2]).expand(W.shape[0], -1)
    if order == "grouped":
        return grouped_order(W)
    raise ValueError(f'order must be "given" or "grouped", got {order!r}')


def _grid(n: int, n_cols: int | None) -> tuple[int, int]:
    n_cols = n_cols or min(n, 4)
    if not (isinstance(n_cols, int) and n_cols >= 1):
        raise ValueError(f"n_cols must be a positive integer, got {n_cols!r}")
    return math.ceil(n / n_cols), n_cols


def plot_features_in_2d(
    W: torch.Tensor,
    subplot_titles: list[str] | None = None,
    feature_names: list[str] | None = None,
    colours: list[str] | None = None,
    n_cols: int | None = None,
    title: str = "Features in 2D",
    panel_height: int = 240,
) -> go.Figure:
    """Each feature's direction W_i as an arrow from the origin, one panel per instance.

    Args:
        W: `(inst, 2, feats)`.
        feature_names: legend names (default "feature i").
        colours: one CSS colour per feature (default: plotly's qualitative palette).
        n_cols: panels per row (default: up to 4).
        panel_height: pixels per row of panels (with its titles); the width follows the page.
    """
    W, n_cols = inputs.weights(W), inputs.optional_count(n_cols, "n_cols")
    subplot_titles = inputs.labels(subplot_titles, "subplot_titles")
    feature_names, colours = inputs.labels(feature_names, "feature_names"), inputs.labels(colours, "colours")
    W = _weights(W, d_hidden=2)
    n_inst, _, n_feats = W.shape
    titles = _titles(subplot_titles, n_inst)
    names = feature_names or [f"feature {i}" for i in range(n_feats)]
    colours = colours or [FEATURE_COLOURS[i % len(FEATURE_COLOURS)] for i in range(n_feats)]
    if len(names) != n_feats or len(colours) != n_feats:
        raise ValueError(f"feature_names and colours need one entry per feature ({n_feats})")
    n_rows, n_cols = _grid(n_inst, n_cols)
    left, right, gap = 20, 20, 12
    width = max(layout.NARROWEST, left + right + n_cols * PANEL_2D + (n_cols - 1) * gap)
    spacing, panel = layout.columns(n_cols, width, left, right, gap)
    fig = make_subplots(rows=n_rows, cols=n_cols, horizontal_spacing=spacing)
    wrapped = [layout.wrap(text, panel, layout.PANEL_TITLE_SIZE) for text in titles]
    above = layout.titles_height(wrapped)
    plot_height = layout.stack_rows(fig, [panel_height - above] * n_rows, [above + 10] * n_rows)
    reach = max(1.2, 1.1 * float(W.norm(dim=1).max()))
    circle = torch.linspace(0, 2 * math.pi, 73)
    for k in range(n_inst):
        row, col = k // n_cols + 1, k % n_cols + 1
        layout.panel_title(fig, titles[k], row, col, panel)
        fig.add_trace(
            go.Scatter(
                x=circle.cos().tolist(), y=circle.sin().tolist(), mode="lines",
                line=dict(color="lightgrey", width=1, dash="dot"), hoverinfo="skip", showlegend=False,
            ),
            row, col,
        )
        for i in range(n_feats):
            x, y = W[k, 0, i].item(), W[k, 1, i].item()
            fig.add_trace(
                go.Scatter(
                    x=[0.0, x], y=[0.0, y], mode="lines+markers",
                    line=dict(color=colours[i], width=2.5),
                    marker=dict(size=[0, 9], color=colours[i]),
                    name=names[i], legendgroup=names[i], showlegend=k == 0,
                    hovertemplate=f"{names[i]}<br>W = ({x:.2f}, {y:.2f})<br>‖W‖ = {math.hypot(x, y):.2f}<extra></extra>",
                ),
                row, col,
            )
        axis = "" if k == 0 else str(k + 1)
        fig.update_xaxes(range=[-reach, reach], showticklabels=False, zeroline=False, row=row, col=col)
        fig.update_yaxes(range=[-reach, reach], showticklabels=False, zeroline=False, scaleanchor=f"x{axis}", row=row, col=col)
    fig.update_layout(plot_bgcolor="white")
    layout.frame(fig, title, width, plot_height, top=above, bottom=8, legend_names=names, left=left, right=right)
    return fig


def plot_features_in_Nd(
    W: torch.Tensor,
    matrix: str = "WtW",
    order: str = "given",
    subplot_titles: list[str] | None = None,
    title: str = "Features in N dimensions",
    height: int = 620,
    neuron_plot: bool = False,
    n_cols: int | None = None,
) -> go.Figure:
    """Per instance: a heatmap of WᵀW (or of W) above bars of each feature's norm ‖W_i‖, coloured by
    its interference Σ_{j≠i} (Ŵ_i·W_j)² (dark: a direction of its own; bright: shares it).
    With `neuron_plot=True` the bars show neurons instead: one stacked bar per neuron, made of its
    weights W[h, i] on each feature (same colours), which shows mono- and polysemantic neurons.

    Args:
        W: `(inst, d_hidden, feats)`.
        matrix: "WtW" for the `(feats, feats)` matrix WᵀW, "W" for W itself (features as rows,
            hidden dimensions as columns).
        order: "given" keeps the feature order; "grouped" puts features that share directions next
            to each other (`grouped_order`), which shows the structure when features are exchangeable.
            Axis labels and read-outs keep the original feature numbers.
        height: pixels per row of instances (wider pages keep it; more instances than `n_cols` add rows).
        n_cols: instances per row (default: up to 4).
    """
    W, subplot_titles = inputs.weights(W), inputs.labels(subplot_titles, "subplot_titles")
    n_cols = inputs.optional_count(n_cols, "n_cols")
    if matrix not in ("WtW", "W"):
        raise ValueError(f'matrix must be "WtW" or "W", got {matrix!r}')
    W = _weights(W)
    n_inst, d_hidden, n_feats = W.shape
    titles = _titles(subplot_titles, n_inst)
    norms = metrics.feature_norms(W)
    interference = metrics.interference(W)
    orders = _order(W, order)
    if matrix == "WtW":
        shown = torch.einsum("khi,khj->kij", W, W)
        x_title, hover = "feature j", "WᵀW[%{y}, %{x}] = %{z:.3f}<extra></extra>"
    else:
        shown = W.transpose(1, 2)
        x_title, hover = "hidden dimension", "W[dim %{x}, feature %{y}] = %{z:.3f}<extra></extra>"
    limit = max(float(shown.abs().max()), 1e-6)
    n_cols = min(n_inst, 4) if n_cols is None else n_cols
    n_blocks = math.ceil(n_inst / n_cols)
    label = layout.text_width(str(max(n_feats, d_hidden) - 1), layout.TICK_SIZE)
    left, right, gap = 60, 80, label + 16  # each panel's own tick labels sit in the gap
    panel = layout.panel_width(n_cols, titles, PANEL_ND, left, right, gap)
    width = max(layout.NARROWEST, left + right + n_cols * panel + (n_cols - 1) * gap)
    fig = make_subplots(rows=2 * n_blocks, cols=n_cols, horizontal_spacing=layout.columns(n_cols, width, left, right, gap)[0])
    wrapped = [layout.wrap(text, panel, layout.PANEL_TITLE_SIZE) for text in titles]
    above = layout.titles_height(wrapped)
    below = layout.TICK_LABEL_HEIGHT + layout.AXIS_TITLE_HEIGHT
    panels = max(200.0, height - layout.CHROME - below)
    heights = [0.68 * panels, 0.32 * panels] * n_blocks
    gaps = [0.0] + [below + 6 if r % 2 else below + above + 10 for r in range(1, 2 * n_blocks)]
    plot_height = layout.stack_rows(fig, heights, gaps)
    x_step = layout.thinned_dtick(n_feats if matrix == "WtW" else d_hidden, panel, label)
    feature_step = layout.thinned_dtick(n_feats, panel, label)
    y_step = layout.thinned_dtick(n_feats, heights[0], layout.TICK_SIZE)
    bar_y = fig.get_subplot(2, 1).yaxis.domain
    heat_y = fig.get_subplot(1, 1).yaxis.domain
    for k in range(n_inst):
        block, col = divmod(k, n_cols)
        row = 2 * block + 1
        layout.panel_title(fig, titles[k], row, col + 1, panel)
        rows = orders[k]
        labels = [str(i) for i in rows.tolist()]
        z = shown[k][rows][:, rows] if matrix == "WtW" else shown[k][rows]
        columns = labels if matrix == "WtW" else [str(h) for h in range(d_hidden)]
        fig.add_trace(
            go.Heatmap(
                z=_rounded(z), x=columns, y=labels, colorscale="RdBu", zmid=0, zmin=-limit, zmax=limit,
                showscale=k == 0, hovertemplate=hover,
                colorbar=colorbar("value", heat_y),
            ),
            row, col + 1,
        )
        fig.update_yaxes(type="category", autorange="reversed", tickmode="array", tickvals=labels[::y_step],
                         title_text="feature i" if col == 0 else None, row=row, col=col + 1)
        fig.update_xaxes(type="category", tickmode="array", tickvals=columns[::x_step], tickangle=0, row=row, col=col + 1)
        if neuron_plot:
            segments, others = neuron_bar_traces(W[k], interference[k], showscale=k == 0)
            segments.marker.colorbar = colorbar("interference", bar_y)
            fig.add_trace(segments, row + 1, col + 1)
            fig.add_trace(others, row + 1, col + 1)
            fig.update_xaxes(tickmode="linear", tick0=0, dtick=layout.thinned_dtick(d_hidden, panel, label), tickangle=0,
                             range=[-0.5, d_hidden - 0.5], row=row + 1, col=col + 1)
            fig.update_yaxes(title_text="W[h, i], stacked" if col == 0 else None, row=row + 1, col=col + 1)
            continue
        fig.add_trace(
            go.Bar(
                x=labels, y=_rounded(norms[k][rows]),
                marker=dict(
                    color=_rounded(interference[k][rows]), colorscale=INTERFERENCE_SCALE, cmin=0, cmax=1,
                    showscale=k == 0,
                    colorbar=colorbar("interference", bar_y),
                ),
                customdata=_rounded(interference[k][rows]),
                hovertemplate="feature %{x}<br>‖W_i‖ = %{y:.3f}<br>interference = %{customdata:.3f}<extra></extra>",
                showlegend=False,
            ),
            row + 1, col + 1,
        )
        fig.update_xaxes(type="category", tickmode="array", tickvals=labels[::feature_step], tickangle=0, row=row + 1, col=col + 1)
        fig.update_yaxes(range=[0, max(1.2, 1.05 * float(norms.max()))], title_text="‖W_i‖" if col == 0 else None,
                         row=row + 1, col=col + 1)
    for block in range(n_blocks):
        cols = min(n_cols, n_inst - block * n_cols)
        layout.row_x_title(fig, x_title, 2 * block + 1, cols)
        layout.row_x_title(fig, "neuron" if neuron_plot else "feature", 2 * block + 2, cols)
    fig.update_xaxes(ticks="outside", ticklen=4)  # tick labels clear of the other axis' at the corner
    fig.update_yaxes(ticks="outside", ticklen=4)
    fig.update_layout(bargap=0.1, plot_bgcolor="white", barmode="overlay" if neuron_plot else None)  # neuron bars carry their own base
    layout.frame(fig, title, width, plot_height, top=above, bottom=below, left=left, right=right)
    return fig


def plot_cosine_similarities(
    W: torch.Tensor,
    order: str = "given",
    subplot_titles: list[str] | None = None,
    title: str = "Cosine similarities between feature directions",
    height: int = 410,
) -> go.Figure:
    """Heatmaps of cos(W_i, W_j), one per instance (0 where a feature is unlearned).

    Args:
        W: `(inst, d_hidden, feats)`.
        order: "given" or "grouped" (features sharing directions next to each other), as in
            `plot_features_in_Nd`.
    """
    W, subplot_titles = inputs.weights(W), inputs.labels(subplot_titles, "subplot_titles")
    W = _weights(W)
    n_inst, _, n_feats = W.shape
    titles = _titles(subplot_titles, n_inst)
    cosine = metrics.cosine_similarities(W)
    orders = _order(W, order)
    label = layout.text_width(str(n_feats - 1), layout.TICK_SIZE)
    left, right, gap = 40, 70, label + 16
    panel = layout.panel_width(n_inst, titles, PANEL_ND, left, right, gap)
    width = max(layout.NARROWEST, left + right + n_inst * panel + (n_inst - 1) * gap)
    fig = make_subplots(rows=1, cols=n_inst, horizontal_spacing=layout.columns(n_inst, width, left, right, gap)[0])
    texts = [layout.panel_title(fig, text, 1, k + 1, panel) for k, text in enumerate(titles)]
    step = layout.thinned_dtick(n_feats, panel, label)
    for k in range(n_inst):
        rows = orders[k]
        labels = [str(i) for i in rows.tolist()]
        fig.add_trace(
            go.Heatmap(
                z=_rounded(cosine[k][rows][:, rows]), x=labels, y=labels, colorscale="RdBu", zmin=-1, zmax=1, zmid=0,
                showscale=k == n_inst - 1, colorbar=dict(title=dict(text="cos", side="right"), thickness=12),
                hovertemplate="cos(W_%{y}, W_%{x}) = %{z:.3f}<extra></extra>",
            ),
            1, k + 1,
        )
        ticks = dict(type="category", tickmode="array", tickvals=labels[::step], ticks="outside", ticklen=4, tickangle=0)
        fig.update_xaxes(**ticks, row=1, col=k + 1)
        fig.update_yaxes(**ticks, autorange="reversed", scaleanchor="x" if k == 0 else f"x{k + 1}", row=1, col=k + 1)
    fig.update_layout(plot_bgcolor="white")
    layout.frame(fig, title, width, height - layout.CHROME, top=layout.titles_height(texts), bottom=layout.TICK_LABEL_HEIGHT,
                 left=left, right=right)  # fmt: skip
    return fig


def plot_feature_geometry(
    W: torch.Tensor,
    feature_probability: torch.Tensor,
    title: str = "Feature geometry",
    height: int = 520,
) -> go.Figure:
    """Dimensionality against sparsity: one dot per feature (D_i), a line of D* = d/‖W‖²_F, and the
    sticky fractions of known geometries as dashed lines.

    Args:
        W: `(inst, d_hidden, feats)`, instances in any order.
        feature_probability: `(inst,)` the probability 1 - S that a feature is active in each instance;
            the horizontal axis is 1 / (1 - S), on a log scale.
    """
    W, feature_probability = inputs.weights(W), inputs.tensor(feature_probability, "feature_probability")
    W = _weights(W)
    n_inst, _, n_feats = W.shape
    p = torch.as_tensor(feature_probability, dtype=torch.float64).detach().cpu().flatten()
    if p.numel() != n_inst or not ((p > 0) & (p <= 1)).all():
        raise ValueError(f"feature_probability must hold {n_inst} values in (0, 1], one per instance, got shape {tuple(p.shape)}")
    x = 1 / p
    D = metrics.dimensionality(W)
    D_star = metrics.dims_per_feature(W)
    order = x.argsort()
    # spread each instance's dots a little sideways so that equal values stay visible
    jitter = torch.linspace(-0.04, 0.04, n_feats, dtype=torch.float64)
    fig = go.Figure()
    for name, value in STICKY_FRACTIONS.items():
        fig.add_hline(y=value, line=dict(color="lightgrey", dash="dash"), annotation_text=f"{name} {Fraction(value).limit_denominator(8)}",
                      annotation_position="bottom right" if name == "square antiprism" else "top right", annotation_font_size=10)
    fig.add_trace(
        go.Scatter(
            x=(x[:, None] * (10 ** jitter)[None, :]).flatten().tolist(), y=D.flatten().tolist(), mode="markers",
            marker=dict(size=4, color=D.flatten().tolist(), colorscale="Plasma", cmin=0, cmax=1, opacity=0.7),
            customdata=[[k, i] for k in range(n_inst) for i in range(n_feats)],
            hovertemplate="instance %{customdata[0]}, feature %{customdata[1]}<br>D_i = %{y:.3f}<extra></extra>",
            name="D_i (each feature)",
        )
    )
    fig.add_trace(
        go.Scatter(
            x=x[order].tolist(), y=D_star[order].tolist(), mode="lines+markers", line=dict(color="black", width=2),
            hovertemplate="1/(1-S) = %{x:.3g}<br>D* = %{y:.3f}<extra></extra>", name="D* = d / ‖W‖²_F",
        )
    )
    log_x = x.log10()
    fig.update_xaxes(type="log", title_text="1 / (1 − S)", range=[float(log_x.min()) - 0.05, float(log_x.max()) + 0.05])
    fig.update_yaxes(range=[-0.03, 1.1], title_text="dimensions per feature")
    fig.update_layout(plot_bgcolor="white")
    layout.frame(fig, title, layout.NARROWEST, height - layout.CHROME, legend_names=layout.legend_entries(fig), right=30)
    return fig
