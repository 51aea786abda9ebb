"""Checks for chapter 6's new exercises: the ReLU-computing MLP and the two error measures."""

from __future__ import annotations

import torch

from utils import computation
from utils.checks.compare import assert_close, assert_tensor, build, call_learner, learner_check, passed
from utils.models import ReluComputationModel, ToyModelConfig

CFG = ToyModelConfig(n_inst=3, n_features=6, d_hidden=4)
POWERS = torch.tensor([4.0, 2.0, 3.0])


def _signed_batch(seed: int, batch: int = 16, p: float = 0.5) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    shape = (batch, CFG.n_inst, CFG.n_features)
    return torch.where(torch.rand(shape, generator=g) < p, torch.rand(shape, generator=g) * 2 - 1, 0.0)


@learner_check(ReluComputationModel, "`utils.models.ReluComputationModel`")
def check_relu_mlp(cls) -> None:
    """The learner's subclass of `ReluComputationModel`: `forward` = W_out ReLU(W_in x), and
    `loss_per_instance` = mean over batch and features of importance · |y - ReLU(x)|^p, p per instance."""
    kwargs = dict(feature_probability=0.5, loss_power=POWERS, importance=torch.linspace(0.5, 1.5, CFG.n_features))
    model = build(cls, CFG, seed=0, device="cpu", **kwargs)
    reference = ReluComputationModel(CFG, seed=0, device="cpu", **kwargs)
    x = _signed_batch(1)
    out = call_learner("forward", model, x)
    assert_tensor(out, "forward(x)", tuple(x.shape), "(batch, inst, feats)")
    expected = reference(x).detach()
    linear = torch.einsum("bif,ihf,ijh->bij", x, reference.W_in, reference.W_out).detach()
    if torch.allclose(out.detach(), linear, atol=1e-5):
        raise AssertionError(
            "forward(x) is linear in x: apply a ReLU to the hidden layer, h = ReLU(W_in x), before W_out"
        )
    if torch.allclose(out.detach(), torch.relu(expected), atol=1e-5) and (expected < -1e-4).any():
        raise AssertionError(
            "forward(x) is never negative: this model has no ReLU on its output, y = W_out h (its target ReLU(x) is "
            "not applied to y)"
        )
    assert_close(
        out.detach(),
        expected,
        "forward(x)",
        "(batch, inst, feats)",
        rule="y = W_out ReLU(W_in x) with W_in: (inst, d_hidden, feats) and W_out: (inst, feats, d_hidden), no biases",
    )
    if not out.requires_grad:
        raise AssertionError(
            "forward(x) carries no gradient: do not detach the weights or wrap the forward pass in torch.no_grad()"
        )

    y = torch.randn(x.shape, generator=torch.Generator().manual_seed(2)) * 0.7
    loss = call_learner("loss_per_instance", model.loss_per_instance, y, x)
    assert_tensor(loss, "loss_per_instance(out, batch)", (CFG.n_inst,), "(inst,)")
    expected = reference.loss_per_instance(y, x)
    error = y - torch.relu(x)
    mistakes = {
        "compares the output with x; the target is ReLU(x)": (
            reference.importance * (y - x).abs() ** POWERS[:, None]
        ).mean(dim=(0, 2)),
        "uses the squared error for every instance; raise |error| to each instance's own power self.loss_power": (
            reference.importance * error**2
        ).mean(dim=(0, 2)),
        "uses instance 0's power for every instance; self.loss_power holds one power per instance, shape (inst,)": (
            reference.importance * error.abs() ** POWERS[0]
        ).mean(dim=(0, 2)),
        "raises the signed error to the power, so odd powers give negative terms; use |y - ReLU(x)|": (
            reference.importance * error ** POWERS[:, None]
        ).mean(dim=(0, 2)),
        "ignores the importances: weight each feature's error by self.importance": (
            error.abs() ** POWERS[:, None]
        ).mean(dim=(0, 2)),
        "sums over features instead of averaging; the loss is a mean over batch and features": (
            reference.importance * error.abs() ** POWERS[:, None]
        )
        .mean(dim=0)
        .sum(dim=1),
    }
    for message, wrong in mistakes.items():
        if torch.allclose(loss.detach(), wrong, rtol=1e-4, atol=1e-7) and not torch.allclose(
            wrong, expected, rtol=1e-4, atol=1e-7
        ):
            raise AssertionError(f"loss_per_instance {message}")
    assert_close(
        loss.detach(),
        expected,
        "loss_per_instance",
        "(inst,)",
        rule="mean over batch and features of importance · |out - ReLU(x)|^p, with p = self.loss_power[instance]",
    )
    model.zero_grad(set_to_none=True)
    trained = call_learner("loss_per_instance", model.loss_per_instance, model(x), x)
    if trained.requires_grad:
        trained.sum().backward()
    if model.W_in.grad is None or model.W_out.grad is None:
        raise AssertionError(
            "the loss has no gradient with respect to W_in or W_out: keep the computation in torch, without .detach() "
            "or torch.no_grad()"
        )
    passed("the ReLU MLP")


