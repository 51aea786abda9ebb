"""Shapes, broadcasting, forward passes and losses of the toy models, against hand computation."""

import pytest
import torch

from utils.data import HierarchicalPairs
from utils.models import (
    LinearToyModel,
    NeuronComputationModel,
    NeuronModel,
    ReluComputationModel,
    ToyModel,
    ToyModelConfig,
)
from utils.train import evaluate

CFG = ToyModelConfig(n_inst=3, n_features=4, d_hidden=2)


def test_parameter_shapes_have_instances_first():
    model = ToyModel(CFG, device="cpu")
    assert model.W.shape == (3, 2, 4) and model.b_final.shape == (3, 4)
    computation = NeuronComputationModel(CFG, device="cpu")
    assert computation.W1.shape == (3, 2, 4) and computation.W2.shape == (3, 4, 2)
    mlp = ReluComputationModel(CFG, device="cpu")
    assert mlp.W_in.shape == (3, 2, 4) and mlp.W_out.shape == (3, 4, 2)
    assert [name for name, _ in mlp.named_parameters()] == ["W_in", "W_out"], "no biases"


@pytest.mark.parametrize("value, expected_row", [
    (0.5, [0.5, 0.5, 0.5, 0.5]),
    (torch.tensor([0.1, 0.2, 0.3, 0.4]), [0.1, 0.2, 0.3, 0.4]),
])
def test_feature_probability_broadcasts_over_instances(value, expected_row):
    model = ToyModel(CFG, feature_probability=value, device="cpu")
    assert model.feature_probability.shape == (3, 4)
    assert torch.allclose(model.feature_probability, torch.tensor(expected_row).expand(3, 4))


def test_per_instance_values_broadcast_along_features():
    p = torch.tensor([[1.0], [0.1], [0.01]])
    model = ToyModel(CFG, feature_probability=p, importance=0.9 ** torch.arange(4.0), device="cpu")
    assert torch.allclose(model.feature_probability[:, 3], p[:, 0])
    assert torch.allclose(model.importance[2], 0.9 ** torch.arange(4.0))


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(importance=torch.ones(5)), ValueError,
     r"importance has shape \(5,\), which does not broadcast to \(inst, feats\) = \(3, 4\)"),
    (dict(importance=-1.0), ValueError, "importance must be non-negative"),
    (dict(feature_probability=1.5), ValueError, r"feature_probability must lie in \[0, 1\]"),
    (dict(feature_probability=torch.ones(2, 4)), ValueError, "feature_probability has shape"),
    (dict(importance=float("nan")), ValueError, "importance must be finite"),
    (dict(device="cuda:7"), ValueError, "is not available"),
    (dict(feature_probability=0.5, data=HierarchicalPairs(torch.ones(3), torch.ones(3))), ValueError, "not both"),
])
def test_bad_configuration_is_rejected(kwargs, error, message):
    with pytest.raises(error, match=message):
        ToyModel(CFG, **{"device": "cpu", **kwargs})


def test_config_and_data_law_sizes_are_checked():
    with pytest.raises(ValueError, match="d_hidden must be a positive integer"):
        ToyModelConfig(n_inst=1, n_features=2, d_hidden=0)
    with pytest.raises(ValueError, match=r"the data law makes \(inst, feats\) = \(2, 2\)"):
        ToyModel(ToyModelConfig(3, 2, 1), data=HierarchicalPairs(torch.ones(2), torch.ones(2)), device="cpu")


def test_forward_rejects_wrong_input_shape():
    model = ToyModel(CFG, device="cpu")
    with pytest.raises(ValueError, match=r"expected \(\.\.\., inst, feats\) = \(\.\.\., 3, 4\)"):
        model(torch.zeros(5, 4, 3))


def test_seed_fixes_initial_weights():
    a, b = ToyModel(CFG, seed=7, device="cpu"), ToyModel(CFG, seed=7, device="cpu")
    assert torch.equal(a.W, b.W)
    assert not torch.equal(a.W, ToyModel(CFG, seed=8, device="cpu").W)


def _hand_toy(W, b, x, relu_hidden=False, relu_out=True):
    """Loops over batch and instances: x' = act(Wᵀ act_h(W x) + b)."""
    out = torch.empty_like(x)
    for n in range(x.shape[0]):
        for i in range(x.shape[1]):
            h = W[i] @ x[n, i]
            h = torch.relu(h) if relu_hidden else h
            y = W[i].T @ h + b[i]
            out[n, i] = torch.relu(y) if relu_out else y
    return out


