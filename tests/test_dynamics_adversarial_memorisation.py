"""Chapter 8's library: recording weights during training, learning times, the exact interference attack,
vulnerability, tiled data sets and the storage ratio; and its figures."""


import math

import plotly.graph_objects as go
import pytest
import torch

from utils import adversarial, dynamics, memorisation, metrics, plots
from utils.models import ToyModel, ToyModelConfig
from utils.train import optimize

# --- dynamics --------------------------------------------------------------------------------------


def test_log_spaced_steps_are_dense_early_and_end_at_the_last_step():
    steps = dynamics.log_spaced_steps(1000, 200)
    assert steps[:10] == list(range(10))
    assert steps[-1] == 999 and steps == sorted(set(steps))
    assert steps[-1] - steps[-2] > 10  # sparse late
    with pytest.raises(ValueError, match="steps must be a positive integer"):
        dynamics.log_spaced_steps(0, 10)


def test_weight_recorder_keeps_the_weights_of_the_requested_steps():
    model = ToyModel(ToyModelConfig(2, 5, 2), feature_probability=0.3, seed=0)
    recorder = dynamics.WeightRecorder([0, 3, 9])
    with pytest.raises(ValueError, match="nothing recorded yet"):
        _ = recorder.weights
    optimize(model, steps=10, batch_size=64, progress=False, callback=recorder)
    assert recorder.steps.tolist() == [0, 3, 9]
    assert recorder.weights.shape == (3, 2, 2, 5)
    assert torch.equal(recorder.weights[-1], model.W.detach())
    assert not torch.equal(recorder.weights[0], recorder.weights[1])  # copies, not views of W
    with pytest.raises(ValueError, match="non-empty list of steps"):
        dynamics.WeightRecorder([])


def test_learning_times_by_hand():
    norms = torch.tensor([[0.1, 0.6, 0.0], [0.5, 0.7, 0.0], [0.9, 0.2, 0.0]])[:, None, :]  # (3 records, 1, 3)
    times = dynamics.learning_times(norms, torch.tensor([0, 10, 100]), 0.5)
    assert times.tolist() == [[100, 0, -1]]  # 0.5 is not above 0.5; the first crossing counts; never is -1
    assert times.dtype == torch.int64
    with pytest.raises(ValueError, match=r"steps must have shape \(n_log,\)"):
        dynamics.learning_times(norms, torch.tensor([0, 1]), 0.5)
    with pytest.raises(ValueError, match=r"norms must have shape \(n_log, inst, feats\)"):
        dynamics.learning_times(norms[0], torch.tensor([0]), 0.5)


def test_rank_correlation():
    a = torch.tensor([1.0, 2.0, 3.0, 4.0])
    assert dynamics.rank_correlation(a, a * 10) == pytest.approx(1.0)
    assert dynamics.rank_correlation(a, -a) == pytest.approx(-1.0)
    assert dynamics.rank_correlation(a, torch.tensor([2.0, 1.0, 3.0, 4.0])) == pytest.approx(0.8)
    with pytest.raises(ValueError, match="same length >= 3"):
        dynamics.rank_correlation(a, a[:3])


# --- adversarial -----------------------------------------------------------------------------------


def random_weights(seed=0, shape=(3, 4, 9)):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def test_interference_attack_is_the_worst_perturbation_of_the_other_features():
    W = random_weights()
    eps = 0.3
    attack = adversarial.interference_attack(W, 2, eps)
    assert torch.allclose(attack.norm(dim=1), torch.full((3,), eps))
    assert (attack[:, 2] == 0).all()
    best = adversarial.readout_shift(W, attack, 2)
    row = (W.transpose(1, 2) @ W)[:, 2].clone()
    row[:, 2] = 0
    assert torch.allclose(best, -eps * row.norm(dim=1), atol=1e-6)
    others = torch.randn(5000, 3, 9, generator=torch.Generator().manual_seed(1))
    others[..., 2] = 0
    others = eps * others / others.norm(dim=-1, keepdim=True)
    assert (adversarial.readout_shift(W, others, 2) >= best - 1e-6).all()