@learner_check(computation.two_measures, "`utils.computation.two_measures`")
def check_two_measures(two_measures) -> None:
    """The learner's `two_measures(y, x, power) -> (full, per_active)`, `(inst,)` and `(inst, feats)`."""
    x = _signed_batch(3, batch=40, p=0.3)
    x[:, 1, 2] = 0.0  # feature 2 of instance 1 is never active: its error per active sample is 0 by convention
    y = torch.randn(x.shape, generator=torch.Generator().manual_seed(4)) * 0.3
    copies = y.clone(), x.clone()
    for power in (2.0, 3.0):
        result = call_learner("two_measures", two_measures, copies[0], copies[1], power)
        if not (torch.equal(copies[0], y) and torch.equal(copies[1], x)):
            raise AssertionError("two_measures modified y or x; work on new tensors")
        if not isinstance(result, tuple) or len(result) != 2:
            raise AssertionError(f"two_measures should return a tuple (full, per_active), got {type(result).__name__}")
        full, per_active = result
        expected_full, expected_per_active = computation.two_measures(y, x, power)
        assert_tensor(full, "full", (CFG.n_inst,), "(inst,)")
        assert_tensor(per_active, "per_active", (CFG.n_inst, CFG.n_features), "(inst, feats)")
        if not torch.isfinite(per_active).all():
            raise AssertionError(
                "per_active has NaN or infinity: a feature that is never active in the batch has error 0 (divide by at "
                "least 1)"
            )
        error = (y - torch.relu(x)).abs() ** power
        active = x != 0
        full_mistakes = {
            "full compares y with x; the target is ReLU(x)": ((y - x).abs() ** power).mean(dim=(0, 2)),
            "full averages only over the active entries; the training objective counts every output of every sample": (
                error * active
            ).sum(dim=(0, 2))
            / active.sum(dim=(0, 2)),
            "full leaves out the outputs of inactive features; they are part of the objective (what an active feature "
            "writes into them counts)": (error * active).mean(dim=(0, 2)),
        }
        for message, wrong in full_mistakes.items():
            if torch.allclose(full, wrong, rtol=1e-4) and not torch.allclose(wrong, expected_full, rtol=1e-4):
                raise AssertionError(message)
        if power == 3.0 and torch.allclose(full, ((y - torch.relu(x)) ** 3).mean(dim=(0, 2)), rtol=1e-4):
            raise AssertionError("full raises the signed error to the power; use |y - ReLU(x)|^power")
        assert_close(
            full,
            expected_full,
            "full",
            "(inst,)",
            rtol=1e-4,
            rule="the mean of |y - ReLU(x)|^power over the batch and every output",
        )
        per_active_mistakes = {
            "per_active averages over every sample; it should average only over the samples in which that feature is "
            "active": error.mean(dim=0),
            "per_active counts a feature as active when x > 0; it is active whenever x != 0 (values are uniform on "
            "[-1, 1])": (error * (x > 0)).sum(dim=0) / (x > 0).sum(dim=0).clamp_min(1),
        }
        for message, wrong in per_active_mistakes.items():
            if torch.allclose(per_active, wrong, rtol=1e-4) and not torch.allclose(
                wrong, expected_per_active, rtol=1e-4
            ):
                raise AssertionError(message)
        assert_close(
            per_active,
            expected_per_active,
            "per_active",
            "(inst, feats)",
            rtol=1e-4,
            rule="for each (instance, feature), the mean of |y - ReLU(x)|^power over the samples where that feature's "
            "x is not 0",
        )
    passed("two_measures")
