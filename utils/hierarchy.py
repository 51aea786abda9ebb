"""Phase-diagram sweeps for two hierarchical features in one hidden dimension (chapter 4).

Feature 1 (the parent) is active with probability p1; feature 2 (the child) is active with
probability q = p(feature 2 | feature 1) when feature 1 is, and never otherwise. A sweep trains one
tied ReLU model x' = ReLU(WᵀWx + b) per (importance of feature 2, q, seed) in a single batched run
and reads off, per model, the child's norm ‖W₂‖, its superposition with the parent (Ŵ₂·W₁)², and
the evaluation loss; seeds are then averaged with the worst one dropped.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd
import torch

from utils.data import HierarchicalPairs, SparseUniform
from utils.device import get_device
from utils.metrics import feature_norms, interference
from utils.models import ToyModel, ToyModelConfig
from utils.train import drop_worst_mean, evaluate, optimize
from utils.validation import as_float_tensor, as_vector, check_positive_int, check_seed


@dataclass
class SweepResult:
    """A sweep's measurements, panel by panel (one panel per p1).

    Averaged over seeds without the worst (`(panels, ny, nx)`, row = conditional probability,
    column = importance): `norm`, `superposition`, `loss`. Per model (`(panels, ny, nx, seeds, ...)`):
    `W` (..., 2) and `b` (..., 2), the trained weights, and `model_loss` (...,), the evaluation losses.
    """

    p_feature1: torch.Tensor
    importance_axis: torch.Tensor
    conditional_axis: torch.Tensor
    norm: torch.Tensor
    superposition: torch.Tensor
    loss: torch.Tensor
    W: torch.Tensor
    b: torch.Tensor
    model_loss: torch.Tensor


def sweep_grid(
    p_feature1: Sequence[float], importance_axis: torch.Tensor, conditional_axis: torch.Tensor, n_seeds: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-instance settings, ordered (p1, conditional, importance, seed) with the seed fastest.

    Returns:
        p1 `(inst,)`, conditional `(inst,)`, importance `(inst, 2)` with feature 1's importance 1.
    """
    n_seeds = check_positive_int(n_seeds, "n_seeds")
    p1 = torch.as_tensor(p_feature1, dtype=torch.float32)
    grid_p1, grid_q, grid_i = torch.meshgrid(p1, conditional_axis.float(), importance_axis.float(), indexing="ij")
    expand = lambda t: t.reshape(-1).repeat_interleave(n_seeds)  # noqa: E731
    importance = torch.stack([torch.ones_like(expand(grid_i)), expand(grid_i)], dim=-1)
    return expand(grid_p1), expand(grid_q), importance


