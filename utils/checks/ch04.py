"""Checks for chapter 4: the hierarchical generator, the phase metrics and the sweep's grid."""

from __future__ import annotations

import itertools

import torch

from utils.checks.compare import (
    assert_close,
    assert_independent_values,
    assert_rate,
    assert_tensor,
    assert_uniform,
    call_learner,
    close,
    learner_check,
    passed,
    require_function,
)
from utils.data import HierarchicalPairs
from utils.hierarchy import phase_metrics, sweep_grid


def reference_hierarchical_batch(
    batch_size: int, p_feature1: torch.Tensor, p_feature2_given_1: torch.Tensor
) -> torch.Tensor:
    """The library's hierarchical pairs: `(inst,)` rates -> `(batch_size, inst, 2)`."""
    return HierarchicalPairs(p_feature1, p_feature2_given_1).sample(batch_size)


# --- exercise 4.1 ---------------------------------------------------------------------------------

_P1 = torch.tensor([0.8, 0.3, 1.0, 0.5])
_Q = torch.tensor([0.25, 0.6, 0.0, 1.0])
_BATCH = 8_000


@learner_check(reference_hierarchical_batch, "hierarchical pairs (`utils.data.HierarchicalPairs`)")
def check_hierarchical_batch(generate_hierarchical_batch) -> None:
    """`generate_hierarchical_batch(batch_size, p_feature1, p_feature2_given_1) -> (batch, inst, 2)`: the parent
    active with p1, the child only with the parent and then with q, from their own draws; values uniform on [0, 1]."""
    what = "generate_hierarchical_batch"
    require_function(generate_hierarchical_batch, what)
    n, n_inst = _BATCH, len(_P1)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        x = call_learner(what, generate_hierarchical_batch, n, _P1.clone(), _Q.clone())
        other = call_learner(what, generate_hierarchical_batch, n, _P1.clone(), _Q.clone())
    assert_tensor(
        x, f"{what}({n}, p_feature1, p_feature2_given_1)", (n, n_inst, 2), "(batch, inst, feats)", torch.float32
    )
    if torch.equal(x, other):
        raise AssertionError(f"{what} returned the same batch twice: draw fresh random numbers on every call")
    parent, child = x[..., 0] != 0, x[..., 1] != 0
    orphans = (child & ~parent).sum().item()
    if orphans:
        raise AssertionError(
            f"feature 2 (the child) is active without feature 1 (its parent) in {orphans} samples: it may only be "
            "active where the parent is"
        )
    for i in range(n_inst):
        p1, q = _P1[i].item(), _Q[i].item()
        assert_rate(
            parent[:, i].float().mean().item(),
            p1,
            n,
            f"the rate of feature 1 in instance {i} (p_feature1 = {p1:g})",
            {"feature 1 is active with probability 1 - p_feature1: active means u < p": 1 - p1},
        )
        n_parent = int(parent[:, i].sum())
        assert_rate(
            child[parent[:, i], i].float().mean().item(),
            q,
            n_parent,
            f"the rate of feature 2 among samples where feature 1 is active, instance {i} (p_feature2_given_1 = {q:g})",
            {
                "the child's rate given the parent is p1 · q: p_feature2_given_1 is already the conditional "
                "probability, so compare the child's own draw with it and AND the result with the parent's "
                "mask": p1 * q,
                "the child's draw is the parent's draw (the same random number compared with p1 and with q): "
                "draw a separate number for the child": min(p1, q) / p1,
            },
        )
    for i in range(n_inst):
        p1, q = _P1[i].item(), _Q[i].item()
        assert_uniform(
            x[parent[:, i], i, 0],
            0.0,
            1.0,
            f"the active values of feature 1 in instance {i} (p_feature1 = {p1:g})",
            {
                "the value reuses the number u < p1 that made the parent active, so it lies in [0, p1): divide it "
                "by p1, or draw the value with its own torch.rand": (0.0, p1),
                "the values are uniform on [-1, 1]: this law is uniform on [0, 1] (torch.rand)": (-1.0, 1.0),
            },
        )
        if q > 0:
            assert_uniform(
                x[child[:, i], i, 1],
                0.0,
                1.0,
                f"the active values of feature 2 in instance {i} (p_feature2_given_1 = {q:g})",
                {
                    "the value reuses the number u < q that made the child active, so it lies in [0, q): divide "
                    "it by q, or draw the value with its own torch.rand": (0.0, q),
                    "the value reuses the parent's number u < p1 · q: draw the child's value with its own torch.rand": (
                        0.0,
                        p1 * q,
                    ),
                },
            )
        if 0 < q < 1:
            # Whether the child is active must not depend on the parent's value.
            assert_uniform(
                x[child[:, i], i, 0],
                0.0,
                1.0,
                f"the values of feature 1 in instance {i} where feature 2 is active too",
                {
                    "the child is active when the parent's value is below q, so it reuses the parent's random "
                    "number: draw a separate number for the child": (0.0, q),
                },
            )
    assert_independent_values(x, x != 0, what)
    passed(what)


# --- exercise 4.2 ---------------------------------------------------------------------------------


