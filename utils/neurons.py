"""The neuron basis (chapter 5): which features each neuron reads, the blocks they form, and a loss on one
shared sample to compare seeds fairly.

Weights are `W: (inst, d_hidden, feats)` (a `NeuronModel`'s W, or W1 of a `NeuronComputationModel`):
row h is what neuron h reads, column i is feature i's exposure to each neuron. A weight "counts"
when its magnitude exceeds `threshold` times the largest magnitude in its instance, so the results
do not depend on the overall scale. No function modifies its inputs.
"""

from __future__ import annotations

import torch

from utils import metrics
from utils.data import sparse_from_uniform
from utils.validation import as_real, check_positive_int

_EPS = 1e-12


def _weights(W: torch.Tensor, name: str = "W", dims: str = "(inst, d_hidden, feats)") -> torch.Tensor:
    if not isinstance(W, torch.Tensor) or W.dim() != 3:
        shape = tuple(W.shape) if isinstance(W, torch.Tensor) else type(W).__name__
        raise ValueError(f"{name} must have shape {dims}, got {shape}")
    return W.detach().float().cpu()


def _check_threshold(threshold: float) -> None:
    if not 0 < as_real(threshold, "threshold") < 1:
        raise ValueError(f"threshold must lie in (0, 1) (a fraction of the largest weight), got {threshold}")


def significant(W: torch.Tensor, threshold: float = 0.2) -> torch.Tensor:
    """|W[k, h, i]| > threshold · max |W[k]|: `(inst, d_hidden, feats)` bool."""
    _check_threshold(threshold)
    W = _weights(W)
    return W.abs() > threshold * W.abs().amax(dim=(1, 2), keepdim=True).clamp_min(_EPS)


def monosemanticity(W: torch.Tensor) -> torch.Tensor:
    """The share of each neuron's squared input weight on its strongest feature, max_i W²[h, i] / Σ_i W²[h, i]:
    `(inst, d_hidden, feats) -> (inst, d_hidden)`; 1 for a monosemantic neuron, 1/k for k equal
    features, 0 for a dead neuron (no weight)."""
    squared = _weights(W) ** 2
    total = squared.sum(dim=2)
    return torch.where(total > _EPS, squared.amax(dim=2) / total.clamp_min(_EPS), 0.0)


def neurons_per_feature(W: torch.Tensor) -> torch.Tensor:
    """How many neurons carry each feature, as the participation ratio (Σ_h W²[h, i])² / Σ_h W⁴[h, i]:
    `(inst, d_hidden, feats) -> (inst, feats)`; 1 for one neuron, 2 for two equal ones, 0 for an unlearned feature."""
    squared = _weights(W) ** 2
    quartic = (squared**2).sum(dim=1)
    return torch.where(quartic > _EPS, squared.sum(dim=1) ** 2 / quartic.clamp_min(_EPS), 0.0)


def blocks(W: torch.Tensor, threshold: float = 0.2) -> list[list[tuple[list[int], list[int]]]]:
    """The blocks of W: groups of features and neurons connected by significant weights (the connected
    components of the feature-neuron graph), per instance.

    Returns, for each instance, a list of (features, neurons) pairs, largest block first; a monosemantic
    neuron with its feature is a (1 feature, 1 neuron) block; features and neurons with no significant
    weight belong to no block.
    """
    mask = significant(W, threshold)
    out = []
    for k in range(mask.shape[0]):
        d_hidden, n_features = mask[k].shape
        seen_f, seen_h, found = set(), set(), []
        for start in range(n_features):
            if start in seen_f or not mask[k, :, start].any():
                continue
            feats, neurons, queue = {start}, set(), [("f", start)]
            seen_f.add(start)
            while queue:
                kind, index = queue.pop()
                if kind == "f":
                    for h in mask[k, :, index].nonzero().flatten().tolist():
                        if h not in seen_h:
                            seen_h.add(h), neurons.add(h), queue.append(("h", h))
                else:
                    for i in mask[k, index].nonzero().flatten().tolist():
                        if i not in seen_f:
                            seen_f.add(i), feats.add(i), queue.append(("f", i))
            found.append((sorted(feats), sorted(neurons)))
        out.append(sorted(found, key=lambda block: (-len(block[0]), -len(block[1]), block[0])))
    return out


