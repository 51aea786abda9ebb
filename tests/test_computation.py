"""utils.computation: the naive baseline, gains and leaks, the two error measures, the additive and
mean-field errors, the feature geometry, and the model with non-negative input weights."""

import math

import pytest
import torch

from utils import computation
from utils.data import SparseUniform
from utils.models import ReluComputationModel, ToyModelConfig
from utils.train import optimize


def _model_with(W_in, W_out, feature_probability=0.05, loss_power=2.0):
    n_inst, d_hidden, n_features = W_in.shape
    model = ReluComputationModel(
        ToyModelConfig(n_inst, n_features, d_hidden),
        feature_probability=feature_probability,
        loss_power=loss_power,
        seed=0,
        device="cpu",
    )
    with torch.no_grad():
        model.W_in.copy_(W_in)
        model.W_out.copy_(W_out)
    return model


def _random_pair(seed=0, n_inst=2, d_hidden=4, n_features=7):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n_inst, d_hidden, n_features, generator=g), torch.randn(
        n_inst, n_features, d_hidden, generator=g
    ) * 0.5


def test_naive_solution_is_exact_on_its_features_and_ignores_the_rest():
    W_in, W_out = computation.naive_weights(10, 4)
    assert W_in.shape == (1, 4, 10) and W_out.shape == (1, 10, 4)
    model = _model_with(W_in, W_out, feature_probability=0.3)
    measures = computation.error_measures(model, n_samples=60_000, generator=torch.Generator().manual_seed(0))
    errors = measures["per_active"]
    assert errors[0, :4].abs().max() < 1e-12
    # an ignored active feature errs by ReLU(x)², mean 1/6, standard deviation about 0.2 / √18,000
    assert (errors[0, 4:] - 1 / 6).abs().max() < 0.01
    # the naive solution writes nothing into inactive outputs
    assert measures["on_inactive"].abs().max() == 0
    assert measures["full"].item() == pytest.approx(computation.naive_error(10, 4, feature_probability=0.3), rel=0.02)
    assert computation.naive_error(100, 10) == pytest.approx(0.9 / 6)
    assert computation.naive_error(100, 10, power=4) == pytest.approx(0.9 / 10)
    assert computation.naive_error(100, 10, feature_probability=0.02) == pytest.approx(0.02 * 0.9 / 6)
    with pytest.raises(ValueError, match="n_neurons <= n_features"):
        computation.naive_weights(3, 5)
    with pytest.raises(ValueError, match="power must be one of"):
        computation.naive_error(10, 2, power=3)
    with pytest.raises(ValueError, match="feature_probability must lie in \\[0, 1\\]"):
        computation.naive_error(10, 2, feature_probability=1.5)


def test_full_error_is_the_training_objective_and_splits_by_activity():
    W_in, W_out = _random_pair(seed=3)
    model = _model_with(W_in, W_out, feature_probability=0.2, loss_power=4.0)
    with torch.no_grad():
        model.importance.copy_(torch.linspace(0.5, 2.0, 7).expand(2, 7))
    measures = computation.error_measures(
        model, power=4, n_samples=5000, chunk=5000, generator=torch.Generator().manual_seed(1)
    )
    # the same sample: one chunk drawn from the same law with the same seed
    x = SparseUniform(model.feature_probability, -1.0, 1.0).sample(5000, torch.Generator().manual_seed(1))
    with torch.no_grad():
        objective = model.loss_per_instance(model(x), x)
    assert torch.allclose(measures["full"], objective, rtol=1e-5)
    active = (x != 0).double().mean(dim=0)
    assert torch.allclose(measures["on_active"].double(), measures["per_active"].double() * active, rtol=1e-5)
    weighted = (model.importance * (measures["on_active"] + measures["on_inactive"])).mean(dim=1)
    assert torch.allclose(weighted, measures["full"], rtol=1e-5)
    # random weights write into inactive outputs: the per-active measure misses that part
    assert (measures["on_inactive"] > 0).all()


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


def test_two_measures_by_hand():
    # one instance, two features, three samples: feature 0 active in samples 0 and 1, feature 1 never
    x = torch.tensor([[[0.5, 0.0]], [[-0.5, 0.0]], [[0.0, 0.0]]])
    y = torch.tensor([[[0.25, 0.1]], [[0.1, 0.0]], [[0.0, -0.2]]])
    full, per_active = computation.two_measures(y, x, power=2)
    errors = torch.tensor([[0.0625, 0.01], [0.01, 0.0], [0.0, 0.04]])  # (y - ReLU(x))²
    assert full.tolist() == pytest.approx([errors.mean().item()])
    assert per_active[0].tolist() == pytest.approx([(0.0625 + 0.01) / 2, 0.0])
    with pytest.raises(ValueError, match="same shape \\(batch, inst, feats\\)"):
        computation.two_measures(y[:, 0], x[:, 0])


