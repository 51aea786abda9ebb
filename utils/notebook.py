"""The first thing every chapter runs: seeds, the plotly renderer, and the device."""

from __future__ import annotations

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


def setup(seed: int = 0, device: str | torch.device | None = None) -> torch.device:
    """Seed python, numpy and torch with `seed`, choose the plotly renderer, and return the device."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    configure_plotly_renderer()
    device = get_device(device)
    print(f"torch {torch.__version__} on {device}")
    return device
