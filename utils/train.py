"""One batched trainer for every model in the book.

`optimize` trains on a fresh batch each step (the toy-model setting); for the tied ReLU model
`ToyModel` it hands over to the fast trainer of `utils.fast` (hand-written gradients, compiled
for long runs); `train_on_dataset` trains on a fixed dataset, full batch, and keeps parameter
snapshots for the training-dashboard animation. Both use Adam with weight decay added to the
gradient (`torch.optim.Adam(weight_decay=...)`), a learning-rate schedule, and stop with
`TrainingDivergedError` naming the instances whose loss became NaN or infinite. Losses are summed
over instances, so instances train independently.

`best_instances` and `drop_worst_mean` reduce groups of seeds trained side by side.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from utils.fast import evaluate_fast, train_fast, unsupported_reason
from utils.progress import progress_bar
from utils.validation import check_positive_int

Schedule = Callable[[int, int], float]
"""A learning-rate multiplier as a function of (step, total steps)."""


def constant_lr(step: int, steps: int) -> float:
    """1 throughout."""
    return 1.0


def linear_lr(step: int, steps: int) -> float:
    """From 1 down to 0 linearly."""
    return 1.0 - step / steps


def cosine_decay_lr(step: int, steps: int) -> float:
    """From 1 down to 0 along half a cosine."""
    return 0.5 * (1.0 + math.cos(math.pi * step / steps))


def warmup_cosine_lr(warmup_fraction: float = 0.05) -> Schedule:
    """A schedule that rises linearly over the first `warmup_fraction` of training, then decays as a cosine."""
    if not 0.0 <= warmup_fraction < 1.0:
        raise ValueError(f"warmup_fraction must lie in [0, 1), got {warmup_fraction}")

    def schedule(step: int, steps: int) -> float:
        warmup = max(1, round(warmup_fraction * steps))
        if step < warmup:
            return (step + 1) / warmup
        return cosine_decay_lr(step - warmup, steps - warmup)

    return schedule


class TrainingDivergedError(RuntimeError):
    """The loss of some instances became NaN or infinite."""


def check_finite_losses(per_instance: torch.Tensor, step: int, lr: float) -> None:
    """Raise `TrainingDivergedError` naming the instances whose loss `(inst,)` is not finite."""
    bad = ~torch.isfinite(per_instance)
    if bad.any():
        which = bad.nonzero().flatten().tolist()
        shown = ", ".join(map(str, which[:20])) + (", ..." if len(which) > 20 else "")
        raise TrainingDivergedError(
            f"training diverged by step {step}: the loss of {len(which)} of {per_instance.numel()} instances "
            f"is NaN or infinite (instances {shown}); try a smaller learning rate than lr={lr:g}, "
            "or check the data and importances for huge values"
        )


def _check_hyperparameters(steps: int, lr: float, weight_decay: float, lr_scale: Schedule) -> None:
    check_positive_int(steps, "steps")
    if not (math.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be a positive number, got {lr}")
    if not (math.isfinite(weight_decay) and weight_decay >= 0):
        raise ValueError(f"weight_decay must be a non-negative number, got {weight_decay}")
    if not callable(lr_scale):
        raise TypeError(f"lr_scale must be a function (step, steps) -> multiplier, got {type(lr_scale).__name__}")


def _adam_step(model, optimizer: torch.optim.Optimizer, batch: torch.Tensor, lr: float) -> torch.Tensor:
    """One Adam step on `batch`; returns the per-instance loss `(inst,)` before the update."""
    for group in optimizer.param_groups:
        group["lr"] = lr
    per_instance = model.loss_per_instance(model(batch), batch)
    optimizer.zero_grad(set_to_none=True)
    per_instance.sum().backward()
    optimizer.step()
    return per_instance.detach()


def optimize(
    model,
    steps: int = 5_000,
    batch_size: int = 1024,
    lr: float = 1e-3,
    lr_scale: Schedule = constant_lr,
    weight_decay: float = 0.0,
    progress: bool = True,
    log_every: int | None = None,
    generator: torch.Generator | None = None,
    fast: bool | None = None,
) -> torch.Tensor:
    """Train `model` in place on a fresh batch from `model.generate_batch` every step.

    A `ToyModel` with one of the laws `utils.fast` covers trains on the fast path by default: the
    same model, law, Adam and steps, with hand-written gradients; long runs (such as chapter 4's
    sweep) compiled (on a CPU the C loop of `utils/fast/kernel.c`, elsewhere torch.compile), drawing
    their own random numbers from a key drawn from `generator`, so their data stream differs from
    the autograd path's while following the same law. A model with a `step_gradients(batch_size,
    generator)` method (NeuronModel, NeuronComputationModel, ReluComputationModel on independent
    sparse features) draws each batch and sets its gradients itself on the fast path: the same loss
    and gradients as autograd, several times faster on a CPU, but a different random stream, so
    results differ seed by seed. Everything else trains with autograd.

    Args:
        model: any model of `utils.models` (or one with `generate_batch`, `forward`, `loss_per_instance`).
        lr_scale: the learning-rate schedule (multiplier of `lr`).
        weight_decay: L2 coefficient added to each gradient, as `torch.optim.Adam` does.
        log_every: log the loss every this many steps (default: about 200 rows).
        generator: the data stream (default: the model's own, else torch's global one); the
            compiled fast path draws only its key from it.
        fast: None picks a fast path (`utils.fast`, or the model's `step_gradients`) where one covers
            the model; True requires one (a ValueError says why when none does); False forces the
            autograd path.

    Returns:
        The per-instance training loss `(n_logged, inst)`, row k at step (k+1)·log_every - 1; the last
        row is the last step.

    Raises:
        TrainingDivergedError: some instances' loss became NaN or infinite.
        ValueError: `fast=True` for a model the fast path does not cover.
    """
    _check_hyperparameters(steps, lr, weight_decay, lr_scale)
    check_positive_int(batch_size, "batch_size")
    log_every = log_every or max(1, steps // 200)
    check_positive_int(log_every, "log_every")
    if fast not in (None, True, False):
        raise TypeError(f"fast must be None (automatic), True or False, got {fast!r}")
    reason = unsupported_reason(model) if fast is not False else "fast=False"
    hand_gradients = fast is not False and reason is not None and callable(getattr(model, "step_gradients", None))
    if fast and reason is not None and not hand_gradients:
        raise ValueError(f"fast=True, but no fast path can train this model: {reason}, and it has no step_gradients; pass fast=None or False")
    if reason is None:
        lrs = torch.tensor([lr * lr_scale(step, steps) for step in range(steps)])
        return train_fast(
            model, steps, batch_size, lrs, weight_decay, log_every, generator, progress=progress,
            on_log=lambda losses, step: check_finite_losses(losses, step, lr),
        )
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    history = torch.empty(math.ceil(steps / log_every), model.cfg.n_inst)
    bar = progress_bar(range(steps), disable=not progress, desc=type(model).__name__)
    for step in bar:
        if hand_gradients:
            for group in optimizer.param_groups:
                group["lr"] = lr * lr_scale(step, steps)
            per_instance = model.step_gradients(batch_size, generator)
            optimizer.step()
        else:
            batch = model.generate_batch(batch_size, generator)
            per_instance = _adam_step(model, optimizer, batch, lr * lr_scale(step, steps))
        if (step + 1) % log_every == 0 or step == steps - 1:
            check_finite_losses(per_instance, step, lr)
            history[step // log_every] = per_instance.cpu()
            bar.set_postfix(mean_loss=f"{per_instance.mean().item():.3g}", refresh=False)
    return history


EVAL_ELEMENTS = 1 << 22
"""Most batch elements (samples x instances x features) `evaluate` draws at once on the autograd path."""


@torch.no_grad()
def evaluate(
    model,
    n_samples: int = 4096,
    chunk: int = 1024,
    generator: torch.Generator | None = None,
    fast: bool | None = None,
    compiled: bool | None = None,
) -> torch.Tensor:
    """The per-instance loss `(inst,)` on `n_samples` fresh samples.

    Models the fast path covers (see `optimize`; `fast` as there) are evaluated by `utils.fast`:
    compiled (with a stream keyed from `generator`) when `compiled` is True, or when it is None and
    the evaluation is big (`utils.fast.trainer.COMPILE_WORK`); eager otherwise. Others draw at most
    `chunk` samples at a time, fewer when instances are many, so memory stays bounded.
    """
    check_positive_int(n_samples, "n_samples")
    check_positive_int(chunk, "chunk")
    if fast is not False and unsupported_reason(model) is None:
        return evaluate_fast(model, n_samples, generator, compiled)
    if fast:
        raise ValueError(f"fast=True, but the fast path cannot evaluate this model: {unsupported_reason(model)}")
    total = torch.zeros(model.cfg.n_inst, device=next(model.parameters()).device)
    chunk = max(1, min(chunk, EVAL_ELEMENTS // (model.cfg.n_inst * model.cfg.n_features)))
    for start in range(0, n_samples, chunk):
        size = min(chunk, n_samples - start)
        batch = model.generate_batch(size, generator)
        total += model.loss_per_instance(model(batch), batch) * size
    return (total / n_samples).cpu()


@dataclass
class DatasetRun:
    """The record of `train_on_dataset`.

    Attributes:
        losses: `(steps, inst)` full-batch loss before each update.
        snapshot_steps: `(n_snap,)` steps at which parameters were copied (before that step's update).
        snapshots: parameter name -> `(n_snap, *parameter.shape)` copies on the CPU.
    """

    losses: torch.Tensor
    snapshot_steps: torch.Tensor
    snapshots: dict[str, torch.Tensor]

    def parameters_at(self, index: int) -> dict[str, torch.Tensor]:
        """The parameters of snapshot `index`, for `torch.func.functional_call`."""
        return {name: values[index] for name, values in self.snapshots.items()}


def train_on_dataset(
    model,
    x: torch.Tensor,
    steps: int = 2_000,
    lr: float = 1e-3,
    lr_scale: Schedule = constant_lr,
    weight_decay: float = 0.0,
    snapshot_every: int | None = None,
    progress: bool = True,
) -> DatasetRun:
    """Train `model` in place on a fixed dataset, one full batch per step, with parameter snapshots.

    Args:
        x: `(n_points, feats)`, shared by all instances, or `(n_points, inst, feats)`.
        snapshot_every: copy the parameters every this many steps (default: about 40 snapshots).

    Raises:
        TrainingDivergedError: some instances' loss became NaN or infinite.
    """
    _check_hyperparameters(steps, lr, weight_decay, lr_scale)
    n_inst, n_features = model.cfg.n_inst, model.cfg.n_features
    if not isinstance(x, torch.Tensor) or x.dim() not in (2, 3) or x.shape[-1] != n_features:
        raise ValueError(
            f"x must have shape (n_points, feats) or (n_points, inst, feats) with feats = {n_features}, "
            f"got {tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}"
        )
    device = next(model.parameters()).device
    batch = (x[:, None, :] if x.dim() == 2 else x).expand(-1, n_inst, -1).to(device)
    snapshot_every = snapshot_every or max(1, steps // 40)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    losses = torch.empty(steps, n_inst)
    snapshot_steps = list(range(0, steps, snapshot_every))
    snapshots = {name: [] for name, _ in model.named_parameters()}
    for step in progress_bar(range(steps), disable=not progress, desc=type(model).__name__):
        if step % snapshot_every == 0:
            for name, parameter in model.named_parameters():
                snapshots[name].append(parameter.detach().cpu().clone())
        losses[step] = _adam_step(model, optimizer, batch, lr * lr_scale(step, steps)).cpu()
        if step % 100 == 0 or step == steps - 1:
            check_finite_losses(losses[step], step, lr)
    return DatasetRun(
        losses=losses,
        snapshot_steps=torch.tensor(snapshot_steps),
        snapshots={name: torch.stack(values) for name, values in snapshots.items()},
    )


def _groups(losses: torch.Tensor, group_size: int) -> torch.Tensor:
    check_positive_int(group_size, "group_size")
    if losses.dim() != 1 or losses.numel() % group_size:
        raise ValueError(
            f"losses must have shape (inst,) with inst a multiple of group_size={group_size}, got {tuple(losses.shape)}"
        )
    return losses.reshape(-1, group_size)


def best_instances(losses: torch.Tensor, group_size: int) -> torch.Tensor:
    """Index of the lowest-loss instance in each group of `group_size` consecutive instances.

    `(inst,) -> (inst // group_size,)`, indices into `inst`.
    """
    grouped = _groups(losses, group_size)
    offsets = torch.arange(grouped.shape[0], device=losses.device) * group_size
    return grouped.argmin(dim=1) + offsets


def drop_worst_mean(values: torch.Tensor, losses: torch.Tensor, group_size: int) -> torch.Tensor:
    """Mean of `values` over each group of `group_size` consecutive instances, without the highest-loss member.

    `values: (inst, ...)`, `losses: (inst,)` -> `(inst // group_size, ...)`.
    """
    grouped = _groups(losses, group_size)
    if group_size < 2:
        raise ValueError("drop_worst_mean needs group_size >= 2: dropping the worst of one model leaves nothing")
    if values.shape[0] != losses.shape[0]:
        raise ValueError(f"values has {values.shape[0]} instances but losses has {losses.shape[0]}")
    keep = torch.ones_like(grouped, dtype=torch.bool)
    keep.scatter_(1, grouped.argmax(dim=1, keepdim=True), False)
    grouped_values = values.reshape(grouped.shape[0], group_size, *values.shape[1:])
    weights = keep.reshape(*keep.shape, *([1] * (values.dim() - 1))).to(values.dtype)
    return (grouped_values * weights).sum(dim=1) / (group_size - 1)