def block_shapes(W: torch.Tensor, threshold: float = 0.2) -> list[list[tuple[int, int]]]:
    """(number of features, number of neurons) of each block, per instance (see `blocks`)."""
    return [[(len(f), len(h)) for f, h in found] for found in blocks(W, threshold)]


def block_cosines(W: torch.Tensor, k: int, features: list[int]) -> torch.Tensor:
    """Cosine similarities between the given features' directions in instance k: `(len(features),)*2`.

    A 3x2 block is an antipodal pair (cos -1) plus a feature orthogonal to both (cos 0); a 3x3 block
    is three vertices of a regular tetrahedron (every cos -1/3).
    """
    W = _weights(W)
    return metrics.cosine_similarities(W[k : k + 1][:, :, features])[0]


def abs_pairs(W1: torch.Tensor, W2: torch.Tensor, threshold: float = 0.2, purity: float = 0.9) -> torch.Tensor:
    """Which features of a `NeuronComputationModel` are computed as |x| = ReLU(x) + ReLU(-x) by a pair
    of their own neurons: one reading x_i with a positive weight, one with a negative weight, both
    monosemantic (share of squared input weight on feature i above `purity`) and both writing
    feature i's output with a positive weight.

    `W1: (inst, d_hidden, feats)`, `W2: (inst, feats, d_hidden) -> (inst, feats)` bool.
    """
    W1 = _weights(W1, "W1")
    W2 = _weights(W2, "W2", "(inst, feats, d_hidden)")
    n_inst, d_hidden, n_features = W1.shape
    if tuple(W2.shape) != (n_inst, n_features, d_hidden):
        raise ValueError(
            f"W2 must have shape (inst, feats, d_hidden) = {(n_inst, n_features, d_hidden)}, got {tuple(W2.shape)}"
        )
    owned = significant(W1, threshold) & (W1**2 / (W1**2).sum(dim=2, keepdim=True).clamp_min(_EPS) > purity)
    writes = W2.transpose(1, 2) > threshold * W2.abs().amax(dim=(1, 2), keepdim=True).clamp_min(_EPS)
    reads_up = (owned & (W1 > 0) & writes).any(dim=1)
    reads_down = (owned & (W1 < 0) & writes).any(dim=1)
    return reads_up & reads_down


def block_signature(W: torch.Tensor, threshold: float = 0.2) -> list[str]:
    """Each instance's blocks as one label, largest first, e.g. "3x2 1x1 1x1 1x1" (see `blocks`); "none"
    for an instance without significant weights."""
    return [" ".join(f"{f}x{h}" for f, h in shapes) or "none" for shapes in block_shapes(W, threshold)]


@torch.no_grad()
def shared_sample_loss(
    model, n_samples: int = 100_000, chunk: int = 4096, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Each instance's loss on one shared draw of uniforms: `-> (inst,)`.

    Instances with the same feature probabilities see exactly the same inputs, so differences between
    them (seeds trained side by side) are differences between the models, not sampling noise: what a
    lowest-loss selection should compare. The model's law must be independent sparse features
    (`model.feature_probability`); features are active when u < p, with value low + (high - low)·u/p.
    """
    check_positive_int(n_samples, "n_samples")
    check_positive_int(chunk, "chunk")
    p = model.feature_probability
    low, high = model.value_range
    total = torch.zeros(model.cfg.n_inst, dtype=torch.float64, device=p.device)
    for start in range(0, n_samples, chunk):
        size = min(chunk, n_samples - start)
        u = torch.rand(size, 1, model.cfg.n_features, generator=generator, device=p.device).expand(
            -1, model.cfg.n_inst, -1
        )
        x = sparse_from_uniform(u, p, low, high)
        total += model.loss_per_instance(model(x), x).double() * size
    return (total / n_samples).float().cpu()
