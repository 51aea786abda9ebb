"""Memorisation against generalisation (chapter 8): toy models trained on fixed data sets of T points,
many sizes T side by side in one batched model.

Each instance k gets its own data set of `sizes[k]` points drawn from the sparse uniform law; the
points are tiled (repeated in order) to a common number of rows so that all instances train in one
full-batch run. When every size divides the number of rows, each point appears equally often and the
mean loss over the rows is exactly the mean over the data set.
"""

from __future__ import annotations

import torch

from utils.data import generate_data
from utils.metrics import dimensionality
from utils.validation import as_real, check_generator, check_positive_int


def tiled_datasets(
    sizes: list[int], n_features: int, feature_probability: float, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """One data set per instance, tiled to a common length.

    Args:
        sizes: the number of points T of each instance's data set; each must divide max(sizes).
        feature_probability: the probability that a feature is active (values uniform on [0, 1]).

    Returns:
        `(rows, inst, feats)` with rows = max(sizes), ready for `utils.train.train_on_dataset`, and the
        data sets themselves, a list of `(T, feats)`.
    """
    if not sizes:
        raise ValueError("sizes must list at least one data-set size")
    sizes = [check_positive_int(T, "sizes[...]") for T in sizes]
    rows = max(sizes)
    if any(rows % T for T in sizes):
        raise ValueError(f"every size must divide the largest ({rows}) so each point counts equally, got {sizes}")
    probability = as_real(feature_probability, "feature_probability")
    check_generator(generator)
    datasets = [generate_data(T, n_features, 1.0 - probability, generator) for T in sizes]
    tiled = torch.stack([points[torch.arange(rows) % len(points)] for points in datasets], dim=1)
    return tiled, datasets


def hidden_points(W: torch.Tensor, points: torch.Tensor, instance: int) -> torch.Tensor:
    """The hidden vectors W x_t of one instance's points: `W: (inst, d_hidden, feats)`, `points: (T, feats)`
    -> `(T, d_hidden)`."""
    return points @ W[instance].detach().T


def point_dimensionality(hidden: torch.Tensor) -> torch.Tensor:
    """Fraction of a dimension each training point gets (Henighan et al. 2023): `(T, d_hidden)` -> `(T,)`.

    D_t = ‖h_t‖² / Σ_s (ĥ_t · h_s)², the feature dimensionality `utils.metrics.dimensionality` with the
    points' hidden vectors h_t = W x_t in place of the feature directions W_i: 1 for a point alone in its
    direction, 1/2 for an antipodal pair, 2/5 on a regular pentagon; 0 for a point whose hidden vector is 0.
    """
    if hidden.dim() != 2:
        raise ValueError(f"hidden must be (T, d_hidden), the points' hidden vectors, got shape {tuple(hidden.shape)}")
    return dimensionality(hidden.detach().T.unsqueeze(0))[0]


def storage_ratio(W: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Mean length of the training points' hidden vectors over the length of the longest feature vector.

    Large when the model stores the data points (their hidden vectors are long, each feature's short);
    small when it stores features (a few long feature directions, the points' hidden vectors short).

    Args:
        W: `(inst, d_hidden, feats)`.
        x: `(T, inst, feats)` each instance's training points (tiled rows are fine: repeats do not
            change a mean).

    Returns:
        `(inst,)`: mean_t ‖W x_t‖ / max_i ‖W_i‖.
    """
    W = W.detach()
    hidden = torch.einsum("tkf,khf->tkh", x, W)
    return hidden.norm(dim=2).mean(dim=0) / W.norm(dim=1).max(dim=1).values