@pytest.mark.parametrize("cls, relu_hidden, relu_out", [
    (ToyModel, False, True),
    (LinearToyModel, False, False),
    (NeuronModel, True, True),
])
def test_tied_models_forward_matches_hand_computation(cls, relu_hidden, relu_out):
    model = cls(CFG, seed=0, device="cpu")
    with torch.no_grad():
        model.b_final.normal_()
    x = torch.rand(5, 3, 4)
    expected = _hand_toy(model.W.detach(), model.b_final.detach(), x, relu_hidden, relu_out)
    assert torch.allclose(model(x), expected, atol=1e-6)


def test_untied_models_forward_matches_hand_computation():
    x = torch.rand(5, 3, 4) * 2 - 1
    model = NeuronComputationModel(CFG, seed=0, device="cpu")
    W1, W2, b = model.W1.detach(), model.W2.detach(), model.b_final.detach()
    expected = torch.stack(
        [torch.stack([torch.relu(W2[i] @ torch.relu(W1[i] @ x[n, i]) + b[i]) for i in range(3)]) for n in range(5)]
    )
    assert torch.allclose(model(x), expected, atol=1e-6)
    mlp = ReluComputationModel(CFG, seed=0, device="cpu")
    W_in, W_out = mlp.W_in.detach(), mlp.W_out.detach()
    expected = torch.stack(
        [torch.stack([W_out[i] @ torch.relu(W_in[i] @ x[n, i]) for i in range(3)]) for n in range(5)]
    )
    assert torch.allclose(mlp(x), expected, atol=1e-6)


def test_reconstruction_loss_matches_hand_computation():
    importance = torch.tensor([1.0, 0.5, 0.25, 0.0])
    model = ToyModel(CFG, importance=importance, device="cpu")
    out, batch = torch.rand(6, 3, 4), torch.rand(6, 3, 4)
    expected = torch.tensor([
        sum(importance[f] * (out[n, i, f] - batch[n, i, f]) ** 2 for n in range(6) for f in range(4)) / 24
        for i in range(3)
    ])
    assert torch.allclose(model.loss_per_instance(out, batch), expected, atol=1e-6)
    assert torch.allclose(model.calculate_loss(out, batch), expected.sum(), atol=1e-6)


def test_computation_targets_and_lp_loss():
    batch = torch.tensor([[[-0.5, 0.25]]])
    out = torch.tensor([[[0.2, 0.0]]])
    abs_model = NeuronComputationModel(ToyModelConfig(1, 2, 1), device="cpu")
    assert torch.allclose(abs_model.loss_per_instance(out, batch), torch.tensor([((0.5 - 0.2) ** 2 + 0.25**2) / 2]))
    l4 = ReluComputationModel(ToyModelConfig(1, 2, 1), loss_power=4, device="cpu")
    assert torch.allclose(l4.loss_per_instance(out, batch), torch.tensor([(0.2**4 + 0.25**4) / 2]))
    with pytest.raises(ValueError, match="loss_power must be >= 1"):
        ReluComputationModel(CFG, loss_power=0.5, device="cpu")


def test_computation_models_draw_signed_values():
    model = NeuronComputationModel(CFG, feature_probability=1.0, device="cpu", seed=1)
    batch = model.generate_batch(2000)
    assert batch.shape == (2000, 3, 4)
    assert batch.min() < -0.9 and batch.max() > 0.9
    assert abs((batch < 0).float().mean().item() - 0.5) < 0.03


def test_model_data_stream_is_reproducible_with_a_seed():
    a = ToyModel(CFG, feature_probability=0.3, seed=5, device="cpu").generate_batch(10)
    b = ToyModel(CFG, feature_probability=0.3, seed=5, device="cpu").generate_batch(10)
    assert torch.equal(a, b)


def test_loss_power_per_instance_matches_separate_models():
    batch = torch.rand(64, 2, 5) * 2 - 1
    out = torch.rand(64, 2, 5)
    both = ReluComputationModel(ToyModelConfig(2, 5, 3), loss_power=torch.tensor([2.0, 4.0]), device="cpu")
    for k, power in enumerate([2, 4]):
        alone = ReluComputationModel(ToyModelConfig(1, 5, 3), loss_power=power, device="cpu")
        expected = alone.loss_per_instance(out[:, k : k + 1], batch[:, k : k + 1])
        assert torch.allclose(both.loss_per_instance(out, batch)[k], expected[0], atol=1e-7)
    three = ReluComputationModel(ToyModelConfig(2, 5, 3), loss_power=3.0, device="cpu")
    assert torch.allclose(three.loss_per_instance(out, batch), ((out - torch.relu(batch)).abs() ** 3).mean(dim=(0, 2)))
    with pytest.raises(ValueError, match="loss_power has shape"):
        ReluComputationModel(ToyModelConfig(2, 5, 3), loss_power=torch.tensor([2.0, 4.0, 4.0]), device="cpu")


