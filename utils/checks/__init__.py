"""Learner-facing checks, one per exercise: `check_<name>(learner_object)` prints a success line or
raises AssertionError saying exactly what is wrong. Chapter NN's checks live in `chNN.py`."""

from utils.checks.ch01 import check_generate_data, check_importance_weighted_mse, check_linear_model, check_train
from utils.checks.ch03 import check_hierarchical_batch, check_phase_metrics, check_sweep_grid
from utils.checks.ch05 import check_detect_motif, check_leak_and_inhibition

__all__ = [
    "check_detect_motif",
    "check_generate_data",
    "check_hierarchical_batch",
    "check_importance_weighted_mse",
    "check_leak_and_inhibition",
    "check_linear_model",
    "check_phase_metrics",
    "check_sweep_grid",
    "check_train",
]
