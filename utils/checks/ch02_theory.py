"""Checks for chapter 2's closed forms (exercise 2.3): the loss of the switch W = [1, -1], b = 0 and of
the best linear solution (keep one feature, the other on its mean), with equal importances, compared
with the exact expected loss integrated numerically (`utils.optima.two_feature_loss`)."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from utils.checks.compare import call_learner, learner_check, passed
from utils.optima import antipodal_loss, feature_variance, two_feature_loss

DENSITIES = (0.01, 0.1, 0.3, 0.5, 0.8, 1.0)


def reference_switch_loss(p: float) -> float:
    """The answer to exercise 2.3a: p²/6 (mean over the two features, importances 1)."""
    return float(antipodal_loss(p, torch.ones(2)))


def reference_keep_one_loss(p: float) -> float:
    """The answer to exercise 2.3b: Var/2 with Var = p/3 - p²/4 (mean over the two features)."""
    return feature_variance(p) / 2


def integrated_loss(W: list[float], b: list[float], p: float) -> float:
    """The expected loss of one model with equal importances, integrated numerically over the distribution."""
    W_, b_ = torch.tensor([W], dtype=torch.float64), torch.tensor([b], dtype=torch.float64)
    return float(
        two_feature_loss(W_, b_, torch.tensor([p], dtype=torch.float64), torch.ones(1, 2, dtype=torch.float64))
    )


def _values(learner: Callable, name: str) -> list[float]:
    values = []
    for p in DENSITIES:
        value = call_learner(name, learner, p)
        if isinstance(value, torch.Tensor) and value.numel() == 1:
            value = value.item()
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
            raise AssertionError(f"{name}({p}) should be a finite number (a float or a 0-d tensor), got {value!r}")
        values.append(float(value))
    return values


def _compare(
    name: str, got: list[float], expected: list[float], mistakes: list[tuple[Callable[[float], float], str]]
) -> None:
    if all(abs(g - e) <= 1e-9 + 1e-7 * abs(e) for g, e in zip(got, expected)):
        passed(name)
        return
    index = next(k for k, (g, e) in enumerate(zip(got, expected)) if abs(g - e) > 1e-9 + 1e-7 * abs(e))
    where = (
        f"{name}({DENSITIES[index]}) = {got[index]:.6g}; "
        f"integrating the loss over the distribution gives {expected[index]:.6g}"
    )
    for mistake, message in mistakes:
        if all(abs(g - mistake(p)) <= 1e-9 + 1e-7 * abs(mistake(p)) for g, p in zip(got, DENSITIES)):
            raise AssertionError(f"{where}: {message}")
    raise AssertionError(where)


SWITCH_MISTAKES = [
    (lambda p: p**2 / 3, "that is the loss summed over the two features; the book's loss is their mean"),
    (
        lambda p: p**2 / 12,
        "both outputs miss when both features are active: if x₁ > x₂, output 1 is x₁ - x₂ (short by x₂) "
        "and output 2 is clipped to 0 (short by x₂)",
    ),
    (lambda p: p / 6, "the switch is exact unless both features are active, which happens with probability p², not p"),
    (lambda p: p**2 / 9, "the mean of the square of min(x₁, x₂) is 1/6; (E[min])² = 1/9 is the square of its mean"),
    (
        lambda p: 2 * p * (1 - p) / 6,
        "with exactly one feature active the switch is exact: the error comes from both being active (p²)",
    ),
    (lambda p: p**2 / 4, "min(x₁, x₂) has density 2(1 - m) on [0, 1], so E[min²] = 1/6, not 1/4"),
]

KEEP_ONE_MISTAKES = [
    (
        lambda p: feature_variance(p),
        "that is the variance summed over the two features (one feature costs Var, the other 0); take the mean",
    ),
    (
        lambda p: p / 6,
        "that leaves the dropped feature's output at 0 (loss E[x²]/2 = p/6): the best bias puts it at its mean p/2",
    ),
    (
        lambda p: p / 24,
        "that is p times the variance of an active value: the dropped feature's spread includes its zeros, Var = p/3 - "
        "p²/4",
    ),
    (
        lambda p: (1 / 3 - 1 / 4) / 2,
        "that is the dense answer 1/24 for every p: the dropped feature's variance depends on p",
    ),
    (lambda p: (p / 3 - p**2 / 2) / 2, "E[x]² = (p/2)² = p²/4"),
    (
        lambda p: ((1 - p) / 3 - (1 - p) ** 2 / 4) / 2,
        "p is the density (probability of being active), not the sparsity",
    ),
]


@learner_check(reference_switch_loss, "switch loss (`utils.optima.antipodal_loss` with importances 1)")
def check_switch_loss(switch_loss) -> None:
    """`switch_loss(p)`: the loss of W = [1, -1], b = 0, compared with the integrated loss."""
    _compare(
        "switch_loss",
        _values(switch_loss, "switch_loss"),
        [integrated_loss([1.0, -1.0], [0.0, 0.0], p) for p in DENSITIES],
        SWITCH_MISTAKES,
    )


@learner_check(reference_keep_one_loss, "keep-one loss (`utils.optima.feature_variance(p) / 2`)")
def check_keep_one_loss(keep_one_loss) -> None:
    """`keep_one_loss(p)`: the loss of W = [1, 0], b = (0, p/2), compared with the integrated loss."""
    _compare(
        "keep_one_loss",
        _values(keep_one_loss, "keep_one_loss"),
        [integrated_loss([1.0, 0.0], [0.0, p / 2], p) for p in DENSITIES],
        KEEP_ONE_MISTAKES,
    )
