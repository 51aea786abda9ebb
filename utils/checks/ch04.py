"""Checks for chapter 4: the hierarchical generator, the sweep's grid, and the phase metrics."""

from __future__ import annotations

import torch

from utils.checks.compare import assert_close, assert_rate, assert_tensor, learner_check, passed
from utils.data import HierarchicalPairs
from utils.hierarchy import phase_metrics, sweep_grid


def reference_hierarchical_batch(batch_size: int, p_feature1: torch.Tensor, p_feature2_given_1: torch.Tensor) -> torch.Tensor:
    """The library's hierarchical pairs: `(inst,)` rates -> `(batch_size, inst, 2)`."""
    return HierarchicalPairs(p_feature1, p_feature2_given_1).sample(batch_size)


@learner_check(reference_hierarchical_batch, "hierarchical pairs (`utils.data.HierarchicalPairs`)")
def check_hierarchical_batch(generate_hierarchical_batch) -> None:
    """`generate_hierarchical_batch(batch_size, p_feature1, p_feature2_given_1) -> (batch, inst, 2)`."""
    p1 = torch.tensor([0.8, 0.3, 1.0])
    q = torch.tensor([0.25, 0.6, 0.0])
    n = 40_000
    with torch.random.fork_rng():
        torch.manual_seed(0)
        x = generate_hierarchical_batch(n, p1, q)
    assert_tensor(x, "the batch", (n, 3, 2), "(batch, inst, feats)")
    if x.min() < 0 or x.max() > 1:
        raise AssertionError(f"values must lie in [0, 1], got values from {x.min():.3f} to {x.max():.3f}")
    parent, child = x[..., 0] != 0, x[..., 1] != 0
    orphans = (child & ~parent).sum().item()
    if orphans:
        raise AssertionError(f"feature 2 is active without feature 1 in {orphans} samples: it may only appear with its parent")
    for i in range(3):
        assert_rate(parent[:, i].float().mean().item(), p1[i].item(), n, f"the rate of feature 1 in instance {i}")
        n_parent = int(parent[:, i].sum())
        assert_rate(
            child[parent[:, i], i].float().mean().item(),
            q[i].item(),
            n_parent,
            f"the rate of feature 2 among samples with feature 1, instance {i} (p_feature2_given_1 is conditional)",
        )
    values = x[..., 1][child]
    if abs(values.mean().item() - 0.5) > 5 * (1 / 12 / values.numel()) ** 0.5:
        raise AssertionError(f"active values of feature 2 should be uniform on [0, 1] (mean 0.5), got mean {values.mean():.3f}")
    passed("generate_hierarchical_batch")


@learner_check(sweep_grid, "`utils.hierarchy.sweep_grid`")
def check_sweep_grid(learner_sweep_grid) -> None:
    """`sweep_grid(p_feature1, importance_axis, conditional_axis, n_seeds)`: per-instance settings in order."""
    args = ([0.1, 0.9], torch.tensor([0.5, 1.0, 2.0]), torch.tensor([0.01, 0.1]), 4)
    expected = sweep_grid(*args)
    got = learner_sweep_grid(*args)
    if not isinstance(got, tuple) or len(got) != 3:
        raise AssertionError(f"return a tuple (p1, conditional, importance), got {type(got).__name__}")
    hint = "order instances by (p1, conditional probability, importance, seed), the seed varying fastest"
    assert_close(got[0], expected[0], "p1", "(inst,)", hint=hint)
    assert_close(got[1], expected[1], "conditional", "(inst,)", hint=hint)
    assert_close(got[2], expected[2], "importance", "(inst, feats)", hint=hint + "; feature 1's importance is 1")
    passed("sweep_grid")


@learner_check(phase_metrics, "`utils.hierarchy.phase_metrics`")
def check_phase_metrics(learner_phase_metrics) -> None:
    """`phase_metrics(W) -> (norm, superposition)` of feature 2, including unlearned features."""
    W = torch.tensor([[[1.0, -1.25]], [[0.0, 0.8]], [[0.7, 0.7]], [[1.0, 0.0]], [[0.0, 0.0]], [[-0.5, 2.0]]])
    norm, superposition = phase_metrics(W)
    got = learner_phase_metrics(W.clone())
    if not isinstance(got, tuple) or len(got) != 2:
        raise AssertionError(f"return a tuple (norm, superposition), got {type(got).__name__}")
    assert_close(got[0], norm, "the norm of feature 2", "(inst,)", hint="‖W₂‖ is the length of column 2 of W")
    assert_close(
        got[1],
        superposition,
        "the superposition of feature 2",
        "(inst,)",
        hint="(Ŵ₂·W₁)² with Ŵ₂ = W₂/‖W₂‖, and 0 (not NaN) when W₂ = 0",
    )
    passed("phase_metrics")