def test_isolated_error_is_what_a_lone_feature_costs():
    # features with neurons of their own (gains 0.5, 1, 0.25, 2; two ignored) never interfere
    W_in, W_out = computation.naive_weights(6, 4)
    W_out = W_out * torch.tensor([0.5, 1.0, 0.25, 2.0])
    model = _model_with(W_in, W_out, feature_probability=0.3)
    sampled = computation.error_measures(model, n_samples=200_000, generator=torch.Generator().manual_seed(0))[
        "per_active"
    ]
    expected = torch.tensor([[0.25 / 6, 0.0, 0.5625 / 6, 1 / 6, 1 / 6, 1 / 6]])
    assert torch.allclose(computation.isolated_error(W_in, W_out), expected)
    # 60,000 active samples per feature: the sampled error is within 3% of the exact one
    assert ((sampled - expected).abs() <= 0.03 * expected).all()


def _one_neuron_per_read(seed=0, n_features=5, n_inst=2):
    """Every neuron reads exactly one feature (two per feature, with opposite signs): the network is
    then exactly a sum of one response per active feature, whatever W_out is."""
    g = torch.Generator().manual_seed(seed)
    W_in = torch.zeros(n_inst, 2 * n_features, n_features)
    for i in range(n_features):
        W_in[:, 2 * i, i] = torch.rand(n_inst, generator=g) + 0.2
        W_in[:, 2 * i + 1, i] = -(torch.rand(n_inst, generator=g) + 0.2)
    return W_in, torch.randn(n_inst, n_features, 2 * n_features, generator=g) * 0.5


@pytest.mark.parametrize("power", [2, 4])
def test_additive_error_is_exact_when_responses_add(power):
    W_in, W_out = _one_neuron_per_read()
    model = _model_with(W_in, W_out, feature_probability=0.3, loss_power=float(power))
    sampled = computation.error_measures(
        model, power=power, n_samples=50_000, generator=torch.Generator().manual_seed(2)
    )
    exact = computation.additive_error(W_in, W_out, 0.3, power)
    assert exact.shape == (2, 5)
    # 50,000 samples: over sample seeds 0-5 the largest relative deviation was 2.6% (L2) and 3.5% (L4)
    deviation = ((sampled["on_active"] + sampled["on_inactive"]) / exact - 1).abs().max()
    assert deviation < 0.06
    # a network whose neurons read several features is not additive: there the formula is off by 39-59%
    W_mixed, W_out_mixed = _random_pair(seed=4)
    mixed = _model_with(W_mixed, W_out_mixed, feature_probability=0.3, loss_power=float(power))
    sampled = computation.error_measures(
        mixed, power=power, n_samples=50_000, generator=torch.Generator().manual_seed(2)
    )
    deviation = (
        (
            (sampled["on_active"] + sampled["on_inactive"])
            / computation.additive_error(W_mixed, W_out_mixed, 0.3, power)
            - 1
        )
        .abs()
        .max()
    )
    assert deviation > 0.2
    with pytest.raises(ValueError, match="power must be 2 or 4"):
        computation.additive_error(W_in, W_out, 0.3, 3)


def test_mean_field_gain_without_and_with_interference():
    # no interference, no leak: a feature alone wants gain 1
    W_in, W_out = computation.naive_weights(4, 4)
    for power in (2, 4):
        gain, objective = computation.mean_field_gain(
            W_in, W_out * 0.5, 0.1, power, gains=torch.linspace(0.5, 1.5, 101)
        )
        assert gain.item() == pytest.approx(1.0, abs=1e-6) and objective.shape == (1, 101)
    # every output receives c·x from every other positive input (one shared neuron, no leak):
    # under L2 the best common gain is E[y t] / E[y²] with y = x_j⁺ + c Σ_{i≠j} x_i⁺ and t = x_j⁺
    n, p, c = 6, 0.2, 0.3
    W_in = torch.cat([torch.eye(n), torch.ones(1, n)])[None]  # neuron n reads every feature
    W_out = (
        torch.cat([torch.eye(n), torch.full((n, 1), c)], dim=1)[None]
        - c * torch.cat([torch.eye(n), torch.zeros(n, 1)], dim=1)[None]
    )
    assert torch.allclose(computation.cross_gains(W_in, W_out), torch.eye(n) + c * (1 - torch.eye(n)))
    mean_x, mean_x2 = p / 4, p / 6  # E[x⁺], E[(x⁺)²]
    signal = mean_x2 + (n - 1) * c * mean_x * mean_x
    power2 = mean_x2 + (n - 1) * c**2 * mean_x2 + (n - 1) * (n - 2) * c**2 * mean_x**2 + 2 * (n - 1) * c * mean_x**2
    expected = signal / power2
    gain, objective = computation.mean_field_gain(W_in, W_out, p, 2, gains=torch.linspace(0.001, 1.5, 15_000))
    assert gain.item() == pytest.approx(expected, abs=2e-4)
    # homogeneous couplings: the mean-field objective at gain g is the additive error of the scaled model
    index = 4000
    g = torch.linspace(0.001, 1.5, 15_000, dtype=torch.float64)[index].item()
    assert objective[0, index].item() == pytest.approx(
        computation.additive_error(W_in, g * W_out, p, 2).mean().item(), rel=1e-4
    )
    with pytest.raises(ValueError, match="positive mean gain"):
        computation.mean_field_gain(W_in, -W_out, p, 2)


