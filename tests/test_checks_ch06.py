"""Chapter 6's check passes the reference and catches planted mistakes, each with the right message."""

import pytest
import torch

from utils import computation
from utils.checks import check_gains_and_leaks

# ---- gains and leaks -------------------------------------------------------------------------------


def gain_from_w_eff(W_in, W_out):
    _, leak = computation.gains_and_leaks(W_in, W_out)
    return computation.effective_weights(W_in, W_out).diagonal(dim1=1, dim2=2).clone(), leak


def leak_wrong_sign(W_in, W_out):
    gain, leak = computation.gains_and_leaks(W_in, W_out)
    return gain, -leak


def gain_transposed(W_in, W_out):
    _, leak = computation.gains_and_leaks(W_in, W_out)
    return torch.einsum("khi,kih->ki", W_out.transpose(1, 2), torch.relu(W_in).transpose(1, 2)).flip(1), leak


def leak_from_positive_weights(W_in, W_out):
    gain, _ = computation.gains_and_leaks(W_in, W_out)
    return gain, torch.einsum("kih,khi->ki", W_out, torch.relu(W_in)) * 0.5


def in_place(W_in, W_out):
    W_in.relu_()
    return computation.gains_and_leaks(W_in, W_out)


def test_gains_and_leaks_reference_passes(capsys):
    check_gains_and_leaks(computation.gains_and_leaks)
    assert "gains_and_leaks: all checks passed" in capsys.readouterr().out


@pytest.mark.parametrize(
    "planted, message",
    [
        (gain_from_w_eff, "gain equals the diagonal of W_eff"),
        (leak_wrong_sign, "leak has the wrong sign"),
        (gain_transposed, "gain is wrong at inst 0, feats 0: .*Σ_h W_out\\[k, i, h\\] · ReLU\\(W_in\\[k, h, i\\]\\)"),
        (leak_from_positive_weights, "leak is wrong at .*ReLU\\(-W_in\\[k, h, i\\]\\)"),
        (in_place, "modified W_in or W_out"),
        (lambda W_in, W_out: computation.gains_and_leaks(W_in, W_out)[0], "should return a tuple"),
        (lambda W_in, W_out: tuple(t.double() for t in computation.gains_and_leaks(W_in, W_out)), "gain has dtype torch.float64"),
    ],
)
def test_gains_and_leaks_catches(planted, message):
    with pytest.raises(AssertionError, match=message):
        check_gains_and_leaks(planted)
