"""Chapter 4's library: the sweep's layout and metrics, a small sweep, and exact optima (its checks: test_checks_ch04.py)."""

import math

import pytest
import torch

from utils.data import HierarchicalPairs
from utils.hierarchy import (
    SweepResult,
    cell_region,
    hierarchical_sweep,
    nearest_cell,
    panel_diagnostics,
    phase_metrics,
    sweep_grid,
)
from utils.optima import hierarchical_expected_loss, hierarchical_optimum


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
    assert result.norm.shape == (1, 2, 2) and result.W.shape == (1, 2, 2, 4, 2) and result.model_loss.shape == (1, 2, 2, 4)
    # An unimportant child is dropped; an important, frequent child takes the dimension alone.
    # (Both held for every seed of the full sweep; margins are wide.)
    assert result.norm[0, 0, 0] < 0.2
    assert result.norm[0, 1, 1] > 0.8 and result.superposition[0, 1, 1] < 0.2


def test_mean_over_models_is_a_huge_weight_decay():
    """The seed's trap: averaging the loss over N models = summing it with weight decay N times larger."""
    importance, conditional = torch.tensor([1.0, 3.0]), torch.tensor([0.1, 0.5])
    healthy = hierarchical_sweep([0.5], importance, conditional, n_seeds=4, steps=400, progress=False)
    trapped = hierarchical_sweep([0.5], importance, conditional, n_seeds=4, steps=400, weight_decay=1e-4 * 16_000, progress=False)
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
        p_feature1=torch.tensor([0.5]), importance_axis=torch.tensor([1.0, 2.0, 3.0]),
        conditional_axis=torch.tensor([0.1, 1.0]), norm=norm, superposition=superposition,
        loss=torch.zeros(1, 2, 3), W=W, b=torch.zeros(1, 2, 3, 2, 2), model_loss=torch.zeros(1, 2, 3, 2),
    )
    row = panel_diagnostics(result).loc[0.5]
    assert (row["superposed"], row["own dimension"], row["dropped"], row["other"]) == (2, 1, 1, 2)
    assert row["antipodal"] == 0.75
    assert row["corr(norm, sup)"] == pytest.approx(torch.corrcoef(torch.stack([norm.flatten(), superposition.flatten()]))[0, 1].item())


@pytest.mark.parametrize(
    "norm, superposition, region",
    [(0.1, 1.0, "dropped"), (1.1, 0.1, "own dimension"), (0.9, 0.8, "superposed"), (0.4, 0.5, "other"), (0.9, 0.4, "other")],
)
def test_cell_region_uses_the_sources_cuts(norm, superposition, region):
    assert cell_region(norm, superposition) == region


def test_nearest_cell_on_log_axes():
    axes = dict(importance_axis=torch.logspace(-1, 1, 40), conditional_axis=torch.logspace(-2, 0, 40))
    result = SweepResult(p_feature1=torch.tensor([0.1, 0.9, 0.99]), norm=None, superposition=None, loss=None,
                         W=None, b=None, model_loss=None, **axes)
    k, i, j = nearest_cell(result, 0.99, 0.03, 3.0)
    assert k == 2
    assert axes["conditional_axis"][i].item() == pytest.approx(0.0289, abs=1e-4)  # 10^(-2 + 18/39)
    assert axes["importance_axis"][j].item() == pytest.approx(3.07, abs=0.01)  # 10^(-1 + 58/39)


def test_expected_loss_matches_monte_carlo():
    generator = torch.Generator().manual_seed(0)
    W, b = torch.randn(3, 2, generator=generator, dtype=torch.float64), 0.2 * torch.randn(3, 2, generator=generator, dtype=torch.float64)
    p1, q = torch.tensor([0.3, 0.9, 0.6], dtype=torch.float64), torch.tensor([0.5, 0.1, 1.0], dtype=torch.float64)
    importance = torch.tensor([[1.0, 2.0], [1.0, 0.5], [1.0, 1.0]], dtype=torch.float64)
    exact = hierarchical_expected_loss(W, b, p1, q, importance, n_grid=256)
    x = HierarchicalPairs(p1.float(), q.float()).sample(400_000, generator).double()  # (batch, 3, 2)
    out = torch.relu(torch.einsum("nk,kf->nkf", (x * W).sum(-1), W) + b)
    errors = ((out - x) ** 2 * importance).mean(-1)
    estimate, stderr = errors.mean(0), errors.std(0) / math.sqrt(len(x))
    assert ((exact - estimate).abs() < 5 * stderr).all(), (exact, estimate, stderr)


def test_coactive_features_share_the_principal_direction():
    optimum = hierarchical_optimum(torch.tensor([0.1]), torch.tensor([1.0]), torch.tensor([1.0]), n_starts=8, steps=600)
    # Always active together, equal importance: W along (1, 1)/√2, and the loss of the linear answer,
    # p1 · Var / 2 = 0.1 / 24 (the ReLU gains nothing when the features never appear alone).
    assert math.isclose(optimum.loss.item(), 0.1 / 24, rel_tol=0.01)
    assert torch.allclose(optimum.W[0].abs(), torch.full((2,), 2**-0.5, dtype=torch.float64), atol=0.02)
