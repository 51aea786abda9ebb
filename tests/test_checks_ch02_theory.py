"""Chapter 2's closed-form checks (exercise 2.3) pass correct derivations and name planted mistakes."""

import pytest
import torch

from utils import checks
from utils.checks.ch02_theory import reference_keep_one_loss, reference_switch_loss


def switch_by_probabilities(p):
    both = p * p
    mean_min_squared = 1 / 6  # min(x1, x2) has density 2(1 - m)
    return both * 2 * mean_min_squared / 2


def switch_as_tensor(p):
    return torch.tensor(p, dtype=torch.float64) ** 2 / 6


@pytest.mark.parametrize("switch_loss", [reference_switch_loss, switch_by_probabilities, switch_as_tensor])
def test_switch_check_accepts(switch_loss, capsys):
    checks.check_switch_loss(switch_loss)
    assert "switch_loss: all checks passed" in capsys.readouterr().out


@pytest.mark.parametrize(
    "wrong, message",
    [
        (lambda p: p**2 / 3, "summed over the two features"),
        (lambda p: p**2 / 12, "both outputs miss when both features are active"),  # structure: which outputs err
        (lambda p: p / 6, "probability p², not p"),  # distribution: when the error happens
        (lambda p: p**2 / 9, r"\(E\[min\]\)² = 1/9"),  # distribution: mean of the square vs square of the mean
        (lambda p: 2 * p * (1 - p) / 6, "with exactly one feature active the switch is exact"),
        (lambda p: p**2 / 4, "density 2\\(1 - m\\)"),
        (lambda p: p**2 / 6 + 1e-3, r"switch_loss\(0.01\) = 0.00101667"),
        (lambda p: "p²/6", "should be a finite number"),
    ],
)
def test_switch_check_catches(wrong, message):
    with pytest.raises(AssertionError, match=message):
        checks.check_switch_loss(wrong)


def keep_one_by_moments(p):
    second, first = p / 3, p / 2
    return (second - first**2) / 2


@pytest.mark.parametrize(
    "keep_one_loss", [reference_keep_one_loss, keep_one_by_moments, lambda p: torch.tensor((p / 3 - p * p / 4) / 2)]
)
def test_keep_one_check_accepts(keep_one_loss, capsys):
    checks.check_keep_one_loss(keep_one_loss)
    assert "keep_one_loss: all checks passed" in capsys.readouterr().out


@pytest.mark.parametrize(
    "wrong, message",
    [
        (lambda p: p / 3 - p**2 / 4, "summed over the two features"),
        (lambda p: p / 6, "leaves the dropped feature's output at 0"),  # structure: the bias
        (lambda p: p / 24, "p times the variance of an active value"),  # distribution: the zeros' spread
        (lambda p: 1 / 24, "the dense answer 1/24 for every p"),  # distribution: ignores sparsity
        (lambda p: (p / 3 - p**2 / 2) / 2, r"E\[x\]² = \(p/2\)² = p²/4"),
        (lambda p: ((1 - p) / 3 - (1 - p) ** 2 / 4) / 2, "density .*not the sparsity"),
        (lambda p: (p / 3 - p**2 / 4) / 2 * 1.01, r"keep_one_loss\(0.01\)"),
    ],
)
def test_keep_one_check_catches(wrong, message):
    with pytest.raises(AssertionError, match=message):
        checks.check_keep_one_loss(wrong)
