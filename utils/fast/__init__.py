"""The fast trainer for the tied ReLU model x' = ReLU(WᵀWx + b) (`ToyModel`), used by `utils.train.optimize`.

Modules, in reading order: `gradients` (the loss and its hand-derived gradient), `adam` (in-place
Adam, as torch.optim.Adam), `laws` (the data laws as maps from uniforms), `trainer` (the training
and evaluation loops: eager, or compiled), `planes` with `prefetch` (the eager step of small models,
and their random numbers drawn on a second thread), `kernel.c` with `native` (the compiled loops on a CPU:
the same step in C, built with the system C compiler), `philox` (a counter-based random generator
in torch ops, for the torch.compile path that CUDA uses).
"""

# ruff: noqa: F401
from utils.fast.trainer import evaluate_fast, train_fast, unsupported_reason
