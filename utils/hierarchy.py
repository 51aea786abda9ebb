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
from utils.hierarchy_optima import expected_loss
from utils.metrics import feature_norms, interference
from utils.models import ToyModel, ToyModelConfig
from utils.train import drop_worst_mean, evaluate, optimize
from utils.validation import SEED_LIMIT, as_float_tensor, as_vector, check_positive_int, check_seed


@dataclass
class SweepResult:
    """A sweep's measurements, panel by panel (one panel per p1).

    Averaged over seeds without the worst (`(panels, ny, nx)`, row = conditional probability,
    column = importance): `norm`, `superposition`, `loss`. Per model (`(panels, ny, nx, seeds, ...)`):
    `W` (..., 2) and `b` (..., 2), the trained weights, and `model_loss` (...,), the evaluation losses.
    `independent`: trained on independent features with the same rates instead.
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
    independent: bool = False


SOURCE_WEIGHT_DECAY = 5e-5
"""Seed 000's Adam weight decay (1e-4) for our loss. Its per-model loss sums the squared error over
the two features; ours (`ToyModel`) averages it, which halves every gradient. Adam's step does not
change when the gradient (decay included) is scaled, so halving the decay too gives the source's
steps exactly, except that Adam's ε (1e-8) acts as if doubled."""


