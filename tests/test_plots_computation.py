"""Chapter 6's geometry and error figures: the right traces and values, a height but no width, inputs
untouched, clear errors."""

import plotly.graph_objects as go
import pytest
import torch

from utils.plots import plot_cosine_distribution, plot_error_parts, plot_frame_spectra, plot_weight_heatmaps


def _untouched(fn, *args, **kwargs):
    tensors = [a for arg in args for a in (arg.values() if isinstance(arg, dict) else [arg])]
    copies = [t.clone() for t in tensors]
    fig = fn(*args, **kwargs)
    assert all(torch.equal(a, b) for a, b in zip(copies, tensors))
    assert isinstance(fig, go.Figure) and fig.layout.height and fig.layout.width is None
    return fig


def test_weight_heatmaps_show_W_in_and_W_out_transposed_on_one_scale():
    g = torch.Generator().manual_seed(0)
    W_in, W_out = torch.randn(3, 7, generator=g), torch.randn(7, 3, generator=g) * 2
    fig = _untouched(plot_weight_heatmaps, W_in, W_out)
    top, bottom = fig.data
    assert torch.allclose(torch.tensor(top.z, dtype=torch.float64), W_in.double(), atol=1e-3)
    assert torch.allclose(torch.tensor(bottom.z, dtype=torch.float64), W_out.T.double(), atol=1e-3)
    limit = max(W_in.abs().max(), W_out.abs().max()).item()
    assert top.zmax == pytest.approx(limit) and bottom.zmin == pytest.approx(-limit)
    with pytest.raises(ValueError, match="W_out must have shape \\(feats, d_hidden\\) = \\(7, 3\\)"):
        plot_weight_heatmaps(W_in, W_out.T)


def test_cosine_distribution_is_a_density_with_its_mean_marked():
    trained = torch.tensor([0.1, 0.2, 0.2, 0.3])
    random = torch.tensor([-0.5, 0.5])
    fig = _untouched(plot_cosine_distribution, {"trained": trained, "random": random}, bins=10)
    for bars in fig.data[:2]:
        density = torch.tensor(bars.y)
        assert (density * 0.2).sum().item() == pytest.approx(1.0)  # bins of width 2/10
    lines = [shape.x0 for shape in fig.layout.shapes]
    assert lines == pytest.approx([0.2, 0.0])
    with pytest.raises(ValueError, match="at least one"):
        plot_cosine_distribution({})


def test_frame_spectra_against_the_random_band():
    random = torch.tensor([[5.0, 3, 2], [7, 2, 1], [6, 3, 1]])
    fig = _untouched(plot_frame_spectra, {"trained": torch.tensor([9.0, 1, 0])}, random)
    band, mean, trained = fig.data
    assert list(mean.y) == pytest.approx(random.mean(dim=0).tolist())
    assert list(trained.y) == [9.0, 1.0, 0.0]
    assert max(band.y) == pytest.approx(random[:, 0].double().quantile(0.99).item())
    with pytest.raises(ValueError, match="needs 3 eigenvalues"):
        plot_frame_spectra({"trained": torch.ones(4)}, random)


def test_error_parts_stack_in_order_with_features_sorted_by_total():
    parts = {"a": torch.tensor([3.0, 1.0, 2.0]), "b": torch.tensor([0.0, 1.0, 5.0])}
    fig = _untouched(plot_error_parts, parts)
    assert fig.layout.barmode == "relative"
    first, second = fig.data
    assert list(first.customdata) == [1, 0, 2]  # totals 3, 2, 7 -> order 1, 0, 2
    assert list(first.y) == [1.0, 3.0, 2.0] and list(second.y) == [1.0, 0.0, 5.0]
    with pytest.raises(ValueError, match="same number of features"):
        plot_error_parts({"a": torch.ones(3), "b": torch.ones(4)})
