"""Checks for chapter 1's derivation (exercise 1.5): the variance of a sparse feature, the best bias, and
the loss along a direction, each compared with a numerical computation that does not use the closed
form (an integral of the distribution, least squares on a data set)."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from utils.checks.compare import assert_close, call_learner, learner_check, passed
from utils.data import generate_data
from utils.optima import direction_loss, feature_variance, optimal_bias

DENSITIES = (0.0, 0.05, 0.2, 0.5, 0.8, 1.0)


def _number(value, what: str) -> float:
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise AssertionError(f"{what} should be one number, got a tensor of shape {tuple(value.shape)}")
        value = value.item()
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise AssertionError(f"{what} should be a number (a float or a 0-d tensor), got {type(value).__name__}")
    if not math.isfinite(value):
        raise AssertionError(f"{what} is {value}; expected a finite number")
    return float(value)


def integrated_variance(p: float, n_grid: int = 100_000) -> float:
    """The variance of the feature's distribution by numerical integration: E[x^k] = p·∫₀¹ v^k dv on a
    midpoint grid (the zeros, with probability 1 - p, add nothing to either moment)."""
    v = (torch.arange(n_grid, dtype=torch.float64) + 0.5) / n_grid
    first, second = p * v.mean().item(), p * (v**2).mean().item()
    return second - first**2


VARIANCE_MISTAKES: list[tuple[Callable[[float], float], str]] = [
    (
        lambda p: p / 3,
        "that is E[x²], the mean of the square; the variance also subtracts the square of the mean, E[x]²",
    ),
    (
        lambda p: p / 12,
        "that is p times the variance of an active value (1/12): it leaves out the spread between the zeros "
        "and the active values; compute E[x²] - E[x]² over the whole distribution",
    ),
    (lambda p: math.sqrt(p / 3 - p**2 / 4), "that is the standard deviation, the square root of the variance"),
    (lambda p: p / 3 - p**2 / 2, "E[x] = p/2, so E[x]² = p²/4, not p²/2"),
    (
        lambda p: p * (1 - p) / 4,
        "that is the spread of the on/off switch alone (p(1 - p) times (1/2)²); an active value also varies",
    ),
    (lambda p: 1 / 12, "that is the variance of an active value whatever p: the feature is 0 with probability 1 - p"),
]


@learner_check(feature_variance, "`utils.optima.feature_variance`")
def check_feature_variance(variance) -> None:
    """`variance(p)`: the variance of a feature that is 0 with probability 1 - p, else uniform on [0, 1]."""
    got = [_number(call_learner("feature_variance", variance, p), f"feature_variance({p})") for p in DENSITIES]
    expected = [integrated_variance(p) for p in DENSITIES]
    if all(abs(g - e) < 1e-6 for g, e in zip(got, expected)):
        passed("feature_variance")
        return
    for mistake, message in VARIANCE_MISTAKES:
        if all(abs(g - mistake(p)) < 1e-6 for g, p in zip(got, DENSITIES)):
            raise AssertionError(f"feature_variance(0.2) = {got[2]:.5f}, expected {expected[2]:.5f}: {message}")
    if abs(got[0]) > 1e-6:
        raise AssertionError(
            f"feature_variance(0) = {got[0]:.5g}; with p = 0 the feature is always 0, so its variance is 0"
        )
    if abs(got[-1] - 1 / 12) > 1e-6:
        raise AssertionError(
            f"feature_variance(1) = {got[-1]:.5g}; with p = 1 the feature is uniform on [0, 1], variance 1/12 ≈ 0.08333"
        )
    p, g, e = next((p, g, e) for p, g, e in zip(DENSITIES, got, expected) if abs(g - e) >= 1e-6)
    raise AssertionError(f"feature_variance({p}) = {g:.6g}; the integral of the distribution gives {e:.6g}")


def _least_squares_bias(W: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """The bias minimising the loss of x' = WᵀWx + b on the points `x: (n, feats)`, by least squares."""
    residual = x - x @ W.T @ W  # what the map misses, (n, feats)
    ones = torch.ones(x.shape[0], 1, dtype=x.dtype)
    return torch.stack([torch.linalg.lstsq(ones, residual[:, i : i + 1]).solution[0, 0] for i in range(x.shape[1])])


