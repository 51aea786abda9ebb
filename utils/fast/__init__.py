"""The fast trainer of the tied ReLU model `ToyModel` on a CPU, used by `utils.train.optimize`.

Reading order: `trainer` (which path a run takes, and the two loops), `native` with `kernel.c` (the
step in C, for long runs), `planes` (the same step in torch ops, with Adam: the eager path),
`prefetch` (uniforms drawn on a second thread), `laws` (the data laws as maps from uniforms).
Measurements: `PERFORMANCE.md`.
"""

from utils.fast.trainer import evaluate_fast, route, train_fast, unsupported_reason

__all__ = ["evaluate_fast", "route", "train_fast", "unsupported_reason"]
