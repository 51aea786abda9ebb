"""Checks for chapter 2's exercise: the batched ReLU toy model.

The check runs the learner's class next to the library's reference (`utils.models.ToyModel`) on
seeded input and raises AssertionError with what is wrong, naming a likely cause only when the
learner's answer matches it.
"""

from __future__ import annotations

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
)
from utils.models import ToyModel, ToyModelConfig

# Probabilities differ per instance *and* per feature, so a generator that ignores either shows.
_PROBABILITY = torch.tensor([[0.05, 0.3, 0.7, 1.0], [1.0, 0.5, 0.2, 0.0], [0.9, 0.1, 0.4, 0.6]])
_IMPORTANCE = torch.tensor([[1.0, 0.9, 0.81, 0.729], [1.0, 1.0, 1.0, 1.0], [0.5, 2.0, 1.0, 0.1]])
_CFG = ToyModelConfig(n_inst=3, n_features=4, d_hidden=2)
_STAT_BATCH = 4_000
_DIMS = "(batch, inst, feats)"


def _models(cls) -> tuple[ToyModel, ToyModel]:
    """The learner's model and the reference, with the same weights and a non-zero bias."""
    require_class(cls, ToyModel, ("forward", "generate_batch", "calculate_loss"))
    kwargs = dict(feature_probability=_PROBABILITY, importance=_IMPORTANCE, device="cpu", seed=0)
    learner, reference = build(cls, _CFG, **kwargs), ToyModel(_CFG, **kwargs)
    bias = torch.randn(_CFG.n_inst, _CFG.n_features, generator=torch.Generator().manual_seed(1)) * 0.3
    with torch.no_grad():
        for model in (learner, reference):
            model.b_final.copy_(bias)
    return learner, reference


def _check_forward(learner: ToyModel, reference: ToyModel) -> None:
    x = torch.rand(7, _CFG.n_inst, _CFG.n_features, generator=torch.Generator().manual_seed(2))
    got = call_learner("forward", learner.forward, x.clone())
    W, b = reference.W.detach(), reference.b_final.detach()
    pre = torch.einsum("bih,ihf->bif", torch.einsum("bif,ihf->bih", x, W), W)
    expected = torch.relu(pre + b)
    W0 = W[:1].expand_as(W)
    assert_close(
        got,
        expected,
        "forward(x)",
        _DIMS,
        rule="It should be x' = ReLU(WᵀWx + b), each instance with its own W and b_final.",
        mistakes={
            "there is no ReLU: apply torch.relu to WᵀWx + b": pre + b,
            "the bias is missing: add self.b_final before the ReLU": torch.relu(pre),
            "the bias is added after the ReLU: it goes inside, ReLU(WᵀWx + b)": torch.relu(pre) + b,
            "the hidden layer is rectified too: this model has one ReLU, at the output": torch.relu(
                torch.einsum("bih,ihf->bif", torch.relu(torch.einsum("bif,ihf->bih", x, W)), W) + b
            ),
            "every instance uses instance 0's weights W[0]: use each instance's own W[i]": torch.relu(
                torch.einsum("bih,ihf->bif", torch.einsum("bif,ihf->bih", x, W0), W0) + b
            ),
        },
    )
    active = (pre + b > 0).float().sum(0)
    assert_differentiable(got, learner.b_final, active, "forward(x)")
    for shape in ((_CFG.n_inst, _CFG.n_features), (2, 7, _CFG.n_inst, _CFG.n_features)):
        dims = "(" + "..., " * (len(shape) - 2) + "inst, feats)"
        xs = x[0] if len(shape) == 2 else x.expand(2, *x.shape)
        single = call_learner("forward", learner.forward, xs.clone())
        assert_close(
            single,
            expected[0] if len(shape) == 2 else expected.expand(2, *expected.shape),
            f"forward(x) for x of shape {dims} = {shape}",
            dims,
            rule="forward must work for any leading dimensions: write '...' for them in einsum",
        )


