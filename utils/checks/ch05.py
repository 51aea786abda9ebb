"""Checks for chapter 5: the neuron model and the absolute-value model."""

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
from utils.models import NeuronComputationModel, NeuronModel, ToyModel, ToyModelConfig

CFG = ToyModelConfig(n_inst=3, n_features=6, d_hidden=4)


# --- exercise 5.1 ---------------------------------------------------------------------------------


@learner_check(NeuronModel, "`utils.models.NeuronModel`")
def check_neuron_model(cls) -> None:
    """The learner's `ToyModel` subclass: `hidden(x)` = ReLU(W x), and the forward pass through it."""
    require_class(cls, ToyModel, ("hidden",))
    model = build(cls, CFG, seed=0, device="cpu")
    reference = NeuronModel(CFG, seed=0, device="cpu")
    x = torch.rand(8, CFG.n_inst, CFG.n_features, generator=torch.Generator().manual_seed(1)) * 2 - 1
    W = reference.W.detach()
    h = call_learner("hidden", model.hidden, x)
    pre = torch.einsum("bif,ihf->bih", x, W)
    assert_close(
        h,
        torch.relu(pre),
        "hidden(x)",
        "(batch, inst, d_hidden)",
        rule="It should be h = ReLU(W x): neuron h of instance k is ReLU(Σ_i W[k, h, i] x[..., k, i]).",
        mistakes={
            "there is no ReLU on the neurons: h = ReLU(W x)": pre,
            "the ReLU is applied to the input, W ReLU(x): apply it to W x": torch.einsum(
                "bif,ihf->bih", torch.relu(x), W
            ),
            "the ReLU is applied to the weights, ReLU(W) x: apply it to W x": torch.einsum(
                "bif,ihf->bih", x, torch.relu(W)
            ),
            "it takes |W x|: a ReLU keeps the positive part only": pre.abs(),
            "every instance uses instance 0's weights W[0]": torch.relu(torch.einsum("bif,hf->bih", x, W[0])),
        },
    )
    assert_differentiable(h, model.W, torch.einsum("bih,bif->ihf", (pre > 0).float(), x), "hidden(x)")
    single = call_learner("hidden", model.hidden, x[0])
    assert_close(
        single,
        torch.relu(pre[0]),
        "hidden(x) for x of shape (inst, feats)",
        "(inst, d_hidden)",
        rule="hidden must work for any leading dimensions: write '...' for them in einsum",
    )
    assert_close(
        call_learner("forward", model, x).detach(),
        reference(x).detach(),
        "forward(x)",
        "(batch, inst, feats)",
        rule="The read-out is unchanged: ReLU(Wᵀ h + b_final), through the inherited decode.",
    )
    passed("NeuronModel")


# --- exercise 5.2 ---------------------------------------------------------------------------------

# Probabilities differ per instance and per feature, so a generator that ignores either shows.
_P = torch.tensor([[1.0, 0.5, 0.3, 0.7, 0.2, 0.9], [0.5, 0.1, 0.8, 0.4, 0.6, 0.25], [0.1, 0.35, 0.05, 0.6, 0.45, 0.0]])
_BATCH = 4_000


def _check_forward(model, reference, x: torch.Tensor) -> None:
    out = call_learner("forward", model, x)
    W1, W2, b = reference.W1.detach(), reference.W2.detach(), reference.b_final.detach()
    h = torch.relu(torch.einsum("bif,ihf->bih", x, W1))
    pre = torch.einsum("bih,ifh->bif", h, W2)
    assert_close(
        out,
        torch.relu(pre + b),
        "forward(x)",
        "(batch, inst, feats)",
        rule="It should be x' = ReLU(W2 ReLU(W1 x) + b_final) with W1: (inst, d_hidden, feats), W2: (inst, feats, "
        "d_hidden).",
        mistakes={
            "there is no ReLU at the output: x' = ReLU(W2 h + b_final)": pre + b,
            "the bias is missing: add b_final before the output ReLU": torch.relu(pre),
            "the bias is added after the output ReLU: it goes inside": torch.relu(pre) + b,
            "the hidden layer has no ReLU: h = ReLU(W1 x)": torch.relu(
                torch.einsum("bih,ifh->bif", torch.einsum("bif,ihf->bih", x, W1), W2) + b
            ),
            "the output is |W2 h + b|: the target is |x|, but the model's output layer is a ReLU": (pre + b).abs(),
        },
    )
    assert_differentiable(out, model.b_final, (pre + b > 0).float().sum(0), "forward(x)")
    assert_close(
        call_learner("forward", model, x[0]),
        torch.relu(pre[0] + b),
        "forward(x) for x of shape (inst, feats)",
        "(inst, feats)",
        rule="forward must work for any leading dimensions: write '...' for them in einsum",
    )


