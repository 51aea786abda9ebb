"""Chapter 2's theory figures: phase panels with boundaries and marks, and the per-cell map."""

import math

import plotly.graph_objects as go
import pytest
import torch

from utils.plots import plot_cell_values, plot_phase_with_boundaries


def grid(panels=2, ny=4, nx=5):
    generator = torch.Generator().manual_seed(0)
    return [torch.rand(panels, ny, nx, generator=generator) for _ in range(3)]


def test_boundaries_are_drawn_on_every_panel_in_log_units_and_marks_where_asked():
    norm, superposition, loss = grid()
    originals = [t.clone() for t in (norm, superposition, loss)]
    x, y = torch.logspace(-1, 1, 5), torch.logspace(0, -2, 4)
    curve_x = torch.tensor([0.1, 1.0, 10.0])
    curve_y = torch.tensor([0.16, 4 / 7, 0.16])
    marks = torch.zeros(2, 4, 5, dtype=torch.bool)
    marks[1, 2, 3] = True
    fig = plot_phase_with_boundaries(
        norm,
        superposition,
        loss,
        x,
        y,
        boundaries={"closed form": (curve_x, curve_y)},
        marks=marks,
        mark_name="misses",
        panel_titles=["trained", "exact"],
        x_title="I",
        y_title="p",
    )
    lines = [t for t in fig.data if isinstance(t, go.Scatter) and t.mode == "lines"]
    assert len(lines) == 2  # one per panel
    assert [t.showlegend for t in lines] == [True, False]
    assert lines[1].xaxis == "x2"
    assert lines[0].x == pytest.approx([-1.0, 0.0, 1.0])
    assert lines[0].y == pytest.approx([math.log10(0.16), math.log10(4 / 7), math.log10(0.16)])
    crosses = [t for t in fig.data if isinstance(t, go.Scatter) and t.mode == "markers"]
    assert len(crosses) == 1 and crosses[0].xaxis == "x2"
    assert crosses[0].x == pytest.approx([math.log10(x[3].item())]) and crosses[0].y == pytest.approx(
        [math.log10(y[2].item())]
    )
    for tensor, original in zip((norm, superposition, loss), originals):
        assert torch.equal(tensor, original)


def test_phase_with_boundaries_rejects_bad_input():
    norm, superposition, loss = grid()
    x, y = torch.logspace(-1, 1, 5), torch.logspace(0, -2, 4)
    with pytest.raises(ValueError, match="marks must have shape"):
        plot_phase_with_boundaries(norm, superposition, loss, x, y, marks=torch.zeros(4, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match="boundary 'b' has 2 x values but 3 y values"):
        plot_phase_with_boundaries(norm, superposition, loss, x, y, boundaries={"b": (torch.ones(2), torch.ones(3))})


def test_cell_values_map():
    values = torch.rand(4, 5, generator=torch.Generator().manual_seed(1))
    x, y = torch.logspace(-1, 1, 5), torch.logspace(0, -2, 4)
    fig = plot_cell_values(
        values, x, y, x_title="I", y_title="p", value_title="share", boundaries={"b": (x, y[:1].expand(5))}
    )
    heat = [t for t in fig.data if isinstance(t, go.Heatmap)]
    assert len(heat) == 1 and heat[0].z[2][3] == pytest.approx(values[2, 3].item())
    assert heat[0].customdata[2][3] == pytest.approx([x[3].item(), y[2].item()])
    assert fig.layout.width is None  # the width follows the page
    # the plot area keeps the height asked for (less one title line and the axis labels); the legend adds rows
    plot_area = fig.layout.height - fig.layout.margin.t - fig.layout.margin.b
    assert plot_area == pytest.approx(420 - 130, abs=1)
    assert fig.layout.showlegend and fig.layout.legend.orientation == "h" and fig.layout.legend.yanchor == "top"
    with pytest.raises(ValueError, match=r"values must be a \(ny, nx\) tensor"):
        plot_cell_values(torch.rand(5), x, y)


def test_curves_and_points():
    from utils.plots import plot_curves_and_points

    x = torch.linspace(0.1, 1, 10)
    fig = plot_curves_and_points(x, {"theory": x**2}, {"trained": (x[:3], x[:3] ** 2 + 0.01)}, log_x=True, title="t")
    markers = [t for t in fig.data if t.mode == "markers"]
    assert (
        len(markers) == 1
        and markers[0].name == "trained"
        and markers[0].y == pytest.approx((x[:3] ** 2 + 0.01).tolist())
    )
    with pytest.raises(ValueError, match="points 'p' have 2 x values but 3 y values"):
        plot_curves_and_points(x, {"theory": x}, {"p": (torch.ones(2), torch.ones(3))})
