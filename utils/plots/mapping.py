"""Figures for two features squeezed through one hidden number (chapters 1 and 2)."""

from __future__ import annotations

import copy
import math

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from utils.plots import inputs, layout
from utils.train import DatasetRun

INPUT_COLOUR = "rgba(120, 120, 120, 0.45)"
W_COLOUR = "black"
B_COLOUR = "#1f77b4"
LINE_COLOUR = "#d62728"
MAPPING_MIN_WIDTH = 600
"""Three panels and a colour bar need this many px (narrower screens scroll the figure)."""
DASHBOARD_MIN_WIDTH = 560


def _check_two_to_one(model) -> None:
    cfg = model.cfg
    if (cfg.n_features, cfg.d_hidden) != (2, 1):
        raise ValueError(f"this figure shows 2 features through 1 hidden number; the model has {cfg.n_features} -> {cfg.d_hidden}")


def _check_instance(model, instance: int) -> None:
    if not 0 <= instance < model.cfg.n_inst:
        raise ValueError(f"instance must lie in [0, {model.cfg.n_inst}), got {instance}")


def _arrow(tail, tip, colour: str, name: str, **scatter_kwargs) -> go.Scatter:
    """A straight arrow from `tail` to `tip` (2-vectors) as a scatter trace, so it can animate."""
    return go.Scatter(
        x=[float(tail[0]), float(tip[0])],
        y=[float(tail[1]), float(tip[1])],
        mode="lines+markers",
        line=dict(color=colour, width=2.5),
        marker=dict(symbol="arrow", angleref="previous", size=[0, 14], color=colour),
        name=name,
        hoverinfo="name",
        **scatter_kwargs,
    )


def _vector(values: torch.Tensor) -> str:
    return "[" + ", ".join(f"{v:.2f}" for v in values.tolist()) + "]"


@torch.no_grad()
def _state(model, x: torch.Tensor, instance: int, h_range: tuple[float, float]) -> dict:
    """Hidden values, outputs, parameters and the set of reachable outputs of one instance."""
    device = model.W.device
    batch = x.to(device)[:, None, :].expand(-1, model.cfg.n_inst, -1)
    h = model.hidden(batch)
    grid = torch.linspace(*h_range, 200, device=device)[:, None, None].expand(-1, model.cfg.n_inst, 1)
    return dict(
        h=h[:, instance, 0].cpu().numpy().astype(np.float32),
        y=model.decode(h)[:, instance].cpu().numpy().astype(np.float32),
        reachable=model.decode(grid)[:, instance].cpu().numpy().astype(np.float32),
        W=model.W[instance, 0].detach().cpu().clone(),
        b=model.b_final[instance].detach().cpu().clone(),
    )


def plot_data(x: torch.Tensor, title: str = "Data") -> go.Figure:
    """Scatter of two-feature points `x: (n_points, 2)`."""
    x = inputs.tensor(x, "x")
    if not isinstance(x, torch.Tensor) or x.dim() != 2 or x.shape[1] != 2:
        raise ValueError(f"x must have shape (n_points, 2), got {tuple(getattr(x, 'shape', ()))}")
    x = x.detach().cpu()
    fig = go.Figure(go.Scatter(x=x[:, 0].numpy(), y=x[:, 1].numpy(), mode="markers", marker=dict(size=4, opacity=0.5)))
    fig.update_layout(xaxis_title="x₁", yaxis_title="x₂")
    fig.update_yaxes(scaleanchor="x", scaleratio=1)
    layout.frame(fig, title, layout.NARROWEST, plot_height=380, left=60)
    return fig


