"""Chapters 2 and 3's figures: the phase diagram, features in 2D and N-D, geometry, cosine similarities, curves."""

import math

import plotly.graph_objects as go
import pytest
import torch

from utils.plots import (
    phase_colours,
    plot_cosine_similarities,
    plot_curves,
    plot_feature_geometry,
    plot_features_in_2d,
    plot_features_in_Nd,
    plot_phase_diagram,
)
from utils.plots.features import grouped_order
from utils.plots.layout import titles_height
from utils.plots.phase import CORNER_COLOURS


def test_phase_colours_hit_the_corners_and_clip():
    norm = torch.tensor([1.0, 1.0, 0.0, 0.0, 5.0, -1.0])
    superposition = torch.tensor([0.0, 1.0, 0.0, 1.0, 0.0, 0.0])
    rgb = phase_colours(norm, superposition)
    expected = torch.tensor(
        [CORNER_COLOURS[True, False], CORNER_COLOURS[True, True], CORNER_COLOURS[False, False], CORNER_COLOURS[False, True],
         CORNER_COLOURS[True, False], CORNER_COLOURS[False, False]]
    )
    assert torch.allclose(rgb, expected)
    middle = phase_colours(torch.tensor(0.5), torch.tensor(0.5))
    assert torch.allclose(middle, torch.tensor(list(CORNER_COLOURS.values())).mean(0))
    half_scale = phase_colours(torch.tensor(1.0), torch.tensor(0.0), norm_max=2.0)
    assert torch.allclose(half_scale, (torch.tensor(CORNER_COLOURS[True, False]) + torch.tensor(CORNER_COLOURS[False, False])) / 2)


def test_phase_colours_reject_bad_input():
    with pytest.raises(ValueError, match="same shape"):
        phase_colours(torch.zeros(3), torch.zeros(4))
    with pytest.raises(ValueError, match="positive"):
        phase_colours(torch.zeros(3), torch.zeros(3), norm_max=0)


def metrics_grid(panels=1, ny=4, nx=5):
    generator = torch.Generator().manual_seed(0)
    shape = (panels, ny, nx) if panels > 1 else (ny, nx)
    return [torch.rand(shape, generator=generator) for _ in range(3)]


def heatmaps(fig):
    return [trace for trace in fig.data if isinstance(trace, go.Heatmap)]


def test_phase_diagram_one_panel_colours_each_cell_exactly_and_reads_out_metrics():
    norm, superposition, loss = metrics_grid()
    originals = [t.clone() for t in (norm, superposition, loss)]
    x, y = torch.logspace(-1, 1, 5), torch.logspace(0, -2, 4)
    fig = plot_phase_diagram(norm, superposition, loss, x, y, x_title="I", y_title="p")
    assert isinstance(fig, go.Figure)
    for tensor, original in zip((norm, superposition, loss), originals):
        assert torch.equal(tensor, original)
    panel, legend = heatmaps(fig)
    # the colour of cell (i, j) is the colour-scale stop at its value
    z = torch.tensor(panel.z)
    stops = dict((round(v * (z.numel() - 1)), c) for v, c in panel.colorscale)
    rgb = phase_colours(norm, superposition)
    i, j = 2, 3
    r, g, b = (rgb[i, j] * 255).round().int().tolist()
    assert stops[int(z[i, j])] == f"rgb({r},{g},{b})"
    # hover read-out: axis values and the three metrics
    custom = panel.customdata[i][j]
    assert custom[0] == pytest.approx(x[j].item(), rel=1e-3) and custom[1] == pytest.approx(y[i].item(), rel=1e-3)
    assert custom[2:] == pytest.approx([norm[i, j].item(), superposition[i, j].item(), loss[i, j].item()], rel=1e-3)
    assert "I = " in panel.hovertemplate and "loss" in panel.hovertemplate
    # log axes: cells at log10 positions, ticks at powers of ten, all three decades' ends shown
    assert panel.x == pytest.approx(x.log10().tolist(), abs=1e-6)
    assert list(fig.layout.xaxis.ticktext) == ["0.1", "1", "10"]
    assert legend.z is not None and len(legend.z) == 21