@learner_check(phase_metrics, "`utils.hierarchy.phase_metrics`")
def check_phase_metrics(learner_phase_metrics) -> None:
    """`phase_metrics(W) -> (norm, superposition)` of feature 2, including unlearned features."""
    require_function(learner_phase_metrics, "phase_metrics")
    W = torch.tensor(
        [[[1.0, -1.25]], [[0.0, 0.8]], [[0.7, 0.7]], [[1.0, 0.0]], [[0.0, 0.0]], [[-0.5, 2.0]], [[0.3, -0.1]]]
    )
    norm, superposition = phase_metrics(W)
    given = W.clone()
    got = call_learner("phase_metrics", learner_phase_metrics, given)
    if not torch.equal(given, W):
        raise AssertionError("phase_metrics modified its input W: compute on new tensors")
    if not isinstance(got, tuple) or len(got) != 2:
        raise AssertionError(f"phase_metrics should return a tuple (norm, superposition), got {type(got).__name__}")
    w1, w2 = W[:, 0, 0], W[:, 0, 1]
    if close(got[0], superposition) and close(got[1], norm):
        raise AssertionError("phase_metrics returns (superposition, norm): return (norm, superposition)")
    assert_close(
        got[0],
        norm,
        "the norm of feature 2",
        "(inst,)",
        rule="It should be ‖W₂‖, the length of column 2 of W (W[:, :, 1]).",
        mistakes={
            "it is the norm of feature 1: feature 2 is column 1, W[:, :, 1]": w1.abs(),
            "it is the squared norm ‖W₂‖²: take the square root": w2**2,
            "it is W₂ itself, with its sign: a norm is never negative": w2,
        },
    )
    child_learned = w2 != 0
    if not torch.isfinite(torch.as_tensor(got[1], dtype=torch.float64)[~child_learned]).all():
        raise AssertionError(
            "the superposition is NaN where feature 2 is not learned (W₂ = 0): clamp the norm away from 0 before "
            "dividing, so that it is 0"
        )
    assert_close(
        got[1],
        superposition,
        "the superposition of feature 2",
        "(inst,)",
        rule="It should be (Ŵ₂·W₁)² with Ŵ₂ = W₂/‖W₂‖, and 0 where W₂ = 0.",
        mistakes={
            "it is not squared: (Ŵ₂·W₁)²": w1 * w2.sign(),
            "it projects on W₂ itself, not on its unit vector: (Ŵ₂·W₁)² with Ŵ₂ = W₂/‖W₂‖": (w1 * w2) ** 2,
            "it is the squared cosine between W₁ and W₂: only W₂ is normalised": torch.where(
                child_learned, (w1 * w2) ** 2 / (w1**2 + w2**2).clamp_min(1e-12), 0.0
            ),
            "the roles are swapped, (Ŵ₁·W₂)²: project the parent W₁ on the child's direction Ŵ₂": torch.where(
                w1 != 0, w2**2, 0.0
            ),
            "where W₂ = 0 it gives W₁² instead of 0 (an unlearned child is not in superposition)": w1**2,
        },
    )
    passed("phase_metrics")


# --- exercise 4.3 ---------------------------------------------------------------------------------

_AXES = ("p1", "conditional", "importance", "seed")


def _grid_in_order(values: dict[str, list[float]], order: tuple[str, ...]) -> tuple[torch.Tensor, ...]:
    """(p1, conditional, importance (inst, 2)) with the instances nested in `order`, the last fastest."""
    rows = [dict(zip(order, combination)) for combination in itertools.product(*(values[a] for a in order))]
    p1 = torch.tensor([row["p1"] for row in rows])
    q = torch.tensor([row["conditional"] for row in rows])
    i2 = torch.tensor([row["importance"] for row in rows])
    return p1, q, torch.stack([torch.ones_like(i2), i2], dim=-1)


@learner_check(sweep_grid, "`utils.hierarchy.sweep_grid`")
def check_sweep_grid(learner_sweep_grid) -> None:
    """`sweep_grid(p_feature1, importance_axis, conditional_axis, n_seeds)`: per-instance settings in order."""
    require_function(learner_sweep_grid, "sweep_grid")
    p_feature1, importance_axis, conditional_axis, n_seeds = (
        [0.1, 0.9],
        torch.tensor([0.5, 1.0, 2.0]),
        torch.tensor([0.01, 0.1]),
        4,
    )
    got = call_learner(
        "sweep_grid", learner_sweep_grid, list(p_feature1), importance_axis.clone(), conditional_axis.clone(), n_seeds
    )
    if not isinstance(got, tuple) or len(got) != 3:
        raise AssertionError(
            f"sweep_grid should return a tuple (p1, conditional, importance), got {type(got).__name__}"
        )
    values = {
        "p1": p_feature1,
        "conditional": conditional_axis.tolist(),
        "importance": importance_axis.tolist(),
        "seed": list(range(n_seeds)),
    }
    expected = _grid_in_order(values, _AXES)
    n_inst = expected[0].numel()
    names = ("p1", "conditional", "importance")
    for value, name, shape, dims in zip(
        got, names, ((n_inst,), (n_inst,), (n_inst, 2)), ("(inst,)", "(inst,)", "(inst, feats)")
    ):
        if name == "importance" and close(value, expected[2][:, 1]):
            raise AssertionError(
                "importance holds only feature 2's importance: return (inst, 2), the parent's importance 1 in column 0"
            )
        assert_tensor(value, name, shape, dims)
    for order in itertools.permutations(_AXES):
        if order != _AXES and all(close(a, b) for a, b in zip(got, _grid_in_order(values, order))):
            raise AssertionError(
                f"your instances are ordered by ({', '.join(order)}), the last varying fastest; the exercise asks for "
                f"({', '.join(_AXES)}), the seed varying fastest"
            )
    if close(got[2].flip(-1), expected[2]):
        raise AssertionError(
            "importance has the columns swapped: column 0 is the parent's importance 1, column 1 the child's"
        )
    rule = "It should be ordered by (p1, conditional, importance, seed), the seed varying fastest."
    for value, target, name, dims in zip(got, expected, names, ("(inst,)", "(inst,)", "(inst, feats)")):
        assert_close(
            value, target, name, dims, rule=rule + (" Feature 1's importance is 1." if name == "importance" else "")
        )
    passed("sweep_grid")
