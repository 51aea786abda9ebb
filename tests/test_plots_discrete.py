"""The discrete per-feature neuron plot: shapes checked, inputs untouched, one bar trace per feature per panel."""

import plotly.graph_objects as go
import pytest
import torch

from utils.plots import plot_features_in_Nd_discrete
from utils.plots.discrete import feature_colours


def weights(n_inst=3, d_hidden=4, n_features=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n_inst, d_hidden, n_features, generator=g), torch.randn(n_inst, n_features, d_hidden, generator=g)


def bars_by_panel(fig):
    """Bar traces per panel, keyed by (row, column) of the subplot grid."""
    where = {}
    for row, cells in enumerate(fig._grid_ref, 1):
        for col, cell in enumerate(cells, 1):
            if cell:
                where[cell[0].trace_kwargs["xaxis"], cell[0].trace_kwargs["yaxis"]] = (row, col)
    panels = {}
    for trace in fig.data:
        assert isinstance(trace, go.Bar)
        panels.setdefault(where[trace.xaxis, trace.yaxis], []).append(trace)
    return panels


@pytest.mark.parametrize("n_cols, cells", [(None, [(1, 1), (1, 2), (1, 3)]), (2, [(1, 1), (1, 2), (3, 1)])])
def test_one_bar_trace_per_feature_in_every_panel_with_the_right_weights(n_cols, cells):
    W1, W2 = weights()
    names = [f"I = {0.8**i:.2f}" for i in range(5)]
    fig = plot_features_in_Nd_discrete(W1, W2, title="t", legend_names=names, n_cols=n_cols)
    panels = bars_by_panel(fig)
    assert len(panels) == 2 * 3  # W1 above W2, for three instances
    for traces in panels.values():
        assert [t.name for t in traces] == names
    for k, (row, col) in enumerate(cells):  # instance k: W1 in (row, col), W2 just below
        for i in range(5):
            assert torch.allclose(torch.tensor(panels[row, col][i].y, dtype=torch.float32), W1[k, :, i])
            assert torch.allclose(torch.tensor(panels[row + 1, col][i].y, dtype=torch.float32), W2[k, i, :])
            assert list(panels[row, col][i].x) == [0, 1, 2, 3]
    assert fig.layout.barmode == "relative"  # positive weights stack up, negative down
    assert fig.layout.meta["title"] == "t"


def test_colours_are_fixed_per_feature_and_the_legend_lists_each_feature_once():
    W1, W2 = weights()
    fig = plot_features_in_Nd_discrete(W1, W2)
    colours = feature_colours(5)
    assert len(set(colours)) == 5
    for trace in fig.data:
        i = int(trace.name.split()[-1])
        assert trace.marker.color == colours[i]
        assert trace.legendgroup == f"feature {i}"
    assert [t.name for t in fig.data if t.showlegend] == [f"feature {i}" for i in range(5)]
    assert "neuron" in fig.data[0].hovertemplate and "W1" in fig.data[0].hovertemplate
    assert "W2" in fig.data[-1].hovertemplate


def test_many_features_get_distinct_colours():
    assert len(set(feature_colours(58))) == 58
    assert len(set(feature_colours(100))) == 100


def test_inputs_are_not_mutated_and_parameters_with_grad_work():
    W1, W2 = weights()
    W1, W2 = torch.nn.Parameter(W1), torch.nn.Parameter(W2)
    before = W1.detach().clone(), W2.detach().clone()
    fig = plot_features_in_Nd_discrete(W1, W2)
    fig.data[0].y = [9.0] * 4
    assert torch.equal(W1.detach(), before[0]) and torch.equal(W2.detach(), before[1])


@pytest.mark.parametrize(
    "W1_shape, W2_shape, match",
    [
        ((3, 4), (3, 5, 4), "W1 must be a tensor of shape"),
        ((3, 4, 5), (3, 4, 5), r"W2 must have shape \(inst, feats, d_hidden\) = \(3, 5, 4\)"),
        ((3, 4, 5), (2, 5, 4), "W2 must have shape"),
    ],
)
def test_bad_shapes_raise(W1_shape, W2_shape, match):
    with pytest.raises(ValueError, match=match):
        plot_features_in_Nd_discrete(torch.zeros(W1_shape), torch.zeros(W2_shape))


def test_bad_names_raise():
    W1, W2 = weights()
    with pytest.raises(ValueError, match="one name per feature"):
        plot_features_in_Nd_discrete(W1, W2, legend_names=["a"])
    with pytest.raises(ValueError, match="one title per instance"):
        plot_features_in_Nd_discrete(W1, W2, subplot_titles=["a"])
    with pytest.raises(ValueError, match="n_cols"):
        plot_features_in_Nd_discrete(W1, W2, n_cols=0)
    # NumPy weights are drawn like tensors (every figure accepts them, utils.plots.inputs)
    assert plot_features_in_Nd_discrete(W1.numpy(), W2).to_json() == plot_features_in_Nd_discrete(W1, W2).to_json()