@learner_check(optimal_bias, "`utils.optima.optimal_bias`")
def check_best_bias(best_bias) -> None:
    """`best_bias(W, mean)`: `W: (d_hidden, feats)`, `mean: (feats,)` -> the loss-minimising bias `(feats,)`."""
    generator = torch.Generator().manual_seed(5)
    for d_hidden, n_features, sparsity in ((1, 2, 0.8), (2, 3, 0.5), (1, 3, 0.0)):
        W = torch.randn(d_hidden, n_features, generator=generator, dtype=torch.float64)
        x = generate_data(400, n_features, sparsity, generator=generator).double()
        mean = x.mean(dim=0)
        expected = _least_squares_bias(W, x)
        got = call_learner("best_bias", best_bias, W.clone(), mean.clone())
        if isinstance(got, torch.Tensor) and got.shape == expected.shape and got.dtype == expected.dtype:
            got_values = got.detach()
            if torch.allclose(got_values, mean, atol=1e-9) and not torch.allclose(expected, mean, atol=1e-6):
                raise AssertionError(
                    "best_bias returned the mean itself: the bias only has to supply what WᵀW·mean does not, (Id - "
                    "WᵀW)·mean"
                )
            if torch.allclose(
                got_values, optimal_bias(W, torch.full_like(mean, 0.5)), atol=1e-9
            ) and not torch.allclose(mean, torch.full_like(mean, 0.5)):
                raise AssertionError(
                    "best_bias used 1/2 for the mean, the mean of dense data; use the `mean` it is given "
                    f"(here {mean.numpy().round(3).tolist()}: sparse features have mean p/2)"
                )
            if torch.allclose(got_values, -expected + 2 * mean, atol=1e-9):
                raise AssertionError("best_bias has the sign of WᵀW·mean flipped: the bias is mean - WᵀW·mean")
        assert_close(
            got,
            expected,
            f"best_bias(W, mean) for W of shape {(d_hidden, n_features)}",
            "(feats,)",
            atol=1e-9,
            rtol=1e-7,
            rule="the loss is a sum of squares of (WᵀWx + b - x): set its derivative in b to zero",
        )
    passed("best_bias")


def _least_squares_direction_loss(x: torch.Tensor, importance: torch.Tensor, u: torch.Tensor) -> float:
    """min over a >= 0 and b of the mean-over-features loss with WᵀW = a·uuᵀ, by weighted least squares on `x`."""
    h = x @ u  # (n,)
    rows, targets = [], []
    for i in range(2):
        weight = importance[i].sqrt()
        design = torch.zeros(x.shape[0], 3, dtype=x.dtype)
        design[:, 0] = u[i] * h
        design[:, 1 + i] = 1.0
        rows.append(weight * design)
        targets.append(weight * x[:, i])
    solution = torch.linalg.lstsq(torch.cat(rows), torch.cat(targets)[:, None]).solution[:, 0]
    a, b = solution[0], solution[1:]
    if a < 0:  # a = ‖W‖² cannot be negative: the constrained optimum is then a = 0
        a, b = torch.zeros((), dtype=x.dtype), x.mean(dim=0)
    out = a * u[None, :] * h[:, None] + b
    return float((importance * (out - x) ** 2).mean())


