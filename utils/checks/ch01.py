"""Checks for chapter 1: the data generator, the linear model, the loss and the training loop."""

from __future__ import annotations

import copy

import torch

from utils.checks.compare import (
    assert_close,
    assert_differentiable,
    assert_independent_activity,
    assert_independent_values,
    assert_rate,
    assert_tensor,
    assert_uniform,
    build,
    call_learner,
    learner_check,
    passed,
    require_class,
    require_function,
)
from utils.data import generate_data
from utils.models import LinearToyModel, ToyModelConfig
from utils.train import train_on_dataset


def reference_importance_weighted_mse(
    out: torch.Tensor, target: torch.Tensor, importance: torch.Tensor
) -> torch.Tensor:
    """The library's answer to exercise 1.3: `(batch, inst, feats)` twice and `(inst, feats)` -> `(inst,)`."""
    return (importance * (out - target) ** 2).mean(dim=(0, 2))


def reference_train(model: LinearToyModel, x: torch.Tensor, steps: int = 1000, lr: float = 1e-2) -> torch.Tensor:
    """The library's answer to exercise 1.4: full-batch Adam on `x: (n_points, feats)`; `(steps, inst)` losses."""
    return train_on_dataset(model, x, steps=steps, lr=lr, progress=False).losses


# --- exercise 1.1 ---------------------------------------------------------------------------------

_N_POINTS, _SPARSITY = 8_000, 0.3


@learner_check(generate_data, "`utils.data.generate_data`")
def check_generate_data(generate_data) -> None:
    """`generate_data(n_points, n_features, sparsity)`: shape, dtype, zero rates, value law, independence."""
    require_function(generate_data, "generate_data")
    x = call_learner("generate_data", generate_data, 10)
    assert_tensor(
        x, "generate_data(10)", (10, 2), "(n_points, n_features) with the defaults n_features=2", torch.float32
    )
    if (x == 0).any():
        raise AssertionError("with the default sparsity=0 no feature should be zero, but some are")

    n, s = _N_POINTS, _SPARSITY
    what = f"generate_data({n}, n_features=3, sparsity={s})"
    with torch.random.fork_rng():
        torch.manual_seed(0)
        x = call_learner("generate_data", generate_data, n, n_features=3, sparsity=s)
        again = call_learner("generate_data", generate_data, n, n_features=3, sparsity=s)
    assert_tensor(x, what, (n, 3), "(n_points, n_features)", torch.float32)
    if torch.equal(x, again):
        raise AssertionError(f"{what} returned the same points twice: draw fresh random numbers on every call")
    zero = x == 0
    for feature in range(3):
        assert_rate(
            zero[:, feature].float().mean().item(),
            s,
            n,
            f"the fraction of zeros in feature {feature}",
            {"sparsity is the probability that a feature is zero; you zeroed it with probability 1 - sparsity": 1 - s},
        )
    active = ~zero
    # Independence: a pair of features is zero together with probability sparsity², not sparsity.
    assert_independent_activity(active[:, None, :], torch.full((1, 3), 1 - s), what)
    assert_uniform(
        x[active],
        0.0,
        1.0,
        f"{what}: the non-zero values",
        {
            "the value reuses the number that decided the feature is present (u >= sparsity): "
            "draw the value with a second torch.rand": (s, 1.0),
            "the value reuses the number that decided the feature is zero (u < sparsity)": (0.0, s),
            "the values are uniform on [-1, 1]: this law is uniform on [0, 1] (torch.rand)": (-1.0, 1.0),
        },
    )
    assert_independent_values(x[:, None, :], active[:, None, :], what)
    all_zero = call_learner("generate_data", generate_data, 1000, 2, 1.0)
    if not isinstance(all_zero, torch.Tensor) or (all_zero != 0).any():
        raise AssertionError("with sparsity=1 every feature should be zero")
    passed("generate_data")


# --- exercise 1.2 ---------------------------------------------------------------------------------


