"""Learning dynamics (chapter 8): record the weights while a model trains, then ask when each feature
was learned and in what order.

`WeightRecorder` is a callback for `utils.train.optimize(callback=...)` that copies the weights `W`
at chosen steps (dense early, sparse later: `log_spaced_steps`); `learning_times` reads the step at
which each feature's norm first exceeds a threshold; `rank_correlation` compares that order with the
features' importance.
"""

from __future__ import annotations

import math

import torch

from utils.validation import as_real, check_positive_int


def log_spaced_steps(steps: int, n_points: int) -> list[int]:
    """About `n_points` distinct steps from 0 to `steps - 1`, evenly spaced on a log scale (every step at
    the start, where things change fastest, then fewer and fewer), always including the last step."""
    steps, n_points = check_positive_int(steps, "steps"), check_positive_int(n_points, "n_points")
    grid = torch.logspace(0, math.log10(steps), n_points, dtype=torch.float64)
    return sorted({int(round(value)) - 1 for value in grid.tolist()} | {steps - 1})


class WeightRecorder:
    """A callback for `optimize` that keeps a copy of `model.W` after each update of `steps`.

    After training, `steps: (n_log,)` and `weights: (n_log, inst, d_hidden, feats)` on the CPU.
    """

    def __init__(self, steps: list[int]):
        if not steps or any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in steps):
            raise ValueError(f"steps must be a non-empty list of steps (integers >= 0), got {steps!r:.80}")
        self._wanted = set(steps)
        self._steps: list[int] = []
        self._weights: list[torch.Tensor] = []

    def __call__(self, step: int, model, optimizer) -> None:
        if step in self._wanted:
            self._steps.append(step)
            self._weights.append(model.W.detach().cpu().clone())

    @property
    def steps(self) -> torch.Tensor:
        """The steps recorded so far, `(n_log,)`."""
        return torch.tensor(self._steps)

    @property
    def weights(self) -> torch.Tensor:
        """`(n_log, inst, d_hidden, feats)`: W after each recorded step."""
        if not self._weights:
            raise ValueError("nothing recorded yet: pass the recorder to optimize(callback=...) and train first")
        return torch.stack(self._weights)


def learning_times(norms: torch.Tensor, steps: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """The first recorded step at which each feature's norm is above `threshold`, -1 if it never is.

    Args:
        norms: `(n_log, inst, feats)` feature norms ‖W_i‖ at the recorded steps.
        steps: `(n_log,)` the recorded steps, increasing.

    Returns:
        `(inst, feats)` integer steps (int64).
    """
    threshold = as_real(threshold, "threshold")
    if not isinstance(norms, torch.Tensor) or norms.dim() != 3:
        raise ValueError(f"norms must have shape (n_log, inst, feats), got {getattr(norms, 'shape', type(norms))}")
    steps = torch.as_tensor(steps)
    if steps.shape != norms.shape[:1]:
        raise ValueError(f"steps must have shape (n_log,) = ({norms.shape[0]},), got {tuple(steps.shape)}")
    above = norms > threshold
    first = above.long().argmax(dim=0)  # the first True, or 0 when there is none
    return torch.where(above.any(dim=0), steps.long()[first], -1)


def _ranks(values: torch.Tensor) -> torch.Tensor:
    """Ranks 0..n-1 of a 1-D tensor (ties broken by position)."""
    return values.argsort(stable=True).argsort().double()


def rank_correlation(a: torch.Tensor, b: torch.Tensor) -> float:
    """Spearman's rank correlation of two 1-D tensors of the same length (at least 3 entries)."""
    if a.dim() != 1 or a.shape != b.shape or a.numel() < 3:
        raise ValueError(f"a and b must be 1-D of the same length >= 3, got {tuple(a.shape)} and {tuple(b.shape)}")
    return torch.corrcoef(torch.stack([_ranks(a), _ranks(b)]))[0, 1].item()


def train_sgd(
    model, steps: int, lr: float, batch_size: int, record_every: int, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Train `model` with plain SGD (no momentum) on a fresh batch each step, copying W as it goes.

    Each step draws `model.generate_batch(batch_size, generator)` and descends `loss_per_instance(...).sum()`.
    W is recorded after the update of every step s with s % record_every == 0.

    Returns:
        `(n_log,)` recorded steps, `(n_log, inst, d_hidden, feats)` weights on the CPU, and `(steps, inst)` the
        loss of each step's batch (before its update).
    """
    steps, batch_size = check_positive_int(steps, "steps"), check_positive_int(batch_size, "batch_size")
    record_every, lr = check_positive_int(record_every, "record_every"), as_real(lr, "lr")
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    recorded, weights, losses = [], [], []
    for step in range(steps):
        optimizer.zero_grad()
        batch = model.generate_batch(batch_size, generator)
        loss = model.loss_per_instance(model(batch), batch)
        loss.sum().backward()
        optimizer.step()
        losses.append(loss.detach().cpu())
        if step % record_every == 0:
            recorded.append(step)
            weights.append(model.W.detach().cpu().clone())
    return torch.tensor(recorded), torch.stack(weights), torch.stack(losses)