def plot_mapping(model, x: torch.Tensor, instance: int = 0, title: str = "The mapping") -> go.Figure:
    """Input points, their hidden value h = Wx, and the outputs, for one instance of a 2 -> 1 model.

    Args:
        model: a `ToyModel` or `LinearToyModel` with 2 features and 1 hidden dimension.
        x: `(n_points, 2)` inputs; points are coloured by their hidden value.
    """
    inputs.two_feature_model(model)
    x, instance = inputs.points(x).to(model.W.dtype), inputs.instance(instance, model.cfg.n_inst)
    _check_two_to_one(model)
    _check_instance(model, instance)
    x = x.detach().cpu()
    W = model.W[instance, 0].detach().cpu()
    h_reach = float(W.abs().sum()) * max(1.0, float(x.abs().max()))
    state = _state(model, x, instance, (-h_reach, h_reach))
    h, y, b = state["h"], state["y"], state["b"]
    loss = (model.importance[instance].cpu().numpy() * (y - x.numpy()) ** 2).mean()
    x = x.numpy().astype(np.float32)
    colour = dict(color=h, colorscale="Viridis", cmin=float(h.min()), cmax=float(h.max()))
    fig = make_subplots(rows=1, cols=3, column_widths=[0.36, 0.28, 0.36], horizontal_spacing=0.1)
    fig.add_trace(go.Scatter(x=x[:, 0], y=x[:, 1], mode="markers", marker=dict(size=4, **colour), name="x"), 1, 1)
    fig.add_trace(_arrow((0, 0), W, W_COLOUR, "W (read direction)"), 1, 1)
    jitter = np.random.default_rng(0).uniform(-1, 1, len(h))
    fig.add_trace(go.Scatter(x=h, y=jitter, mode="markers", marker=dict(size=4, **colour), name="h"), 1, 2)
    fig.add_trace(
        go.Scatter(
            x=state["reachable"][:, 0],
            y=state["reachable"][:, 1],
            mode="lines",
            line=dict(color=LINE_COLOUR, dash="dot"),
            name="every possible output",
        ),
        1,
        3,
    )
    fig.add_trace(
        go.Scatter(
            x=y[:, 0],
            y=y[:, 1],
            mode="markers",
            marker=dict(size=4, showscale=True, colorbar=dict(title="h", thickness=14), **colour),
            name="x'",
        ),
        1,
        3,
    )
    fig.add_trace(_arrow((0, 0), b, B_COLOUR, "b"), 1, 3)
    fig.add_trace(_arrow(b, b + W, W_COLOUR, "Wᵀ (write direction)", showlegend=False), 1, 3)
    fig.update_xaxes(title_text="x₁", row=1, col=1)
    fig.update_yaxes(title_text="x₂", scaleanchor="x", scaleratio=1, row=1, col=1)
    fig.update_xaxes(title_text="h", row=1, col=2)
    fig.update_yaxes(showticklabels=False, range=[-3, 3], row=1, col=2)
    fig.update_xaxes(title_text="x'₁", row=1, col=3)
    fig.update_yaxes(title_text="x'₂", scaleanchor="x3", scaleratio=1, row=1, col=3)
    width = MAPPING_MIN_WIDTH
    panel = (width - 60 - 80) * (1 - 2 * 0.1)
    texts = [
        layout.panel_title(fig, text, 1, col, panel * share)
        for col, (text, share) in enumerate(zip(("inputs x", "hidden h = Wx", "outputs x'"), (0.36, 0.28, 0.36)), 1)
    ]
    layout.frame(
        fig, title, width, plot_height=300, subtitle=f"W = {_vector(W)}, b = {_vector(b)}, loss = {loss:.4f}",
        top=layout.titles_height(texts), legend_names=layout.legend_entries(fig), left=60, right=80,
    )  # fmt: skip
    return fig


