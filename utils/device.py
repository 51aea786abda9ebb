"""Where tensors live, and seeded random generators that live there too."""

from __future__ import annotations

import torch


def get_device(name: str | torch.device | None = None) -> torch.device:
    """The device to compute on: `name` if given (checked to exist), else cuda, then mps, then cpu.

    Raises:
        ValueError: `name` names a device this machine does not have.
    """
    if name is not None:
        device = torch.device(name)
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


def make_generator(seed: int | torch.Generator | None, device: torch.device | str = "cpu") -> torch.Generator | None:
    """A `torch.Generator` on `device` seeded with `seed`; a generator passes through; None stays None.

    Raises:
        ValueError: a generator given for another device type than `device`.
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
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, a torch.Generator or None, got {type(seed).__name__}")
    generator = torch.Generator(device=device)
    generator.manual_seed(seed)
    return generator
