"""Checks for chapter 1: the data generator, the linear model, the loss and the training loop."""

from __future__ import annotations

import copy

import torch

from utils.checks.compare import assert_close, assert_rate, assert_tensor, learner_check, passed
from utils.data import generate_data
from utils.models import LinearToyModel, ToyModelConfig
from utils.train import train_on_dataset


def reference_importance_weighted_mse(out: torch.Tensor, target: torch.Tensor, importance: torch.Tensor) -> torch.Tensor:
    """The library's answer to exercise 1.3: `(batch, inst, feats)` twice and `(inst, feats)` -> `(inst,)`."""
    return (importance * (out - target) ** 2).mean(dim=(0, 2))


def reference_train(model: LinearToyModel, x: torch.Tensor, steps: int = 1000, lr: float = 1e-2) -> torch.Tensor:
    """The library's answer to exercise 1.4: full-batch Adam on `x: (n_points, feats)`; `(steps, inst)` losses."""
    return train_on_dataset(model, x, steps=steps, lr=lr, progress=False).losses


@learner_check(generate_data, "`utils.data.generate_data`")
def check_generate_data(generate_data) -> None:
    """`generate_data(n_points, n_features, sparsity)`: shape, dtype, range, sparsity rate, independence."""
    x = generate_data(10)
    assert_tensor(x, "generate_data(10)", (10, 2), "(n_points, n_features) with the defaults n_features=2")
    if (x == 0).any():
        raise AssertionError("with the default sparsity=0 no feature should be zero, but some are")

    n, sparsity = 40_000, 0.3
    with torch.random.fork_rng():
        torch.manual_seed(0)
        x = generate_data(n, n_features=3, sparsity=sparsity)
    assert_tensor(x, "generate_data(40000, n_features=3, sparsity=0.3)", (n, 3), "(n_points, n_features)")
    if x.min() < 0 or x.max() > 1:
        raise AssertionError(f"values must lie in [0, 1], got values from {x.min():.3f} to {x.max():.3f}")
    zero = x == 0
    for feature in range(3):
        assert_rate(
            zero[:, feature].float().mean().item(),
            sparsity,
            n,
            f"the fraction of zeros in feature {feature} (sparsity is the probability that a feature is zero)",
        )
    assert_rate(
        (zero[:, 0] & zero[:, 1]).float().mean().item(),
        sparsity**2,
        n,
        "the fraction of points where features 0 and 1 are both zero (features must be zeroed independently)",
    )
    active = x[~zero]
    mean, tolerance = active.mean().item(), 5 * (1 / 12) ** 0.5 / active.numel() ** 0.5
    if abs(mean - 0.5) > tolerance:
        raise AssertionError(f"non-zero values should be uniform on [0, 1] with mean 0.5, got mean {mean:.4f}")
    correlation = torch.corrcoef(x[:, :2].T)[0, 1].item()
    if abs(correlation) > 0.03:
        raise AssertionError(f"features 0 and 1 should be independent, but their correlation is {correlation:.3f}")
    if (generate_data(100, sparsity=1.0) != 0).any():
        raise AssertionError("with sparsity=1 every feature should be zero")
    passed("generate_data")


def _seeded_pair(learner_class, cfg: ToyModelConfig):
    """The learner's model and the reference with identical parameters, the bias set non-zero."""
    model = learner_class(cfg, seed=0, device="cpu")
    reference = LinearToyModel(cfg, seed=0, device="cpu")
    with torch.no_grad():
        bias = torch.randn(cfg.n_inst, cfg.n_features, generator=torch.Generator().manual_seed(1))
        model.b_final.copy_(bias)
        reference.b_final.copy_(bias)
    return model, reference


@learner_check(LinearToyModel, "`utils.models.LinearToyModel`")
def check_linear_model(learner_class) -> None:
    """`hidden` (h = Wx) and `decode` (x' = Wᵀh + b) of a `LinearToyModel` subclass, on two sizes."""
    for cfg in (ToyModelConfig(n_inst=3, n_features=2, d_hidden=1), ToyModelConfig(n_inst=2, n_features=5, d_hidden=3)):
        model, reference = _seeded_pair(learner_class, cfg)
        x = torch.rand(4, cfg.n_inst, cfg.n_features, generator=torch.Generator().manual_seed(2))
        with torch.no_grad():
            assert_close(
                model.hidden(x),
                reference.hidden(x),
                f"hidden(x) for {cfg}",
                "(batch, inst, d_hidden)",
                hint="h[b, i, k] = Σ_f W[i, k, f] x[b, i, f]; each instance uses its own W[i]",
            )
            h = reference.hidden(x)
            assert_close(
                model.decode(h),
                reference.decode(h),
                f"decode(h) for {cfg}",
                "(batch, inst, feats)",
                hint="x'[b, i, f] = Σ_k W[i, k, f] h[b, i, k] + b_final[i, f]: did you add the bias?",
            )
            assert_close(model(x), reference(x), "forward(x)", "(batch, inst, feats)")
    passed("the linear model")


@learner_check(reference_importance_weighted_mse, "importance-weighted MSE")
def check_importance_weighted_mse(importance_weighted_mse) -> None:
    """`importance_weighted_mse(out, target, importance) -> (inst,)`: mean over batch and features."""
    generator = torch.Generator().manual_seed(3)
    out, target = torch.rand(2, 7, 3, 4, generator=generator)
    importance = torch.rand(3, 4, generator=generator)
    expected = (importance * (out - target) ** 2).mean(dim=(0, 2))
    assert_close(
        importance_weighted_mse(out, target, importance),
        expected,
        "importance_weighted_mse(out, target, importance)",
        "(inst,)",
        hint="weight each squared error by its feature's importance, then average over batch and features (not instances)",
    )
    passed("importance_weighted_mse")


@learner_check(reference_train, "training loop (`utils.train.train_on_dataset`)")
def check_train(train) -> None:
    """`train(model, x, steps, lr) -> (steps, inst)`: full-batch Adam, compared step by step with the library."""
    cfg = ToyModelConfig(n_inst=4, n_features=2, d_hidden=1)
    model = LinearToyModel(cfg, importance=torch.tensor([1.0, 0.3]), seed=0, device="cpu")
    reference = copy.deepcopy(model)
    x = torch.rand(200, 2, generator=torch.Generator().manual_seed(4))
    steps, lr = 60, 1e-2
    losses = train(model, x, steps=steps, lr=lr)
    expected = train_on_dataset(reference, x, steps=steps, lr=lr, progress=False).losses
    assert_tensor(losses, "the returned loss history", (steps, cfg.n_inst), "(steps, inst)")
    assert_close(
        losses[0],
        expected[0],
        "the loss at step 0",
        "(inst,)",
        hint="record each step's loss before the update, as importance_weighted_mse(model(x), x, model.importance)",
    )
    assert_close(
        losses,
        expected,
        "the loss history",
        "(step, inst)",
        atol=1e-5,
        hint=f"use torch.optim.Adam(model.parameters(), lr={lr}), zero the gradients every step, "
        "and backpropagate the loss summed over instances",
    )
    assert_close(model.W.detach(), reference.W.detach(), "the trained W", "(inst, d_hidden, feats)", atol=1e-5)
    passed("train")