def _direction_cases() -> list[tuple[str, torch.Tensor, torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(6)
    sparse = generate_data(1000, 2, 0.8, generator=generator).double()
    dense = generate_data(500, 2, 0.0, generator=generator).double()
    base = generate_data(800, 1, 0.0, generator=generator).double()
    correlated = torch.cat([base, base + 0.05 * torch.rand(800, 1, generator=generator, dtype=torch.float64)], dim=1)
    cases = []
    for name, x, importance in (
        ("sparse data", sparse, [1.0, 0.3]),
        ("dense data", dense, [1.0, 1.0]),
        ("correlated features", correlated, [1.0, 0.01]),
    ):
        for degrees in (10.0, 60.0, 100.0, 150.0):
            angle = math.radians(degrees)
            cases.append(
                (
                    f"{name}, importance {importance}, u at {degrees:.0f}°",
                    x,
                    torch.tensor(importance, dtype=torch.float64),
                    torch.tensor([math.cos(angle), math.sin(angle)], dtype=torch.float64),
                )
            )
    return cases


def _direction_loss_variants(x: torch.Tensor, importance: torch.Tensor, u: torch.Tensor) -> dict[str, float]:
    """Values that common mistakes give, each with what the mistake is."""
    mean = x.mean(dim=0)
    D = torch.diag(importance)
    variants = {}
    for name, sigma in (
        ("population", (x - mean).T @ (x - mean) / len(x)),
        ("unbiased", (x - mean).T @ (x - mean) / (len(x) - 1)),
        ("raw", x.T @ x / len(x)),
    ):
        cross, spread, weight = u @ sigma @ D @ u, u @ sigma @ u, u @ D @ u
        total = torch.trace(D @ sigma)
        clamped = total - (cross**2 / (spread * weight) if cross > 0 else 0.0)
        variants[name] = float(clamped / 2)
        if name == "population":
            variants["sum over features"] = float(clamped)
            variants["no clamp"] = float((total - cross**2 / (spread * weight)) / 2)
            variants["squared spread"] = float((total - (cross**2 / spread**2 if cross > 0 else 0.0)) / 2)
            variants["no importance"] = float((torch.trace(sigma) - u @ sigma @ u) / 2)
    return variants


DIRECTION_MISTAKES = {
    "sum over features": "it is the loss summed over the two features; the book's loss is their mean (divide by 2)",
    "unbiased": "it uses the covariance with 1/(n - 1) (torch.cov's default); the loss averages over the n points, so "
    "divide by n",
    "raw": "it uses E[xxᵀ] instead of the covariance: the best bias absorbs the mean, so only the covariance of x "
    "(centred) remains",
    "no clamp": "where uᵀΣDu < 0 the best ‖W‖² would be negative, which is impossible: then a = 0 and L(u) = tr(DΣ)/2",
    "squared spread": "the denominator is (uᵀΣu)(uᵀDu), not (uᵀΣu)²: the two agree only when the importances are equal",
    "no importance": "the importances are missing: weight each feature's error by its importance (D = "
    "diag(importance))",
}


@learner_check(direction_loss, "`utils.optima.direction_loss`")
def check_loss_along(loss_along) -> None:
    """`loss_along(x, importance, u)`: the minimum over ‖W‖ and b of the loss with W along u, on the data `x`."""
    for case, x, importance, u in _direction_cases():
        got = _number(
            call_learner("loss_along", loss_along, x.clone(), importance.clone(), u.clone()), f"loss_along on {case}"
        )
        expected = _least_squares_direction_loss(x, importance, u)
        if abs(got - expected) <= 1e-7 + 1e-6 * abs(expected):
            continue
        variants = _direction_loss_variants(x, importance, u)
        for name, message in DIRECTION_MISTAKES.items():
            if abs(got - variants[name]) <= 1e-9 + 1e-7 * abs(variants[name]) and abs(variants[name] - expected) > 1e-7:
                raise AssertionError(
                    f"loss_along on {case} is {got:.6g}; least squares gives {expected:.6g}: {message}"
                )
        raise AssertionError(
            f"loss_along on {case} is {got:.6g}; minimising the loss over ‖W‖ and b numerically gives {expected:.6g}. "
            "Check each step: the best bias, the parabola in a = ‖W‖², its minimum over a >= 0"
        )
    passed("loss_along")
