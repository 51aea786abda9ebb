"""Synthetic feature data: sparse, non-negative (or signed) features with known laws.

Chapter 1 uses `generate_data`, a plain `(n_points, n_features)` sample. Every batched model holds a
*feature law* (`SparseUniform`, `HierarchicalPairs`, `CorrelatedPairs`, `AnticorrelatedPairs`) whose
`sample(batch_size)` returns `(batch, inst, feats)`, one independent data stream per model instance.
`FixedDataset` instead draws minibatches from a finite sample drawn once (training on a dataset).

The batched laws draw one uniform number `u` per feature (or pair) and use it twice: the feature is
active when `u < p`, and its value is `u / p`, which given `u < p` is again uniform on [0, 1). That is
the same law as separate "active?" and "value" draws, with half the random numbers. The maps from
uniforms to features are plain functions (`sparse_from_uniform`, ...) that the fast trainer's eager
path (`utils.fast`) uses too; its C kernel writes the same maps in C, and tests compare them.
"""

from __future__ import annotations

import math

import torch

from utils.validation import (
    as_float_tensor,
    as_real,
    check_generator,
    check_memory,
    check_positive_int,
    check_probability,
)


def generate_data(
    n_points: int = 1000,
    n_features: int = 2,
    sparsity: float = 0.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Points whose features are independent: 0 with probability `sparsity`, else uniform on [0, 1].

    Returns:
        x: `(n_points, n_features)` float32 on the CPU.

    Raises:
        ValueError: `sparsity` outside [0, 1], or a size that is not a positive integer.
        TypeError: `sparsity` is not a number, or `generator` not a torch.Generator.
        MemoryError: the points do not fit in the memory available.
    """
    n_points = check_positive_int(n_points, "n_points")
    n_features = check_positive_int(n_features, "n_features")
    check_probability(torch.tensor(as_real(sparsity, "sparsity", finite=False)), "sparsity")
    check_generator(generator)
    check_memory(9 * n_points * n_features, f"generate_data of {n_points} x {n_features} points")
    values = torch.rand(n_points, n_features, generator=generator)
    is_zero = torch.rand(n_points, n_features, generator=generator) < sparsity
    return torch.where(is_zero, 0.0, values)


def _uniform(shape: tuple[int, ...], device: torch.device, generator: torch.Generator | None) -> torch.Tensor:
    return torch.rand(shape, device=device, generator=generator)


def _check_sample(batch_size: int, generator: torch.Generator | None, shape: tuple[int, ...], device) -> int:
    """`batch_size` as an int, once it, the generator and the memory for `(batch, *shape)` (the uniforms and
    the features) are checked."""
    batch_size = check_positive_int(batch_size, "batch_size")
    check_generator(generator)
    check_memory(8 * batch_size * math.prod(shape), f"a batch of {batch_size} samples of shape {tuple(shape)}", device)
    return batch_size


def _value_range(low: float, high: float) -> tuple[float, float]:
    """`(low, high)` as floats, checked finite with low < high."""
    low, high = as_real(low, "low"), as_real(high, "high")
    if not low < high:
        raise ValueError(f"the value range needs low < high, got low={low:g}, high={high:g}")
    return low, high


def _active(u: torch.Tensor, p: torch.Tensor, out: torch.Tensor | None) -> torch.Tensor:
    """`u < p` as 0/1 floats, into `out` (allocated like `u` if None).

    Masks are floats rather than booleans, and the laws multiply by them rather than `torch.where`:
    on a CPU that is several times faster, with the same numbers.
    """
    return torch.lt(u, p, out=torch.empty_like(u) if out is None else out)


def _nonzero(p: torch.Tensor) -> torch.Tensor:
    """`p` with zeros raised to the smallest normal float, to divide by: where p = 0 nothing is active,
    and a masked-out quotient must be 0, not 0/0."""
    return p.clamp_min(torch.finfo(p.dtype).tiny)


def sparse_from_uniform(
    u: torch.Tensor, p: torch.Tensor, low: float = 0.0, high: float = 1.0, out: torch.Tensor | None = None
) -> torch.Tensor:
    """Independent features from uniforms: active when u < p, with value low + (high - low)·u/p.

    `u: (..., feats)`, `p` broadcastable to it -> `(..., feats)`, written into `out` if given (any
    layout, e.g. a view of feature planes).
    """
    x = _active(u, p, out)
    if (low, high) == (0.0, 1.0):
        return x.mul_(u).div_(_nonzero(p))
    fraction = x.mul(u).div_(_nonzero(p))  # u/p where active, else 0
    return x.mul_(low + (high - low) * fraction)


def hierarchical_from_uniform(u: torch.Tensor, p: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """Parent and child from uniforms: `u: (..., 2)`, `p = (p1, p(child | parent))` broadcastable to it -> `(..., 2)`.

    The parent is active when u[..., 0] < p1, the child when also u[..., 1] < p(child | parent);
    active values are u/p. Written into `out` if given.
    """
    x = _active(u, p, out)
    x[..., 1].mul_(x[..., 0])
    return x.mul_(u).div_(_nonzero(p))


def correlated_from_uniform(u: torch.Tensor, p: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """Pairs active together from uniforms: `u: (..., n_pairs, 2)`, `p: (..., n_pairs)` -> `(..., 2 n_pairs)`.

    The pair is active when u[..., 0] < p; its values are u[..., 0]/p and u[..., 1]. Written into
    `out` if given.
    """
    x = torch.empty_like(u) if out is None else out.unflatten(-1, (-1, 2))
    _active(u[..., 0], p, x[..., 0])
    x[..., 1].copy_(x[..., 0])
    x.mul_(u)
    x[..., 0].div_(_nonzero(p))
    return x.flatten(-2)


def anticorrelated_from_uniform(u: torch.Tensor, p: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """At most one feature of a pair active, from one uniform per pair: `u, p: (..., n_pairs)` -> `(..., 2 n_pairs)`.

    The first is active when u < p, with value u/p; the second when p <= u < 2p, with value (u - p)/p.
    Written into `out` if given.
    """
    x = u.new_empty(*u.shape, 2) if out is None else out.unflatten(-1, (-1, 2))
    first, second = _active(u, p, x[..., 0]), _active(u, 2 * p, x[..., 1])
    second.sub_(first).mul_(u - p).div_(_nonzero(p))
    first.mul_(u).div_(_nonzero(p))
    return x.flatten(-2)


def _as_matrix(value: torch.Tensor | float, name: str, dims: str, device=None) -> torch.Tensor:
    tensor = as_float_tensor(value, name, device)
    if tensor.dim() != 2 or 0 in tensor.shape:
        raise ValueError(f"{name} must have shape {dims} with no size 0, got shape {tuple(tensor.shape)}")
    check_probability(tensor, name)
    return tensor.clone()


class SparseUniform:
    """Independent features: active with probability `feature_probability`, then uniform on [low, high].

    Args:
        feature_probability: `(inst, feats)` probabilities in [0, 1].
        low, high: the range of an active feature's value ([0, 1] for reconstruction, [-1, 1] for
            the computation models).
    """

    def __init__(self, feature_probability: torch.Tensor, low: float = 0.0, high: float = 1.0):
        self.feature_probability = _as_matrix(
            feature_probability, "feature_probability", "(inst, feats)", getattr(feature_probability, "device", None)
        )
        self.low, self.high = _value_range(low, high)
        self.n_inst, self.n_features = self.feature_probability.shape

    def sample(self, batch_size: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """A batch `(batch, inst, feats)`."""
        p = self.feature_probability
        batch_size = _check_sample(batch_size, generator, p.shape, p.device)
        return sparse_from_uniform(_uniform((batch_size, *p.shape), p.device, generator), p, self.low, self.high)


class HierarchicalPairs:
    """Two features per instance: feature 2 can only be active when feature 1 is.

    Feature 1 is active with probability `p_feature1`; given that, feature 2 is active with
    probability `p_feature2_given_1`. Active values are uniform on [0, 1].

    Args:
        p_feature1: `(inst,)` probabilities.
        p_feature2_given_1: `(inst,)` conditional probabilities.
    """

    n_features = 2

    def __init__(self, p_feature1: torch.Tensor, p_feature2_given_1: torch.Tensor):
        p1 = as_float_tensor(p_feature1, "p_feature1")
        p2 = as_float_tensor(p_feature2_given_1, "p_feature2_given_1", p1.device)
        if p1.dim() != 1 or p1.shape != p2.shape or len(p1) == 0:
            raise ValueError(
                "p_feature1 and p_feature2_given_1 must both have shape (inst,), "
                f"got {tuple(p1.shape)} and {tuple(p2.shape)}"
            )
        check_probability(p1, "p_feature1")
        check_probability(p2, "p_feature2_given_1")
        self.p_feature1, self.p_feature2_given_1 = p1, p2
        self.n_inst = p1.shape[0]

    def sample(self, batch_size: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """A batch `(batch, inst, 2)`."""
        batch_size = _check_sample(batch_size, generator, (self.n_inst, 2), self.p_feature1.device)
        p = torch.stack([self.p_feature1, self.p_feature2_given_1], dim=-1)
        return hierarchical_from_uniform(_uniform((batch_size, self.n_inst, 2), p.device, generator), p)


class CorrelatedPairs:
    """Features in pairs that are active together (probability p) or not at all; values independent.

    Args:
        feature_probability: `(inst, n_pairs)`; feature 2k and 2k+1 form pair k.
    """

    def __init__(self, feature_probability: torch.Tensor):
        self.feature_probability = _as_matrix(
            feature_probability, "feature_probability", "(inst, n_pairs)", getattr(feature_probability, "device", None)
        )
        self.n_inst, n_pairs = self.feature_probability.shape
        self.n_features = 2 * n_pairs

    def sample(self, batch_size: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """A batch `(batch, inst, 2 * n_pairs)`."""
        p = self.feature_probability
        batch_size = _check_sample(batch_size, generator, (*p.shape, 2), p.device)
        return correlated_from_uniform(_uniform((batch_size, *p.shape, 2), p.device, generator), p)


class AnticorrelatedPairs:
    """Features in pairs of which at most one is active; each is active with probability p <= 1/2.

    One uniform `u` per pair decides everything: `u < p` activates the first feature with value
    `u / p`, `p <= u < 2p` the second with value `(u - p) / p`.

    Args:
        feature_probability: `(inst, n_pairs)` marginal probability of each feature, at most 0.5.
    """

    def __init__(self, feature_probability: torch.Tensor):
        self.feature_probability = _as_matrix(
            feature_probability, "feature_probability", "(inst, n_pairs)", getattr(feature_probability, "device", None)
        )
        if (self.feature_probability > 0.5).any():
            raise ValueError(
                "anticorrelated features need feature_probability <= 0.5 (at most one of a pair is active), "
                f"got {self.feature_probability.max().item():g}"
            )
        self.n_inst, n_pairs = self.feature_probability.shape
        self.n_features = 2 * n_pairs

    def sample(self, batch_size: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """A batch `(batch, inst, 2 * n_pairs)`."""
        p = self.feature_probability
        batch_size = _check_sample(batch_size, generator, (*p.shape, 2), p.device)
        return anticorrelated_from_uniform(_uniform((batch_size, *p.shape), p.device, generator), p)


class FixedDataset:
    """A finite dataset drawn once; each batch is `batch_size` of its points, drawn with replacement.

    Training on it instead of on fresh samples is training on a fixed dataset with minibatches.

    Args:
        points: `(n_points, inst, feats)` (each instance its own dataset) or `(n_points, feats)`
            (shared), e.g. `SparseUniform(...).sample(n_points)`.
        n_inst: the number of instances when `points` is shared.
    """

    def __init__(self, points: torch.Tensor, n_inst: int | None = None):
        if not isinstance(points, torch.Tensor) or points.dim() not in (2, 3) or 0 in points.shape:
            raise ValueError(
                "points must be a non-empty tensor of shape (n_points, inst, feats) or (n_points, feats), got "
                f"{tuple(points.shape) if isinstance(points, torch.Tensor) else type(points).__name__}"
            )
        if points.dtype == torch.bool or points.is_complex():
            raise TypeError(f"points must hold real numbers, got a tensor of {points.dtype}")
        if not torch.isfinite(points).all():
            raise ValueError("points must be finite, got NaN or infinity")
        if points.dim() == 2:
            if n_inst is None:
                raise ValueError("shared points (n_points, feats) need n_inst, the number of model instances")
            n_inst = check_positive_int(n_inst, "n_inst")
            points = points[:, None, :].expand(-1, n_inst, -1)
        elif n_inst is not None and n_inst != points.shape[1]:
            raise ValueError(f"points has {points.shape[1]} instances but n_inst={n_inst}")
        self.points = points.float()
        self.n_points, self.n_inst, self.n_features = self.points.shape

    def sample(self, batch_size: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """A batch `(batch, inst, feats)` of stored points (the same rows for every instance)."""
        batch_size = _check_sample(batch_size, generator, (self.n_inst, self.n_features), self.points.device)
        rows = torch.randint(self.n_points, (batch_size,), device=self.points.device, generator=generator)
        return self.points[rows]


FeatureLaw = SparseUniform | HierarchicalPairs | CorrelatedPairs | AnticorrelatedPairs | FixedDataset


def sample_sparse_uniform_inst_first(
    feature_probability: torch.Tensor,
    batch_size: int,
    low: float = 0.0,
    high: float = 1.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """The law of `SparseUniform`, laid out `(inst, batch, feats)` and drawn fast when features are rare.

    For sparse data (every probability at most 0.1) it draws only the active entries: the gaps between
    candidate positions are geometric with the largest probability p_max, each candidate is kept
    with probability p / p_max (its own feature's), and kept entries get a uniform value. That needs
    about 3 · p_max · batch · feats random numbers instead of batch · feats. Denser data is drawn directly.

    Args:
        feature_probability: `(inst, feats)` probabilities in [0, 1].

    Returns:
        `(inst, batch, feats)` float32 on the probabilities' device.
    """
    device = getattr(feature_probability, "device", None)
    p = _as_matrix(feature_probability, "feature_probability", "(inst, feats)", device)
    n_inst, n_features = p.shape
    device = p.device
    batch_size = _check_sample(batch_size, generator, p.shape, device)
    low, high = _value_range(low, high)
    p_max = float(p.max())
    if p_max > 0.1:
        u = _uniform((n_inst, batch_size, n_features), device, generator)
        return sparse_from_uniform(u, p[:, None, :], low, high)
    x = torch.zeros(n_inst, batch_size * n_features, device=device)
    if p_max == 0.0:
        return x.view(n_inst, batch_size, n_features)
    size = batch_size * n_features
    mean = p_max * size
    n_draws = int(mean + 6 * mean**0.5 + 16)
    log_q = torch.log1p(torch.tensor(-p_max, dtype=torch.float64)).item() if p_max < 1 else -float("inf")
    position = torch.full((n_inst, 1), -1, dtype=torch.int64, device=device)
    chunks = []
    while bool((position[:, -1] < size - 1).any()):
        u = _uniform((n_inst, n_draws), device, generator).double().clamp_min(1e-300)
        # geometric on {1, 2, ...} with parameter p_max; a gap past the end (any gap when p_max is tiny,
        # where the quotient would overflow int64) is capped to one that still lands past it
        gaps = torch.floor(torch.log(u) / log_q).clamp_max_(size + 1).long() + 1
        position = position[:, -1:] + gaps.cumsum(dim=1)
        chunks.append(position)
    position = torch.cat(chunks, dim=1)
    inside = position < size
    inst = torch.arange(n_inst, device=device)[:, None].expand_as(position)[inside]
    flat = position[inside]
    feature = flat % n_features
    keep_u, value_u = _uniform((2, flat.numel()), device, generator)
    keep = keep_u < p[inst, feature] / p_max
    x[inst[keep], flat[keep]] = low + (high - low) * value_u[keep]
    return x.view(n_inst, batch_size, n_features)
