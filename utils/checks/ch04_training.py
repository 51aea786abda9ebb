"""Check for chapter 4's training exercise: the source's training loop, written by the learner.

The learner's loop and the reference train the same models from the same start on the same batches,
so they must end at the same weights; when they do not, the check retrains with each common mistake
and names the one whose weights the learner's match.
"""

from __future__ import annotations

import torch

from utils.checks.compare import assert_tensor, call_learner, learner_check, passed
from utils.data import HierarchicalPairs
from utils.hierarchy import train_tied_relu

STEPS = 25
SETTINGS = dict(lr=0.05, weight_decay=0.05, eps=1e-3)
"""Large enough that forgetting the decay or ε changes the weights visibly."""


def _train(W, b, batches, importance, lr, weight_decay, eps, reduction, mistake=None):
    """The reference loop, or the same loop with one named `mistake`."""
    W, b = W.clone().requires_grad_(), b.clone().requires_grad_()
    params = [W] if mistake == "bias not trained" else [W, b]
    optimizer = torch.optim.Adam(
        params,
        lr=lr,
        weight_decay=0.0 if mistake == "no decay" else weight_decay,
        eps=1e-8 if mistake == "no eps" else eps,
    )
    for x in batches:
        pre = (x * W).sum(dim=-1, keepdim=True) * W + b
        out = pre if mistake == "no relu" else torch.relu(pre)
        error = (out - x) ** 2 * (1.0 if mistake == "no importance" else importance)
        per_feature = error.mean(dim=-1) if mistake == "mean over features" else error.sum(dim=-1)
        per_model = per_feature.sum(dim=0) if mistake == "sum over batch" else per_feature.mean(dim=0)
        mean = (reduction == "mean") != (mistake == "reduction swapped")
        loss = per_model.mean() if mean else per_model.sum()
        if mistake != "no zero_grad":
            optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return W.detach(), b.detach()


MISTAKES = {
    "no relu": "the output is ReLU((x·W)W + b): apply the ReLU",
    "mean over features": (
        "a model's loss sums the weighted squared error over the two features (the source's), "
        "then averages over the batch"
    ),
    "sum over batch": "a model's loss averages over the batch (the features are summed, the samples averaged)",
    "no importance": "multiply each feature's squared error by its importance",
    "reduction swapped": "reduction='sum' adds the models' losses, reduction='mean' averages them",
    "no decay": "pass weight_decay to torch.optim.Adam",
    "no eps": "pass eps to torch.optim.Adam",
    "no zero_grad": "zero the gradients before each backward pass (optimizer.zero_grad()), or they pile up",
    "bias not trained": "give Adam both W and b",
}


def _problem(reduction: str) -> tuple:
    generator = torch.Generator().manual_seed(4)
    W = torch.randn(4, 2, generator=generator).sign()
    b = 0.1 * torch.randn(4, 2, generator=generator)
    law = HierarchicalPairs(torch.tensor([0.9, 0.5, 0.7, 1.0]), torch.tensor([0.5, 1.0, 0.3, 0.8]))
    batches = [law.sample(64, generator) for _ in range(STEPS)]
    importance = torch.tensor([[1.0, 2.0], [1.0, 0.5], [1.0, 1.0], [1.0, 3.0]])
    return W, b, batches, importance, reduction


def _close(a: torch.Tensor, b: torch.Tensor) -> bool:
    return bool(((a - b).abs() <= 1e-4 + 1e-3 * b.abs()).all())


@learner_check(train_tied_relu, "`utils.hierarchy.train_tied_relu`")
def check_train_tied_relu(learner_train) -> None:
    """`train_tied_relu(W, b, batches, importance, lr, weight_decay, eps, reduction) -> (W, b)`, trained."""
    for reduction in ("mean", "sum"):
        W0, b0, batches, importance, _ = _problem(reduction)
        start = (W0.clone(), b0.clone())
        got = call_learner(
            "train_tied_relu",
            lambda *a, reduction=reduction: learner_train(*a, **SETTINGS, reduction=reduction),
            W0,
            b0,
            iter(batches),
            importance,
        )
        if not isinstance(got, tuple) or len(got) != 2:
            raise AssertionError(f"return the trained (W, b) as a tuple of two tensors, got {type(got).__name__}")
        assert_tensor(got[0], "the trained W", (4, 2), "(inst, 2)")
        assert_tensor(got[1], "the trained b", (4, 2), "(inst, 2)")
        if not (torch.equal(W0, start[0]) and torch.equal(b0, start[1])):
            raise AssertionError("train_tied_relu modified the starting W or b in place; train copies (W.clone())")
        W, b = got[0].detach(), got[1].detach()
        expected = _train(W0, b0, batches, importance, **SETTINGS, reduction=reduction)
        if _close(W, expected[0]) and _close(b, expected[1]):
            continue
        if _close(W, W0) and _close(b, b0):
            raise AssertionError("the weights did not change: take one optimizer.step() per batch")
        for mistake, fix in MISTAKES.items():
            wrong = _train(W0, b0, batches, importance, **SETTINGS, reduction=reduction, mistake=mistake)
            if _close(W, wrong[0]) and _close(b, wrong[1]):
                raise AssertionError(f"with reduction={reduction!r}, your weights match a loop with '{mistake}': {fix}")
        worst = (W - expected[0]).abs().max().item()
        raise AssertionError(
            f"with reduction={reduction!r}, the trained W differs from the reference by up to {worst:.3g} after "
            f"{STEPS} steps of the same batches from the same start; "
            "check the forward pass, the loss and Adam's settings"
        )
    passed("train_tied_relu")
