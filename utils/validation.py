"""Input checks shared by the library: each failure names the argument, what was wrong and what was expected."""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Sequence

import numpy as np
import torch


def _plain_number(value):
    """A 0-d tensor or NumPy array as a Python number; anything else unchanged."""
    if isinstance(value, torch.Tensor) and value.dim() == 0 and value.dtype != torch.bool:
        return value.item()
    if isinstance(value, np.ndarray) and value.ndim == 0 and value.dtype.kind in "iuf":
        return value.item()
    return value


def as_integer(value: int, name: str) -> int:
    """`value` as an int when it is a whole number: an int, a NumPy integer or a 0-d integer tensor, not a
    bool (True is not a count). Raises TypeError otherwise."""
    number = _plain_number(value)
    if isinstance(number, bool) or not isinstance(number, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__} {value!r}")
    return int(number)


def check_positive_int(value: int, name: str) -> int:
    """`value` as an int when it is a whole number >= 1 (as `as_integer`); ValueError otherwise."""
    number = _plain_number(value)
    if isinstance(number, bool) or not isinstance(number, numbers.Integral) or number < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(number)


SEED_LIMIT = 2**64
"""Seeds are integers in [0, 2**64), the range of `torch.Generator.manual_seed`."""


def check_seed(seed: int, name: str = "seed") -> int:
    """`seed` as an int in [0, 2**64) (an int, a NumPy integer or a 0-d integer tensor; not a bool).

    Raises:
        TypeError: not an integer. ValueError: outside [0, 2**64).
    """
    number = _plain_number(seed)
    if isinstance(number, bool) or not isinstance(number, numbers.Integral):
        raise TypeError(f"{name} must be an integer in [0, 2**64) or a generator, got {type(seed).__name__} {seed!r}")
    if not 0 <= number < SEED_LIMIT:
        raise ValueError(f"{name} must be an integer in [0, 2**64), got {seed!r}")
    return int(number)


def check_generator(generator: torch.Generator | None, name: str = "generator") -> None:
    """Raise TypeError unless `generator` is a `torch.Generator` or None."""
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(
            f"{name} must be a torch.Generator or None, got {type(generator).__name__} {generator!r}; "
            f"for a seed, pass {name}=torch.Generator().manual_seed(seed)"
        )


def as_real(value: float, name: str, finite: bool = True) -> float:
    """`value` as a float when it is a real number (an int, a float, a NumPy number or a 0-d tensor; not a
    bool), finite unless `finite=False`.

    Raises:
        TypeError: not a real number. ValueError: NaN or infinite when `finite`.
    """
    number = _plain_number(value)
    if isinstance(number, bool) or not isinstance(number, numbers.Real):
        raise TypeError(f"{name} must be a number, got {type(value).__name__} {value!r}")
    number = float(number)
    if finite and not math.isfinite(number):
        raise ValueError(f"{name} must be a finite number, got {number}")
    return number


