"""Chapter 6's check accepts correct answers written in several ways and rejects planted mistakes, each
with a message that names it. The mistakes are written from the exercise text, as a learner would make them."""

import pytest
import torch

from utils import computation
from utils.checks import check_gains_and_leaks


def loop(W_in, W_out):
    n_inst, d_hidden, n_features = W_in.shape
    gain, leak = torch.zeros(n_inst, n_features), torch.zeros(n_inst, n_features)
    for k in range(n_inst):
        for i in range(n_features):
            for h in range(d_hidden):
                gain[k, i] += W_out[k, i, h] * max(W_in[k, h, i], 0)
                leak[k, i] += W_out[k, i, h] * max(-W_in[k, h, i], 0)
    return gain, leak


def by_products(W_in, W_out):
    product = W_out * W_in.transpose(1, 2)  # (inst, feats, d_hidden): W_out[k, i, h] · W_in[k, h, i]
    return torch.where(W_in.transpose(1, 2) > 0, product, 0.0).sum(-1), -torch.where(
        W_in.transpose(1, 2) < 0, product, 0.0
    ).sum(-1)


def in_float64(W_in, W_out):  # the text asks for no dtype
    gain, leak = computation.gains_and_leaks(W_in.double(), W_out.double())
    return gain, leak


@pytest.mark.parametrize("correct", [computation.gains_and_leaks, loop, by_products, in_float64])
def test_gains_and_leaks_check_accepts(correct, capsys):
    assert check_gains_and_leaks(correct) is correct
    assert "gains_and_leaks: all checks passed" in capsys.readouterr().out


def paired(W_out, W_read):
    return torch.einsum("kih,khi->ki", W_out, W_read)


def with_leak(leak_of):
    return lambda W_in, W_out: (computation.gains_and_leaks(W_in, W_out)[0], leak_of(W_in, W_out))


def with_gain(gain_of):
    return lambda W_in, W_out: (gain_of(W_in, W_out), computation.gains_and_leaks(W_in, W_out)[1])


def in_place(W_in, W_out):
    W_in.relu_()
    return computation.gains_and_leaks(W_in, W_out)


@pytest.mark.parametrize(
    "planted, message",
    [
        (with_gain(lambda W_in, W_out: paired(W_out, W_in)), "Likely cause: gain is the diagonal of W_eff"),
        (with_gain(lambda W_in, W_out: paired(W_out, W_in.abs())), r"Likely cause: gain uses \|W_in\|"),
        (with_leak(lambda W_in, W_out: -paired(W_out, torch.relu(-W_in))), "Likely cause: leak has the wrong sign"),
        (
            with_leak(lambda W_in, W_out: paired(W_out, torch.relu(W_in))),
            r"leak uses ReLU\(W_in\), the neurons that fire for x_i > 0",
        ),
        (with_leak(lambda W_in, W_out: -paired(W_out, torch.relu(W_in))), r"leak uses ReLU\(W_in\) with a minus sign"),
        # structure: every output summed, instance 0 for all, the pair returned the other way round
        (
            with_gain(lambda W_in, W_out: torch.einsum("kjh,khi->ki", W_out, torch.relu(W_in))),
            "gain sums what every output receives",
        ),
        (
            with_leak(lambda W_in, W_out: paired(W_out[:1], torch.relu(-W_in[:1])).expand(4, 9)),
            "leak is wrong at inst 1.*every instance uses instance 0's weights",
        ),
        (lambda W_in, W_out: computation.gains_and_leaks(W_in, W_out)[::-1], r"returns \(leak, gain\)"),
        (in_place, "modified W_in or W_out"),
        (lambda W_in, W_out: computation.gains_and_leaks(W_in, W_out)[0], "should return a tuple"),
        (
            with_gain(lambda W_in, W_out: torch.einsum("kih,khi->ik", W_out, torch.relu(W_in))),
            r"gain has shape \(9, 4\)",
        ),
        (
            with_gain(lambda W_in, W_out: paired(W_out.transpose(1, 2), torch.relu(W_in))),
            r"gains_and_leaks\(\(4, 7, 9\), \(4, 9, 7\)\) raised RuntimeError",
        ),
    ],
)
def test_gains_and_leaks_check_rejects(planted, message):
    with pytest.raises(AssertionError, match=message):
        check_gains_and_leaks(planted)


def test_gains_and_leaks_check_says_what_it_was_given():
    with pytest.raises(AssertionError, match="pass the function `gains_and_leaks` itself.*got a tuple"):
        check_gains_and_leaks(computation.gains_and_leaks(torch.ones(1, 2, 3), torch.ones(1, 3, 2)))
