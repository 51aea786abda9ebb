"""Learner-facing checks, one per exercise: `check_<name>(learner_object)` prints a success line or
raises AssertionError saying exactly what is wrong. Chapter NN's checks live in `chNN.py`."""

from utils.checks.ch05 import check_detect_motif, check_leak_and_inhibition  # noqa: E402,F401
