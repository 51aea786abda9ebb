"""Chapter 4's library: the sweep's layout, metrics and regimes, and a small sweep.

Exact optima: test_hierarchy_optima.py; the checks: test_checks_ch04*.py.
"""

import pytest
import torch

from utils.hierarchy import (
    REGIMES,
    SOURCE_WEIGHT_DECAY,
    SweepResult,
    cell_regimes,
    cell_region,
    exact_model_losses,
    hierarchical_sweep,
    interior_cells,
    nearest_cell,
    panel_diagnostics,
    phase_metrics,
    sharing_regimes,
    sign_start,
    sweep_grid,
)
from utils.hierarchy_optima import expected_loss


def test_sweep_grid_orders_seed_fastest():
    p1, q, importance = sweep_grid([0.1, 0.9], torch.tensor([0.5, 2.0]), torch.tensor([0.01, 0.1, 1.0]), n_seeds=2)
    assert p1.shape == q.shape == (24,) and importance.shape == (24, 2)
    assert p1[:12].eq(0.1).all() and p1[12:].eq(0.9).all()
    assert q[:4].eq(0.01).all() and q[4:8].eq(0.1).all()
    assert importance[:, 0].eq(1).all()
    assert importance[:4, 1].tolist() == [0.5, 0.5, 2.0, 2.0]


def test_phase_metrics_by_hand():
    W = torch.tensor([[[1.0, -1.25]], [[0.0, 0.8]], [[0.6, 0.0]]])
    norm, superposition = phase_metrics(W)
    assert torch.allclose(norm, torch.tensor([1.25, 0.8, 0.0]))
    assert torch.allclose(superposition, torch.tensor([1.0, 0.0, 0.0]))


def test_small_sweep_shapes_and_clear_cut_regions():
    importance, conditional = torch.tensor([0.1, 10.0]), torch.tensor([0.03, 1.0])
    result = hierarchical_sweep([0.9], importance, conditional, n_seeds=4, steps=600, progress=False)
    assert (
        result.norm.shape == (1, 2, 2) and result.W.shape == (1, 2, 2, 4, 2) and result.model_loss.shape == (1, 2, 2, 4)
    )
    # An unimportant child is dropped; an important, frequent child takes the dimension alone.
    # (Both held for every seed of the full sweep; margins are wide.)
    assert result.norm[0, 0, 0] < 0.2
    assert result.norm[0, 1, 1] > 0.8 and result.superposition[0, 1, 1] < 0.2


def test_mean_over_models_is_a_huge_weight_decay():
    """The seed's trap: averaging the loss over N models = summing it with weight decay N times larger."""
    importance, conditional = torch.tensor([1.0, 3.0]), torch.tensor([0.1, 0.5])
    healthy = hierarchical_sweep([0.5], importance, conditional, n_seeds=4, steps=400, progress=False)
    trapped = hierarchical_sweep(
        [0.5], importance, conditional, n_seeds=4, steps=400, weight_decay=1e-4 * 16_000, progress=False
    )
    assert healthy.W.abs().amax(dim=-1).min() > 0.5  # every model represents a feature
    assert trapped.W.abs().max() < 0.1


def test_panel_diagnostics_counts_cells_and_signs():
    # One panel of 2 x 3 cells, 2 seeds: one cell per region, plus two in-between cells.
    norm = torch.tensor([[[1.0, 0.9, 0.05], [0.4, 1.2, 0.7]]])
    superposition = torch.tensor([[[1.0, 0.1, 1.0], [0.5, 0.9, 0.4]]])
    W = torch.zeros(1, 2, 3, 2, 2)
    W[0, 0, 0] = torch.tensor([[1.0, -1.0], [1.0, 1.0]])  # one antipodal, one same-sign model
    W[0, 1, 1] = torch.tensor([[-0.9, 1.2], [0.9, -1.2]])  # two antipodal models
    W[0, 0, 1] = torch.tensor([[0.0, 1.0], [0.05, 0.9]])  # the parent dropped: not sharing
    result = SweepResult(
        p_feature1=torch.tensor([0.5]),
        importance_axis=torch.tensor([1.0, 2.0, 3.0]),
        conditional_axis=torch.tensor([0.1, 1.0]),
        norm=norm,
        superposition=superposition,
        loss=torch.zeros(1, 2, 3),
        W=W,
        b=torch.zeros(1, 2, 3, 2, 2),
        model_loss=torch.zeros(1, 2, 3, 2),
    )
    row = panel_diagnostics(result).loc[0.5]
    assert (row["superposed"], row["own dimension"], row["dropped"], row["other"]) == (2, 1, 1, 2)
    assert row["antipodal"] == 0.75
    assert row["corr(norm, sup)"] == pytest.approx(
        torch.corrcoef(torch.stack([norm.flatten(), superposition.flatten()]))[0, 1].item()
    )


