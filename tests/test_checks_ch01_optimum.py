"""Chapter 1's derivation checks (exercise 1.5) pass correct closed forms and name planted mistakes."""

import math

import pytest
import torch

from utils import checks
from utils.optima import direction_loss, feature_variance, optimal_bias

# --- the variance of a sparse feature ------------------------------------------------------------


def variance_by_moments(p):
    mean, square = p / 2, p / 3
    return square - mean**2


def variance_as_tensor(p):
    p = torch.tensor(p, dtype=torch.float64)
    return p / 3 - (p / 2) ** 2


def variance_by_law_of_total_variance(p):
    # Var = E[Var(x | on/off)] + Var(E[x | on/off]) = p/12 + p(1 - p)/4
    return p / 12 + p * (1 - p) / 4


@pytest.mark.parametrize(
    "variance", [feature_variance, variance_by_moments, variance_as_tensor, variance_by_law_of_total_variance]
)
def test_variance_check_accepts(variance, capsys):
    assert checks.check_feature_variance(variance) is variance
    assert "feature_variance: all checks passed" in capsys.readouterr().out


@pytest.mark.parametrize(
    "wrong, message",
    [
        (lambda p: p / 3, r"that is E\[x²\], the mean of the square"),
        (lambda p: p / 12, "p times the variance of an active value"),  # distribution: forgets the zeros' spread
        (lambda p: 1 / 12, "the feature is 0 with probability 1 - p"),  # distribution: ignores sparsity
        (lambda p: math.sqrt(p / 3 - p**2 / 4), "that is the standard deviation"),
        (lambda p: p / 3 - p**2 / 2, r"E\[x\] = p/2, so E\[x\]² = p²/4, not p²/2"),
        (
            lambda p: p * (1 - p) / 4,
            "the spread of the on/off switch alone",
        ),  # distribution: ignores the value's spread
        (lambda p: p / 3 - p**2 / 4 + 0.01, r"feature_variance\(0\) = 0.01.*always 0"),
        (lambda p: (1 - p) / 3 - (1 - p) ** 2 / 4, r"feature_variance\(0\) = 0.0833.*always 0"),  # sparsity for density
        (lambda p: [p], "should be a number"),
        (lambda p: torch.tensor([p, p]), "should be one number"),
    ],
)
def test_variance_check_catches(wrong, message):
    with pytest.raises(AssertionError, match=message):
        checks.check_feature_variance(wrong)


def test_variance_check_hands_over_the_library_version_while_the_stub_is_empty(capsys):
    def stub(p):
        raise NotImplementedError("return the variance")

    assert checks.check_feature_variance(stub) is feature_variance
    assert "not done yet" in capsys.readouterr().out


# --- the best bias -------------------------------------------------------------------------------


def bias_with_einsum(W, mean):
    return mean - torch.einsum("hf,hg,g->f", W, W, mean)


def bias_with_a_loop(W, mean):
    n = W.shape[1]
    out = mean.clone()
    for i in range(n):
        for j in range(n):
            out[i] -= (W[:, i] * W[:, j]).sum() * mean[j]
    return out


@pytest.mark.parametrize("best_bias", [optimal_bias, bias_with_einsum, bias_with_a_loop])
def test_bias_check_accepts(best_bias, capsys):
    checks.check_best_bias(best_bias)
    assert "best_bias: all checks passed" in capsys.readouterr().out


@pytest.mark.parametrize(
    "wrong, message",
    [
        (lambda W, m: m.clone(), "returned the mean itself"),
        (
            lambda W, m: optimal_bias(W, torch.full_like(m, 0.5)),
            "used 1/2 for the mean",
        ),  # distribution: assumes dense data
        (lambda W, m: m + W.T @ (W @ m), "sign of WᵀW·mean flipped"),
        (lambda W, m: W.T @ (W @ m), r"best_bias\(W, mean\) .* is wrong at"),
        (lambda W, m: m - (W @ W.T) * m, r"best_bias\(W, mean\) .* has shape|raised"),  # structure: WWᵀ instead of WᵀW
        (lambda W, m: (m - W.T @ (W @ m))[None], r"has shape \(1, 2\); expected"),
        (
            lambda W, m: m - torch.diag(W.T @ W) * m,
            r"best_bias\(W, mean\) .* is wrong at",
        ),  # structure: keeps only WᵀW's diagonal
    ],
)
def test_bias_check_catches(wrong, message):
    with pytest.raises(AssertionError, match=message):
        checks.check_best_bias(wrong)


