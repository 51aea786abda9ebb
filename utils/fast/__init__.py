"""The fast trainer for the tied ReLU model x' = ReLU(WᵀWx + b) (`ToyModel`), used by `utils.train.optimize`.

Modules, in reading order: `gradients` (the loss and its hand-derived gradient), `adam` (in-place
Adam, as torch.optim.Adam), `philox` (a counter-based random generator in torch ops), `laws` (the
data laws as maps from uniforms), `trainer` (the chunked, compiled training and evaluation loops).
"""

# ruff: noqa: F401
from utils.fast.trainer import evaluate_fast, train_fast, unsupported_reason
