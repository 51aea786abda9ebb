"""The exact expected loss of chapter 4's model, in closed form, and its minima.

The model is the tied ReLU model x' = ReLU(WᵀWx + b) with two features in one hidden dimension,
W = (w₁, w₂), on hierarchical data: the input is 0 with probability 1 - p₁, (x₁, 0) with
probability p₁(1 - q) and (x₁, x₂) with probability p₁q, active values uniform on [0, 1]. Each
output is a ReLU of a linear function of the input, so each term of the expected loss is an
integral of a piecewise polynomial:

- over a segment, ∫₀¹ (ReLU(a·y + c) - γy - t)² dy, in closed form (the ReLU is active on one
  interval, whose end is the root -c/a);
- over the unit square, the same integral in y for each x, which is a piecewise cubic in x with
  breaks where the root crosses y = 0 or y = 1; two Gauss points per piece integrate it exactly.

So the loss is exact up to rounding, differentiable, and cheap: a few dozen elementwise operations
per model, whatever the model. `minimise` finds the nearest local minimum of a batch of models at
once with a damped Newton method; `exact_optimum` runs it from several starts per configuration
and keeps the lowest minimum.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch

GAUSS_NODES = (0.5 - 0.5 / math.sqrt(3), 0.5 + 0.5 / math.sqrt(3))
"""The two Gauss-Legendre nodes on [0, 1] (weights 1/2 each): exact for cubics."""


def _active_interval(a: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Where a·y + c > 0 within [0, 1], as (low, high); empty when low = high. With a zero slope the
    interval is all of [0, 1] when c > 0 and empty otherwise."""
    root = (-c / torch.where(a == 0, 1.0, a)).clamp(0.0, 1.0)
    flat_end = torch.where(c > 0, 1.0, 0.0)
    return torch.where(a > 0, root, 0.0), torch.where(a < 0, root, torch.where(a == 0, flat_end, 1.0))


