"""Chapter 4's training-loop check passes valid loops and names each planted mistake.

The planted loops are written from the exercise's text (Adam with lr, weight_decay and eps; a model's
loss sums the importance-weighted squared error over the features and averages over the batch; the
step's loss sums or averages the models' losses), each with one mistake."""

import pytest
import torch

from utils import checks
from utils.hierarchy import train_tied_relu


def einsum_loop(W, b, batches, importance, lr=1e-2, weight_decay=1e-4, eps=1e-8, reduction="sum"):
    W, b = W.clone().requires_grad_(True), b.clone().requires_grad_(True)
    adam = torch.optim.Adam([W, b], lr=lr, weight_decay=weight_decay, eps=eps)
    for x in batches:
        h = torch.einsum("nif,if->ni", x, W)
        out = torch.relu(torch.einsum("ni,if->nif", h, W) + b)
        per_model = torch.einsum("nif,if->i", (out - x) ** 2, importance) / x.shape[0]
        loss = per_model.mean() if reduction == "mean" else per_model.sum()
        adam.zero_grad()
        loss.backward()
        adam.step()
    return W.detach(), b.detach()


def model_by_model_loss(W, b, batches, importance, lr=1e-2, weight_decay=1e-4, eps=1e-8, reduction="sum"):
    W, b = W.clone().requires_grad_(True), b.clone().requires_grad_(True)
    adam = torch.optim.Adam([W, b], lr=lr, weight_decay=weight_decay, eps=eps)
    n = W.shape[0]
    for x in batches:
        adam.zero_grad(set_to_none=True)
        loss = 0.0
        for i in range(n):
            out = torch.relu(torch.outer(x[:, i] @ W[i], W[i]) + b[i])
            error = torch.nn.functional.mse_loss(out, x[:, i], reduction="none") * importance[i]
            loss = loss + error.sum() / len(x)
        (loss / n if reduction == "mean" else loss).backward()
        adam.step()
    return W.detach(), b.detach()


@pytest.mark.parametrize("fn", [train_tied_relu, einsum_loop, model_by_model_loss])
def test_valid_loops_pass(fn, capsys):
    assert checks.check_train_tied_relu(fn) is fn
    assert "all checks passed" in capsys.readouterr().out


def loop(
    W,
    b,
    batches,
    importance,
    lr=1e-2,
    weight_decay=1e-4,
    eps=1e-8,
    reduction="sum",
    *,
    relu=True,
    features="sum",
    batch="mean",
    use_importance=True,
    always_sum=False,
    pass_decay=True,
    pass_eps=True,
    zero=True,
    in_place=False,
    train_bias=True,
):
    """The exercise's loop written plainly, with switches that each plant one mistake."""
    if not in_place:
        W, b = W.clone(), b.clone()
    W.requires_grad_(True)
    b.requires_grad_(True)
    options = dict(lr=lr)
    if pass_decay:
        options["weight_decay"] = weight_decay
    if pass_eps:
        options["eps"] = eps
    adam = torch.optim.Adam([W, b] if train_bias else [W], **options)
    for x in batches:
        z = (x * W).sum(-1, keepdim=True) * W + b
        out = torch.relu(z) if relu else z
        error = (out - x) ** 2
        if use_importance:
            error = error * importance
        error = error.sum(-1) if features == "sum" else error.mean(-1)
        per_model = error.mean(0) if batch == "mean" else error.sum(0)
        loss = per_model.mean() if (reduction == "mean" and not always_sum) else per_model.sum()
        if zero:
            adam.zero_grad()
        loss.backward()
        with torch.no_grad():
            adam.step()
    return W.detach(), b.detach()


def planted(**mistake):
    return lambda *args, **kwargs: loop(*args, **kwargs, **mistake)


@pytest.mark.parametrize(
    "fn, message",
    [
        (planted(relu=False), r"'no relu': the output is ReLU"),
        (planted(features="mean"), r"'mean over features'.*sums the weighted squared error over the two features"),
        (planted(batch="sum"), r"'sum over batch'.*averages over the batch"),
        (planted(use_importance=False), r"'no importance'"),
        (planted(always_sum=True), r"reduction='mean'.*'reduction swapped'"),
        (planted(pass_decay=False), r"'no decay': pass weight_decay"),
        (planted(pass_eps=False), r"'no eps': pass eps"),
        (planted(zero=False), r"'no zero_grad'"),
        (planted(train_bias=False), r"'bias not trained'"),
        (planted(in_place=True), r"modified the starting W or b in place"),
        (lambda *a, **k: loop(*a, **k)[0], r"tuple of two tensors"),
        (lambda W, b, *a, **k: (W.clone(), b.clone()), r"did not change"),
    ],
)
def test_planted_mistakes_are_named(fn, message):
    with pytest.raises(AssertionError, match=message):
        checks.check_train_tied_relu(fn)


def test_library_loop_mean_is_sum_with_scaled_decay_and_eps():
    """Seed 000's mean over N models = the sum with decay N·λ and Adam's ε N·ε, to rounding (Adam's step
    does not change when the gradient and ε are scaled together)."""
    generator = torch.Generator().manual_seed(0)
    n = 50
    from utils.data import HierarchicalPairs

    law = HierarchicalPairs(torch.full((n,), 0.3), torch.linspace(0.05, 1.0, n))
    batches = [law.sample(128, generator) for _ in range(200)]
    W0, b0 = torch.randn(n, 2, generator=generator).sign(), torch.zeros(n, 2)
    importance = torch.stack([torch.ones(n), torch.logspace(-1, 1, n)], dim=-1)
    mean = train_tied_relu(W0, b0, batches, importance, weight_decay=1e-3, eps=1e-5, reduction="mean")
    scaled = train_tied_relu(W0, b0, batches, importance, weight_decay=n * 1e-3, eps=n * 1e-5, reduction="sum")
    unscaled_eps = train_tied_relu(W0, b0, batches, importance, weight_decay=n * 1e-3, eps=1e-5, reduction="sum")
    assert (mean[0] - scaled[0]).abs().max() < 1e-5 and (mean[1] - scaled[1]).abs().max() < 1e-5
    # leaving ε unscaled changes the run: the identity needs both
    assert (mean[1] - unscaled_eps[1]).abs().max() > 1e-3