def test_no_superposition_no_attack():
    W = torch.zeros(1, 3, 5)
    W[0, 0, 0], W[0, 1, 1], W[0, 2, 2] = 1.0, 1.0, 1.0  # three orthogonal features, two dropped
    assert torch.equal(adversarial.interference_attack(W, 0, 0.5), torch.zeros(1, 5))
    V = adversarial.vulnerability(W)
    assert torch.equal(V[0, :3], torch.zeros(3)) and V[0, 3:].isnan().all()


def test_vulnerability_is_sqrt_of_one_over_dimensionality_minus_one():
    W = random_weights(2)
    V = adversarial.vulnerability(W, min_norm=0.0)
    assert torch.allclose(V, (1 / metrics.dimensionality(W) - 1).sqrt(), atol=1e-5)
    pair = torch.tensor([[[1.0, -1.0]]])  # an antipodal pair: D = 1/2, V = 1
    assert torch.allclose(adversarial.vulnerability(pair), torch.ones(1, 2))


def test_vulnerability_from_dimensionality_matches_the_weights():
    W = torch.randn(3, 4, 10, generator=torch.Generator().manual_seed(2))
    D = metrics.dimensionality(W).clamp(max=1.0)
    expected = adversarial.vulnerability(W, 0.0)
    assert torch.allclose(adversarial.vulnerability_from_dimensionality(D), expected, atol=1e-4)
    assert adversarial.vulnerability_from_dimensionality(torch.tensor([1.0, 0.5])).tolist() == [0.0, 1.0]
    with pytest.raises(ValueError, match=r"dimensionalities in \(0, 1\]"):
        adversarial.vulnerability_from_dimensionality(torch.tensor([0.0, 0.5]))


def test_train_sgd_is_plain_sgd_and_records_copies():
    def model():
        return ToyModel(ToyModelConfig(2, 5, 2), feature_probability=0.2, device="cpu", seed=1)

    trained = model()
    steps, weights, losses = dynamics.train_sgd(trained, 5, 0.1, 32, 2, torch.Generator().manual_seed(0))
    assert steps.tolist() == [0, 2, 4] and weights.shape == (3, 2, 2, 5) and losses.shape == (5, 2)
    assert torch.equal(weights[-1], trained.W.detach()) and not torch.equal(weights[0], weights[-1])
    by_hand, generator = model(), torch.Generator().manual_seed(0)  # one update written out
    batch = by_hand.generate_batch(32, generator)
    by_hand.loss_per_instance(by_hand(batch), batch).sum().backward()
    with torch.no_grad():
        for parameter in by_hand.parameters():
            parameter -= 0.1 * parameter.grad
    assert torch.allclose(weights[0], by_hand.W.detach(), atol=1e-6)
    with pytest.raises(ValueError, match="record_every"):
        dynamics.train_sgd(model(), 5, 0.1, 32, 0)


def test_attack_rejects_bad_arguments():
    with pytest.raises(ValueError, match=r"feature must be in \[0, 9\)"):
        adversarial.interference_attack(random_weights(), 9, 0.1)
    with pytest.raises(ValueError, match="eps must be >= 0"):
        adversarial.interference_attack(random_weights(), 0, -0.1)
    with pytest.raises(ValueError, match=r"W must have shape \(inst, d_hidden, feats\)"):
        adversarial.interference_attack(torch.ones(3, 4), 0, 0.1)


# --- memorisation ----------------------------------------------------------------------------------


