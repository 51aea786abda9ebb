"""One batched trainer for every model in the book.

`optimize` trains on a fresh batch each step (the toy-model setting): with autograd, with a model's
hand-written `step_gradients`, or, for the tied ReLU model `ToyModel` on a CPU, with the fast trainer
of `utils.fast`; `train_on_dataset` trains on a fixed dataset, full batch, and keeps parameter
snapshots for the training-dashboard animation. Both use Adam with weight decay added to the
gradient (`torch.optim.Adam(weight_decay=...)`) and a learning-rate schedule, and stop with
`TrainingDivergedError` naming the instances whose loss became NaN or infinite or exploded (on every
path). Losses are summed over instances, so instances train independently.

`best_instances` and `drop_worst_mean` reduce groups of seeds trained side by side.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass

import torch

from utils.fast.trainer import (
    KERNEL_WORK,
    eager_reason,
    evaluate_fast,
    kernel_for,
    route,
    train_fast,
    unsupported_reason,
)
from utils.progress import progress_bar
from utils.validation import as_float_tensor, check_generator, check_positive_int

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
    """The loss of some instances became NaN or infinite, or grew `EXPLOSION`-fold over its start."""


EXPLOSION = 1e3
"""A loss that grows this many times over max(its value at the first step, the instance's mean importance)
has diverged (an importance-weighted squared error of data in [-1, 1] is about the mean importance
for a model that outputs nothing; a thousand times that means outputs in the tens)."""


class DivergenceCheck:
    """Stops training whose loss is NaN or infinite, or has exploded, naming the instances.

    Call it at the first step and at each logged step with the losses `(rows,)` of the instances `rows`
    (a slice; all by default); the first call for an instance records its start.
    """

    def __init__(self, model, lr: float):
        n_inst = model.cfg.n_inst
        importance = getattr(model, "importance", None)
        if isinstance(importance, torch.Tensor) and importance.shape[:1] == (n_inst,):
            self.floor = importance.detach().float().reshape(n_inst, -1).mean(1).cpu()
        else:
            self.floor = torch.zeros(n_inst)
        self.start = torch.full((n_inst,), float("nan"))
        self.lr = lr

    def __call__(self, losses: torch.Tensor, step: int, rows: slice = slice(None)) -> None:
        losses = losses.detach().float().cpu()
        start = self.start[rows]  # a view: an instance's first loss stays its start
        start.copy_(torch.where(start.isnan(), losses, start))
        reference = torch.maximum(start, self.floor[rows])
        not_finite = ~torch.isfinite(losses)
        exploded = (reference > 0) & (losses > EXPLOSION * reference)
        bad = (not_finite | exploded).nonzero().flatten()
        if not len(bad):
            return
        which = (bad + (rows.start or 0)).tolist()
        shown = ", ".join(map(str, which[:20])) + (", ..." if len(which) > 20 else "")
        nan_text, growth_text = "is NaN or infinite", f"grew over {EXPLOSION:g}-fold from its start"
        what = {(True, False): nan_text, (False, True): growth_text}.get(
            (bool(not_finite.any()), bool(exploded.any())), f"{nan_text}, or {growth_text}"
        )
        raise TrainingDivergedError(
            f"training diverged by step {step}: the loss of {len(which)} of {len(self.start)} instances {what} "
            f"(instances {shown}); try a smaller learning rate than lr={self.lr:g}, or check the data and "
            "importances for huge values"
        )


def _check_model(model) -> None:
    """Raise TypeError unless `model` is a batched model: an `nn.Module` with `cfg`, `generate_batch` and
    `loss_per_instance` (the models of `utils.models`)."""
    needed = ("cfg", "generate_batch", "loss_per_instance")
    if not isinstance(model, torch.nn.Module) or not all(hasattr(model, name) for name in needed):
        raise TypeError(
            f"model must be a model of utils.models (an nn.Module with {', '.join(needed)}), "
            f"got {type(model).__name__} {model!r:.80}"
        )


def _check_number(value, name: str, positive: bool) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {type(value).__name__} {value!r}")
    if not (math.isfinite(value) and (value > 0 if positive else value >= 0)):
        raise ValueError(f"{name} must be a {'positive' if positive else 'non-negative'} number, got {value}")


def _check_hyperparameters(steps: int, lr: float, weight_decay: float, lr_scale: Schedule) -> None:
    check_positive_int(steps, "steps")
    _check_number(lr, "lr", positive=True)
    _check_number(weight_decay, "weight_decay", positive=False)
    if not callable(lr_scale):
        raise TypeError(f"lr_scale must be a function (step, steps) -> multiplier, got {type(lr_scale).__name__}")


def learning_rates(lr: float, lr_scale: Schedule, steps: int) -> list[float]:
    """`lr · lr_scale(step, steps)` for every step, each multiplier checked: a number, finite, >= 0."""
    rates = []
    for step in range(steps):
        scale = lr_scale(step, steps)
        if isinstance(scale, torch.Tensor) and scale.numel() == 1:
            scale = scale.item()
        if isinstance(scale, bool) or not isinstance(scale, numbers.Real):
            raise TypeError(f"lr_scale must return a number, got {type(scale).__name__} {scale!r} at step {step}")
        if not (math.isfinite(scale) and scale >= 0):
            raise ValueError(
                f"lr_scale must return a finite multiplier >= 0, got {scale} at step {step} of {steps} "
                "(a negative learning rate climbs the loss)"
            )
        rates.append(lr * scale)
    return rates


BATCH_ELEMENTS = 1 << 22
"""Most batch elements (samples x instances x max(features, hidden)) the autograd path (training and
`evaluate`) draws and computes at once: a bigger batch goes in blocks of samples, each drawn where it
is used, so peak memory stays at a few hundred megabytes whatever the number of instances. The laws
draw samples one after another from the generator, so blocks draw the same numbers as one batch."""


def sample_blocks(model, batch_size: int) -> list[int]:
    """Sizes of the blocks of samples a batch of `batch_size` is drawn in (one block when it fits)."""
    cfg = model.cfg
    rows = max(1, BATCH_ELEMENTS // (cfg.n_inst * max(cfg.n_features, cfg.d_hidden)))
    return [min(rows, batch_size - start) for start in range(0, batch_size, rows)]


def _gradients(model, blocks: list[int], generator: torch.Generator | None, hand: bool) -> torch.Tensor:
    """Set each parameter's `.grad` to the gradient of the summed loss on a fresh batch, drawn in `blocks`
    (by the model's `step_gradients` when `hand`, else autograd); return the per-instance loss `(inst,)`.

    A batch's loss is the mean of its blocks' losses weighted by their sizes, and so is its gradient.
    """
    batch_size, total = sum(blocks), None
    for rows in blocks:
        share = rows / batch_size
        if hand:
            before = [p.grad for p in model.parameters()]
            per_instance = model.step_gradients(rows, generator)
            for p, grad in zip(model.parameters(), before):
                p.grad = p.grad * share if grad is None else grad.add_(p.grad, alpha=share)
        else:
            batch = model.generate_batch(rows, generator)
            per_instance = model.loss_per_instance(model(batch), batch)
            (per_instance.sum() * share).backward()
        per_instance = per_instance.detach() * share
        total = per_instance if total is None else total.add_(per_instance)
    return total


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
    callback: Callable[[int, torch.nn.Module, torch.optim.Optimizer], None] | None = None,
) -> torch.Tensor:
    """Train `model` in place on a fresh batch from `model.generate_batch` every step.

    One of three paths trains it; all follow the same model, data law, Adam and steps:

    - the fast trainer `utils.fast`, for `ToyModel` on a CPU with one of its laws: runs of at least
      `utils.fast.trainer.KERNEL_WORK` sample-steps (chapter 4's sweep) on a C kernel that draws its
      own random numbers from a key drawn from `generator`, so its data stream differs from the
      autograd path's; shorter runs of small models eagerly, on `generator`'s stream;
    - the model's `step_gradients(batch_size, generator)` (NeuronModel, NeuronComputationModel,
      ReluComputationModel): loss and gradients by hand, several times faster than autograd on a
      CPU, on a batch drawn from another random stream, so results differ seed by seed;
    - autograd, for everything else (and on a GPU, where it is the fast path).

    Batches bigger than `BATCH_ELEMENTS` go in blocks of samples (autograd's blocks draw the batch's
    own numbers; `step_gradients` draws each block of its own stream).

    Args:
        model: any model of `utils.models` (or one with `cfg`, `generate_batch`, `forward`, `loss_per_instance`).
        lr_scale: the learning-rate schedule, (step, steps) -> multiplier of `lr` (a number >= 0).
        weight_decay: L2 coefficient added to each gradient, as `torch.optim.Adam` does.
        log_every: log the loss every this many steps (default: about 200 rows).
        generator: the data stream (default: the model's own, else torch's global one); the kernel
            draws only its key from it.
        fast: None picks a fast path (`utils.fast`, or the model's `step_gradients`) where one covers
            the model; True requires one (a ValueError says why when none does); False forces autograd.
        callback: called as `callback(step, model, optimizer)` after every update, under
            `torch.no_grad()`: to record parameters during training, or to change them (and the Adam
            state in `optimizer.state`). `utils.fast` never returns to Python between steps, so a run
            with a callback trains on `step_gradients` or autograd.

    Returns:
        The per-instance training loss `(n_logged, inst)`, row k at step (k+1)·log_every - 1; the last
        row is the last step.

    Raises:
        TrainingDivergedError: some instances' loss became NaN or infinite, or exploded (`EXPLOSION`).
        ValueError: `fast=True` for a model no fast path covers; a bad hyperparameter.
    """
    _check_model(model)
    _check_hyperparameters(steps, lr, weight_decay, lr_scale)
    check_positive_int(batch_size, "batch_size")
    check_generator(generator)
    log_every = max(1, steps // 200) if log_every is None else log_every
    check_positive_int(log_every, "log_every")
    if fast not in (None, True, False):
        raise TypeError(f"fast must be None (automatic), True or False, got {fast!r}")
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be a function (step, model, optimizer) -> None, got {type(callback).__name__}")
    rates = learning_rates(lr, lr_scale, steps)
    check = DivergenceCheck(model, lr)
    hand = fast is not False and callable(getattr(model, "step_gradients", None))
    reason = "fast=False" if fast is False else unsupported_reason(model)
    if reason is None and callback is not None:
        reason = "a callback runs between steps, which utils.fast does not return to Python for"
    path = route(model, batch_size, steps, required=bool(fast)) if reason is None else None
    if path is not None:
        kernel = None if path == "eager" else path
        return train_fast(model, steps, batch_size, torch.tensor(rates), weight_decay, log_every, generator,
                          kernel=kernel, progress=progress, on_log=check)  # fmt: skip
    if fast and not hand:
        why = reason or eager_reason(model, batch_size) + " and the C kernel is unavailable"
        raise ValueError(f"fast=True, but no fast path can train this model: {why}, and it has no step_gradients")
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    history = torch.empty(math.ceil(steps / log_every), model.cfg.n_inst)
    blocks = sample_blocks(model, batch_size)
    bar = progress_bar(range(steps), disable=not progress, desc=type(model).__name__)
    for step in bar:
        for group in optimizer.param_groups:
            group["lr"] = rates[step]
        optimizer.zero_grad(set_to_none=True)
        per_instance = _gradients(model, blocks, generator, hand)
        optimizer.step()
        if callback is not None:
            with torch.no_grad():
                callback(step, model, optimizer)
        if step == 0:
            check(per_instance, step)
        if (step + 1) % log_every == 0 or step == steps - 1:
            history[step // log_every] = per_instance.cpu()
            check(history[step // log_every], step)
            bar.set_postfix(mean_loss=f"{per_instance.mean().item():.3g}", refresh=False)
    return history


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

    A model the fast trainer covers (see `optimize`; `fast` as there) is evaluated on the C kernel, with
    a stream keyed from `generator`, when `compiled` is True, or when it is None and the evaluation is
    big (instances x samples at least `utils.fast.trainer.KERNEL_WORK`). Otherwise samples come from
    `model.generate_batch`, at most `chunk` at a time and fewer when instances are many
    (`BATCH_ELEMENTS`), so memory stays bounded.
    """
    _check_model(model)
    check_positive_int(n_samples, "n_samples")
    check_positive_int(chunk, "chunk")
    check_generator(generator)
    reason = unsupported_reason(model)
    if fast and reason is not None:
        raise ValueError(f"fast=True, but the fast path cannot evaluate this model: {reason}")
    wants_kernel = compiled or (compiled is None and model.cfg.n_inst * n_samples >= KERNEL_WORK)
    kernel = kernel_for(model) if fast is not False and reason is None and wants_kernel else None
    if kernel is not None:
        return evaluate_fast(model, n_samples, kernel, generator)
    total = torch.zeros(model.cfg.n_inst, device=next(model.parameters()).device)
    chunk = min(chunk, sample_blocks(model, chunk)[0])
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
        TrainingDivergedError: some instances' loss became NaN or infinite, or exploded (`EXPLOSION`).
    """
    _check_model(model)
    _check_hyperparameters(steps, lr, weight_decay, lr_scale)
    n_inst, n_features = model.cfg.n_inst, model.cfg.n_features
    if not isinstance(x, torch.Tensor) or x.dim() not in (2, 3) or x.shape[-1] != n_features:
        raise ValueError(
            f"x must have shape (n_points, feats) or (n_points, inst, feats) with feats = {n_features}, "
            f"got {tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}"
        )
    snapshot_every = max(1, steps // 40) if snapshot_every is None else snapshot_every
    check_positive_int(snapshot_every, "snapshot_every")
    rates, check = learning_rates(lr, lr_scale, steps), DivergenceCheck(model, lr)
    device = next(model.parameters()).device
    batch = (x[:, None, :] if x.dim() == 2 else x).expand(-1, n_inst, -1).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    losses = torch.empty(steps, n_inst)
    snapshot_steps = list(range(0, steps, snapshot_every))
    snapshots = {name: [] for name, _ in model.named_parameters()}
    for step in progress_bar(range(steps), disable=not progress, desc=type(model).__name__):
        if step % snapshot_every == 0:
            for name, parameter in model.named_parameters():
                snapshots[name].append(parameter.detach().cpu().clone())
        for group in optimizer.param_groups:
            group["lr"] = rates[step]
        per_instance = model.loss_per_instance(model(batch), batch)
        optimizer.zero_grad(set_to_none=True)
        per_instance.sum().backward()
        optimizer.step()
        losses[step] = per_instance.detach().cpu()
        if step % 100 == 0 or step == steps - 1:
            check(losses[step], step)
    return DatasetRun(
        losses=losses,
        snapshot_steps=torch.tensor(snapshot_steps),
        snapshots={name: torch.stack(values) for name, values in snapshots.items()},
    )


def _tensor(value, name: str) -> torch.Tensor:
    """`value` as it is if a tensor, else as a float tensor (a clear TypeError for non-numbers)."""
    return value if isinstance(value, torch.Tensor) else as_float_tensor(value, name)


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
    losses = _tensor(losses, "losses")
    grouped = _groups(losses, group_size)
    offsets = torch.arange(grouped.shape[0], device=losses.device) * group_size
    return grouped.argmin(dim=1) + offsets


def drop_worst_mean(values: torch.Tensor, losses: torch.Tensor, group_size: int) -> torch.Tensor:
    """Mean of `values` over each group of `group_size` consecutive instances, without the highest-loss member.

    `values: (inst, ...)`, `losses: (inst,)` -> `(inst // group_size, ...)`.
    """
    values, losses = _tensor(values, "values"), _tensor(losses, "losses")
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
