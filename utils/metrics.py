"""Measurements of learned feature directions.

Every function takes embedding weights `W: (inst, d_hidden, feats)`, whose column `W[k, :, i]` is
feature i's direction in instance k, and never modifies them. Integer weights (and NumPy arrays) are
measured as float32; floating-point weights keep their dtype.
"""

from __future__ import annotations

import numpy as np
import torch

_EPS = 1e-8


def _check_weights(W: torch.Tensor) -> torch.Tensor:
    if isinstance(W, np.ndarray) and W.dtype.kind in "iuf":
        W = torch.from_numpy(W)
    if not isinstance(W, torch.Tensor) or W.dim() != 3:
        shape = tuple(W.shape) if isinstance(W, torch.Tensor) else type(W).__name__
        raise ValueError(f"W must have shape (inst, d_hidden, feats), got {shape}")
    if 0 in W.shape:
        raise ValueError(f"W must have at least one instance, hidden dimension and feature, got shape {tuple(W.shape)}")
    if W.dtype == torch.bool or W.is_complex():
        raise TypeError(f"W must hold real numbers, got {W.dtype}")
    return W.detach() if W.is_floating_point() else W.detach().float()


def feature_norms(W: torch.Tensor) -> torch.Tensor:
    """‖W_i‖ for each feature: `(inst, d_hidden, feats) -> (inst, feats)`."""
    return _check_weights(W).norm(dim=1)


def unit_directions(W: torch.Tensor) -> torch.Tensor:
    """W_i / ‖W_i‖, with unlearned (zero) features left at zero: `(inst, d_hidden, feats)`."""
    W = _check_weights(W)
    return W / W.norm(dim=1, keepdim=True).clamp_min(_EPS)


def overlaps(W: torch.Tensor) -> torch.Tensor:
    """(Ŵ_i · W_j) for all pairs: `(inst, feats, feats)`, row i is feature i's unit direction."""
    return torch.einsum("khi,khj->kij", unit_directions(W), _check_weights(W))


def interference(W: torch.Tensor) -> torch.Tensor:
    """Σ_{j≠i} (Ŵ_i · W_j)², how much other features leak into feature i's direction: `(inst, feats)`."""
    squared = overlaps(W) ** 2
    return squared.sum(dim=-1) - squared.diagonal(dim1=-2, dim2=-1)


def cosine_similarities(W: torch.Tensor) -> torch.Tensor:
    """cos(W_i, W_j) for all pairs: `(inst, feats, feats)`; 0 where a feature is unlearned."""
    unit = unit_directions(W)
    return torch.einsum("khi,khj->kij", unit, unit)


def dimensionality(W: torch.Tensor) -> torch.Tensor:
    """Fraction of a dimension each feature gets, D_i = ‖W_i‖² / Σ_j (Ŵ_i · W_j)²: `(inst, feats)`.

    1 for a feature alone in its direction, 1/2 for an antipodal pair, 2/5 in a pentagon; 0 (not NaN)
    for an unlearned feature.
    """
    norms_sq = feature_norms(W) ** 2
    return norms_sq / (overlaps(W) ** 2).sum(dim=-1).clamp_min(_EPS)


def dims_per_feature(W: torch.Tensor) -> torch.Tensor:
    """Hidden dimensions per feature, D* = d_hidden / ‖W‖²_F, for each instance: `(inst,)`; infinite for
    an instance whose W is zero (it represents nothing)."""
    W = _check_weights(W)
    return W.shape[1] / (W**2).sum(dim=(1, 2))
