"""Exact optima to compare training with: the linear model with one hidden dimension; the tied ReLU
model of two independent sparse features in one dimension (exact expected loss, closed forms of the
candidate solutions, the optimum by Newton's method from several starts). (Chapter 4's tied ReLU
model of two hierarchical features has its own module, `utils.hierarchy_optima`.)

With one hidden dimension, WᵀW = a·uuᵀ for a unit direction u and a = ‖W‖². The best bias is
b = (I - WᵀW)·mean(x), after which the importance-weighted loss, summed over features, is

    L(a, u) = tr(DΣ) - 2a·uᵀΣDu + a²·(uᵀΣu)(uᵀDu),     D = diag(importance), Σ = cov(x).

It is a parabola in a, minimised at a* = uᵀΣDu / ((uᵀΣu)(uᵀDu)) when uᵀΣDu > 0 (else a* = 0), leaving

    L(u) = tr(DΣ) - (uᵀΣDu)² / ((uᵀΣu)(uᵀDu)),

a function of the direction alone. Dividing by the number of features gives the book's loss (a mean
over features). For independent features of equal variance Var, L(u) is smallest along the most
important feature, with mean loss (Σ_i I_i - max_i I_i)·Var / n_features.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch.func import grad, hessian, vmap


def feature_variance(density: float) -> float:
    """Variance of a feature that is uniform on [0, 1] with probability `density`, else 0: s/3 - s²/4."""
    if not 0.0 <= density <= 1.0:
        raise ValueError(f"density must lie in [0, 1], got {density}")
    return density / 3 - density**2 / 4


def population_optimum(density: float, importance: torch.Tensor) -> float:
    """Lowest mean-over-features loss of the 1-hidden-dimension linear model on independent features.

    Every feature has the same variance, so the model keeps the most important feature and puts
    every other one on its mean: (Σ_i I_i - max_i I_i)·Var / n_features.
    """
    importance = torch.as_tensor(importance, dtype=torch.float64)
    return float((importance.sum() - importance.max()) * feature_variance(density) / importance.numel())


@dataclass
class LinearOptimum:
    """The exact minimum of the mean-over-features loss on a dataset.

    Attributes:
        loss: the minimum loss.
        W: `(2,)` an optimal weight vector (its sign is arbitrary).
        b: `(2,)` the optimal bias.
        angles: `(n_angles,)` directions of W in [0, π), radians.
        landscape: `(n_angles,)` the loss minimised over ‖W‖ and b at each direction.
    """

    loss: float
    W: torch.Tensor
    b: torch.Tensor
    angles: torch.Tensor
    landscape: torch.Tensor


def _check_linear_inputs(x: torch.Tensor, importance: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if not isinstance(x, torch.Tensor) or x.dim() != 2 or x.shape[1] != 2:
        raise ValueError(f"x must have shape (n_points, 2), got {tuple(getattr(x, 'shape', ()))}")
    importance = torch.as_tensor(importance, dtype=torch.float64)
    if importance.shape != (2,) or (importance < 0).any():
        raise ValueError(f"importance must be 2 non-negative numbers, got {importance.tolist()}")
    return x.detach().double().cpu(), importance


def optimal_bias(W: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
    """The bias that minimises the loss of x' = WᵀWx + b for fixed W: (Id - WᵀW)·mean.

    `W: (d_hidden, feats)`, `mean: (feats,)` the data's mean -> `(feats,)`. The loss is a sum of
    squares of (WᵀWx + b - x), so the best b is the mean of x - WᵀWx, whatever the importances.
    """
    if W.dim() != 2 or mean.shape != (W.shape[1],):
        raise ValueError(
            f"W must have shape (d_hidden, feats) and mean (feats,), got {tuple(W.shape)} and {tuple(mean.shape)}"
        )
    return mean - W.T @ (W @ mean)


def direction_loss(x: torch.Tensor, importance: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """L(u): the loss of x' = WᵀWx + b (2 features, 1 hidden dimension) minimised over ‖W‖ and b with W
    along the unit direction u, on the dataset `x: (n_points, 2)`, as a mean over the two features.

    With a = ‖W‖², D = diag(importance) and Σ the covariance of x (divided by n_points), the loss
    with the best bias is tr(DΣ) - 2a·uᵀΣDu + a²·(uᵀΣu)(uᵀDu) (summed over features); its minimum over
    a >= 0 is tr(DΣ) - (uᵀΣDu)²/((uᵀΣu)(uᵀDu)) when uᵀΣDu > 0, else tr(DΣ) (a = 0).

    Args:
        u: `(2,)` or `(n, 2)` unit directions.

    Returns:
        `()` or `(n,)` float64.
    """
    x, importance = _check_linear_inputs(x, importance)
    u = torch.as_tensor(u, dtype=torch.float64)
    mean = x.mean(dim=0)
    sigma = (x - mean).T @ (x - mean) / len(x)
    D = torch.diag(importance)
    cross = torch.einsum("...i,ij,jk,...k->...", u, sigma, D, u)
    spread = torch.einsum("...i,ij,...j->...", u, sigma, u)
    weight = torch.einsum("...i,ij,...j->...", u, D, u)
    gain = torch.where(cross > 0, cross**2 / (spread * weight), 0.0)
    return (torch.trace(D @ sigma) - gain) / 2


def linear_optimum(x: torch.Tensor, importance: torch.Tensor, n_angles: int = 36_000) -> LinearOptimum:
    """The exact optimum of x' = WᵀWx + b (2 features, 1 hidden dimension) on the dataset `x: (n_points, 2)`.

    The direction is found on a grid of `n_angles` angles (1/100 of a degree by default) with
    `direction_loss`; the norm and the bias are then exact.
    """
    x, importance = _check_linear_inputs(x, importance)
    angles = torch.arange(n_angles, dtype=torch.float64) * (math.pi / n_angles)
    landscape = direction_loss(x, importance, torch.stack([angles.cos(), angles.sin()], dim=1))
    best = int(landscape.argmin())
    u = torch.stack([angles[best].cos(), angles[best].sin()])
    mean = x.mean(dim=0)
    sigma = (x - mean).T @ (x - mean) / len(x)
    cross = u @ sigma @ torch.diag(importance) @ u
    norm_sq = max(float(cross / ((u @ sigma @ u) * (u @ torch.diag(importance) @ u))), 0.0)
    W = u * math.sqrt(norm_sq)
    b = optimal_bias(W[None], mean)
    return LinearOptimum(
        loss=float(landscape[best]), W=W.float(), b=b.float(), angles=angles.float(), landscape=landscape.float()
    )


def antipodal_loss(density: float | torch.Tensor, importance: torch.Tensor) -> torch.Tensor:
    """Loss of the switch W = [1, -1], b = 0 on two independent features of density p: p²(I₁ + I₂)/12.

    Only points with both features active cost anything: then x' = (x₁ - x₂, 0) or (0, x₂ - x₁), and
    each output misses by min(x₁, x₂), whose square has mean 1/6. Mean over the two features.

    Args:
        density: p, a number or `(k,)`; importance: `(2,)` or `(k, 2)`.
    """
    density = torch.as_tensor(density, dtype=torch.float64)
    importance = torch.as_tensor(importance, dtype=torch.float64)
    return density**2 * importance.sum(-1) / 12


_GAUSS = (
    (torch.tensor([-(0.6**0.5), 0.0, 0.6**0.5], dtype=torch.float64) + 1) / 2,
    torch.tensor([5, 8, 5], dtype=torch.float64) / 18,
)
"""Gauss-Legendre nodes and weights on [0, 1], exact for polynomials of degree 5."""
_SIMPSON = (torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64), torch.tensor([1, 4, 1], dtype=torch.float64) / 6)
"""Simpson's rule on [0, 1], exact for polynomials of degree 3."""


