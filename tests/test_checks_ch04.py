"""Chapter 4's checks accept correct answers written in several ways and reject planted mistakes, each
with a message that names it. The mistakes are written from the exercise text, as a learner would make them."""

import itertools

import pytest
import torch

from utils import checks
from utils.data import HierarchicalPairs
from utils.hierarchy import phase_metrics, sweep_grid

# --- exercise 4.1: the hierarchical generator ------------------------------------------------------


def library_batch(batch_size, p1, q):
    return HierarchicalPairs(p1, q).sample(batch_size)


def as_in_the_hint(batch_size, p1, q):
    parent = torch.rand(batch_size, p1.numel()) < p1
    child = parent & (torch.rand(batch_size, p1.numel()) < q)
    return torch.rand(batch_size, p1.numel(), 2) * torch.stack([parent, child], dim=-1)


def hierarchical_loop(batch_size, p1, q):
    x = torch.zeros(batch_size, p1.numel(), 2)
    for i in range(p1.numel()):
        parent = torch.rand(batch_size) < p1[i]
        child = parent & (torch.rand(batch_size) < q[i])
        x[:, i, 0] = torch.where(parent, torch.rand(batch_size), 0.0)
        x[:, i, 1] = torch.where(child, torch.rand(batch_size), 0.0)
    return x


def child_drawn_only_where_the_parent_is(batch_size, p1, q):
    """Draw the child's coin only for samples with the parent (a different order of draws, same law)."""
    x = torch.zeros(batch_size, p1.numel(), 2)
    parent = torch.rand(batch_size, p1.numel()) < p1
    x[..., 0][parent] = torch.rand(int(parent.sum()))
    child = torch.zeros_like(parent)
    child[parent] = torch.rand(int(parent.sum())) < q.expand_as(parent)[parent]
    x[..., 1][child] = torch.rand(int(child.sum()))
    return x


@pytest.mark.parametrize(
    "correct", [library_batch, as_in_the_hint, hierarchical_loop, child_drawn_only_where_the_parent_is]
)
def test_hierarchical_check_accepts(correct, capsys):
    assert checks.check_hierarchical_batch(correct) is correct
    assert "generate_hierarchical_batch: all checks passed" in capsys.readouterr().out


def hierarchical(parent, child, values):
    return values * torch.stack([parent, child], dim=-1)


def rand(batch_size, p1, *extra):
    return torch.rand(batch_size, p1.numel(), *extra)


@pytest.mark.parametrize(
    "wrong, message",
    [
        (
            lambda n, p1, q: (lambda parent: hierarchical(parent, parent & (rand(n, p1) < q * p1), rand(n, p1, 2)))(
                rand(n, p1) < p1
            ),
            r"rate of feature 2 among samples where feature 1 is active, instance 0.*Likely cause: the child's rate "
            r"given the parent is p1 · q",
        ),
        (
            lambda n, p1, q: hierarchical(rand(n, p1) < p1, rand(n, p1) < p1 * q, rand(n, p1, 2)),
            "feature 2 \\(the child\\) is active without feature 1",
        ),
        (
            lambda n, p1, q: hierarchical(
                rand(n, p1) < 1 - p1, torch.zeros(n, p1.numel(), dtype=torch.bool), rand(n, p1, 2)
            ),
            "Likely cause: feature 1 is active with probability 1 - p_feature1",
        ),
        # structure: the parent's draw reused for the child (one number for both)
        (
            lambda n, p1, q: (lambda u: hierarchical(u < p1, (u < p1) & (u < q), rand(n, p1, 2)))(rand(n, p1)),
            "Likely cause: the child's draw is the parent's draw",
        ),
        # structure: parent and child share one value
        (
            lambda n, p1, q: (
                lambda parent: hierarchical(parent, parent & (rand(n, p1) < q), rand(n, p1, 1).expand(-1, -1, 2))
            )(rand(n, p1) < p1),
            "Likely cause: features 0 and 1 share one value draw",
        ),
        # structure: the child decided by the parent's value
        (
            lambda n, p1, q: (
                lambda u: hierarchical(u < p1, (u < p1) & (u / p1 < q), torch.stack([u / p1, torch.rand_like(u)], -1))
            )(rand(n, p1)),
            "values of feature 1 in instance 0 where feature 2 is active too.*Likely cause: the child is active when "
            "the parent's value is below q",
        ),
        # distribution: the parent's value not divided by p1 (the example), a constant value
        (
            lambda n, p1, q: (
                lambda u: hierarchical(
                    u[..., 0] < p1,
                    (u[..., 0] < p1) & (u[..., 1] < q),
                    torch.stack([u[..., 0], torch.rand_like(u[..., 1])], -1),
                )
            )(rand(n, p1, 2)),
            r"active values of feature 1 in instance 0 \(p_feature1 = 0.8\): .*Likely cause: the value reuses the "
            r"number u < p1",
        ),
        (
            lambda n, p1, q: (
                lambda parent: hierarchical(parent, parent & (rand(n, p1) < q), torch.full((n, p1.numel(), 2), 0.5))
            )(rand(n, p1) < p1),
            r"Every active value is one of \{0.5\}",
        ),
        (lambda n, p1, q: library_batch(n, p1, q).double(), "dtype torch.float64; expected torch.float32"),
        (lambda n, p1, q: library_batch(n, p1, q).transpose(1, 2), r"shape \(8000, 2, 4\)"),
    ],
)
def test_hierarchical_check_rejects(wrong, message):
    with pytest.raises(AssertionError, match=message):
        checks.check_hierarchical_batch(wrong)


