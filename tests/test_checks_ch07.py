"""Chapter 7's checks pass the reference and catch planted mistakes, each with the right message."""

import pytest
import torch

from utils import motif
from utils.checks import check_detect_motif, check_leak_and_inhibition

# ---- leak_and_inhibition --------------------------------------------------------------------------


def leak_unsigned_inhibition(W1, W2):
    leak, _ = motif.leak_and_inhibition(W1, W2)
    unsigned = torch.einsum("kmi,kjm->kij", W1.abs(), torch.relu(-W2))
    return leak, unsigned[:, None].expand_as(leak).clone()


def leak_without_abs(W1, W2):
    leak, inhibition = motif.leak_and_inhibition(W1, W2)
    return W1[..., :, None] * W2.transpose(1, 2)[..., None, :], inhibition


def leak_i_j_swapped(W1, W2):
    leak, inhibition = motif.leak_and_inhibition(W1, W2)
    return leak.transpose(-1, -2).contiguous(), inhibition


def inhibition_counts_positive_writes(W1, W2):
    leak, _ = motif.leak_and_inhibition(W1, W2)
    out = W2.transpose(1, 2)
    pull = {s: torch.einsum("kmi,kmj->kij", torch.relu(s * W1), out.abs()) for s in (1, -1)}
    return leak, torch.where((W1 > 0)[..., :, None], pull[1][:, None], pull[-1][:, None])


def leak_as_float64(W1, W2):
    leak, inhibition = motif.leak_and_inhibition(W1, W2)
    return leak.double(), inhibition


def leak_in_place(W1, W2):
    W1.abs_()
    return motif.leak_and_inhibition(W1, W2)


def test_leak_and_inhibition_reference_passes(capsys):
    check_leak_and_inhibition(motif.leak_and_inhibition)
    assert "leak_and_inhibition: all checks passed" in capsys.readouterr().out


@pytest.mark.parametrize(
    "planted, message",
    [
        (leak_unsigned_inhibition, r"inhibition counts every neuron that reads x_i, whatever the sign"),
        (leak_without_abs, r"leak is wrong at .*W2\[k, j, n\] · \|W1\[k, n, i\]\|"),
        (leak_i_j_swapped, r"leak\[0, n=0, i=0, j=1\] should be W2\[j=1, n=0\] · \|W1\[n=0, i=0\]\| = 2 · 2 = 4"),
        (inhibition_counts_positive_writes, r"inhibition\[0, n=0, i=0, j=1\] should be 5: .* got 9"),
        (leak_as_float64, r"leak has dtype torch.float64; expected torch.float32"),
        (leak_in_place, "modified its inputs"),
        (lambda W1, W2: motif.leak_and_inhibition(W1, W2)[0], "should return a tuple"),
    ],
)
def test_leak_and_inhibition_catches(planted, message):
    with pytest.raises(AssertionError, match=message):
        check_leak_and_inhibition(planted)


def test_random_weights_catch_what_the_hand_built_example_cannot():
    # right on the hand-built example, wrong elsewhere: the comparison on random weights names the entry
    def right_only_when_small(W1, W2):
        if W1.shape[0] == 1:
            return motif.leak_and_inhibition(W1, W2)
        return inhibition_counts_positive_writes(W1, W2)

    with pytest.raises(AssertionError, match=r"inhibition is wrong at inst \d+, d_hidden \d+, feats_i \d+, feats_j \d+"):
        check_leak_and_inhibition(right_only_when_small)

    def loud_only_when_positive(W1, W2, t):  # right on the hand-built example, not for x_i < 0 drives
        found = detect(W1, W2, t, abs_in=False)
        return motif.detect_motif(W1, W2, t) if W1.shape[0] == 1 else found

    with pytest.raises(AssertionError, match=r"on random weights, detect_motif misses a motif at instance \d+"):
        check_detect_motif(loud_only_when_positive)


# ---- detect_motif ---------------------------------------------------------------------------------


def detect(W1, W2, t, *, abs_in=True, inhibition=True, signed=True, flipped=True, use_thresholds=True):
    """The reference detector with one ingredient optionally broken."""
    t = t if use_thresholds else motif.MotifThresholds()
    loudness = W1.abs() if abs_in else W1
    out = W2.transpose(1, 2)
    used = (loudness > t.reads) & (out > t.writes)
    pair = used[..., :, None] & used[..., None, :]
    pair &= loudness[..., :, None] >= t.ratio * loudness[..., None, :]
    if flipped:
        pair &= out[..., None, :] >= t.ratio * out[..., :, None]
    else:
        pair &= out[..., :, None] >= t.ratio * out[..., None, :]
    if not inhibition:
        return pair
    leak, cancel = motif.leak_and_inhibition(W1, W2)
    if not signed:
        cancel = torch.einsum("kmi,kjm->kij", W1.abs(), torch.relu(-W2))[:, None].expand_as(leak)
    return pair & (cancel >= t.cancel * leak)


def test_detect_motif_reference_passes(capsys):
    check_detect_motif(motif.detect_motif)
    assert "detect_motif: all checks passed" in capsys.readouterr().out


@pytest.mark.parametrize(
    "planted, message",
    [
        (lambda W1, W2, t: detect(W1, W2, t, inhibition=False), "flags the same weights without the inhibitor"),
        (lambda W1, W2, t: detect(W1, W2, t, signed=False), "flags an inhibitor of the wrong sign"),
        (lambda W1, W2, t: detect(W1, W2, t, flipped=False), "misses the hand-built motif"),
        (lambda W1, W2, t: detect(W1, W2, t, abs_in=False), r"misses the hand-built motif.*compare sizes with \|W1\|"),
        (lambda W1, W2, t: detect(W1, W2, t, use_thresholds=False), "Use the thresholds you are given"),
        (lambda W1, W2, t: detect(W1, W2, t).float(), "dtype torch.float32; expected torch.bool"),
        (lambda W1, W2, t: detect(W1, W2, t).any(dim=1), r"shape \(1, 3, 3\); expected"),
        (lambda W1, W2, t: detect(W1, W2.transpose(1, 2), t), r"raised RuntimeError.*W2 is \(inst, feats, d_hidden\)"),
    ],
)
def test_detect_motif_catches(planted, message):
    with pytest.raises(AssertionError, match=message):
        check_detect_motif(planted)


def test_detect_motif_catches_flagging_plain_pairs_and_symmetric_neurons():
    def everything_shared(W1, W2, t):  # any neuron that reads and writes two features
        used = (W1.abs() > t.reads) & (W2.transpose(1, 2) > t.writes)
        both = used[..., :, None] & used[..., None, :]
        return both & ~torch.eye(W1.shape[2], dtype=torch.bool)

    with pytest.raises(AssertionError, match=r"also flags \[\(0, 0, 1, 0\)\]"):
        check_detect_motif(everything_shared)

    def symmetric_too(W1, W2, t):  # ratios compared with >= 1 instead of >= ratio
        return detect(W1, W2, motif.MotifThresholds(t.reads, t.writes, 1.0 + 1e-9, t.cancel))

    with pytest.raises(AssertionError, match="flags a symmetric shared neuron"):
        check_detect_motif(symmetric_too)


def test_an_unfilled_stub_is_not_done_yet_and_hands_over_the_library_version(capsys):
    def stub(W1, W2, t):
        raise NotImplementedError("write detect_motif")

    assert check_detect_motif(stub) is motif.detect_motif
    assert "not done yet: fill in the stub above (write detect_motif)" in capsys.readouterr().out
    assert check_detect_motif(motif.detect_motif) is motif.detect_motif