def _zero_of(slope: torch.Tensor, offset: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Where slope·s + offset = 0 (0 where the slope vanishes), and where the slope does not vanish."""
    ok = slope.abs() > 1e-12
    return torch.where(ok, -offset / torch.where(ok, slope, torch.ones_like(slope)), torch.zeros_like(offset)), ok


def _positive_part(slope: torch.Tensor, offset: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The interval [lo, hi] of s in [0, 1] where slope·s + offset > 0 (lo = hi when empty)."""
    root, ok = _zero_of(slope, offset)
    root = root.clamp(0, 1)
    lo = torch.where(ok & (slope > 0), root, torch.zeros_like(root))
    hi = torch.where(ok, torch.where(slope < 0, root, torch.ones_like(root)), (offset > 0).to(offset.dtype))
    return lo, torch.maximum(hi, lo)


def _integral(g, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """∫_lo^hi g(s) ds for g a polynomial of degree at most 3 in s (Simpson's rule, exact)."""
    nodes, weights = _SIMPSON
    s = lo[..., None] + (hi - lo)[..., None] * nodes
    return (hi - lo) * (g(s) * weights).sum(-1)


def two_feature_loss(W: torch.Tensor, b: torch.Tensor, density: torch.Tensor, importance: torch.Tensor) -> torch.Tensor:
    """Exact expected loss of x' = ReLU(WᵀWx + b), two independent features in one hidden dimension.

    Feature i is active with probability p_i and then uniform on [0, 1]. Output i is
    ReLU(A_i1 x₁ + A_i2 x₂ + b_i) with A = WᵀW, so its squared error is piecewise quadratic in the
    inputs, with one kink where the pre-activation crosses 0. The expectation is a sum over which
    features are active: no feature (only the bias), one feature (an integral over [0, 1], done in
    closed form on the part where the output is positive), both (over the unit square: for each x₂
    the integral over x₁ in closed form, then over x₂ with Gauss-Legendre on the pieces between the
    kinks, where the integrand is a cubic). Every step is exact up to rounding, and differentiable.

    Args:
        W, b: `(k, 2)` one model per row (W is the 1 x 2 weight matrix).
        density: `(k,)` or `(k, 2)` probabilities that each feature is active.
        importance: `(k, 2)` (or `(2,)`) importances.

    Returns:
        `(k,)` the loss of each model, the importance-weighted squared error averaged over the two
        features (the book's loss).
    """
    if W.dim() != 2 or W.shape[-1] != 2 or b.shape != W.shape:
        raise ValueError(f"W and b must both have shape (k, 2), got {tuple(W.shape)} and {tuple(b.shape)}")
    p = torch.as_tensor(density, dtype=W.dtype, device=W.device)
    p = (p[:, None] if p.dim() == 1 else p).expand(W.shape[0], 2)
    importance = torch.as_tensor(importance, dtype=W.dtype, device=W.device).expand(W.shape[0], 2)
    A = W[:, :, None] * W[:, None, :]  # (k, output i, input j)
    eye = torch.eye(2, dtype=W.dtype, device=W.device)
    # One feature j active with value t: output i has pre-activation A_ij t + b_i and target δ_ij t.
    offset = b[:, :, None].expand_as(A)
    lo, hi = _positive_part(A, offset)
    single = eye / 3 + _integral(
        lambda t: (A[..., None] * t + offset[..., None] - eye[..., None] * t) ** 2 - (eye[..., None] * t) ** 2, lo, hi
    )
    # Both active: x₂ = t outer, x₁ = s inner; output i is positive where A_i1 s + (A_i2 t + b_i) > 0.
    a1, a2 = A[:, :, 0], A[:, :, 1]  # (k, i)
    kink_0, ok = _zero_of(a2, b)  # the kink leaves the square at s = 0 ...
    kink_1, _ = _zero_of(a2, b + a1)  # ... or at s = 1
    zero = torch.zeros_like(kink_0)
    inside = [torch.where(ok, kink.clamp(0, 1), zero) for kink in (kink_0, kink_1)]
    knots = torch.sort(torch.stack([zero, *inside, zero + 1], dim=-1), dim=-1).values  # (k, i, 4)
    nodes, weights = _GAUSS
    width = knots[..., 1:] - knots[..., :-1]
    t = (knots[..., :-1, None] + width[..., None] * nodes).flatten(-2)  # (k, i, 9)
    t_weight = (width[..., None] * weights).flatten(-2)
    c = a2[..., None] * t + b[..., None]
    lo, hi = _positive_part(a1[..., None].expand_as(c), c)
    # output 0's target is s, output 1's is t
    x_is_s = torch.tensor([1.0, 0.0], dtype=W.dtype, device=W.device)[:, None, None]
    target = lambda s: x_is_s * s + (1 - x_is_s) * t[..., None]  # noqa: E731

    def excess(s):  # squared error where the output is on, minus the error of outputting 0
        return (a1[..., None, None] * s + c[..., None] - target(s)) ** 2 - target(s) ** 2

    both = 1 / 3 + (_integral(excess, lo, hi) * t_weight).sum(-1)  # (k, i)
    p1, p2 = p[:, 0:1], p[:, 1:2]
    expected = (
        (1 - p1) * (1 - p2) * torch.relu(b) ** 2
        + p1 * (1 - p2) * single[:, :, 0]
        + (1 - p1) * p2 * single[:, :, 1]
        + p1 * p2 * both
    )
    return (importance * expected).mean(-1)


TWO_FEATURE_STARTS = torch.tensor(
    [
        [1.0, 0.0, 0.0, 0.3],  # feature 2 dropped onto its bias
        [0.0, 1.0, 0.3, 0.0],  # feature 1 dropped
        [1.0, -1.0, 0.0, 0.0],  # the switch
        [1.0, -1.0, -0.1, -0.1],
        [1.2, -0.8, 0.0, 0.0],
        [0.8, -1.2, 0.0, 0.0],
        [0.7, 0.7, 0.0, 0.0],  # both on one side
        [0.1, 0.1, 0.2, 0.2],  # almost nothing
    ],
    dtype=torch.float64,
)
"""Starts (w₁, w₂, b₁, b₂) for `two_feature_optimum`: one near each kind of solution. On the 9 x 9 grid
of chapter 2 (density 1 to 0.01, importance 0.1 to 10) they found the same optimum as 40 random starts
to 1e-13 (relative)."""


@dataclass
class TwoFeatureOptimum:
    """The lowest expected loss of the two-feature, one-dimension ReLU model, per configuration.

    Attributes:
        loss: `(k,)` the minimum; W, b: `(k, 2)` where it is reached.
        start_losses: `(k, n_starts)` the loss each start converged to (its local minimum).
    """

    loss: torch.Tensor
    W: torch.Tensor
    b: torch.Tensor
    start_losses: torch.Tensor


def two_feature_optimum(
    density: torch.Tensor,
    importance2: torch.Tensor,
    starts: torch.Tensor = TWO_FEATURE_STARTS,
    iterations: int = 25,
) -> TwoFeatureOptimum:
    """Minimise `two_feature_loss` over (W, b) for each configuration, feature 1's importance being 1.

    Damped Newton steps (Levenberg-Marquardt: a step is kept only if it lowers the loss, the damping
    shrinks after a kept step and grows after a rejected one) from each start, all configurations and
    starts at once; the best end point of each configuration is its optimum. Gradients and Hessians
    come from autograd through the exact loss.

    Args:
        density, importance2: `(k,)` feature probability (both features) and feature 2's importance.
        starts: `(n_starts, 4)` initial (w₁, w₂, b₁, b₂).
    """
    density, importance2 = (torch.as_tensor(v, dtype=torch.float64).reshape(-1) for v in (density, importance2))
    if density.shape != importance2.shape:
        raise ValueError(
            f"density and importance2 must have the same length, got {density.numel()} and {importance2.numel()}"
        )
    if not ((density >= 0) & (density <= 1)).all() or (importance2 < 0).any():
        raise ValueError("density must lie in [0, 1] and importance2 must be non-negative")
    k, n_starts = density.numel(), starts.shape[0]
    theta = starts.to(torch.float64)[None].expand(k, n_starts, 4).reshape(-1, 4).clone()
    p, i2 = density.repeat_interleave(n_starts), importance2.repeat_interleave(n_starts)

    def loss(params, p_one, i2_one):
        importance = torch.stack([torch.ones_like(i2_one), i2_one])[None]
        return two_feature_loss(params[None, :2], params[None, 2:], p_one.reshape(1), importance)[0]

    value, gradient, curvature = vmap(loss), vmap(grad(loss)), vmap(hessian(loss))
    damping = torch.full((theta.shape[0],), 1e-3, dtype=torch.float64)
    current = value(theta, p, i2)
    eye = torch.eye(4, dtype=torch.float64)
    for _ in range(iterations):
        step = torch.linalg.solve(
            curvature(theta, p, i2) + damping[:, None, None] * eye, gradient(theta, p, i2)[..., None]
        )[..., 0]
        candidate = theta - step
        new = value(candidate, p, i2)
        better = new < current
        theta = torch.where(better[:, None], candidate, theta)
        current = torch.where(better, new, current)
        damping = torch.where(better, damping / 3, damping * 4)
    losses = current.reshape(k, n_starts)
    best = losses.argmin(dim=1)
    chosen = theta.reshape(k, n_starts, 4)[torch.arange(k), best]
    return TwoFeatureOptimum(loss=losses[torch.arange(k), best], W=chosen[:, :2], b=chosen[:, 2:], start_losses=losses)


SOLUTION_KINDS = ("feature 2 dropped", "feature 2 alone", "antipodal", "same sign", "in between")
"""Names of the codes `solution_kind` returns, in order."""


def solution_kind(W: torch.Tensor) -> torch.Tensor:
    """Which kind of solution each two-feature, one-dimension model is: `W: (k, 2)` -> `(k,)` codes into
    `SOLUTION_KINDS`.

    Feature 2 dropped: ‖W₂‖ < 0.1. Feature 2 alone: ‖W₂‖ > 0.5 and ‖W₁‖ < 0.1. Antipodal: both
    norms above 0.5, opposite signs. Same sign: both above 0.3, the same sign. Anything else (a
    feature half represented) is "in between".
    """
    if W.dim() != 2 or W.shape[-1] != 2:
        raise ValueError(f"W must have shape (k, 2), got {tuple(W.shape)}")
    n1, n2, sign = W[:, 0].abs(), W[:, 1].abs(), W[:, 0] * W[:, 1]
    kind = torch.full(n1.shape, 4, dtype=torch.long, device=W.device)
    kind[n2 < 0.1] = 0
    kind[(n2 > 0.5) & (n1 < 0.1)] = 1
    kind[(n1 > 0.5) & (n2 > 0.5) & (sign < 0)] = 2
    kind[(n1 > 0.3) & (n2 > 0.3) & (sign > 0)] = 3
    return kind