def test_n_neurons_switches_off_the_other_neurons_through_training():
    model = ReluComputationModel(
        ToyModelConfig(3, 6, 4), feature_probability=0.5, n_neurons=torch.tensor([1, 2, 4]), seed=0, device="cpu"
    )
    model.optimize(steps=30, batch_size=32, lr=1e-2, progress=False)
    for k, width in enumerate([1, 2, 4]):
        assert (model.W_in[k, width:] == 0).all() and (model.W_out[k, :, width:] == 0).all()
        assert (model.W_in[k, :width] != 0).any()
    assert model.n_neurons.tolist() == [1, 2, 4]
    for bad in (0, 5, 2.5):
        with pytest.raises(ValueError, match="n_neurons must hold whole numbers from 1 to d_hidden = 4"):
            ReluComputationModel(ToyModelConfig(1, 6, 4), n_neurons=bad, device="cpu")


def _autograd_and_hand(model, batch):
    loss = model.loss_per_instance(model(batch), batch)
    loss.sum().backward()
    expected = {name: p.grad.clone() for name, p in model.named_parameters()}
    model.zero_grad()
    hand = model.step_gradients(batch.shape[0], batch=batch)
    return loss.detach(), hand, expected, {name: p.grad for name, p in model.named_parameters()}


@pytest.mark.parametrize("which", ["neuron", "abs", "relu_lp"])
def test_hand_gradients_equal_autograd(which):
    cfg = ToyModelConfig(3, 12, 5)
    g = torch.Generator().manual_seed(3)
    importance = torch.rand(3, 12, generator=g)
    p = torch.tensor([[1.0], [0.3], [0.05]])
    if which == "neuron":
        model = NeuronModel(cfg, feature_probability=p, importance=importance, seed=1, device="cpu")
        batch = torch.rand(200, 3, 12, generator=g)
    elif which == "abs":
        model = NeuronComputationModel(cfg, feature_probability=p, importance=importance, seed=1, device="cpu")
        batch = torch.rand(200, 3, 12, generator=g) * 2 - 1
    else:
        model = ReluComputationModel(
            cfg, feature_probability=p, importance=importance, loss_power=torch.tensor([4.0, 2.0, 3.0]),
            n_neurons=torch.tensor([5, 2, 4]), seed=1, device="cpu",
        )
        batch = torch.rand(200, 3, 12, generator=g) * 2 - 1
    if hasattr(model, "b_final"):
        with torch.no_grad():
            model.b_final.normal_(0, 0.3, generator=g)  # some outputs below 0, so the output ReLU's gradient matters
    batch = torch.where(torch.rand(batch.shape, generator=g) < 0.5, batch, 0.0)
    loss, hand, expected, got = _autograd_and_hand(model, batch)
    assert torch.allclose(hand, loss, rtol=1e-5, atol=1e-8)
    for name in expected:
        assert torch.allclose(got[name], expected[name], rtol=1e-4, atol=1e-7), name


def test_hand_gradients_train_as_well_as_autograd():
    # 8 seeds each way; the final losses agree in mean within a few standard errors (seeds 0-3 checked)
    cfg = ToyModelConfig(8, 20, 5)
    losses = {}
    for hand in (False, True):
        model = ReluComputationModel(cfg, feature_probability=0.05, seed=0, device="cpu")
        model.optimize(steps=300, batch_size=256, lr=3e-3, progress=False, fast=hand)
        losses[hand] = evaluate(model, n_samples=20_000, generator=torch.Generator().manual_seed(1))
    gap = (losses[True].mean() - losses[False].mean()).abs()
    spread = (losses[True].std() + losses[False].std()) / 8**0.5
    assert gap < 3 * spread + 1e-4 * losses[False].mean(), (losses, gap, spread)
    with pytest.raises(ValueError, match="no fast path can train this model"):
        LinearToyModel(cfg, device="cpu").optimize(steps=1, progress=False, fast=True)


@pytest.mark.parametrize("model_class", [NeuronModel, NeuronComputationModel, ReluComputationModel])
def test_hand_step_draws_from_the_model_seed_not_the_global_stream(model_class):
    """Two models built with one seed train to the same weights whatever torch's global stream
    holds, and another seed gives other data: the hand-written step draws from the model's own
    generator, as `generate_batch` does."""

    def trained(seed, global_seed):
        torch.manual_seed(global_seed)
        model = model_class(ToyModelConfig(2, 6, 3), feature_probability=0.3, seed=seed, device="cpu")
        model.optimize(steps=20, batch_size=16, lr=1e-2, progress=False)
        return torch.cat([p.detach().flatten() for p in model.parameters()])

    assert torch.equal(trained(0, global_seed=0), trained(0, global_seed=1))
    other = model_class(ToyModelConfig(2, 6, 3), feature_probability=0.3, seed=1, device="cpu")
    assert not torch.equal(other.step_gradients(16), model_class(ToyModelConfig(2, 6, 3), feature_probability=0.3,
                                                                 seed=2, device="cpu").step_gradients(16))
