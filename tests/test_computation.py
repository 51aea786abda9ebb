"""utils.computation: the naive baseline, gains and leaks, errors and their decomposition, cosines."""

import math

import pytest
import torch

from utils import computation
from utils.models import ReluComputationModel, ToyModelConfig


def _model_with(W_in, W_out, feature_probability=0.05, loss_power=2.0):
    n_inst, d_hidden, n_features = W_in.shape
    model = ReluComputationModel(
        ToyModelConfig(n_inst, n_features, d_hidden), feature_probability=feature_probability, loss_power=loss_power, seed=0, device="cpu"
    )
    with torch.no_grad():
        model.W_in.copy_(W_in)
        model.W_out.copy_(W_out)
    return model


def _random_pair(seed=0, n_inst=2, d_hidden=4, n_features=7):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n_inst, d_hidden, n_features, generator=g), torch.randn(n_inst, n_features, d_hidden, generator=g) * 0.5


def test_naive_solution_is_exact_on_its_features_and_ignores_the_rest():
    W_in, W_out = computation.naive_weights(10, 4)
    assert W_in.shape == (1, 4, 10) and W_out.shape == (1, 10, 4)
    model = _model_with(W_in, W_out, feature_probability=0.3)
    errors = computation.per_feature_error(model, n_samples=60_000, generator=torch.Generator().manual_seed(0))
    assert errors[0, :4].abs().max() < 1e-12
    # an ignored active feature errs by ReLU(x)², mean 1/6, standard deviation about 0.2 / √18,000
    assert (errors[0, 4:] - 1 / 6).abs().max() < 0.01
    assert computation.naive_error(100, 10) == pytest.approx(0.9 / 6)
    assert computation.naive_error(100, 10, power=4) == pytest.approx(0.9 / 10)
    with pytest.raises(ValueError, match="n_neurons <= n_features"):
        computation.naive_weights(3, 5)
    with pytest.raises(ValueError, match="power must be one of"):
        computation.naive_error(10, 2, power=3)


def test_gains_and_leaks_match_the_network_run_on_one_feature():
    W_in, W_out = _random_pair()
    x = torch.linspace(-1, 1, 21)
    curves = computation.response_curves(W_in, W_out, x)
    assert curves.shape == (2, 21, 7)
    model = _model_with(W_in, W_out)
    for a in (0, 5, 20):
        for i in (0, 3):
            inputs = torch.zeros(1, 2, 7)
            inputs[0, :, i] = x[a]
            assert torch.allclose(curves[:, a, i], model(inputs)[0, :, i].detach(), atol=1e-5)
    gain, leak = computation.gains_and_leaks(W_in, W_out)
    assert torch.allclose(computation.fitted_gain(x, curves), gain, atol=1e-5)
    assert torch.allclose(curves[:, 0], leak, atol=1e-5)  # the output at x = -1
    G = computation.cross_gains(W_in, W_out)
    assert torch.allclose(G.diagonal(dim1=1, dim2=2), gain)
    negative = torch.einsum("kjh,khi->kji", W_out, torch.relu(-W_in))
    assert torch.allclose(computation.effective_weights(W_in, W_out), G - negative, atol=1e-5)
    assert computation.off_diagonal(G).shape == (2, 42)


def test_isolated_error_is_the_error_of_a_feature_alone():
    W_in, W_out = _random_pair(seed=1)
    x = torch.linspace(-1, 1, 200_001)
    curves = computation.response_curves(W_in[:, :, :3], W_out[:, :3], x)
    numeric = ((curves - torch.relu(x)[None, :, None]) ** 2).mean(dim=1)
    exact = computation.isolated_error(W_in[:, :, :3], W_out[:, :3])
    assert torch.allclose(numeric, exact, rtol=1e-3, atol=1e-6)


def test_error_decomposition_adds_up_and_vanishes_without_interference():
    # features with neurons of their own (gains 0.5, 1, 0.25, 2; two ignored) never interfere
    W_in, W_out = computation.naive_weights(6, 4)
    W_out = W_out * torch.tensor([0.5, 1.0, 0.25, 2.0])
    model = _model_with(W_in, W_out, feature_probability=0.3)
    parts = computation.error_decomposition(model, n_samples=200_000, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(parts["attenuation"] + parts["interference"], parts["total"])
    expected = torch.tensor([[0.25 / 6, 0.0, 0.5625 / 6, 1 / 6, 1 / 6, 1 / 6]])
    assert torch.allclose(parts["attenuation"], expected)
    # 60,000 active samples per feature: the sampled total is within 3% of the exact error
    assert (parts["interference"].abs() <= 0.03 * expected).all()
    W_in, W_out = _random_pair(seed=2)
    model = _model_with(W_in, W_out, feature_probability=0.5)
    parts = computation.error_decomposition(model, n_samples=20_000, generator=torch.Generator().manual_seed(0))
    assert (parts["interference"] > 0).float().mean() > 0.8


def test_best_output_scale_undoes_a_rescaled_read_out():
    W_in, W_out = computation.naive_weights(6, 6)
    for factor, power in ((2.0, 2.0), (0.5, 4.0)):
        model = _model_with(W_in, W_out * factor, feature_probability=0.2, loss_power=power)
        scales = torch.linspace(0.1, 3.0, 59)
        losses = computation.output_scale_losses(model, scales, n_samples=4096, generator=torch.Generator().manual_seed(0))
        assert losses.shape == (59, 1)
        assert computation.best_output_scale(scales, losses).item() == pytest.approx(1 / factor, abs=1e-3)
    with pytest.raises(ValueError, match="n_c = len\\(scales\\) >= 3"):
        computation.best_output_scale(torch.tensor([1.0, 2.0]), torch.zeros(2, 1))


def test_cosine_statistics():
    assert computation.random_abs_cosine(2) == pytest.approx(2 / math.pi)
    assert computation.random_abs_cosine(3) == pytest.approx(0.5)
    assert computation.random_abs_cosine(10) == pytest.approx(0.2587, abs=1e-4)
    random_W = torch.randn(20, 10, 100, generator=torch.Generator().manual_seed(0))
    assert computation.mean_abs_cosine(random_W).mean().item() == pytest.approx(computation.random_abs_cosine(10), abs=0.005)
    assert computation.mean_abs_cosine(torch.eye(5)[None]).item() == 0.0
    assert computation.welch_rms_cosine(100, 10) == pytest.approx(math.sqrt(90 / 990))
    assert computation.welch_rms_cosine(5, 10) == 0.0


def test_bad_shapes_are_explained():
    W_in, W_out = _random_pair()
    with pytest.raises(ValueError, match="W_out must have shape \\(inst, feats, d_hidden\\) = \\(2, 7, 4\\)"):
        computation.gains_and_leaks(W_in, W_out.transpose(1, 2))
    with pytest.raises(ValueError, match="W_in must be a tensor with 3 dimensions"):
        computation.cross_gains(W_in[0], W_out)
    with pytest.raises(ValueError, match="square matrices"):
        computation.off_diagonal(torch.zeros(2, 3, 4))