@pytest.mark.parametrize(
    "norm, superposition, region",
    [
        (0.1, 1.0, "dropped"),
        (1.1, 0.1, "own dimension"),
        (0.9, 0.8, "superposed"),
        (0.4, 0.5, "other"),
        (0.9, 0.4, "other"),
    ],
)
def test_cell_region_uses_the_sources_cuts(norm, superposition, region):
    assert cell_region(norm, superposition) == region


def test_nearest_cell_on_log_axes():
    axes = dict(importance_axis=torch.logspace(-1, 1, 40), conditional_axis=torch.logspace(-2, 0, 40))
    result = SweepResult(
        p_feature1=torch.tensor([0.1, 0.9, 0.99]),
        norm=None,
        superposition=None,
        loss=None,
        W=None,
        b=None,
        model_loss=None,
        **axes,
    )
    k, i, j = nearest_cell(result, 0.99, 0.03, 3.0)
    assert k == 2
    assert axes["conditional_axis"][i].item() == pytest.approx(0.0289, abs=1e-4)  # 10^(-2 + 18/39)
    assert axes["importance_axis"][j].item() == pytest.approx(3.07, abs=0.01)  # 10^(-1 + 58/39)


def test_sweep_starts_every_weight_at_plus_or_minus_one_and_trains_it():
    start = sign_start((6, 1, 2), seed=3)
    assert start.abs().eq(1).all() and (start > 0).any() and (start < 0).any()
    assert torch.equal(start, sign_start((6, 1, 2), seed=3))
    result = hierarchical_sweep([0.5], torch.tensor([1.0]), torch.tensor([1.0]), n_seeds=4, steps=1, progress=False)
    # one Adam step of lr 1e-2 moves each weight by at most about 1e-2 from its start
    assert (result.W.abs() - 1).abs().max() < 0.011 and SOURCE_WEIGHT_DECAY == 5e-5


def test_sharing_regimes_by_hand():
    W = torch.tensor([[1.0, 0.05], [0.05, 1.0], [1.0, -1.25], [-0.9, -0.5], [0.2, 0.2], [0.0, 0.0]])
    names = [REGIMES[i] for i in sharing_regimes(W)]
    assert names == ["dropped", "own dimension", "antipodal", "same sign", "same sign", "dropped"]
    assert sharing_regimes(W[None]).shape == (1, 6)
    with pytest.raises(ValueError, match=r"\(\.\.\., 2\)"):
        sharing_regimes(torch.zeros(3, 1, 2).transpose(1, 2))


def test_cell_regimes_drop_the_worst_seed_and_break_ties_by_the_best():
    # one cell, 5 seeds: losses make seed 4 the worst (dropped) and seed 1 the best
    W = torch.tensor([[1.0, 1.0], [1.0, -1.0], [1.0, -1.2], [1.0, 0.6], [1.0, -1.0]])[None]
    loss = torch.tensor([[0.3, 0.1, 0.2, 0.25, 0.9]])
    cells = cell_regimes(W, loss)
    # kept: same, anti, anti, same -> a tie, broken by the best seed (1, antipodal)
    assert REGIMES[cells.regime.item()] == "antipodal"
    assert cells.agreement.item() == 0.5 and cells.child_norm.item() == 1.0  # the lower middle of (1.0, 1.2)
    assert cells.counts.tolist() == [[0, 0, 2, 2]]


def test_interior_cells_exclude_every_cell_next_to_another_regime():
    regime = torch.tensor([[0, 0, 0, 1], [0, 0, 0, 1], [0, 0, 0, 1], [2, 2, 2, 2]])
    assert interior_cells(regime).int().tolist() == [[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]
    assert interior_cells(torch.zeros(2, 3, 3, dtype=torch.long)).all()


def test_exact_model_losses_follow_each_models_grid_point():
    importance, conditional = torch.tensor([0.5, 3.0]), torch.tensor([0.1, 1.0])
    result = hierarchical_sweep([0.2, 0.9], importance, conditional, n_seeds=2, steps=50, progress=False)
    losses = exact_model_losses(result, weight_decay=1e-3)
    k, i, j, s = 1, 0, 1, 1
    expected = expected_loss(
        result.W[k, i, j, s].double(),
        result.b[k, i, j, s].double(),
        torch.tensor(0.9, dtype=torch.float64),
        torch.tensor(0.1, dtype=torch.float64),
        torch.tensor([1.0, 3.0], dtype=torch.float64),
        weight_decay=1e-3,
    )
    assert losses.shape == (2, 2, 2, 2) and losses[k, i, j, s].item() == pytest.approx(expected.item(), rel=1e-6)


def test_the_largest_seed_trains_and_evaluates():
    """seed = 2**64 - 1 is a valid seed; its evaluation stream (seed + 1) wraps around instead of overflowing."""
    result = hierarchical_sweep(
        torch.tensor([0.1]),
        torch.tensor([1.0]),
        torch.tensor([1.0]),
        n_seeds=2,
        steps=2,
        seed=2**64 - 1,
        progress=False,
    )
    assert torch.isfinite(result.loss).all()
