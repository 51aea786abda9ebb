"""Checks for chapter 6: gains and leaks of the ReLU MLP."""

from __future__ import annotations

import torch

from utils import computation
from utils.checks.compare import (
    assert_close,
    call_learner,
    close,
    learner_check,
    passed,
    require_function,
)


@learner_check(computation.gains_and_leaks, "`utils.computation.gains_and_leaks`")
def check_gains_and_leaks(gains_and_leaks) -> None:
    """The learner's `gains_and_leaks(W_in, W_out) -> (gain, leak)`, both `(inst, feats)`."""
    require_function(gains_and_leaks, "gains_and_leaks")
    g = torch.Generator().manual_seed(0)
    W_in = torch.randn(4, 7, 9, generator=g)
    W_out = torch.randn(4, 9, 7, generator=g)
    copies = W_in.clone(), W_out.clone()
    result = call_learner("gains_and_leaks", gains_and_leaks, copies[0], copies[1])
    if not (torch.equal(copies[0], W_in) and torch.equal(copies[1], W_out)):
        raise AssertionError(
            "gains_and_leaks modified W_in or W_out; work on new tensors (torch.relu(W_in), not W_in.relu_())"
        )
    if not isinstance(result, tuple) or len(result) != 2:
        raise AssertionError(f"gains_and_leaks should return a tuple (gain, leak), got {type(result).__name__}")
    gain, leak = result
    expected_gain, expected_leak = computation.gains_and_leaks(W_in, W_out)
    if close(gain, expected_leak) and close(leak, expected_gain):
        raise AssertionError("gains_and_leaks returns (leak, gain): return (gain, leak)")

    def paired(W_read: torch.Tensor, W_write: torch.Tensor = W_out) -> torch.Tensor:
        return torch.einsum("kih,khi->ki", W_write, W_read)

    every_output = torch.einsum("kjh,khi->ki", W_out, torch.relu(W_in))
    assert_close(
        gain,
        expected_gain,
        "gain",
        "(inst, feats)",
        rule="It should be gain[k, i] = Σ_h W_out[k, i, h] · ReLU(W_in[k, h, i]).",
        mistakes={
            "gain is the diagonal of W_eff = W_out W_in: that also counts neurons that read x_i with a negative "
            "weight, which stay silent for x_i > 0; only ReLU(W_in) counts for a positive input": paired(W_in),
            "gain uses |W_in|: neurons that read x_i negatively are silent for x_i > 0, use ReLU(W_in)": paired(
                W_in.abs()
            ),
            "gain sums what every output receives: output i reads W_out[k, i, h] only": every_output,
            "every instance uses instance 0's weights": paired(torch.relu(W_in[:1]), W_out[:1]).expand_as(
                expected_gain
            ),
        },
    )
    assert_close(
        leak,
        expected_leak,
        "leak",
        "(inst, feats)",
        rule="It should be leak[k, i] = Σ_h W_out[k, i, h] · ReLU(-W_in[k, h, i]), the output at x_i = -1.",
        mistakes={
            "leak has the wrong sign: it is the output at x_i = -1, Σ_h W_out · ReLU(-W_in) times |x_i| = "
            "1": -expected_leak,
            "leak uses ReLU(W_in), the neurons that fire for x_i > 0: for x_i < 0 the neurons with negative "
            "W_in fire, ReLU(-W_in)": paired(torch.relu(W_in)),
            "leak uses ReLU(W_in) with a minus sign: the neurons that fire for x_i < 0 are those with negative "
            "W_in, ReLU(-W_in)": -paired(torch.relu(W_in)),
            "leak sums what every output receives: output i reads W_out[k, i, h] only": torch.einsum(
                "kjh,khi->ki", W_out, torch.relu(-W_in)
            ),
            "every instance uses instance 0's weights": paired(torch.relu(-W_in[:1]), W_out[:1]).expand_as(
                expected_leak
            ),
        },
    )
    passed("gains_and_leaks")
