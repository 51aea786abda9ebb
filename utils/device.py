"""Where tensors live, and seeded random generators that live there too."""

from __future__ import annotations

import torch

from utils.validation import check_seed


def get_device(name: str | torch.device | None = None) -> torch.device:
    """The device to compute on: `name` if given (checked to exist), else cuda, then mps, then cpu.

    Raises:
        ValueError: `name` is not a device name, or names a device this machine does not have.
        TypeError: `name` is neither a string nor a torch.device.
    """
    if name is not None:
        device = _parse_device(name)
        available = {
            "cpu": True,
            "cuda": torch.cuda.is_available(),
            "mps": torch.backends.mps.is_available(),
        }
        if not available.get(device.type, False):
            have = ", ".join(kind for kind, ok in available.items() if ok)
            raise ValueError(f"device {str(device)!r} is not available on this machine (available: {have})")
        if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(
                f"device {str(device)!r} is not available: this machine has {torch.cuda.device_count()} CUDA device(s)"
            )
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


DEVICE_NAMES = "'cpu', 'cuda', 'cuda:N' (N the GPU's index) or 'mps'"


def _parse_device(name: str | torch.device) -> torch.device:
    """`name` as a `torch.device`, or a ValueError naming the valid devices."""
    if isinstance(name, torch.device):
        return name
    if not isinstance(name, str):
        raise TypeError(f"device must be a string such as {DEVICE_NAMES}, a torch.device or None, got {name!r}")
    try:
        return torch.device(name)
    except RuntimeError:
        raise ValueError(f"device must be one of {DEVICE_NAMES}, or None (the best available); got {name!r}") from None


def make_generator(seed: int | torch.Generator | None, device: torch.device | str = "cpu") -> torch.Generator | None:
    """A `torch.Generator` on `device` seeded with `seed`; a generator passes through; None stays None.

    Raises:
        TypeError: `seed` is neither an integer nor a generator.
        ValueError: a seed outside [0, 2**64), or a generator for another device type than `device`.
    """
    if seed is None:
        return None
    device = torch.device(device)
    if isinstance(seed, torch.Generator):
        if seed.device.type != device.type:
            raise ValueError(
                f"the generator lives on {seed.device.type}, but the tensors it draws live on {device.type}"
            )
        return seed
    generator = torch.Generator(device=device)
    generator.manual_seed(check_seed(seed))
    return generator
