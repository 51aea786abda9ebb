"""Learner-facing checks, one per exercise: `name = checks.check_<name>(name)` prints a success line
and returns the learner's object, raises AssertionError saying exactly what is wrong, or, while the
stub is not filled in, prints "not done yet" and returns the library's version. Chapter NN's checks
live in `chNN.py` and are re-exported here, so notebooks call `checks.check_...`."""

# ruff: noqa: F401
from utils.checks.ch01 import check_generate_data, check_importance_weighted_mse, check_linear_model, check_train
from utils.checks.ch01_optimum import check_best_bias, check_feature_variance, check_loss_along
from utils.checks.ch02 import check_toy_model
from utils.checks.ch02_theory import check_keep_one_loss, check_switch_loss
from utils.checks.ch02_training import check_train_fresh
from utils.checks.ch03 import (
    check_anticorrelated_generator,
    check_correlated_generator,
    check_dimensionality,
    check_dims_per_feature,
    check_train_on_sampler,
)
from utils.checks.ch04 import check_hierarchical_batch, check_phase_metrics, check_sweep_grid
from utils.checks.ch04_regimes import check_sharing_regime
from utils.checks.ch04_training import check_train_tied_relu
from utils.checks.ch05 import check_neuron_computation_model, check_neuron_model
from utils.checks.ch06 import check_gains_and_leaks
from utils.checks.ch06_relu_mlp import check_relu_mlp, check_two_measures
from utils.checks.ch07 import check_detect_motif, check_leak_and_inhibition
from utils.checks.ch07_readout import check_linear_output_model
from utils.checks.ch08 import (
    check_interference_attack,
    check_learning_times,
    check_storage_ratio,
    check_train_sgd,
    check_vulnerability_from_D,
)
from utils.checks.ch09 import (
    check_firing_given_feature,
    check_mmcs,
    check_resample,
    check_sae,
    check_topk_relu,
    check_unit_columns,
)