# --- the loss along a direction ------------------------------------------------------------------


def loss_along_with_torch_cov(x, importance, u):
    sigma = torch.cov(x.T, correction=0)
    D = torch.diag(importance)
    cross = u @ sigma @ D @ u
    a = max(float(cross / ((u @ sigma @ u) * (u @ D @ u))), 0.0)
    return float((torch.trace(D @ sigma) - 2 * a * cross + a**2 * (u @ sigma @ u) * (u @ D @ u)) / 2)


def loss_along_by_projection(x, importance, u):
    # Rebuild the model: the best a for this direction, the best bias, and measure the loss on x.
    mean = x.mean(0)
    centred = x - mean
    D = torch.diag(importance)
    sigma = centred.T @ centred / len(x)
    a = max(float((u @ sigma @ D @ u) / ((u @ sigma @ u) * (u @ D @ u))), 0.0)
    out = a * torch.outer(centred @ u, u) + mean
    return (importance * (out - x) ** 2).mean()


@pytest.mark.parametrize("loss_along", [direction_loss, loss_along_with_torch_cov, loss_along_by_projection])
def test_direction_check_accepts(loss_along, capsys):
    checks.check_loss_along(loss_along)
    assert "loss_along: all checks passed" in capsys.readouterr().out


def with_sigma(make_sigma, clamp=True, total=None, denominator=None, halve=True):
    def loss_along(x, importance, u):
        sigma = make_sigma(x)
        D = torch.diag(importance)
        cross, spread, weight = u @ sigma @ D @ u, u @ sigma @ u, u @ D @ u
        gain = cross**2 / (denominator(spread, weight) if denominator else spread * weight)
        if clamp and cross <= 0:
            gain = 0.0
        value = (torch.trace(D @ sigma) if total is None else total(sigma)) - gain
        return value / 2 if halve else value

    return loss_along


population = lambda x: torch.cov(x.T, correction=0)  # noqa: E731


@pytest.mark.parametrize(
    "wrong, message",
    [
        (with_sigma(population, halve=False), "summed over the two features"),
        (with_sigma(lambda x: torch.cov(x.T)), r"covariance with 1/\(n - 1\)"),
        (
            with_sigma(lambda x: x.T @ x / len(x)),
            r"E\[xxᵀ\] instead of the covariance",
        ),  # distribution: the mean is not removed
        (with_sigma(population, clamp=False), "best ‖W‖² would be negative"),  # structure: a >= 0
        (with_sigma(population, denominator=lambda s, w: s**2), r"not \(uᵀΣu\)²"),
        (with_sigma(population, total=torch.trace, denominator=lambda s, w: s * w), r"loss_along on .* is"),
        (
            lambda x, importance, u: float(with_sigma(population)(x, torch.ones(2, dtype=torch.float64), u)),
            "the importances are missing",
        ),
        (lambda x, importance, u: torch.ones(2), "should be one number"),
    ],
)
def test_direction_check_catches(wrong, message):
    with pytest.raises(AssertionError, match=message):
        checks.check_loss_along(wrong)


def test_direction_checks_run_fast_for_a_plain_implementation():
    import time

    start = time.process_time()
    checks.check_loss_along(loss_along_by_projection)
    assert time.process_time() - start < 5  # generous: the brief asks for under 1 s on a quiet machine
    assert math.isfinite(direction_loss(torch.rand(10, 2), torch.ones(2), torch.tensor([1.0, 0.0])).item())
