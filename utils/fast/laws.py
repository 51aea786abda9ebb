"""The data laws the fast trainer draws itself, as maps from uniforms to features.

Each law of `utils.data` that the fast path covers becomes a `LawSpec`: how many uniforms one sample
needs per instance, the law's per-instance parameters as one `(inst, k)` tensor (so a chunk of
instances is a slice), the map from uniforms to features (the very function the law's `sample`
uses), and, for `kernel.c`, the law's name there and the range of active values.
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
        name: the law's name in kernel.c (`-DLAW=<name>`).
        value_range: (low, high) of active features (SparseUniform's; (0, 1) for the others).
    """

    transform: Callable[..., torch.Tensor]
    params: torch.Tensor
    n_uniforms: int
    name: str
    value_range: tuple[float, float] = (0.0, 1.0)


def _correlated(u: torch.Tensor, p: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    return correlated_from_uniform(u.unflatten(-1, (-1, 2)), p, out=out)


def law_spec(law) -> LawSpec | str:
    """The `LawSpec` of `law`, or a sentence saying why the fast path does not cover it."""
    if type(law) is SparseUniform:
        p, (low, high) = law.feature_probability, (law.low, law.high)
        transform = functools.partial(sparse_from_uniform, low=low, high=high)
        return LawSpec(transform, p, p.shape[1], "SPARSE_UNIFORM", (low, high))
    if type(law) is HierarchicalPairs:
        p = torch.stack([law.p_feature1, law.p_feature2_given_1], dim=-1)
        return LawSpec(hierarchical_from_uniform, p, 2, "HIERARCHICAL_PAIRS")
    if type(law) is CorrelatedPairs:
        p = law.feature_probability
        return LawSpec(_correlated, p, 2 * p.shape[1], "CORRELATED_PAIRS")
    if type(law) is AnticorrelatedPairs:
        p = law.feature_probability
        return LawSpec(anticorrelated_from_uniform, p, p.shape[1], "ANTICORRELATED_PAIRS")
    return (
        f"its data law {type(law).__name__} is not one the fast path draws "
        "(SparseUniform, HierarchicalPairs, CorrelatedPairs, AnticorrelatedPairs)"
    )