def phase_metrics(W: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The child's norm ‖W₂‖ and superposition (Ŵ₂·W₁)²: `(inst, 1, 2) -> (inst,), (inst,)`."""
    return feature_norms(W)[:, 1], interference(W)[:, 1]


def hierarchical_sweep(
    p_feature1: Sequence[float],
    importance_axis: torch.Tensor,
    conditional_axis: torch.Tensor,
    n_seeds: int = 10,
    steps: int = 800,
    batch_size: int = 256,
    lr: float = 1e-2,
    weight_decay: float = 1e-4,
    eval_samples: int = 4096,
    independent: bool = False,
    seed: int = 0,
    device: torch.device | str | None = None,
    progress: bool = True,
) -> SweepResult:
    """Train every (p1, conditional, importance, seed) model at once and measure the child feature.

    Args:
        importance_axis: `(nx,)` importances of feature 2 (feature 1's is 1).
        conditional_axis: `(ny,)` probabilities of feature 2 given feature 1.
        independent: train on independent features with the same marginal probabilities (p1 and
            p1·q) instead, to separate the effect of the hierarchy from that of rarity.
        n_seeds: models per cell, at least 2 (the average drops the worst).
    """
    # arguments checked before training: a mistake found afterwards would waste the run
    p_feature1 = as_vector(p_feature1, "p_feature1").tolist()
    importance_axis = as_vector(importance_axis, "importance_axis")
    conditional_axis = as_vector(conditional_axis, "conditional_axis")
    if check_positive_int(n_seeds, "n_seeds") < 2:
        raise ValueError(f"n_seeds must be at least 2 (each cell averages its seeds without the worst), got {n_seeds}")
    check_positive_int(eval_samples, "eval_samples")
    check_seed(seed)
    device = get_device(device)
    p1, q, importance = (t.to(device) for t in sweep_grid(p_feature1, importance_axis, conditional_axis, n_seeds))
    data = SparseUniform(torch.stack([p1, p1 * q], dim=-1)) if independent else HierarchicalPairs(p1, q)
    cfg = ToyModelConfig(n_inst=p1.numel(), n_features=2, d_hidden=1)
    model = ToyModel(cfg, importance=importance, data=data, device=device, seed=seed)
    optimize(model, steps=steps, batch_size=batch_size, lr=lr, weight_decay=weight_decay, progress=progress)
    # As many models as training, so compiled too (kernel.c on a CPU: a second for all 144,000).
    losses = evaluate(model, eval_samples, generator=torch.Generator(device).manual_seed(seed + 1), compiled=True)
    W = model.W.detach().cpu()
    norm, superposition = phase_metrics(W)
    shape = (len(p_feature1), conditional_axis.numel(), importance_axis.numel())
    average = lambda v: drop_worst_mean(v, losses, n_seeds).reshape(shape)  # noqa: E731
    return SweepResult(
        p_feature1=torch.as_tensor(p_feature1, dtype=torch.float32),
        importance_axis=importance_axis.float(),
        conditional_axis=conditional_axis.float(),
        norm=average(norm),
        superposition=average(superposition),
        loss=average(losses),
        W=W[:, 0].reshape(*shape, n_seeds, 2),
        b=model.b_final.detach().cpu().reshape(*shape, n_seeds, 2),
        model_loss=losses.reshape(*shape, n_seeds),
    )


CELL_THRESHOLDS = {"represented": 0.6, "superposed": 0.6, "orthogonal": 0.2, "dropped": 0.2}
"""Cuts on a cell's averaged metrics (seed 000's): the child is represented when its norm exceeds
0.6 and dropped below 0.2; represented and superposed when its superposition exceeds 0.6,
represented with its own dimension when the superposition is below 0.2."""
REGIONS = ("dropped", "own dimension", "superposed", "other")


def cell_regions(norm: torch.Tensor, superposition: torch.Tensor) -> torch.Tensor:
    """Index into `REGIONS` of each cell: `(...)`, `(...)` -> `(...)` int64 ("other" = in between)."""
    cut = CELL_THRESHOLDS
    represented = norm > cut["represented"]
    region = torch.full(norm.shape, REGIONS.index("other"), dtype=torch.int64)
    region[norm < cut["dropped"]] = REGIONS.index("dropped")
    region[represented & (superposition < cut["orthogonal"])] = REGIONS.index("own dimension")
    region[represented & (superposition > cut["superposed"])] = REGIONS.index("superposed")
    return region


def cell_region(norm: torch.Tensor | float, superposition: torch.Tensor | float) -> str:
    """The region's name for one cell."""
    norm, superposition = as_float_tensor(norm, "norm"), as_float_tensor(superposition, "superposition")
    if norm.numel() != 1 or superposition.numel() != 1:
        raise ValueError(f"cell_region reads one cell: norm and superposition must be single numbers, got {norm.shape}")
    return REGIONS[int(cell_regions(norm, superposition))]


def nearest_cell(result: SweepResult, p_feature1: float, conditional: float, importance: float) -> tuple[int, int, int]:
    """Indices (panel, row, column) of the grid point closest to the given values (log distance on the axes)."""
    distance = lambda axis, value: (axis.log() - math.log(value)).abs().argmin().item()  # noqa: E731
    return (
        (result.p_feature1 - p_feature1).abs().argmin().item(),
        distance(result.conditional_axis, conditional),
        distance(result.importance_axis, importance),
    )


def panel_diagnostics(result: SweepResult, sharing_norm: float = 0.1) -> pd.DataFrame:
    """One row per panel: how the cells divide between the regions, and how models share.

    Indexed by p1 (rounded to 6 decimals). Columns: `corr(norm, sup)` over the panel's cells; the number of cells in each of `REGIONS`
    (`cell_regions` on the averaged metrics: superposed is red, own dimension blue, dropped grey);
    and, over the panel's models whose two weights both exceed `sharing_norm` in size, the fraction
    `antipodal` (w₁w₂ < 0).
    """
    rows = []
    for k, p1 in enumerate(result.p_feature1.tolist()):
        norm, superposition = result.norm[k].flatten(), result.superposition[k].flatten()
        counts = torch.bincount(cell_regions(norm, superposition), minlength=len(REGIONS)).tolist()
        w = result.W[k].reshape(-1, 2)
        sharing = (w.abs() > sharing_norm).all(dim=1)
        rows.append(
            {
                "p1": round(p1, 6),
                "corr(norm, sup)": torch.corrcoef(torch.stack([norm, superposition]))[0, 1].item(),
                **{REGIONS[r]: counts[r] for r in (2, 1, 0, 3)},
                "antipodal": (w[sharing].prod(dim=1) < 0).float().mean().item() if sharing.any() else float("nan"),
            }
        )
    return pd.DataFrame(rows).set_index("p1")