def sign_start(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    """Seed 000's initial weights: the signs of standard normal draws (every weight ±1), on the CPU."""
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed)).sign()


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
    weight_decay: float = SOURCE_WEIGHT_DECAY,
    eval_samples: int = 4096,
    independent: bool = False,
    seed: int = 0,
    device: torch.device | str | None = None,
    progress: bool = True,
) -> SweepResult:
    """Train every (p1, conditional, importance, seed) model at once and measure the child feature.

    Each model trains as in seed 000, except that the loss is summed over models (not averaged):
    weights start at ±1 (random signs), biases at 0, Adam with `lr` and `weight_decay` on fresh
    batches; the default decay is the source's, converted to our loss (see `SOURCE_WEIGHT_DECAY`).

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
    with torch.no_grad():  # seed 000's start, w/|w| of a normal draw: every weight ±1
        model.W.copy_(sign_start(model.W.shape, seed))
    optimize(model, steps=steps, batch_size=batch_size, lr=lr, weight_decay=weight_decay, progress=progress)
    # As many models as training, so compiled too (kernel.c on a CPU: a second for all 144,000).
    losses = evaluate(
        model, eval_samples, generator=torch.Generator(device).manual_seed((seed + 1) % SEED_LIMIT), compiled=True
    )
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
        independent=independent,
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

    Indexed by p1 (rounded to 6 decimals). Columns: `corr(norm, sup)` over the panel's cells; the
    number of cells in each of `REGIONS` (`cell_regions` on the averaged metrics: superposed is
    red, own dimension blue, dropped grey); and, over the panel's models whose two weights both
    exceed `sharing_norm` in size, the fraction `antipodal` (w₁w₂ < 0).
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


REGIMES = ("dropped", "own dimension", "antipodal", "same sign")
"""What a model does with the child, from its weights W = (w₁, w₂): `dropped` (|w₂| below the
threshold), `own dimension` (the child is kept, the parent's |w₁| is below it), and, with both kept,
`antipodal` (w₁w₂ < 0) or `same sign` (w₁w₂ > 0) sharing of the one dimension."""
REPRESENTED = 0.2
"""The weight size from which a feature counts as kept. Its gain through the hidden number is w²,
so below 0.2 a feature passes on less than 4% of its value."""


def sharing_regimes(W: torch.Tensor, threshold: float = REPRESENTED) -> torch.Tensor:
    """Index into `REGIMES` of each model: `W: (..., 2)` (w₁, w₂) -> `(...)` int64.

    Unlike the superposition (Ŵ₂·W₁)², this is gated by the child's norm (a child below `threshold`
    is dropped, whatever its direction) and keeps the sign of the sharing.
    """
    if W.shape[-1] != 2:
        raise ValueError(f"W must have shape (..., 2) = (w1, w2) per model, got {tuple(W.shape)}")
    parent, child = W[..., 0].abs() >= threshold, W[..., 1].abs() >= threshold
    regime = torch.zeros(W.shape[:-1], dtype=torch.int64)
    regime[child & ~parent] = REGIMES.index("own dimension")
    regime[child & parent & (W[..., 0] * W[..., 1] < 0)] = REGIMES.index("antipodal")
    regime[child & parent & (W[..., 0] * W[..., 1] > 0)] = REGIMES.index("same sign")
    return regime


@dataclass
class CellRegimes:
    """Each cell's regime among its seeds without the worst (`(panels, ny, nx)` each).

    Attributes:
        regime: the regime most of the kept seeds are in (ties go to the best seed's regime).
        agreement: the fraction of kept seeds in that regime.
        child_norm: the median |w₂| of those seeds (the lower middle one for an even count).
        counts: `(panels, ny, nx, len(REGIMES))` kept seeds per regime.
    """

    regime: torch.Tensor
    agreement: torch.Tensor
    child_norm: torch.Tensor
    counts: torch.Tensor


def cell_regimes(W: torch.Tensor, model_loss: torch.Tensor, threshold: float = REPRESENTED) -> CellRegimes:
    """Summarise seeds per cell: `W: (..., seeds, 2)`, `model_loss: (..., seeds)` -> `CellRegimes` of `(...)`.

    The seed with the highest loss is dropped, as for the averaged metrics.
    """
    if W.shape[:-1] != model_loss.shape:
        raise ValueError(f"W {tuple(W.shape)} must be model_loss {tuple(model_loss.shape)} plus a last axis of 2")
    regime = sharing_regimes(W, threshold)
    keep = torch.ones_like(model_loss, dtype=torch.bool).scatter_(-1, model_loss.argmax(dim=-1, keepdim=True), False)
    one_hot = torch.nn.functional.one_hot(regime, len(REGIMES)) * keep[..., None]
    counts = one_hot.sum(dim=-2)
    best = regime.gather(-1, model_loss.argmin(dim=-1, keepdim=True)).squeeze(-1)
    plurality = (counts + 0.5 * torch.nn.functional.one_hot(best, len(REGIMES))).argmax(dim=-1)
    members = keep & (regime == plurality[..., None])
    child = torch.where(members, W[..., 1].abs(), torch.nan).nanmedian(dim=-1).values
    return CellRegimes(
        regime=plurality,
        agreement=members.sum(dim=-1) / keep.sum(dim=-1),
        child_norm=child,
        counts=counts,
    )


def exact_model_losses(result: SweepResult, weight_decay: float = 0.0) -> torch.Tensor:
    """The exact expected loss of every trained model of a sweep, no sampling noise: `(panels, ny, nx, seeds)` float64.

    On the sweep's own data law (hierarchical, or independent for `result.independent`);
    `weight_decay` adds the decay penalty (see `utils.hierarchy_optima.expected_loss`).
    """
    panels, ny, nx, seeds = result.model_loss.shape
    shape = (panels, ny, nx, seeds)
    p1 = result.p_feature1.double()[:, None, None, None].expand(shape)
    q = result.conditional_axis.double()[None, :, None, None].expand(shape)
    i2 = result.importance_axis.double()[None, None, :, None].expand(shape)
    importance = torch.stack([torch.ones_like(i2), i2], dim=-1)
    return expected_loss(result.W.double(), result.b.double(), p1, q, importance, weight_decay, result.independent)


def interior_cells(regime: torch.Tensor) -> torch.Tensor:
    """Cells away from region boundaries: `(..., ny, nx)` -> bool, True where all eight neighbours (those
    inside the grid) are in the cell's regime."""
    padded = torch.nn.functional.pad(regime[..., None, :, :].double(), (1, 1, 1, 1), mode="replicate")[..., 0, :, :]
    ny, nx = regime.shape[-2:]
    inside = torch.ones(regime.shape, dtype=torch.bool)
    for di in (0, 1, 2):
        for dj in (0, 1, 2):
            inside &= padded[..., di : di + ny, dj : dj + nx] == regime
    return inside


def train_tied_relu(
    W: torch.Tensor,
    b: torch.Tensor,
    batches,
    importance: torch.Tensor,
    lr: float = 1e-2,
    weight_decay: float = 1e-4,
    eps: float = 1e-8,
    reduction: str = "sum",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Seed 000's training loop for tied ReLU models with one hidden dimension, x' = ReLU((x·W)W + b).

    One Adam step (`torch.optim.Adam(lr, weight_decay, eps)`, the decay added to the gradient) per
    batch. A model's loss is its importance-weighted squared error summed over the two features and
    averaged over the batch; the step's loss is the sum (`reduction="sum"`) or the mean ("mean", the
    source's) of the models' losses.

    Args:
        W, b: `(inst, 2)` starting values (not modified).
        batches: iterable of `(batch, inst, 2)` inputs.
        importance: `(inst, 2)`.

    Returns:
        The trained W and b, `(inst, 2)` each.
    """
    if reduction not in ("sum", "mean"):
        raise ValueError(f"reduction must be 'sum' or 'mean', got {reduction!r}")
    W, b = W.detach().clone().requires_grad_(), b.detach().clone().requires_grad_()
    optimizer = torch.optim.Adam([W, b], lr=lr, weight_decay=weight_decay, eps=eps)
    for x in batches:
        out = torch.relu((x * W).sum(dim=-1, keepdim=True) * W + b)
        per_model = (importance * (out - x) ** 2).sum(dim=-1).mean(dim=0)
        loss = per_model.sum() if reduction == "sum" else per_model.mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return W.detach(), b.detach()
