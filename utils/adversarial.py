"""Adversarial perturbations of the tied toy model x' = ReLU(WᵀWx + b) (chapter 8).

Feature j is read out through row j of WᵀW: (WᵀWx)_j = Σ_k (W_j · W_k) x_k. Without superposition the
off-diagonal entries of that row are 0 and nothing but x_j moves the read-out. In superposition they are
small numbers of both signs, which mostly cancel for a random input; an adversary who may change
every *other* feature by a vector of norm ε picks the signs so that they add up. That worst case is
exact: the perturbation along the row's off-diagonal part.
"""

from __future__ import annotations

import torch

from utils.metrics import feature_norms
from utils.validation import as_integer, as_real


def _row(W: torch.Tensor, feature: int) -> torch.Tensor:
    """Row `feature` of WᵀW without its diagonal entry: `(inst, feats)`."""
    if not isinstance(W, torch.Tensor) or W.dim() != 3:
        raise ValueError(f"W must have shape (inst, d_hidden, feats), got {getattr(W, 'shape', type(W))}")
    feature = as_integer(feature, "feature")
    if not 0 <= feature < W.shape[2]:
        raise ValueError(f"feature must be in [0, {W.shape[2]}), got {feature}")
    row = torch.einsum("khf,kh->kf", W.detach(), W.detach()[:, :, feature])
    row[:, feature] = 0.0
    return row


def interference_attack(W: torch.Tensor, feature: int, eps: float) -> torch.Tensor:
    """The perturbation of the *other* features, of norm `eps`, that lowers `feature`'s read-out most.

    Args:
        W: `(inst, d_hidden, feats)`.
    Returns:
        `(inst, feats)`: -eps times the unit vector along row `feature` of WᵀW with its own entry zeroed
        (so the feature's own input is untouched); all zeros for an instance where that row is zero
        (nothing else moves the read-out).
    """
    eps = as_real(eps, "eps")
    if eps < 0:
        raise ValueError(f"eps must be >= 0, got {eps}")
    row = _row(W, feature)
    length = row.norm(dim=1, keepdim=True)
    return torch.where(length > 0, -eps * row / length.clamp_min(1e-30), 0.0)


def readout_shift(W: torch.Tensor, delta: torch.Tensor, feature: int) -> torch.Tensor:
    """How much `delta: (..., inst, feats)` moves `feature`'s read-out (WᵀW delta)_feature: `(..., inst)`."""
    row = _row(W, feature)
    return (delta * row).sum(-1)


def vulnerability(W: torch.Tensor, min_norm: float = 0.5) -> torch.Tensor:
    """Worst-case read-out shift per unit of perturbation of the other features, relative to the shift
    that a unit of the feature itself makes: ‖row_j of WᵀW without j‖ / ‖W_j‖² = √(1/D_j - 1).

    `(inst, d_hidden, feats) -> (inst, feats)`; NaN for features with norm below `min_norm` (not learned).
    """
    min_norm = as_real(min_norm, "min_norm")
    W = W.detach()
    gram = torch.einsum("khi,khj->kij", W, W)
    off = gram - torch.diag_embed(gram.diagonal(dim1=1, dim2=2))
    norms = feature_norms(W)
    return torch.where(norms >= min_norm, off.norm(dim=2) / norms.clamp_min(1e-30) ** 2, float("nan"))


def vulnerability_from_dimensionality(D: torch.Tensor) -> torch.Tensor:
    """The vulnerability √(1/D_j - 1) of a feature from its dimensionality D_j ∈ (0, 1], any shape."""
    if not isinstance(D, torch.Tensor) or not ((D > 0) & (D <= 1 + 1e-6)).all():
        raise ValueError(f"D must be a tensor of dimensionalities in (0, 1], got {D!r:.80}")
    return (1 / D - 1).clamp_min(0).sqrt()