def _check_generate_batch(learner: ToyModel) -> None:
    n, what = _STAT_BATCH, "generate_batch"
    with torch.random.fork_rng():
        torch.manual_seed(3)
        batch = call_learner("generate_batch", learner.generate_batch, n)
        other = call_learner("generate_batch", learner.generate_batch, n)
    assert_tensor(batch, f"generate_batch({n})", (n, _CFG.n_inst, _CFG.n_features), _DIMS)
    if torch.equal(batch, other):
        raise AssertionError("generate_batch returned the same batch twice: draw fresh random numbers on every call")
    active = batch != 0
    for k in range(_CFG.n_inst):
        for i in range(_CFG.n_features):
            p = _PROBABILITY[k, i].item()
            assert_rate(
                active[:, k, i].float().mean().item(),
                p,
                n,
                f"the fraction of active (non-zero) values of feature {i} in instance {k} (feature_probability {p:g})",
                {
                    "a feature is *active* (non-zero) with probability feature_probability; yours is active with 1 - "
                    "p": 1 - p,
                    "every instance uses instance 0's probabilities: use the whole (inst, feats) "
                    "feature_probability": _PROBABILITY[0, i].item(),
                    "every feature uses feature 0's probability: use the whole (inst, feats) "
                    "feature_probability": _PROBABILITY[k, 0].item(),
                },
            )
    assert_independent_activity(active, _PROBABILITY, what)
    for k in range(_CFG.n_inst):
        for i in range(_CFG.n_features):
            p = _PROBABILITY[k, i].item()
            if p == 0:
                continue
            assert_uniform(
                batch[active[:, k, i], k, i],
                0.0,
                1.0,
                f"{what}: the active values of feature {i} in instance {k} (feature_probability {p:g})",
                {
                    "the value reuses the number u < p that made the feature active, so it lies in [0, p): "
                    "divide it by p, or draw the value with a second torch.rand": (0.0, p),
                    "the value reuses the number u >= 1 - p that made the feature active: draw the value with a "
                    "second torch.rand": (1 - p, 1.0),
                    "the values are uniform on [-1, 1]: this law is uniform on [0, 1] (torch.rand)": (-1.0, 1.0),
                },
            )
    assert_independent_values(batch, active, what)


def _check_calculate_loss(learner: ToyModel) -> None:
    generator = torch.Generator().manual_seed(4)
    out = torch.rand(64, _CFG.n_inst, _CFG.n_features, generator=generator).requires_grad_(True)
    batch = torch.rand(64, _CFG.n_inst, _CFG.n_features, generator=generator)
    got = call_learner("calculate_loss", learner.calculate_loss, out, batch.clone())
    if not isinstance(got, torch.Tensor) or got.numel() != 1:
        raise AssertionError(
            "calculate_loss should return one number, a tensor of shape () (the loss summed over instances), got "
            f"{'shape ' + str(tuple(got.shape)) if isinstance(got, torch.Tensor) else type(got).__name__}"
        )
    got = got.reshape(())
    error = out.detach() - batch
    weighted = _IMPORTANCE * error**2
    assert_close(
        got,
        weighted.mean(dim=(0, 2)).sum(),
        "calculate_loss(out, batch)",
        "()",
        rule="It should be Σ_inst mean_(batch, feats) importance · (out - batch)².",
        mistakes={
            "it averages over instances: sum them, so each instance trains as if alone": weighted.mean(),
            "it sums over features: take the mean over batch and features": weighted.mean(dim=0).sum(),
            "it ignores the importances: weight each squared error by self.importance": (error**2)
            .mean(dim=(0, 2))
            .sum(),
            "it squares the importance too: the importance multiplies the squared error": ((_IMPORTANCE * error) ** 2)
            .mean(dim=(0, 2))
            .sum(),
        },
    )
    assert_differentiable(got, out, 2 * _IMPORTANCE * error / (64 * _CFG.n_features), "calculate_loss(out, batch)")


@learner_check(ToyModel, "`utils.models.ToyModel`")
def check_toy_model(cls) -> None:
    """Check a learner's `ToyModel` subclass: `forward`, `generate_batch` and `calculate_loss`."""
    learner, reference = _models(cls)
    _check_forward(learner, reference)
    _check_generate_batch(learner)
    _check_calculate_loss(learner)
    passed("ToyModel (forward, generate_batch, calculate_loss)")