def line_error(a: torch.Tensor, c: torch.Tensor, gamma: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """∫₀¹ (ReLU(a·y + c) - (γ·y + t))² dy, exactly; all arguments broadcast together.

    Where the ReLU is off the integrand is (γy + t)²; where it is on, it adds z(z - 2(γy + t)) with
    z = ay + c, a quadratic in y integrated over the active interval.
    """
    low, high = _active_interval(a, c)
    a_, c_ = a - 2 * gamma, c - 2 * t
    k0, k1, k2 = c * c_, (a * c_ + a_ * c) / 2, a * a_ / 3

    def antiderivative(y: torch.Tensor) -> torch.Tensor:
        return y * (k0 + y * (k1 + y * k2))

    return gamma * gamma / 3 + gamma * t + t * t + antiderivative(high) - antiderivative(low)


def square_error(A: torch.Tensor, B: torch.Tensor, c: torch.Tensor, target_is_y: torch.Tensor) -> torch.Tensor:
    """∫∫ over [0, 1]² of (ReLU(A·x + B·y + c) - target)², target x (`target_is_y` 0) or y (1). Exact.

    The inner integral over y is `line_error`; as a function of x it is a cubic on each of the three
    pieces of [0, 1] cut where the ReLU's edge crosses y = 0 (Ax + c = 0) or y = 1 (Ax + B + c = 0),
    so two Gauss nodes per piece integrate it exactly.
    """
    slope = torch.where(A == 0, 1.0, A)
    flat = A == 0  # no cut: one piece, [0, 1]
    cut_a = torch.where(flat, 0.0, (-c / slope).clamp(0.0, 1.0))
    cut_b = torch.where(flat, 0.0, (-(c + B) / slope).clamp(0.0, 1.0))
    first, second = torch.minimum(cut_a, cut_b), torch.maximum(cut_a, cut_b)
    starts = torch.stack([torch.zeros_like(first), first, second], dim=-1)  # (..., 3)
    lengths = torch.stack([first, second - first, 1.0 - second], dim=-1)
    x = torch.cat([starts + node * lengths for node in GAUSS_NODES], dim=-1)  # (..., 6)
    gamma = target_is_y[..., None]
    inner = line_error(B[..., None], A[..., None] * x + c[..., None], gamma, x * (1 - gamma))
    return (inner * torch.cat([lengths, lengths], dim=-1)).sum(dim=-1) / 2


def expected_loss(
    W: torch.Tensor,
    b: torch.Tensor,
    p_feature1: torch.Tensor,
    p_feature2_given_1: torch.Tensor,
    importance: torch.Tensor,
    weight_decay: float = 0.0,
    independent: bool = False,
) -> torch.Tensor:
    """The exact expected loss (importance-weighted squared error, mean over the two features).

    Args:
        W, b: `(..., 2)` one model per row: (w₁, w₂) and the output biases.
        p_feature1, p_feature2_given_1: `(...)` the law of each model's data.
        importance: `(..., 2)`.
        weight_decay: adds (weight_decay / 2)·(‖W‖² + ‖b‖²), the penalty whose gradient is the decay
            Adam adds (`torch.optim.Adam(weight_decay=...)`): the objective training actually minimises.
        independent: the features are independent instead, with the same rates: feature 1 active with
            probability p₁, feature 2 with probability p₁q (`hierarchical_sweep(independent=True)`).

    Returns:
        `(...)` per model.
    """
    p1, q = p_feature1[..., None], p_feature2_given_1[..., None]
    if independent:
        p2 = p1 * q
        cases = ((1 - p1) * (1 - p2), p1 * (1 - p2), (1 - p1) * p2, p1 * p2)
    else:
        cases = (1 - p1, p1 * (1 - q), torch.zeros_like(p1), p1 * q)
    A = W * W[..., :1]  # slope of each output on x₁: (W₁w₁, W₂w₁)
    B = W * W[..., 1:]  # ... and on x₂
    first = torch.tensor([1.0, 0.0], dtype=W.dtype, device=W.device).expand(A.shape)
    zero = torch.zeros_like(b)
    per_feature = (
        cases[0] * torch.relu(b) ** 2  # (0, 0)
        + cases[1] * line_error(A, b, first, zero)  # (x₁, 0): targets x₁ and 0
        + cases[3] * square_error(A, B, b, 1 - first)  # (x₁, x₂): targets x₁ and x₂
    )
    if independent:
        per_feature = per_feature + cases[2] * line_error(B, b, 1 - first, zero)  # (0, x₂): targets 0 and x₂
    loss = (importance * per_feature).sum(dim=-1) / 2
    if weight_decay:
        loss = loss + weight_decay / 2 * ((W**2).sum(dim=-1) + (b**2).sum(dim=-1))
    return loss


@contextmanager
def _one_thread() -> Iterator[None]:
    """Run torch on one thread: the minimiser's tensors are small, and a second thread spends more CPU
    time waiting than it saves (measured: 13x the CPU time for 100 configurations on a busy 2-core machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _loss_and_gradient(theta: torch.Tensor, law: tuple, weight_decay: float) -> tuple[torch.Tensor, torch.Tensor]:
    theta = theta.detach().requires_grad_()
    loss = expected_loss(theta[..., :2], theta[..., 2:], *law, weight_decay=weight_decay)
    (gradient,) = torch.autograd.grad(loss.sum(), theta)
    return loss.detach(), gradient


def minimise(
    W: torch.Tensor,
    b: torch.Tensor,
    p_feature1: torch.Tensor,
    p_feature2_given_1: torch.Tensor,
    importance: torch.Tensor,
    weight_decay: float = 0.0,
    iterations: int = 30,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Descend from each model (W, b) `(..., 2)` to a local minimum of `expected_loss`, all at once.

    A damped Newton method on the four parameters: the Hessian comes from finite differences of the
    exact gradient; negative curvature is turned positive (|eigenvalue|), so each step goes down;
    a step that does not lower the loss is refused and the damping raised. A start where an output
    is never active (its ReLU dead on every input) has no gradient there and stays dead.

    Returns:
        W, b `(..., 2)` and the loss `(...)` where each model ends (float64).
    """
    with _one_thread():
        return _minimise(W, b, p_feature1, p_feature2_given_1, importance, weight_decay, iterations)


def _minimise(W, b, p_feature1, p_feature2_given_1, importance, weight_decay, iterations):
    law = tuple(torch.as_tensor(v, dtype=torch.float64) for v in (p_feature1, p_feature2_given_1, importance))
    theta = torch.cat([W, b], dim=-1).detach().to(torch.float64)
    law = (law[0].expand(theta.shape[:-1]), law[1].expand(theta.shape[:-1]), law[2].expand(*theta.shape[:-1], 2))
    damping = torch.full(theta.shape[:-1], 1e-2, dtype=torch.float64)
    step_size = 1e-6
    shifts = step_size * torch.eye(4, dtype=torch.float64).reshape(4, *([1] * (theta.dim() - 1)), 4)
    for _ in range(iterations):
        loss, gradients = _loss_and_gradient(torch.cat([theta[None], theta[None] + shifts]), law, weight_decay)
        loss, gradient = loss[0], gradients[0]
        hessian = ((gradients[1:] - gradient) / step_size).movedim(0, -2)
        eigenvalues, vectors = torch.linalg.eigh((hessian + hessian.transpose(-1, -2)) / 2)
        scale = eigenvalues.abs().amax(dim=-1, keepdim=True).clamp_min(1e-30)
        along = (vectors.transpose(-1, -2) @ gradient[..., None]).squeeze(-1)
        step = -(vectors @ (along / (eigenvalues.abs() + damping[..., None] * scale))[..., None]).squeeze(-1)
        with torch.no_grad():
            trial = expected_loss((theta + step)[..., :2], (theta + step)[..., 2:], *law, weight_decay=weight_decay)
        better = trial <= loss
        theta = torch.where(better[..., None], theta + step, theta)
        damping = torch.where(better, damping / 4, damping * 8).clamp(1e-12, 1e6)
    with torch.no_grad():
        loss = expected_loss(theta[..., :2], theta[..., 2:], *law, weight_decay=weight_decay)
    return theta[..., :2], theta[..., 2:], loss


def gradient_norm(
    W: torch.Tensor, b: torch.Tensor, p_feature1, p_feature2_given_1, importance, weight_decay: float = 0.0
) -> torch.Tensor:
    """‖∇ expected_loss‖ over the four parameters, per model `(...)`: zero at a stationary point."""
    law = tuple(torch.as_tensor(v, dtype=torch.float64) for v in (p_feature1, p_feature2_given_1, importance))
    _, gradient = _loss_and_gradient(torch.cat([W, b], dim=-1).to(torch.float64), law, weight_decay)
    return gradient.norm(dim=-1)


def start_points(n_angles: int = 8) -> torch.Tensor:
    """`(n_angles, 4)` starts (w₁, w₂, b₁, b₂): unit W at evenly spaced angles in [0, π) (W and -W are
    the same model), small positive biases so that no output starts dead."""
    angle = torch.arange(n_angles, dtype=torch.float64) * math.pi / n_angles
    return torch.stack([angle.cos(), angle.sin(), torch.full_like(angle, 0.05), torch.full_like(angle, 0.05)], dim=-1)


@dataclass
class ExactOptimum:
    """The lowest local minimum of `expected_loss` found per configuration.

    Attributes:
        loss: `(k,)`; W, b: `(k, 2)` where it is reached (float64).
        start_losses: `(k, n_starts)` the loss at the minimum each start descended to.
        start_W: `(k, n_starts, 2)` the weights there.
    """

    loss: torch.Tensor
    W: torch.Tensor
    b: torch.Tensor
    start_losses: torch.Tensor
    start_W: torch.Tensor


def exact_optimum(
    p_feature1: torch.Tensor,
    p_feature2_given_1: torch.Tensor,
    importance2: torch.Tensor,
    weight_decay: float = 0.0,
    n_angles: int = 8,
    iterations: int = 20,
) -> ExactOptimum:
    """Minimise the exact expected loss of each configuration from `start_points(n_angles)`.

    On the 40 x 40 grids of chapter 4 at p₁ = 0.01, 0.1 and 0.9, these 8 starts and 20 iterations
    reached the lowest of 80 starts run for 40 iterations in every cell (to 1e-12 of the loss).

    Args:
        p_feature1, p_feature2_given_1, importance2: `(k,)` (the parent's importance is 1).
        weight_decay: include the decay penalty (see `expected_loss`).
    """
    p1, q, i2 = (
        torch.as_tensor(v, dtype=torch.float64).reshape(-1) for v in (p_feature1, p_feature2_given_1, importance2)
    )
    if not (p1.shape == q.shape == i2.shape):
        raise ValueError(
            "p_feature1, p_feature2_given_1 and importance2 must have the same length, "
            f"got {p1.numel()}, {q.numel()}, {i2.numel()}"
        )
    starts = start_points(n_angles)
    k, n = p1.numel(), starts.shape[0]
    importance = torch.stack([torch.ones_like(i2), i2], dim=-1)[:, None].expand(k, n, 2)
    theta = starts.expand(k, n, 4)
    W, b, losses = minimise(
        theta[..., :2], theta[..., 2:], p1[:, None], q[:, None], importance, weight_decay, iterations
    )
    best = losses.argmin(dim=1)
    rows = torch.arange(k)
    return ExactOptimum(loss=losses[rows, best], W=W[rows, best], b=b[rows, best], start_losses=losses, start_W=W)
