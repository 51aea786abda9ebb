"""The data laws the fast trainer draws itself: each law of `utils.data` it covers as a `LawSpec`."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import torch

from utils import data


@dataclass(frozen=True)
class LawSpec:
    """A feature law in the fast trainer's terms.

    Attributes:
        transform: `(u: (batch, inst, n_uniforms), params: (inst, k), out=None) -> x: (batch, inst, feats)`
            (written into `out` if given): the map from uniforms to features the law's `sample` uses.
        params: `(inst, k)` per-instance parameters (probabilities), so a chunk of instances is a slice.
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
    return data.correlated_from_uniform(u.unflatten(-1, (-1, 2)), p, out=out)


def law_spec(law) -> LawSpec | str:
    """The `LawSpec` of `law`, or a sentence saying why the fast path does not cover it."""
    if type(law) is data.SparseUniform:
        p, (low, high) = law.feature_probability, (law.low, law.high)
        transform = functools.partial(data.sparse_from_uniform, low=low, high=high)
        return LawSpec(transform, p, p.shape[1], "SPARSE_UNIFORM", (low, high))
    if type(law) is data.HierarchicalPairs:
        p = torch.stack([law.p_feature1, law.p_feature2_given_1], dim=-1)
        return LawSpec(data.hierarchical_from_uniform, p, 2, "HIERARCHICAL_PAIRS")
    if type(law) is data.CorrelatedPairs:
        p = law.feature_probability
        return LawSpec(_correlated, p, 2 * p.shape[1], "CORRELATED_PAIRS")
    if type(law) is data.AnticorrelatedPairs:
        p = law.feature_probability
        return LawSpec(data.anticorrelated_from_uniform, p, p.shape[1], "ANTICORRELATED_PAIRS")
    return (
        f"its data law {type(law).__name__} is not one the fast path draws "
        "(SparseUniform, HierarchicalPairs, CorrelatedPairs, AnticorrelatedPairs)"
    )
