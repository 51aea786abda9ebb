"""Assertions for learner-facing checks: each failure says exactly what is wrong and where."""

from __future__ import annotations

import torch


def passed(what: str) -> None:
    """Tell the learner that every check of `what` passed."""
    print(f"✅ {what}: all checks passed")


def assert_tensor(actual, name: str, shape: tuple[int, ...], dims: str, dtype: torch.dtype = torch.float32) -> None:
    """`actual` is a tensor of `shape` (named `dims`, e.g. "(batch, inst, feats)") and `dtype`."""
    if not isinstance(actual, torch.Tensor):
        raise AssertionError(f"{name} should be a torch.Tensor, got {type(actual).__name__}")
    if tuple(actual.shape) != tuple(shape):
        raise AssertionError(f"{name} has shape {tuple(actual.shape)}; expected {dims} = {tuple(shape)}")
    if actual.dtype != dtype:
        raise AssertionError(f"{name} has dtype {actual.dtype}; expected {dtype}")


def _where(index: tuple[int, ...], dims: str) -> str:
    names = [part.strip() for part in dims.strip("()").split(",") if part.strip()]
    if len(names) != len(index):
        return f"index {index}"
    return ", ".join(f"{n} {i}" for n, i in zip(names, index))


def assert_close(
    actual,
    expected: torch.Tensor,
    name: str,
    dims: str,
    atol: float = 1e-5,
    rtol: float = 1e-4,
    hint: str = "",
) -> None:
    """`actual` matches `expected` in type, shape, dtype and value; a mismatch names the first bad entry.

    Args:
        dims: the dimension names, e.g. "(batch, inst, feats)", used in messages.
        hint: a likely cause, appended to a value mismatch.
    """
    assert_tensor(actual, name, tuple(expected.shape), dims, expected.dtype)
    actual = actual.detach().to(expected.device)
    if not torch.isfinite(actual).all():
        raise AssertionError(f"{name} contains NaN or infinity")
    bad = (actual - expected).abs() > atol + rtol * expected.abs()
    if bad.any():
        first = tuple(int(i) for i in bad.nonzero()[0])
        message = (
            f"{name} is wrong at {_where(first, dims)}: got {actual[first].item():.6g}, "
            f"expected {expected[first].item():.6g} ({bad.sum().item()} of {bad.numel()} entries differ)"
        )
        raise AssertionError(message + (f". {hint}" if hint else ""))


def assert_rate(observed: float, expected: float, n: int, what: str, sigmas: float = 5.0) -> None:
    """A frequency `observed` over `n` trials is within `sigmas` binomial standard errors of `expected`."""
    tolerance = sigmas * max(expected * (1 - expected), 1.0 / n) ** 0.5 / n**0.5
    if abs(observed - expected) > tolerance:
        raise AssertionError(f"{what} is {observed:.4f}; expected {expected:.4f} (± {tolerance:.4f} for {n} samples)")