# --- exercise 4.2: the phase metrics ---------------------------------------------------------------


def phase_loop(W):
    norms, superpositions = [], []
    for k in range(W.shape[0]):
        w1, w2 = W[k, :, 0], W[k, :, 1]
        norm = w2.norm()
        norms.append(norm)
        superpositions.append((w2 / norm) @ w1 if norm > 0 else torch.tensor(0.0))
    return torch.stack(norms), torch.stack(superpositions) ** 2


@pytest.mark.parametrize(
    "correct",
    [
        phase_metrics,
        phase_loop,
        lambda W: (
            W[:, 0, 1].abs(),
            torch.where(W[:, 0, 1] != 0, W[:, 0, 0] ** 2, 0.0),
        ),  # the text's table, in one dimension
    ],
)
def test_phase_metrics_check_accepts(correct, capsys):
    assert checks.check_phase_metrics(correct) is correct
    assert "phase_metrics: all checks passed" in capsys.readouterr().out


@pytest.mark.parametrize(
    "wrong, message",
    [
        (lambda W: (W[:, 0, 1].abs(), W[:, 0, 0] * torch.sign(W[:, 0, 1])), "Likely cause: it is not squared"),
        (lambda W: (W[:, 0, 1].abs(), (W[:, 0, 0] * W[:, 0, 1]) ** 2), "it projects on W₂ itself"),
        (
            lambda W: (W[:, 0, 1].abs(), (W[:, 0, 0] * W[:, 0, 1]) ** 2 / (W[:, 0] ** 2).sum(-1).clamp_min(1e-12)),
            "it is the squared cosine between W₁ and W₂",
        ),
        (lambda W: (W[:, 0, 1].abs(), torch.where(W[:, 0, 0] != 0, W[:, 0, 1] ** 2, 0.0)), "the roles are swapped"),
        # boundary convention: an unlearned child
        (
            lambda W: (W[:, 0, 1].abs(), (W[:, 0, 1] / W[:, 0, 1].abs() * W[:, 0, 0]) ** 2),
            "the superposition is NaN where feature 2 is not learned",
        ),
        (lambda W: (W[:, 0, 1].abs(), W[:, 0, 0] ** 2), "where W₂ = 0 it gives W₁² instead of 0"),
        # structure: the wrong column, the wrong order
        (lambda W: (W[:, 0, 0].abs(), phase_metrics(W)[1]), "Likely cause: it is the norm of feature 1"),
        (lambda W: (W[:, 0, 1] ** 2, phase_metrics(W)[1]), "it is the squared norm"),
        (lambda W: (W[:, 0, 1], phase_metrics(W)[1]), "it is W₂ itself, with its sign"),
        (lambda W: phase_metrics(W)[::-1], r"returns \(superposition, norm\)"),
        (lambda W: phase_metrics(W)[0], "should return a tuple"),
    ],
)
def test_phase_metrics_check_rejects(wrong, message):
    with pytest.raises(AssertionError, match=message):
        checks.check_phase_metrics(wrong)