def as_float_tensor(
    value: float | Sequence[float] | np.ndarray | torch.Tensor,
    name: str,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """`value` (a number, a nested sequence of numbers, a NumPy array or a tensor) as a `dtype` tensor
    on `device`, detached from any autograd graph (it is data, not a parameter).

    Raises:
        TypeError: `value` is not made of real numbers (a string, None, a dict, complex or boolean values,
            a ragged list...).
    """
    expected = f"{name} must be a number or a tensor (or nested list, or NumPy array) of numbers"
    if isinstance(value, torch.Tensor):
        if value.dtype == torch.bool or value.is_complex():
            raise TypeError(f"{expected}, got a tensor of {value.dtype}")
        return value.detach().to(device=device, dtype=dtype)
    if isinstance(value, np.ndarray) and value.dtype.kind not in "iuf":
        raise TypeError(f"{expected}, got a NumPy array of {value.dtype}")
    if isinstance(value, (bool, np.bool_, str, bytes, complex)) or value is None:
        raise TypeError(f"{expected}, got {type(value).__name__} {value!r}")
    try:
        return torch.as_tensor(value, dtype=dtype, device=device)
    except (TypeError, ValueError, RuntimeError) as error:
        shown = repr(value) if len(repr(value)) <= 80 else repr(value)[:77] + "..."
        raise TypeError(f"{expected}, got {type(value).__name__} {shown} ({error})") from None


def as_vector(value: Sequence[float] | np.ndarray | torch.Tensor, name: str) -> torch.Tensor:
    """`value` as a non-empty 1-D float32 tensor (from a sequence, a NumPy array or a tensor), finite.

    Raises:
        TypeError: not made of numbers. ValueError: not 1-D, empty, or holding NaN or infinity.
    """
    tensor = as_float_tensor(value, name)
    if tensor.dim() != 1 or tensor.numel() == 0:
        raise ValueError(f"{name} must be a non-empty 1-D sequence of numbers, got shape {tuple(tensor.shape)}")
    if not torch.isfinite(tensor).all():
        raise ValueError(f"{name} must be finite, got NaN or infinity")
    return tensor


def broadcast_param(
    value: float | Sequence[float] | torch.Tensor,
    shape: tuple[int, ...],
    dims: str,
    name: str,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """`value` as a float32 tensor of exactly `shape`, by broadcasting.

    A 1-D `value` whose length equals both sizes of a square `(inst, feats)` shape is ambiguous (one
    value per instance, or per feature?) and is refused: pass `(inst, 1)` or `(1, feats)` instead.

    Args:
        value: a number, a sequence, a NumPy array or a tensor broadcastable to `shape`.
        shape: the target shape, e.g. `(n_inst, n_features)`.
        dims: names of the target dimensions for the error message, e.g. "(inst, feats)".
        name: the parameter's name for the error message.

    Raises:
        TypeError: `value` is not made of numbers.
        ValueError: `value` does not broadcast to `shape`, is ambiguous, or holds NaN or infinity.
    """
    tensor = as_float_tensor(value, name, device)
    names = dims.strip("()").replace(" ", "").split(",")
    if len(shape) == 2 and tensor.dim() == 1 and shape[0] == shape[1] == tensor.shape[0] > 1:
        raise ValueError(
            f"{name} has shape {tuple(tensor.shape)}, which is ambiguous when {names[0]} and {names[1]} are both "
            f"{shape[0]}: pass shape ({shape[0]}, 1) for one value per {names[0]}, or (1, {shape[1]}) for one "
            f"per {names[1]}"
        )
    try:
        out = tensor.broadcast_to(shape)
    except RuntimeError:
        hint = ""
        if len(shape) == 2 and tensor.dim() == 1 and tensor.shape[0] == shape[0]:
            hint = f" (for one value per {names[0]}, pass shape ({shape[0]}, 1))"
        raise ValueError(
            f"{name} has shape {tuple(tensor.shape)}, which does not broadcast to {dims} = {shape}; "
            f"pass a number, or a tensor of shape {shape} or one with size-1 dimensions in their place{hint}"
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


def check_last_dims(x: torch.Tensor, expected: tuple[int, ...], dims: str, name: str = "input") -> None:
    """Raise ValueError unless `x` ends in the dimensions `expected` (named `dims` in the message)."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() < len(expected) or tuple(x.shape[-len(expected):]) != expected:
        shape = ", ".join(map(str, expected))
        raise ValueError(f"{name} has shape {tuple(x.shape)}; expected (..., {dims[1:-1]}) = (..., {shape})")


MEMORY_CHECK_BYTES = 1 << 28
"""Allocations below this (256 MiB) are not checked against the free memory (asking costs time)."""


def available_memory(device: torch.device | str | None = None) -> int | None:
    """Bytes free for new tensors on `device` (a CUDA device's free memory, else the machine's available
    memory), or None where the system does not say."""
    device = torch.device("cpu" if device is None else device)
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def _gib(n_bytes: float) -> str:
    return f"{n_bytes / 2**30:.3g} GiB"


def check_memory(n_bytes: int, what: str, device: torch.device | str | None = None) -> None:
    """Raise MemoryError, before allocating, when `what` needs more than the memory available on `device`.

    Only asks the system about large allocations (`MEMORY_CHECK_BYTES`), so small ones cost nothing.
    """
    if n_bytes < MEMORY_CHECK_BYTES:
        return
    free = available_memory(device)
    if free is not None and n_bytes > free:
        where = torch.device("cpu" if device is None else device)
        raise MemoryError(
            f"{what} needs about {_gib(n_bytes)}, but {where} has only {_gib(free)} available: "
            "use fewer instances, features or samples (or a machine with more memory)"
        )