def test_tiled_datasets_repeat_each_data_set_evenly():
    tiled, datasets = memorisation.tiled_datasets([2, 5, 10], 7, 0.3, torch.Generator().manual_seed(0))
    assert tiled.shape == (10, 3, 7)
    assert [d.shape for d in datasets] == [(2, 7), (5, 7), (10, 7)]
    for k, points in enumerate(datasets):
        assert torch.equal(tiled[:, k], points.repeat(10 // len(points), 1))
        assert torch.allclose(tiled[:, k].pow(2).mean(), points.pow(2).mean())  # a mean over rows is one over points
    with pytest.raises(ValueError, match="every size must divide the largest"):
        memorisation.tiled_datasets([3, 10], 7, 0.3)


def test_tiled_datasets_follow_the_sparse_law():
    _, (points,) = memorisation.tiled_datasets([20_000], 5, 0.2, torch.Generator().manual_seed(3))
    active = points != 0
    assert abs(active.float().mean().item() - 0.2) < 0.01
    assert abs(points[active].mean().item() - 0.5) < 0.01
    both = (active[:, 0] & active[:, 1]).float().mean().item()
    assert abs(both - 0.04) < 0.005  # features are active independently


def test_storage_ratio_by_hand():
    W = torch.tensor([[[3.0, 0.0], [0.0, 1.0]]])  # feature 0 of length 3, feature 1 of length 1
    x = torch.tensor([[[1.0, 0.0]], [[0.0, 2.0]]])  # (T=2, inst=1, feats=2)
    assert torch.allclose(memorisation.storage_ratio(W, x), torch.tensor([(3.0 + 2.0) / 2 / 3]))
    assert torch.equal(memorisation.hidden_points(W, x[:, 0], 0), torch.tensor([[3.0, 0.0], [0.0, 2.0]]))



def test_point_dimensionality_of_polygons_pairs_and_orthogonal_points():
    angles = 2 * math.pi * torch.arange(5, dtype=torch.float64) / 5
    pentagon = 1.7 * torch.stack([angles.cos(), angles.sin()], dim=1)  # (T=5, d=2), the length does not matter
    assert torch.allclose(memorisation.point_dimensionality(pentagon), torch.full((5,), 0.4, dtype=torch.float64))
    pair = torch.tensor([[2.0, 1.0], [-2.0, -1.0]])
    assert torch.allclose(memorisation.point_dimensionality(pair), torch.tensor([0.5, 0.5]))
    orthogonal = torch.tensor([[0.5, 0.0, 0.0], [0.0, 3.0, 0.0], [0.0, 0.0, 0.0]])  # the last point is all-zero
    assert torch.allclose(memorisation.point_dimensionality(orthogonal), torch.tensor([1.0, 1.0, 0.0]))
    uneven = torch.tensor([[1.0, 0.0], [1.0, 1.0]])  # D_0 = 1 / (1 + 1), D_1 = 2 / (2 + 1/2)
    assert torch.allclose(memorisation.point_dimensionality(uneven), torch.tensor([0.5, 0.8]))
    with pytest.raises(ValueError, match="hidden must be"):
        memorisation.point_dimensionality(torch.ones(1, 3, 2))

# --- figures ---------------------------------------------------------------------------------------


def test_figures_draw_what_they_are_given():
    fig = plots.plot_feature_trajectories(torch.arange(4), torch.rand(4, 6), "‖W_i‖")
    assert isinstance(fig, go.Figure) and len(fig.data) == 6 and fig.layout.height and fig.layout.width is None
    assert list(fig.data[0].x) == [1, 2, 3, 4]  # steps shown from 1 on the log axis
    fig = plots.plot_attack_terms({"random": torch.tensor([0.1, -0.2]), "attack": torch.tensor([-0.3, -0.1])})
    assert len(fig.data) == 2 and "sum -0.400" in fig.data[1].name
    W = random_weights(shape=(2, 2, 6))
    fig = plots.plot_hidden_points([torch.rand(3, 2), torch.rand(5, 2)], W, ["a", "b"])
    assert len(fig.data) == 4 and fig.layout.height and fig.layout.width is None
    assert len(fig.data[1].x) == 3 and len(fig.data[3].x) == 5


def test_figures_leave_their_inputs_alone_and_reject_bad_shapes():
    values = torch.rand(4, 3)
    before = values.clone()
    plots.plot_feature_trajectories(torch.arange(4), values, "D_i")
    assert torch.equal(values, before)
    with pytest.raises(ValueError, match=r"values must have shape \(n_log, feats\) with n_log = 5"):
        plots.plot_feature_trajectories(torch.arange(5), values, "D_i")
    with pytest.raises(ValueError, match="one points tensor and title per panel"):
        plots.plot_hidden_points([torch.rand(3, 2)], random_weights(shape=(2, 2, 6)), ["a"])
    with pytest.raises(ValueError, match=r"each points tensor must have shape \(T, 2\)"):
        plots.plot_hidden_points([torch.rand(3, 3)], random_weights(shape=(1, 2, 6)), ["a"])
    with pytest.raises(ValueError, match="at least one named perturbation"):
        plots.plot_attack_terms({})
