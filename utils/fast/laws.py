"""The data laws the fast trainer can draw inside its step, as maps from uniforms to features.

Each law of `utils.data` that the fast path covers becomes a `LawSpec`: how many uniforms one sample
needs per instance, the law's per-instance parameters as one `(inst, k)` tensor (so a chunk of
instances is a slice), and the map from uniforms to features, the same function `sample` uses;
and, for the CPU kernel `kernel.c`, which of its laws this is and the range of active values.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import torch

from utils.data import (
    AnticorrelatedPairs,
    CorrelatedPairs,
    HierarchicalPairs,
    SparseUniform,
    anticorrelated_from_uniform,
    correlated_from_uniform,
    hierarchical_from_uniform,
    sparse_from_uniform,
)


@dataclass(frozen=True)
class LawSpec:
    """A feature law in the fast trainer's terms.

    Attributes:
        transform: `(u: (batch, inst, n_uniforms), params: (inst, k), out=None) -> x: (batch, inst, feats)`
            (written into `out` if given).
        params: `(inst, k)` per-instance parameters (probabilities).
        n_uniforms: uniforms per sample and instance.
        code: the law's number in kernel.c (`LAW`).
        value_range: (low, high) of active features (SparseUniform's; (0, 1) for the others).
    """

    transform: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    params: torch.Tensor
    n_uniforms: int
    code: int
    value_range: tuple[float, float] = (0.0, 1.0)


@functools.cache
def _sparse(low: float, high: float) -> Callable:
    # One function object per value range, so a compiled step that closes over it is reused.
    return functools.partial(sparse_from_uniform, low=low, high=high)


def _correlated(u: torch.Tensor, p: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    return correlated_from_uniform(u.unflatten(-1, (-1, 2)), p, out=out)


def law_spec(law) -> LawSpec | str:
    """The `LawSpec` of `law`, or a sentence saying why the fast path does not cover it."""
    if type(law) is SparseUniform:
        p = law.feature_probability
        return LawSpec(_sparse(law.low, law.high), p, p.shape[1], 0, (float(law.low), float(law.high)))
    if type(law) is HierarchicalPairs:
        return LawSpec(hierarchical_from_uniform, torch.stack([law.p_feature1, law.p_feature2_given_1], dim=-1), 2, 1)
    if type(law) is CorrelatedPairs:
        p = law.feature_probability
        return LawSpec(_correlated, p, 2 * p.shape[1], 2)
    if type(law) is AnticorrelatedPairs:
        p = law.feature_probability
        return LawSpec(anticorrelated_from_uniform, p, p.shape[1], 3)
    return (
        f"its data law {type(law).__name__} is not one the fast path draws in-graph "
        "(SparseUniform, HierarchicalPairs, CorrelatedPairs, AnticorrelatedPairs)"
    )
