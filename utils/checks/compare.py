"""Assertions for learner-facing checks: each failure says exactly what is wrong and where."""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch


def passed(what: str) -> None:
    """Tell the learner that every check of `what` passed."""
    print(f"✅ {what}: all checks passed")


def learner_check(library_version: object, library_name: str) -> Callable:
    """Make a check return what the cells after it should use: `name = checks.check_name(name)`.

    The decorated check returns the learner's object when every check passes, and raises
    AssertionError when one fails. While the learner's stub still raises NotImplementedError it
    prints a "not done yet" line instead and returns `library_version` (called `library_name` in
    the message), so that Run All on an untouched exercise notebook runs to the end.
    """

    def decorate(check: Callable[[object], None]) -> Callable[[object], object]:
        @functools.wraps(check)
        def run(learner: object) -> object:
            try:
                check(learner)
            except NotImplementedError as stub:
                print(
                    f"⏳ not done yet: fill in the stub above ({stub}), then run this cell again. "
                    f"Until then, the cells below use the library's {library_name}."
                )
                return library_version
            return learner

        return run

    return decorate


def call_learner(what: str, fn: Callable, *args):
    """`fn(*args)`; an exception other than the stub's NotImplementedError becomes an AssertionError naming
    `what` and the shapes of the arguments."""
    try:
        return fn(*args)
    except NotImplementedError:
        raise
    except Exception as error:
        shapes = ", ".join(str(tuple(a.shape)) if isinstance(a, torch.Tensor) else repr(a) for a in args)
        raise AssertionError(f"{what}({shapes}) raised {type(error).__name__}: {error}") from error


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