def _seeded_pair(learner_class, cfg: ToyModelConfig):
    """The learner's model and the reference with identical parameters, the bias set non-zero."""
    model = build(learner_class, cfg, seed=0, device="cpu")
    reference = LinearToyModel(cfg, seed=0, device="cpu")
    with torch.no_grad():
        bias = torch.randn(cfg.n_inst, cfg.n_features, generator=torch.Generator().manual_seed(1))
        model.b_final.copy_(bias)
        reference.b_final.copy_(bias)
    return model, reference


@learner_check(LinearToyModel, "`utils.models.LinearToyModel`")
def check_linear_model(learner_class) -> None:
    """`hidden` (h = Wx) and `decode` (x' = Wᵀh + b) of a `LinearToyModel` subclass, on two sizes."""
    require_class(learner_class, LinearToyModel, ("hidden", "decode"))
    for cfg in (ToyModelConfig(n_inst=3, n_features=2, d_hidden=1), ToyModelConfig(n_inst=2, n_features=5, d_hidden=3)):
        model, reference = _seeded_pair(learner_class, cfg)
        x = torch.rand(4, cfg.n_inst, cfg.n_features, generator=torch.Generator().manual_seed(2))
        W, b = reference.W.detach(), reference.b_final.detach()
        h = call_learner("hidden", model.hidden, x)
        assert_close(
            h,
            reference.hidden(x).detach(),
            f"hidden(x) for {cfg}",
            "(batch, inst, d_hidden)",
            rule="It should be h[b, i, k] = Σ_f W[i, k, f] x[b, i, f], each instance i with its own W[i].",
            mistakes={
                "every instance uses instance 0's weights W[0]: use each instance's own W[i]": torch.einsum(
                    "bif,hf->bih", x, W[0]
                ),
                "h sums over the weights of every instance: contract feats only, keeping the instance "
                "index": torch.einsum("bif,jhf->bih", x, W),
            },
        )
        assert_differentiable(h, model.W, torch.einsum("bif->if", x)[:, None, :].expand_as(W), "hidden(x)")
        h = reference.hidden(x).detach()
        out = call_learner("decode", model.decode, h)
        pre = torch.einsum("bih,ihf->bif", h, W)
        assert_close(
            out,
            pre + b,
            f"decode(h) for {cfg}",
            "(batch, inst, feats)",
            rule="It should be x'[b, i, f] = Σ_k W[i, k, f] h[b, i, k] + b_final[i, f].",
            mistakes={
                "decode leaves out the bias: add self.b_final": pre,
                "decode applies a ReLU: the linear model has none": torch.relu(pre + b),
                "decode subtracts the bias: add it": pre - b,
                "every instance uses instance 0's weights W[0]": torch.einsum("bih,hf->bif", h, W[0]) + b,
                "every instance uses instance 0's bias b_final[0]": pre + b[0],
            },
        )
        assert_differentiable(out, model.b_final, torch.full_like(b, float(h.shape[0])), "decode(h)")
        assert_close(
            call_learner("forward", model, x).detach(), reference(x).detach(), "forward(x)", "(batch, inst, feats)"
        )
    passed("the linear model")


# --- exercise 1.3 ---------------------------------------------------------------------------------


@learner_check(reference_importance_weighted_mse, "importance-weighted MSE")
def check_importance_weighted_mse(importance_weighted_mse) -> None:
    """`importance_weighted_mse(out, target, importance) -> (inst,)`: mean over batch and features."""
    require_function(importance_weighted_mse, "importance_weighted_mse")
    generator = torch.Generator().manual_seed(3)
    out, target = torch.rand(2, 7, 3, 4, generator=generator)
    importance = torch.rand(3, 4, generator=generator) + 0.2
    out.requires_grad_(True)
    loss = call_learner("importance_weighted_mse", importance_weighted_mse, out, target.clone(), importance.clone())
    error = out.detach() - target
    expected = (importance * error**2).mean(dim=(0, 2))
    assert_close(
        loss,
        expected,
        "importance_weighted_mse(out, target, importance)",
        "(inst,)",
        rule="It should be the mean over batch and features of importance · (out - target)², one number per instance.",
        mistakes={
            "it sums over the features: take the mean over batch *and* features": (importance * error**2)
            .sum(2)
            .mean(0),
            "it sums over the batch: take the mean": (importance * error**2).sum(0).mean(1),
            "it ignores the importance: multiply each squared error by its feature's importance": (error**2).mean(
                dim=(0, 2)
            ),
            "it squares the importance too: the importance multiplies the squared error": (
                (importance * error) ** 2
            ).mean(dim=(0, 2)),
            "it uses the absolute error: square it": (importance * error.abs()).mean(dim=(0, 2)),
            "it takes a square root (RMSE): the loss is the mean squared error itself": (importance * error**2)
            .mean(dim=(0, 2))
            .sqrt(),
            "every instance uses instance 0's importances: use importance[i] for instance i": (
                importance[0] * error**2
            ).mean(dim=(0, 2)),
        },
    )
    expected_grad = 2 * importance * error / (error.shape[0] * error.shape[2])
    assert_differentiable(loss, out, expected_grad, "importance_weighted_mse(out, target, importance)")
    passed("importance_weighted_mse")


