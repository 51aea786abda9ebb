"""The regime map: one colour per regime, intensity by norm, hover read-outs, a legend, clear errors."""

import plotly.graph_objects as go
import pytest
import torch

from utils.plots import plot_regime_diagram
from utils.plots.regimes import LEVELS, regime_levels, regime_palette

REGIMES = ("dropped", "own dimension", "antipodal", "same sign")


def grid(panels=1):
    regime = torch.arange(12).reshape(3, 4) % 4
    norm = torch.linspace(0.0, 1.4, 12).reshape(3, 4)
    if panels > 1:
        return regime.expand(panels, 3, 4).clone(), norm.expand(panels, 3, 4).clone()
    return regime, norm


def colour_of(trace, i, j):
    """The colour the discrete scale gives cell (i, j): the stop whose band holds its z."""
    z = trace.z[i][j]
    n = len(trace.colorscale) // 2
    return trace.colorscale[2 * int(round(z))][1] if 0 <= z < n else None


def test_each_cell_gets_its_regimes_colour_at_its_norms_intensity():
    regime, norm = grid()
    originals = (regime.clone(), norm.clone())
    x, y = torch.logspace(-1, 1, 4), torch.logspace(-2, 0, 3)
    fig = plot_regime_diagram(
        regime, norm, x, y, REGIMES, x_title="I", y_title="q", hover={"seeds agreeing": torch.full((3, 4), 0.5)}
    )
    assert isinstance(fig, go.Figure)
    assert torch.equal(regime, originals[0]) and torch.equal(norm, originals[1])
    panel, legend = [t for t in fig.data if isinstance(t, go.Heatmap)]
    palette = regime_palette(REGIMES)
    levels = regime_levels(norm, 0.2, 1.0)
    for i in range(3):
        for j in range(4):
            assert colour_of(panel, i, j) == palette[int(regime[i, j]) * LEVELS + int(levels[i, j])]
    # same sign and antipodal differ in hue, not only in shade; the dropped regime is one grey
    assert palette[3 * LEVELS + LEVELS - 1] != palette[2 * LEVELS + LEVELS - 1]
    assert len(set(palette[:LEVELS])) == 1
    # a norm of 0.2 or less is the lightest step, 1 or more the full colour
    assert regime_levels(torch.tensor([0.0, 0.2, 0.6, 1.0, 3.0]), 0.2, 1.0).tolist() == [0, 0, 2, 4, 4]
    custom = panel.customdata[1][2]
    assert custom[0] == pytest.approx(x[2].item()) and custom[1] == pytest.approx(y[1].item())
    assert custom[2].startswith(REGIMES[int(regime[1, 2])]) and custom[3] == 0.5
    assert "seeds agreeing" in panel.hovertemplate
    assert panel.x == pytest.approx(x.log10().tolist())
    assert list(fig.layout.xaxis.ticktext) == ["0.1", "1", "10"]
    assert len(legend.z) == len(REGIMES) and len(legend.z[0]) == LEVELS


def test_nine_panels_and_the_width_left_to_the_page():
    regime, norm = grid(panels=9)
    fig = plot_regime_diagram(
        regime,
        norm,
        torch.logspace(-1, 1, 4),
        torch.logspace(-2, 0, 3),
        REGIMES,
        panel_titles=[f"p{k}" for k in range(9)],
    )
    assert len([t for t in fig.data if isinstance(t, go.Heatmap)]) == 10
    texts = [a.text for a in fig.layout.annotations]
    assert "p8" in texts and "legend" in texts
    assert fig.layout.width is None  # the width follows the page
    # three rows of panels, each as tall; the legend at the top of the first row, right of the panels
    panels = [fig.get_subplot(row, col) for row in (1, 2, 3) for col in (1, 2, 3)]
    rows = sorted({tuple(panel.yaxis.domain) for panel in panels}, reverse=True)
    assert len(rows) == 3 and len({round(top - bottom, 9) for bottom, top in rows}) == 1
    legend = fig.get_subplot(1, 4)
    assert legend.yaxis.domain[1] == pytest.approx(rows[0][1]) and legend.yaxis.domain[0] > rows[0][0]
    assert legend.xaxis.domain[0] > max(panel.xaxis.domain[1] for panel in panels)
    # tick labels only on the left column and under the bottom row; one x and one y title in all
    assert [panel.yaxis.showticklabels for panel in panels] == [True, False, False] * 3
    assert [panel.xaxis.showticklabels for panel in panels] == [False] * 6 + [True] * 3
    assert texts.count("x") == 1 and texts.count("y") == 1


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(norm=torch.zeros(3, 5)), "same shape"),
        (dict(regime=torch.full((3, 4), 4)), "integer indices into the 4 regimes"),
        (dict(regime=torch.zeros(3, 4)), "integer indices"),
        (dict(x_values=torch.linspace(0, 1, 4)), "positive"),
        (dict(y_values=torch.logspace(0, 1, 5)), r"shape \(3,\)"),
        (dict(panel_titles=["a", "b"]), "2 titles for 1 panels"),
        (dict(hover={"h": torch.zeros(2, 2)}), "hover value 'h'"),
        (dict(regimes=("dropped", "mystery", "antipodal", "same sign")), "no colour for regime 'mystery'"),
        (dict(norm_min=1.0, norm_max=0.5), "norm_max must exceed norm_min"),
    ],
)
def test_bad_input_is_named(change, message):
    regime, norm = grid()
    args = dict(
        regime=regime, norm=norm, x_values=torch.logspace(-1, 1, 4), y_values=torch.logspace(-2, 0, 3), regimes=REGIMES
    )
    args.update(change)
    with pytest.raises(ValueError, match=message):
        plot_regime_diagram(**args)