def test_phase_diagram_grid_of_panels():
    norm, superposition, loss = metrics_grid(panels=9)
    fig = plot_phase_diagram(norm, superposition, loss, torch.logspace(-1, 1, 5), torch.logspace(-2, 0, 4),
                             panel_titles=[f"panel {k}" for k in range(9)])
    assert len(heatmaps(fig)) == 10  # nine panels and the legend square
    titles = [a.text for a in fig.layout.annotations]
    assert "panel 8" in titles and "colour legend" in titles
    assert fig.layout.width is None  # the width follows the page
    # three rows of panels, each as tall; the legend square sits at the top of the first row
    panels = [fig.get_subplot(row, col) for row in (1, 2, 3) for col in (1, 2, 3)]
    rows = sorted({tuple(panel.yaxis.domain) for panel in panels}, reverse=True)
    assert len(rows) == 3 and len({round(top - bottom, 9) for bottom, top in rows}) == 1
    legend = fig.get_subplot(1, 4).yaxis.domain
    assert legend[1] == pytest.approx(rows[0][1]) and legend[0] > rows[0][0]
    # tick labels only on the left column and under the bottom row; one x and one y title in all
    assert [panel.yaxis.showticklabels for panel in panels] == [True, False, False] * 3
    assert [panel.xaxis.showticklabels for panel in panels] == [False] * 6 + [True] * 3
    assert titles.count("x") == 1 and titles.count("y") == 1


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(loss=torch.zeros(3, 5)), "same shape"),
        (dict(norm=torch.zeros(5)), "shape \\(ny, nx\\)"),
        (dict(x_values=torch.linspace(0, 1, 5)), "positive"),
        (dict(y_values=torch.logspace(0, 1, 3)), "shape \\(4,\\)"),
        (dict(panel_titles=["a", "b"]), "2 titles for 1 panels"),
    ],
)
def test_phase_diagram_rejects_bad_input(change, message):
    norm, superposition, loss = metrics_grid()
    kwargs = dict(norm=norm, superposition=superposition, loss=loss, x_values=torch.logspace(-1, 1, 5),
                  y_values=torch.logspace(0, -2, 4))
    kwargs.update(change)
    with pytest.raises(ValueError, match=message):
        plot_phase_diagram(**kwargs)


def pentagon_and_pair():
    W = torch.zeros(2, 2, 5)
    angles = torch.arange(5) * 2 * math.pi / 5
    W[0, 0], W[0, 1] = angles.cos(), angles.sin()
    W[1, 0, 0], W[1, 0, 1] = 1.0, -1.0
    return W


def test_features_in_2d_draws_each_feature_from_the_origin():
    W = pentagon_and_pair()
    original = W.clone()
    fig = plot_features_in_2d(W, subplot_titles=["pentagon", "pair"])
    assert torch.equal(W, original)
    arrows = [t for t in fig.data if t.mode == "lines+markers"]
    assert len(arrows) == 10
    assert list(arrows[1].x) == pytest.approx([0.0, W[0, 0, 1].item()]) and list(arrows[1].y) == pytest.approx([0.0, W[0, 1, 1].item()])
    assert sum(t.showlegend for t in arrows) == 5  # one legend entry per feature
    with pytest.raises(ValueError, match="d_hidden = 2"):
        plot_features_in_2d(torch.zeros(1, 3, 5))
    with pytest.raises(ValueError, match="1 subplot titles for 2 instances"):
        plot_features_in_2d(torch.zeros(2, 2, 5), subplot_titles=["one"])
    with pytest.raises(ValueError, match="one entry per feature"):
        plot_features_in_2d(torch.zeros(1, 2, 5), colours=["red"])


def test_features_in_Nd_shows_WtW_and_norm_bars_coloured_by_interference():
    W = pentagon_and_pair()
    fig = plot_features_in_Nd(W)
    heat = heatmaps(fig)
    bars = [t for t in fig.data if isinstance(t, go.Bar)]
    assert torch.allclose(torch.tensor(heat[0].z, dtype=torch.float32), W[0].T @ W[0], atol=1e-3)
    assert bars[1].y[:2] == pytest.approx([1.0, 1.0]) and bars[1].marker.color[:2] == pytest.approx([1.0, 1.0])
    assert bars[1].marker.color[2] == pytest.approx(0.0)
    fig_W = plot_features_in_Nd(W, matrix="W")
    assert torch.allclose(torch.tensor(heatmaps(fig_W)[0].z, dtype=torch.float32), W[0].T, atol=1e-3)
    with pytest.raises(ValueError, match="matrix"):
        plot_features_in_Nd(W, matrix="WWt")
    with pytest.raises(ValueError, match="order"):
        plot_features_in_Nd(W, order="random")


