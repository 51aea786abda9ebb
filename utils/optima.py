"""Exact optima to compare training with: the linear model with one hidden dimension. (Chapter 4's
tied ReLU model of two hierarchical features has its own module, `utils.hierarchy_optima`.)

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
