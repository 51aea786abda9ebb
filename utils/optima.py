"""Exact optima to compare training with: the linear model with one hidden dimension, and (at the
end) tied ReLU models of two hierarchical features, by quadrature.

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


def linear_optimum(x: torch.Tensor, importance: torch.Tensor, n_angles: int = 36_000) -> LinearOptimum:
    """The exact optimum of x' = WᵀWx + b (2 features, 1 hidden dimension) on the dataset `x: (n_points, 2)`.

    The direction is found on a grid of `n_angles` angles (1/100 of a degree by default); the norm
    and the bias are then exact.
    """
    if not isinstance(x, torch.Tensor) or x.dim() != 2 or x.shape[1] != 2:
        raise ValueError(f"x must have shape (n_points, 2), got {tuple(getattr(x, 'shape', ()))}")
    importance = torch.as_tensor(importance, dtype=torch.float64)
    if importance.shape != (2,) or (importance < 0).any():
        raise ValueError(f"importance must be 2 non-negative numbers, got {importance.tolist()}")
    x = x.detach().double().cpu()
    mean = x.mean(dim=0)
    sigma = (x - mean).T @ (x - mean) / len(x)
    D = torch.diag(importance)
    angles = torch.arange(n_angles, dtype=torch.float64) * (math.pi / n_angles)
    u = torch.stack([angles.cos(), angles.sin()], dim=1)
    cross = torch.einsum("ni,ij,jk,nk->n", u, sigma, D, u)
    spread = torch.einsum("ni,ij,nj->n", u, sigma, u)
    weight = torch.einsum("ni,ij,nj->n", u, D, u)
    gain = torch.where(cross > 0, cross**2 / (spread * weight), 0.0)
    landscape = (torch.trace(D @ sigma) - gain) / 2
    best = int(landscape.argmin())
    norm_sq = max(float(cross[best] / (spread[best] * weight[best])), 0.0)
    W = u[best] * math.sqrt(norm_sq)
    b = (torch.eye(2, dtype=torch.float64) - torch.outer(W, W)) @ mean
    return LinearOptimum(
        loss=float(landscape[best]), W=W.float(), b=b.float(), angles=angles.float(), landscape=landscape.float()
    )


def hierarchical_expected_loss(
    W: torch.Tensor,
    b: torch.Tensor,
    p_feature1: torch.Tensor,
    p_feature2_given_1: torch.Tensor,
    importance: torch.Tensor,
    n_grid: int = 128,
) -> torch.Tensor:
    """Expected loss of tied ReLU models x' = ReLU(WᵀWx + b), 2 features in 1 dimension, on hierarchical data.

    The input is 0 with probability 1 - p1, (x₁, 0) with probability p1(1 - q) and (x₁, x₂) with
    probability p1·q, values uniform on [0, 1]; the expectations over the values are midpoint sums on
    `n_grid` (1-D) and `n_grid`² (2-D) points. Differentiable in W and b.

    Args:
        W, b: `(k, 2)` one model per row; p_feature1, p_feature2_given_1: `(k,)`; importance: `(k, 2)`.

    Returns:
        `(k,)` the mean-over-features loss of each model.
    """
    u = (torch.arange(n_grid, dtype=W.dtype, device=W.device) + 0.5) / n_grid
    alone = torch.stack([u, torch.zeros_like(u)], dim=-1)
    both = torch.cartesian_prod(u, u)

    def mean_loss(x: torch.Tensor) -> torch.Tensor:  # x: (m, 2) -> (k,)
        h = x @ W.T  # (m, k)
        out = torch.relu(h[..., None] * W + b)  # (m, k, 2)
        return ((out - x[:, None, :]) ** 2 * importance).sum(-1).mean(0)

    silent = (torch.relu(b) ** 2 * importance).sum(-1)
    p1, q = p_feature1, p_feature2_given_1
    return ((1 - p1) * silent + p1 * (1 - q) * mean_loss(alone) + p1 * q * mean_loss(both)) / 2


@dataclass
class HierarchicalOptimum:
    """The best of many local minima of `hierarchical_expected_loss`, per configuration.

    Attributes:
        loss: `(k,)` the lowest expected loss found; W, b: `(k, 2)` where it is reached.
        start_losses: `(k, n_starts)` the expected loss each start converged to (the local minima).
        start_W: `(k, n_starts, 2)` their weights.
    """

    loss: torch.Tensor
    W: torch.Tensor
    b: torch.Tensor
    start_losses: torch.Tensor
    start_W: torch.Tensor


def hierarchical_optimum(
    p_feature1: torch.Tensor,
    p_feature2_given_1: torch.Tensor,
    importance2: torch.Tensor,
    n_starts: int = 32,
    steps: int = 1500,
    seed: int = 0,
    n_grid: int = 48,
) -> HierarchicalOptimum:
    """Minimise the exact expected loss from `n_starts` random starts per configuration (Adam on the
    quadrature with `n_grid` points per value, then the final losses on a finer grid of 256). All
    inputs `(k,)`; feature 1's importance is 1.
    """
    p1, q, i2 = (torch.as_tensor(v, dtype=torch.float64).reshape(-1) for v in (p_feature1, p_feature2_given_1, importance2))
    k = p1.numel()
    generator = torch.Generator().manual_seed(seed)
    W = torch.randn(k * n_starts, 2, generator=generator, dtype=torch.float64).requires_grad_()
    b = (0.1 * torch.randn(k * n_starts, 2, generator=generator, dtype=torch.float64)).requires_grad_()
    expand = lambda v: v.repeat_interleave(n_starts)  # noqa: E731
    importance = torch.stack([torch.ones(k * n_starts, dtype=torch.float64), expand(i2)], dim=-1)
    optimizer = torch.optim.Adam([W, b], lr=2e-2)
    for step in range(steps):
        for group in optimizer.param_groups:
            group["lr"] = 2e-2 * (0.5 * (1 + math.cos(math.pi * step / steps)) + 0.01)
        loss = hierarchical_expected_loss(W, b, expand(p1), expand(q), importance, n_grid=n_grid)
        optimizer.zero_grad()
        loss.sum().backward()
        optimizer.step()
    with torch.no_grad():
        final = hierarchical_expected_loss(W, b, expand(p1), expand(q), importance, n_grid=256).reshape(k, n_starts)
    best = final.argmin(dim=1)
    rows = torch.arange(k)
    W, b = W.detach().reshape(k, n_starts, 2), b.detach().reshape(k, n_starts, 2)
    return HierarchicalOptimum(
        loss=final[rows, best], W=W[rows, best], b=b[rows, best], start_losses=final, start_W=W
    )