# --- exercise 4.3: the grid ------------------------------------------------------------------------


def grid_loop(p_feature1, importance_axis, conditional_axis, n_seeds):
    rows = [
        (p1, q, i2)
        for p1 in p_feature1
        for q in conditional_axis.tolist()
        for i2 in importance_axis.tolist()
        for _ in range(n_seeds)
    ]
    p1, q, i2 = (torch.tensor(column, dtype=torch.float64) for column in zip(*rows))  # float64: the text asks no dtype
    return p1, q, torch.stack([torch.ones_like(i2), i2], dim=-1)


def grid_cartesian(p_feature1, importance_axis, conditional_axis, n_seeds):
    grid = torch.cartesian_prod(
        torch.tensor(p_feature1), conditional_axis, importance_axis, torch.arange(n_seeds).float()
    )
    return grid[:, 0], grid[:, 1], torch.stack([torch.ones(len(grid)), grid[:, 2]], dim=-1)


@pytest.mark.parametrize("correct", [sweep_grid, grid_loop, grid_cartesian])
def test_sweep_grid_check_accepts(correct, capsys):
    assert checks.check_sweep_grid(correct) is correct
    assert "sweep_grid: all checks passed" in capsys.readouterr().out


def grid_nested(order, importance_column=True, parent_first=True):
    """A sweep_grid that nests the axes in `order` (the last fastest)."""

    def grid(p_feature1, importance_axis, conditional_axis, n_seeds):
        axes = {
            "p1": p_feature1,
            "conditional": conditional_axis.tolist(),
            "importance": importance_axis.tolist(),
            "seed": range(n_seeds),
        }
        rows = [dict(zip(order, values)) for values in itertools.product(*(axes[a] for a in order))]
        p1, q, i2 = (torch.tensor([row[name] for row in rows]) for name in ("p1", "conditional", "importance"))
        if not importance_column:
            return p1, q, i2
        columns = [torch.ones_like(i2), i2] if parent_first else [i2, torch.ones_like(i2)]
        return p1, q, torch.stack(columns, dim=-1)

    return grid


def grid_repeat(p_feature1, importance_axis, conditional_axis, n_seeds):
    grids = torch.meshgrid(torch.tensor(p_feature1), conditional_axis, importance_axis, indexing="ij")
    p1, q, i2 = (grid.reshape(-1).repeat(n_seeds) for grid in grids)
    return p1, q, torch.stack([torch.ones_like(i2), i2], dim=-1)


@pytest.mark.parametrize(
    "wrong, message",
    [
        # structure: the order of the instances
        (grid_nested(("p1", "conditional", "seed", "importance")), r"ordered by \(p1, conditional, seed, importance\)"),
        (grid_nested(("p1", "importance", "conditional", "seed")), r"ordered by \(p1, importance, conditional, seed\)"),
        (grid_nested(("conditional", "p1", "importance", "seed")), r"ordered by \(conditional, p1, importance, seed\)"),
        (grid_repeat, r"ordered by \(seed, p1, conditional, importance\)"),
        (
            grid_nested(("p1", "conditional", "importance", "seed"), parent_first=False),
            "importance has the columns swapped",
        ),
        (
            grid_nested(("p1", "conditional", "importance", "seed"), importance_column=False),
            r"importance holds only "
            r"feature 2's importance",
        ),
        (lambda *args: sweep_grid(*args)[:2], "should return a tuple \\(p1, conditional, importance\\)"),
        (lambda *args: (sweep_grid(*args)[0][:-1], *sweep_grid(*args)[1:]), r"p1 has shape \(47,\)"),
        (
            lambda *args: (sweep_grid(*args)[0], sweep_grid(*args)[1], sweep_grid(*args)[2] * 2),
            r"importance is wrong "
            r"at inst 0, feats 0",
        ),
    ],
)
def test_sweep_grid_check_rejects(wrong, message):
    with pytest.raises(AssertionError, match=message):
        checks.check_sweep_grid(wrong)