def plot_training_dashboard(
    model,
    x: torch.Tensor,
    run: DatasetRun,
    instance: int = 0,
    n_shown: int = 80,
    optimum: float | None = None,
    optimum_label: str = "exact optimum",
    title: str = "Training",
) -> go.Figure:
    """Animated training of one instance of a 2 -> 1 model: the reconstruction and the loss curve.

    Left: inputs (grey) joined to their reconstructions, the set of possible outputs, b and W.
    Right: the loss with the current step marked. Play/Pause buttons and a step slider.

    Args:
        model: the trained model (only its class and sizes are used; parameters come from `run`).
        x: `(n_points, 2)` the training data; the first `n_shown` points are drawn.
        run: the record of `utils.train.train_on_dataset`.
        optimum: a reference loss (e.g. the exact minimum), drawn as a dashed line if given.
        optimum_label: the legend name of that line.
    """
    inputs.two_feature_model(model)
    x, instance = inputs.points(x).to(model.W.dtype), inputs.instance(instance, model.cfg.n_inst)
    n_shown, optimum = inputs.optional_count(n_shown, "n_shown"), inputs.optional_number(optimum, "optimum")
    if not isinstance(run, DatasetRun):
        raise TypeError(f"run must be the DatasetRun of utils.train.train_on_dataset, got {type(run).__name__}")
    _check_two_to_one(model)
    _check_instance(model, instance)
    x = x.detach().cpu()[:n_shown]
    clone = copy.deepcopy(model)
    states = []
    for index in range(len(run.snapshot_steps)):
        with torch.no_grad():
            for name, parameter in clone.named_parameters():
                parameter.copy_(run.snapshots[name][index])
        states.append(_state(clone, x, instance, (-3.0, 3.0)))
    losses = run.losses[:, instance].numpy()
    steps = run.snapshot_steps.tolist()

    x = x.numpy().astype(np.float32)
    # the panel holds the inputs, the outputs (those far off clipped to [-1, 2]) and every frame's arrows
    points = np.concatenate([x, *[s["y"] for s in states]]).clip(-1.0, 2.0)
    tips = np.array([[0.0, 0.0]] + [t.tolist() for s in states for t in (s["b"], s["b"] + s["W"])], dtype=np.float32)
    low, high = float(min(points.min(), tips.min())) - 0.15, float(max(points.max(), tips.max())) + 0.15

    def dynamic_traces(state: dict, step: int) -> list[go.Scatter]:
        y = state["y"]
        seg_x = np.stack([x[:, 0], y[:, 0], np.full(len(x), np.nan, dtype=np.float32)], axis=1).ravel()
        seg_y = np.stack([x[:, 1], y[:, 1], np.full(len(x), np.nan, dtype=np.float32)], axis=1).ravel()
        return [
            go.Scatter(x=seg_x, y=seg_y, mode="lines", line=dict(color="rgba(150,150,150,0.35)", width=1), name="x → x'"),
            go.Scatter(x=y[:, 0], y=y[:, 1], mode="markers", marker=dict(size=5, color="#ff7f0e"), name="outputs x'"),
            go.Scatter(
                x=state["reachable"][:, 0],
                y=state["reachable"][:, 1],
                mode="lines",
                line=dict(color=LINE_COLOUR, dash="dot"),
                name="every possible output",
            ),
            _arrow((0, 0), state["b"], B_COLOUR, "b"),
            _arrow(state["b"], state["b"] + state["W"], W_COLOUR, "W"),
            go.Scatter(x=[step], y=[losses[step]], mode="markers", marker=dict(size=11, color="#ff7f0e"), name="now"),
        ]

    width = DASHBOARD_MIN_WIDTH
    plot_width = width - 70 - 20

    def caption(state: dict, step: int) -> tuple[str, float]:
        text = f"step {step}, loss {losses[step]:.4f}, W = {_vector(state['W'])}, b = {_vector(state['b'])}"
        return layout.title_text(title, width, subtitle=text)

    captions = [caption(state, step) for state, step in zip(states, steps)]
    fig = make_subplots(rows=1, cols=2, column_widths=[0.55, 0.45], horizontal_spacing=0.14)
    texts = [
        layout.panel_title(fig, text, 1, col, plot_width * 0.86 * share)
        for col, (text, share) in enumerate(zip(("reconstruction", "loss"), (0.55, 0.45)), 1)
    ]
    fig.add_trace(go.Scatter(x=x[:, 0], y=x[:, 1], mode="markers", marker=dict(size=5, color=INPUT_COLOUR), name="inputs x"), 1, 1)
    fig.add_trace(go.Scatter(x=np.arange(len(losses)), y=losses, mode="lines", line=dict(color="#444"), name="loss"), 1, 2)
    if optimum is not None:
        fig.add_trace(
            go.Scatter(
                x=[0, len(losses) - 1], y=[optimum, optimum], mode="lines", line=dict(dash="dash", color="green"), name=optimum_label
            ),
            1,
            2,
        )
    first = dynamic_traces(states[0], steps[0])
    for trace in first[:-1]:
        fig.add_trace(trace, 1, 1)
    fig.add_trace(first[-1], 1, 2)
    dynamic = list(range(len(fig.data) - len(first), len(fig.data)))
    animate = dict(frame=dict(duration=150, redraw=True), transition=dict(duration=0), fromcurrent=True, mode="immediate")
    jump = dict(animate, frame=dict(duration=0, redraw=True))
    # Below the panels: tick labels and axis titles, then Play/Pause on the left with the slider (its
    # "step N" label above its rail) to their right, then the legend.
    plot_height = 380
    axes = layout.TICK_LABEL_HEIGHT + layout.AXIS_TITLE_HEIGHT + 10
    buttons_width = 170
    fig.update_layout(
        updatemenus=[
            dict(
                type="buttons",
                direction="left",
                x=0.0,
                y=-(axes + 22) / plot_height,
                xanchor="left",
                yanchor="top",
                pad=dict(t=0, l=0),
                buttons=[
                    dict(label="▶ Play", method="animate", args=[None, animate]),
                    dict(label="❚❚ Pause", method="animate", args=[[None], jump]),
                ],
            )
        ],
        sliders=[
            dict(
                x=buttons_width / plot_width,
                len=1 - buttons_width / plot_width,
                y=-axes / plot_height,
                yanchor="top",
                pad=dict(t=0, b=0),
                currentvalue=dict(prefix="step ", font=dict(size=layout.TICK_SIZE)),
                font=dict(size=layout.TICK_SIZE - 1),
                steps=[dict(label=str(step), method="animate", args=[[str(step)], jump]) for step in steps],
            )
        ],
    )
    fig.update_xaxes(range=[low, high], title_text="x₁", row=1, col=1)
    fig.update_yaxes(range=[low, high], title_text="x₂", scaleanchor="x", scaleratio=1, row=1, col=1)
    fig.update_xaxes(title_text="step", row=1, col=2)
    shown = [float(v) for v in losses if v > 0] + ([optimum] if optimum and optimum > 0 else [])
    fig.update_yaxes(type="log", title_text="loss", row=1, col=2, **layout.log_ticks(min(shown), max(shown), fit=5))
    margin = layout.frame(
        fig, None, width, plot_height, top=layout.titles_height(texts), bottom=axes + 90,
        legend_names=layout.legend_entries(fig), title_height=max(height for _, height in captions),
    )  # fmt: skip
    fig.update_layout(meta=dict(fig.layout.meta, title=title))
    # Each frame carries its caption (the title annotation) and the panel titles; frames animate with
    # redraw=True, or the caption (a change of layout) would not show.
    panel_titles = [annotation.to_plotly_json() for annotation in fig.layout.annotations]
    fig.frames = [
        go.Frame(
            data=dynamic_traces(state, step), traces=dynamic, name=str(step),
            layout=dict(annotations=[*panel_titles, layout.title_annotation(text, margin)]),
        )
        for (text, _), state, step in zip(captions, states, steps)
    ]  # fmt: skip
    fig.layout.annotations = fig.frames[0].layout.annotations
    return fig