# --- exercise 1.4 ---------------------------------------------------------------------------------


def _variant_run(
    model: LinearToyModel,
    x: torch.Tensor,
    steps: int,
    lr: float,
    *,
    optimizer_class=torch.optim.Adam,
    zero_grad: bool = True,
    record_after: bool = False,
    weighted: bool = True,
    optimizer_every_step: bool = False,
) -> torch.Tensor:
    """A training loop with one ingredient changed (to name a learner's mistake): `(steps, inst)` losses."""
    model = copy.deepcopy(model)
    batch = x[:, None, :].expand(-1, model.cfg.n_inst, -1)
    importance = model.importance if weighted else torch.ones_like(model.importance)

    def loss_of() -> torch.Tensor:
        return (importance * (model(batch) - batch) ** 2).mean(dim=(0, 2))

    optimizer = optimizer_class(model.parameters(), lr=lr)
    losses = torch.empty(steps, model.cfg.n_inst)
    for step in range(steps):
        if optimizer_every_step:
            optimizer = optimizer_class(model.parameters(), lr=lr)
        loss = loss_of()
        if zero_grad:
            optimizer.zero_grad()
        loss.sum().backward()
        optimizer.step()
        with torch.no_grad():
            losses[step] = loss_of() if record_after else loss.detach()
    return losses


@learner_check(reference_train, "training loop (`utils.train.train_on_dataset`)")
def check_train(train) -> None:
    """`train(model, x, steps, lr) -> (steps, inst)`: full-batch Adam, compared step by step with the library."""
    require_function(train, "train")
    cfg = ToyModelConfig(n_inst=4, n_features=2, d_hidden=1)
    model = LinearToyModel(cfg, importance=torch.tensor([1.0, 0.3]), seed=0, device="cpu")
    start = copy.deepcopy(model)
    reference = copy.deepcopy(model)
    x = torch.rand(200, 2, generator=torch.Generator().manual_seed(4))
    steps, lr = 60, 1e-2
    losses = call_learner("train", train, model, x.clone(), steps=steps, lr=lr)
    expected = train_on_dataset(reference, x, steps=steps, lr=lr, progress=False).losses
    assert_tensor(losses, "the returned loss history", (steps, cfg.n_inst), "(steps, inst)")

    def run(**change):
        return lambda: _variant_run(start, x, steps, lr, **change)

    assert_close(
        losses,
        expected,
        "the loss history",
        "(step, inst)",
        rule=f"It should be, at each step, each instance's importance-weighted MSE before that step's update, "
        f"training with torch.optim.Adam(model.parameters(), lr={lr}) on the sum of the instances' losses.",
        mistakes={
            "the gradients are never zeroed, so they accumulate across steps: call optimizer.zero_grad() every "
            "step": run(zero_grad=False),
            "a new optimizer is created at every step, which restarts Adam's running averages: create it once, "
            "before the loop": run(optimizer_every_step=True),
            "each loss is recorded after the update: record the loss computed before optimizer.step()": run(
                record_after=True
            ),
            "the loss ignores the importances: use importance_weighted_mse with model.importance": run(weighted=False),
            "the optimizer is plain SGD: use torch.optim.Adam": run(optimizer_class=torch.optim.SGD),
        },
    )
    assert_close(model.W.detach(), reference.W.detach(), "the trained W", "(inst, d_hidden, feats)")
    passed("train")
