"""The first thing every chapter runs: seeds, the plotly renderer, and the device."""

from __future__ import annotations

import ctypes
import ctypes.util
import random

import numpy as np
import torch

from utils.device import get_device
from utils.plots.renderer import configure_plotly_renderer

SETUP_CELL = """\
# Set-up: make the repository's `utils` importable (from the repo, solutions/, exercises/ or Colab).
import sys
from pathlib import Path

if "google.colab" in sys.modules and not Path("superposition-book").is_dir():
    !git clone -q --depth 1 https://github.com/superposition-book/superposition-book
ROOT = next((p for p in [Path.cwd(), *Path.cwd().parents, Path("superposition-book").resolve()]
             if (p / "utils" / "__init__.py").is_file()), None)
assert ROOT, "open this notebook inside a clone of the repository: it needs the repository's utils/ folder"
sys.path.insert(0, str(ROOT))

from utils.notebook import setup

device = setup(seed=0)"""
"""The first code cell of every chapter, verbatim (tests check this)."""


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)
_KEEP_BYTES = 1 << 30


def keep_freed_memory() -> bool:
    """Ask glibc to keep freed memory (up to 1 GiB) for reuse instead of handing it back to the system.

    Training frees and reallocates the same multi-MB tensors every step; by default glibc returns
    each one to the kernel and faults it in again, which cost a fifth of chapter 6's CPU time in
    system time. Resident memory then stays near its peak. Returns False (and changes nothing)
    where the C library is not glibc.
    """
    name = ctypes.util.find_library("c")
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError, TypeError):
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, _KEEP_BYTES)) and bool(mallopt(_M_TRIM_THRESHOLD, _KEEP_BYTES))


def setup(seed: int = 0, device: str | torch.device | None = None) -> torch.device:
    """Seed python, numpy and torch with `seed`, keep freed memory for reuse (`keep_freed_memory`),
    choose the plotly renderer, and return the device."""
    keep_freed_memory()
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    configure_plotly_renderer()
    device = get_device(device)
    print(f"torch {torch.__version__} on {device}")
    return device