def test_grouped_order_puts_partners_together_and_unlearned_last():
    W = torch.zeros(1, 2, 5)
    W[0, :, 3] = torch.tensor([1.0, 0.0])
    W[0, :, 0] = torch.tensor([-0.9, 0.0])  # antipodal partner of feature 3
    W[0, :, 4] = torch.tensor([0.0, 0.8])  # alone
    order = grouped_order(W)[0].tolist()
    assert order[:2] == [3, 0] and order[2] == 4 and set(order[3:]) == {1, 2}
    fig = plot_features_in_Nd(W, order="grouped")
    assert list(heatmaps(fig)[0].y) == ["3", "0", "4", "1", "2"]
    assert heatmaps(fig)[0].z[0][1] == pytest.approx(-0.9)


def test_cosine_similarities_and_geometry():
    W = pentagon_and_pair()
    cos = torch.tensor(heatmaps(plot_cosine_similarities(W))[1].z)
    assert cos[0, 1] == pytest.approx(-1.0) and cos[2, 2] == pytest.approx(0.0)
    fig = plot_feature_geometry(W, torch.tensor([0.1, 0.5]))
    dots, line = fig.data
    assert sorted(dots.y) == pytest.approx([0.0] * 3 + [0.4] * 5 + [0.5] * 2, abs=1e-5)
    assert list(line.x) == pytest.approx([2.0, 10.0]) and list(line.y) == pytest.approx([1.0, 2 / 5])
    with pytest.raises(ValueError, match="one per instance"):
        plot_feature_geometry(W, torch.tensor([0.1]))
    with pytest.raises(ValueError, match="\\(0, 1\\]"):
        plot_feature_geometry(W, torch.tensor([0.0, 0.5]))


def test_curves():
    x = torch.arange(5.0)
    fig = plot_curves(x, {"a": x**2, "b": -x}, references={"zero": 0.0}, log_x=False)
    assert [t.name for t in fig.data] == ["a", "b"] and list(fig.data[0].y) == [0, 1, 4, 9, 16]
    with pytest.raises(ValueError, match="has 2 values"):
        plot_curves(x, {"a": torch.zeros(2)})
    with pytest.raises(ValueError, match="at least one"):
        plot_curves(x, {})


def test_training_dashboard_names_its_reference_line():
    from utils.data import generate_data
    from utils.models import ToyModel, ToyModelConfig
    from utils.plots import plot_training_dashboard
    from utils.train import train_on_dataset

    model = ToyModel(ToyModelConfig(n_inst=2, n_features=2, d_hidden=1), device="cpu", seed=0)
    x = generate_data(50, sparsity=0.8, generator=torch.Generator().manual_seed(0))
    run = train_on_dataset(model, x, steps=20, progress=False)
    fig = plot_training_dashboard(model, x, run, instance=1, optimum=0.02, optimum_label="linear optimum")
    names = [trace.name for trace in fig.data]
    assert "linear optimum" in names and "exact optimum" not in names
    assert len(fig.frames) == len(run.snapshot_steps)
    default = plot_training_dashboard(model, x, run, optimum=0.02)
    assert "exact optimum" in [trace.name for trace in default.data]


def test_figures_set_a_height_and_leave_the_width_to_the_page():
    """A fixed width overflows the book's text column; every figure here sets only its height."""
    W = pentagon_and_pair()
    x = torch.arange(1.0, 5.0)
    figures = {
        "features in 2D": plot_features_in_2d(W, panel_height=200),
        "features in N-D": plot_features_in_Nd(W),
        "cosine similarities": plot_cosine_similarities(W, height=300),
        "feature geometry": plot_feature_geometry(W, torch.tensor([0.1, 0.5])),
        "curves": plot_curves(x, {"a": x}),
    }
    for name, fig in figures.items():
        assert fig.layout.width is None, f"{name} sets a width"
        assert fig.layout.height is not None, f"{name} sets no height"
    # the plot areas keep the height asked for; titles and legends add what they need around them
    two_d = figures["features in 2D"].layout
    assert two_d.height - two_d.margin.t - two_d.margin.b == pytest.approx(200 - titles_height(["instance 0"]), abs=1)
    cosine = figures["cosine similarities"].layout
    assert cosine.height - cosine.margin.t - cosine.margin.b == pytest.approx(300 - 130, abs=1)
