"""Checks for chapter 6: gains and leaks of the ReLU MLP."""

from __future__ import annotations

import torch

from utils import computation
from utils.checks.compare import assert_close, assert_tensor, call_learner, learner_check, passed


@learner_check(computation.gains_and_leaks, "`utils.computation.gains_and_leaks`")
def check_gains_and_leaks(gains_and_leaks) -> None:
    """The learner's `gains_and_leaks(W_in, W_out) -> (gain, leak)`, both `(inst, feats)`."""
    g = torch.Generator().manual_seed(0)
    W_in = torch.randn(4, 7, 9, generator=g)
    W_out = torch.randn(4, 9, 7, generator=g)
    copies = W_in.clone(), W_out.clone()
    result = call_learner("gains_and_leaks", gains_and_leaks, copies[0], copies[1])
    if not (torch.equal(copies[0], W_in) and torch.equal(copies[1], W_out)):
        raise AssertionError("gains_and_leaks modified W_in or W_out; work on new tensors (torch.relu(W_in), not W_in.relu_())")
    if not isinstance(result, tuple) or len(result) != 2:
        raise AssertionError(f"gains_and_leaks should return a tuple (gain, leak), got {type(result).__name__}")
    gain, leak = result
    expected_gain, expected_leak = computation.gains_and_leaks(W_in, W_out)
    assert_tensor(gain, "gain", (4, 9), "(inst, feats)")
    assert_tensor(leak, "leak", (4, 9), "(inst, feats)")
    diagonal = computation.effective_weights(W_in, W_out).diagonal(dim1=1, dim2=2)
    if torch.allclose(gain, diagonal, atol=1e-5):
        raise AssertionError(
            "gain equals the diagonal of W_eff = W_out W_in: that also counts neurons reading x_i with a negative "
            "weight, which stay silent for x_i > 0; only ReLU(W_in) counts for a positive input"
        )
    if torch.allclose(leak, -expected_leak, atol=1e-5):
        raise AssertionError("leak has the wrong sign: it is the output at x_i = -1, W_out · ReLU(-W_in) times |x_i| = 1")
    assert_close(gain, expected_gain, "gain", "(inst, feats)", hint="gain[k, i] = Σ_h W_out[k, i, h] · ReLU(W_in[k, h, i])")
    assert_close(leak, expected_leak, "leak", "(inst, feats)", hint="leak[k, i] = Σ_h W_out[k, i, h] · ReLU(-W_in[k, h, i])")
    passed("gains_and_leaks")
