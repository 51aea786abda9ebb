"""Chapter 5's figures: the right traces and values, a height but no width, inputs untouched, clear errors."""

import plotly.graph_objects as go
import pytest
import torch

from utils import metrics
from utils.plots import (
    neuron_bar_traces,
    plot_error_decomposition,
    plot_feature_errors,
    plot_features_in_Nd,
    plot_matrices,
    plot_response_curves,
)


def _untouched(fn, *tensors):
    copies = [t.clone() for t in tensors]
    fig = fn(*tensors)
    assert all(torch.equal(a, b) for a, b in zip(copies, tensors))
    assert isinstance(fig, go.Figure) and fig.layout.height and fig.layout.width is None
    return fig


def test_neuron_bars_stack_each_features_weights_per_neuron():
    W = torch.randn(4, 6, generator=torch.Generator().manual_seed(0))
    W[1, 3] = 1e-4  # under 1% of the largest weight: no segment of its own
    features, others = neuron_bar_traces(W, torch.linspace(0, 1, 6), top=2)
    assert isinstance(features, go.Bar) and isinstance(others, go.Bar)
    x, y, base = (torch.tensor(v, dtype=torch.float64) for v in (features.x, features.y, features.base))
    feature = torch.tensor([c[0] for c in features.customdata]).long()
    assert torch.allclose(y, W[x.long(), feature].double(), atol=1e-3)
    assert torch.allclose(torch.tensor(features.marker.color, dtype=torch.float64), feature.double() / 5, atol=1e-3)
    for h in range(4):
        for sign in (1, -1):  # the two largest weights of each side, then one grey remainder
            side = (sign * W[h]).clamp(min=0)
            column = (x == h) & (sign * y > 0)
            expected = set(side.topk(2).indices[side.topk(2).values > 0.01 * W.abs().max()].tolist())
            assert set(feature[column].tolist()) == expected
            starts, ends = (sign * base)[column], (sign * (base + y))[column]
            order = starts.argsort()
            starts, ends = starts[order], ends[order]
            assert starts[0] == pytest.approx(0, abs=1e-3) and torch.allclose(starts[1:], ends[:-1], atol=2e-3)
            rest = [(b, v) for n, b, v in zip(others.x, others.base, others.y) if n == h and sign * v > 0]
            top_of_stack = ends[-1].item() + (abs(rest[0][1]) if rest else 0.0)
            assert top_of_stack == pytest.approx(side.sum().item(), abs=3e-3)  # the stack ends at the total
            if rest:
                assert sign * rest[0][0] == pytest.approx(ends[-1].item(), abs=2e-3)
    with pytest.raises(ValueError, match="one value per feature \\(6\\)"):
        neuron_bar_traces(W, torch.zeros(5))
    with pytest.raises(ValueError, match="top must be at least 1"):
        neuron_bar_traces(W, torch.zeros(6), top=0)


def test_features_in_nd_neuron_plot_shows_neurons():
    W = torch.randn(2, 5, 10, generator=torch.Generator().manual_seed(1))
    copy = W.clone()
    fig = plot_features_in_Nd(W, matrix="W", neuron_plot=True)
    assert torch.equal(W, copy)
    bars = [t for t in fig.data if isinstance(t, go.Bar)]
    assert len(bars) == 2 * 2  # per instance: the features' segments and the grey remainders
    interference = metrics.interference(W)
    feature = int(bars[2].customdata[0][0])
    assert bars[2].marker.color[0] == pytest.approx(min(1.0, interference[1, feature].item()), abs=1e-3)
    assert len([t for t in fig.data if isinstance(t, go.Heatmap)]) == 2


def test_feature_errors_sort_by_the_first_model():
    trained, naive = torch.tensor([0.3, 0.1, 0.2]), torch.tensor([0.0, 1 / 6, 1 / 6])
    fig = _untouched(
        lambda a, b: plot_feature_errors({"trained": a, "naive": b}, references={"1/6": 1 / 6}), trained, naive
    )
    assert list(fig.data[0].y) == pytest.approx([0.1, 0.2, 0.3])
    assert list(fig.data[0].customdata) == [1, 2, 0] and list(fig.data[1].y) == pytest.approx([1 / 6, 1 / 6, 0.0])
    with pytest.raises(ValueError, match="the same number of features"):
        plot_feature_errors({"a": trained, "b": torch.zeros(2)})


def test_response_curves_draw_every_feature_and_the_target():
    x = torch.linspace(-1, 1, 5)
    curves = torch.rand(5, 3)
    fig = _untouched(lambda c: plot_response_curves(x, c, gain=0.4), curves)
    assert len(fig.data) == 3 + 2
    assert list(fig.data[3].y) == pytest.approx([0, 0, 0, 0.5, 1])
    assert list(fig.data[4].y) == pytest.approx([0, 0, 0, 0.2, 0.4])
    with pytest.raises(ValueError, match="curves must be \\(n_x, feats\\) with n_x = 5"):
        plot_response_curves(x, torch.rand(4, 3))


def test_matrices_share_one_symmetric_scale():
    A, B = torch.tensor([[1.0, -2.0], [0.5, 0.0]]), torch.tensor([[0.1, 0.2], [0.3, 0.4]])
    fig = _untouched(lambda a, b: plot_matrices({"A": a, "B": b}), A, B)
    assert [t.zmax for t in fig.data] == [2.0, 2.0] and [t.zmin for t in fig.data] == [-2.0, -2.0]
    with pytest.raises(ValueError, match="at least one matrix"):
        plot_matrices({})


def test_error_decomposition_stacks_the_two_parts():
    attenuation, interference = torch.tensor([0.06, 0.05]), torch.tensor([0.01, 0.03])
    fig = _untouched(plot_error_decomposition, attenuation, interference)
    assert fig.layout.barmode == "relative"
    assert list(fig.data[0].y) == pytest.approx([0.06, 0.05]) and list(fig.data[1].customdata) == [0, 1]
    with pytest.raises(ValueError, match="the same shape"):
        plot_error_decomposition(attenuation, torch.zeros(3))
