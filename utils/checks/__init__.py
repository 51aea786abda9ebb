"""Learner-facing checks, one per exercise: `check_<name>(learner_object)` prints a success line or
raises AssertionError saying exactly what is wrong. Chapter NN's checks live in `chNN.py`."""

from utils.checks.ch02 import (
    check_anticorrelated_generator,
    check_correlated_generator,
    check_dimensionality,
    check_dims_per_feature,
    check_toy_model,
)