def test_frame_spectrum_and_the_common_direction():
    # two orthonormal bases of R^4: a tight frame, every eigenvalue 8 / 4 = 2
    q = torch.linalg.qr(torch.randn(4, 4, generator=torch.Generator().manual_seed(0))).Q
    tight = torch.cat([torch.eye(4), q], dim=1)[None]
    assert torch.allclose(computation.frame_spectrum(3 * tight), torch.full((1, 4), 2.0), atol=1e-5)
    # independent random directions: the eigenvalues sum to n, and the largest exceeds n/d
    spectra = computation.random_frame_spectra(100, 10, n_frames=200, generator=torch.Generator().manual_seed(0))
    assert spectra.shape == (200, 10) and torch.allclose(spectra.sum(dim=1), torch.full((200,), 100.0), rtol=1e-4)
    assert (spectra[:, 0] > 10).all() and (spectra.diff(dim=1) <= 1e-5).all()
    # features = a shared direction v plus independent noise: v is found, with the positive sign
    g = torch.Generator().manual_seed(1)
    v = torch.randn(10, generator=g)
    v = v / v.norm()
    W = 0.6 * v[None, :, None] + 0.3 * torch.randn(2, 10, 50, generator=g)
    found, projections = computation.common_direction(W)
    assert (found @ v).min() > 0.98 and (projections > 0).float().mean() > 0.95
    assert computation.mean_cosine(W).min() > 0.2  # 0.36 / (0.36 + 10 · 0.09) = 0.29 expected
    assert (
        computation.mean_cosine(torch.randn(20, 10, 100, generator=g)).abs().max() < 0.02
    )  # about √(2/10)/100 = 0.0045 each
    flipped, _ = computation.common_direction(-W)  # the sign follows the features, not the eigensolver
    assert torch.allclose(flipped, -found, atol=1e-5)


def test_weakest_readout_and_the_cross_gains_through_a_direction():
    q = torch.linalg.qr(torch.randn(5, 5, generator=torch.Generator().manual_seed(0))).Q
    W_out = (
        (torch.randn(1, 12, 5, generator=torch.Generator().manual_seed(1)) @ q)
        * torch.tensor([3.0, 3, 3, 3, 0.1])
        @ q.T
    )
    direction, singular = computation.weakest_readout(W_out)
    assert singular.shape == (1, 5) and (singular.diff(dim=1) <= 0).all()
    assert abs(direction[0] @ q[:, 4]).item() > 0.99
    # the parts of G through the vectors of an orthonormal basis add up to G
    W_in, W_out = _random_pair(seed=5, d_hidden=5)
    parts = sum(computation.cross_gains_through(W_in, W_out, q[:, b].expand(2, 5)) for b in range(5))
    assert torch.allclose(parts, computation.cross_gains(W_in, W_out), atol=1e-5)


def test_cosine_statistics():
    assert computation.random_abs_cosine(2) == pytest.approx(2 / math.pi)
    assert computation.random_abs_cosine(3) == pytest.approx(0.5)
    assert computation.random_abs_cosine(10) == pytest.approx(0.2587, abs=1e-4)
    random_W = torch.randn(20, 10, 100, generator=torch.Generator().manual_seed(0))
    assert computation.mean_abs_cosine(random_W).mean().item() == pytest.approx(
        computation.random_abs_cosine(10), abs=0.005
    )
    assert computation.mean_abs_cosine(torch.eye(5)[None]).item() == 0.0


def test_non_negative_inputs_are_kept_through_training_and_never_leak():
    model = computation.NonNegativeInputModel(
        ToyModelConfig(2, 20, 4), feature_probability=0.1, loss_power=4.0, seed=0, device="cpu"
    )
    assert (model.W_in < 0).any()  # the Xavier start has negative weights
    optimize(model, steps=50, batch_size=256, lr=1e-2, progress=False)
    model.project()
    assert (model.W_in >= 0).all() and (model.W_in > 0).any()
    _, leak = computation.gains_and_leaks(model.W_in, model.W_out)
    assert leak.abs().max() == 0
    # trained with the autograd path instead, nothing projects: the weights go negative
    free = computation.NonNegativeInputModel(
        ToyModelConfig(2, 20, 4), feature_probability=0.1, loss_power=4.0, seed=0, device="cpu"
    )
    optimize(free, steps=50, batch_size=256, lr=1e-2, progress=False, fast=False)
    assert (free.W_in < 0).any()


def test_bad_shapes_are_explained():
    W_in, W_out = _random_pair()
    with pytest.raises(ValueError, match="W_out must have shape \\(inst, feats, d_hidden\\) = \\(2, 7, 4\\)"):
        computation.gains_and_leaks(W_in, W_out.transpose(1, 2))
    with pytest.raises(ValueError, match="W_in must be a tensor with 3 dimensions"):
        computation.cross_gains(W_in[0], W_out)
    with pytest.raises(ValueError, match="square matrices"):
        computation.off_diagonal(torch.zeros(2, 3, 4))
