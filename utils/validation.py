"""Input checks shared by the library: each failure says what was wrong and what was expected."""

from __future__ import annotations

from collections.abc import Sequence

import torch


def broadcast_param(
    value: float | Sequence[float] | torch.Tensor,
    shape: tuple[int, ...],
    dims: str,
    name: str,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """`value` as a float32 tensor of exactly `shape`, by broadcasting.

    Args:
        value: a number, a sequence or a tensor broadcastable to `shape`.
        shape: the target shape, e.g. `(n_inst, n_features)`.
        dims: names of the target dimensions for the error message, e.g. "(inst, feats)".
        name: the parameter's name for the error message.

    Raises:
        ValueError: `value` does not broadcast to `shape`, or holds NaN or infinity.
    """
    tensor = torch.as_tensor(value, dtype=torch.float32, device=device)
    try:
        out = tensor.broadcast_to(shape)
    except RuntimeError:
        raise ValueError(
            f"{name} has shape {tuple(tensor.shape)}, which does not broadcast to {dims} = {shape}; "
            f"pass a number, or a tensor of shape {shape} or one with size-1 dimensions in their place"
        ) from None
    if not torch.isfinite(out).all():
        raise ValueError(f"{name} must be finite, got NaN or infinity")
    return out.clone()


def check_probability(value: torch.Tensor, name: str) -> None:
    """Raise ValueError unless every entry of `value` lies in [0, 1]."""
    bad = ~((value >= 0) & (value <= 1))
    if bad.any():
        first = value[bad].flatten()[0].item()
        raise ValueError(
            f"{name} must lie in [0, 1] (it is a probability), got {first:g} at {bad.sum().item()} place(s)"
        )


def check_nonnegative(value: torch.Tensor, name: str) -> None:
    """Raise ValueError unless every entry of `value` is >= 0."""
    bad = ~(value >= 0)
    if bad.any():
        first = value[bad].flatten()[0].item()
        raise ValueError(f"{name} must be non-negative, got {first:g} at {bad.sum().item()} place(s)")


def check_positive_int(value: int, name: str) -> None:
    """Raise ValueError unless `value` is an int >= 1."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def check_last_dims(x: torch.Tensor, expected: tuple[int, ...], dims: str, name: str = "input") -> None:
    """Raise ValueError unless `x` ends in the dimensions `expected` (named `dims` in the message)."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() < len(expected) or tuple(x.shape[-len(expected):]) != expected:
        shape = ", ".join(map(str, expected))
        raise ValueError(f"{name} has shape {tuple(x.shape)}; expected (..., {dims[1:-1]}) = (..., {shape})")