def _check_generate_batch(model) -> None:
    n, what = _BATCH, "generate_batch"
    with torch.random.fork_rng():
        torch.manual_seed(3)
        batch = call_learner(what, model.generate_batch, n)
        other = call_learner(what, model.generate_batch, n)
    assert_tensor(batch, f"generate_batch({n})", (n, CFG.n_inst, CFG.n_features), "(batch, inst, feats)")
    if torch.equal(batch, other):
        raise AssertionError("generate_batch returned the same batch twice: draw fresh random numbers on every call")
    active = batch != 0
    for k in range(CFG.n_inst):
        for i in range(CFG.n_features):
            p = _P[k, i].item()
            assert_rate(
                active[:, k, i].float().mean().item(),
                p,
                n,
                f"the fraction of active (non-zero) values of feature {i} in instance {k} (feature_probability {p:g})",
                {
                    "a feature is active with probability feature_probability; yours is active with 1 - p": 1 - p,
                    "every instance uses instance 0's probabilities: use the whole (inst, feats) "
                    "feature_probability": _P[0, i].item(),
                    "every feature uses feature 0's probability: use the whole (inst, feats) feature_probability": _P[
                        k, 0
                    ].item(),
                },
            )
    assert_independent_activity(active, _P, what)
    for k in range(CFG.n_inst):
        for i in range(CFG.n_features):
            p = _P[k, i].item()
            if p == 0:
                continue
            assert_uniform(
                batch[active[:, k, i], k, i],
                -1.0,
                1.0,
                f"{what}: the active values of feature {i} in instance {k} (feature_probability {p:g})",
                {
                    "the values are uniform on [0, 1]: draw them on [-1, 1], as 2u - 1": (0.0, 1.0),
                    "the values are uniform on [-0.5, 0.5] (u - 0.5): the law is uniform on [-1, 1], 2u - 1": (
                        -0.5,
                        0.5,
                    ),
                    "the value reuses the number u < p that made the feature active: 2u/p - 1, or draw the value "
                    "with a second torch.rand": (-1.0, 2 * p - 1),
                },
            )
    assert_independent_values(batch, active, what)
    with torch.random.fork_rng():
        same = [call_learner(what, model.generate_batch, n, torch.Generator().manual_seed(7)) for _ in range(2)]
    if not torch.equal(*same):
        raise AssertionError(
            "generate_batch(batch_size, generator) gave different batches for two generators with the same seed: draw "
            "every random number from `generator` (torch.rand(..., generator=generator)), so that a seed fixes the data"
        )


def _check_loss(model) -> None:
    g = torch.Generator().manual_seed(2)
    shape = (16, CFG.n_inst, CFG.n_features)
    batch = torch.where(torch.rand(shape, generator=g) < 0.6, torch.rand(shape, generator=g) * 2 - 1, 0.0)
    out = torch.rand(shape, generator=g).requires_grad_(True)
    loss = call_learner("loss_per_instance", model.loss_per_instance, out, batch.clone())
    importance = model.importance.detach()
    target = batch.abs()
    error = out.detach() - target
    assert_close(
        loss,
        (importance * error**2).mean(dim=(0, 2)),
        "loss_per_instance(out, batch)",
        "(inst,)",
        rule="It should be the mean over batch and features of importance · (out - |x|)², one number per instance.",
        mistakes={
            "it compares the output with x: the target of this model is |x|": (
                importance * (out.detach() - batch) ** 2
            ).mean(dim=(0, 2)),
            "the target is ReLU(x): it is |x|, which is ReLU(x) + ReLU(-x)": (
                importance * (out.detach() - torch.relu(batch)) ** 2
            ).mean(dim=(0, 2)),
            "it ignores the importances: weight each feature's squared error by self.importance": (error**2).mean(
                dim=(0, 2)
            ),
            "it sums over features: take the mean over batch and features": (importance * error**2).mean(dim=0).sum(-1),
            "it squares the importance too: the importance multiplies the squared error": (
                (importance * error) ** 2
            ).mean(dim=(0, 2)),
        },
    )
    assert_differentiable(loss, out, 2 * importance * error / (shape[0] * shape[2]), "loss_per_instance(out, batch)")


@learner_check(NeuronComputationModel, "`utils.models.NeuronComputationModel`")
def check_neuron_computation_model(cls) -> None:
    """The learner's absolute-value model: `forward`, `generate_batch` on [-1, 1], `loss_per_instance` against |x|."""
    require_class(cls, NeuronComputationModel, ("forward", "generate_batch", "loss_per_instance"))
    kwargs = dict(feature_probability=_P, importance=0.8 ** torch.arange(CFG.n_features), seed=0, device="cpu")
    model, reference = build(cls, CFG, **kwargs), NeuronComputationModel(CFG, **kwargs)
    with torch.no_grad():
        for m in (model, reference):
            m.b_final.copy_(torch.linspace(-0.5, 0.5, CFG.n_inst * CFG.n_features).reshape(CFG.n_inst, CFG.n_features))
    x = torch.rand(8, CFG.n_inst, CFG.n_features, generator=torch.Generator().manual_seed(1)) * 2 - 1
    _check_forward(model, reference, x)
    _check_generate_batch(model)
    _check_loss(model)
    passed("NeuronComputationModel")
