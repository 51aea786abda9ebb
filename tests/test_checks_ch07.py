"""Chapter 7's checks accept correct answers written in several ways and reject planted mistakes, each
with a message that names it. The mistakes are written from the exercise text, as a learner would make them."""

import pytest
import torch

from utils import motif
from utils.checks import check_detect_motif, check_leak_and_inhibition
from utils.motif import MotifThresholds

# --- exercise 7.1: leak_and_inhibition -------------------------------------------------------------


def leak_and_inhibition_loop(W1, W2):
    """The text's formulas entry by entry, with s = torch.sign(W1[k, n, i]) (0 where W1 is 0)."""
    n_inst, d_hidden, n_features = W1.shape
    leak = torch.zeros(n_inst, d_hidden, n_features, n_features)
    inhibition = torch.zeros(n_inst, d_hidden, n_features, n_features)
    for k in range(n_inst):
        for n in range(d_hidden):
            for i in range(n_features):
                s = torch.sign(W1[k, n, i])
                for j in range(n_features):
                    leak[k, n, i, j] = W2[k, j, n] * W1[k, n, i].abs()
                    inhibition[k, n, i, j] = sum(
                        torch.relu(s * W1[k, m, i]) * torch.relu(-W2[k, j, m]) for m in range(d_hidden)
                    )
    return leak, inhibition


def leak_and_inhibition_broadcast(W1, W2):
    """One 5-d product over (k, n, i, j, m), with s = +1 where W1 is 0."""
    s = torch.where(W1 >= 0, 1.0, -1.0)  # (k, n, i)
    reads = torch.relu(s[..., None] * W1.transpose(1, 2)[:, None])  # (k, n, i, m): ReLU(s[k, n, i] W1[k, m, i])
    writes = torch.relu(-W2)  # (k, j, m)
    inhibition = torch.einsum("knim,kjm->knij", reads, writes)
    leak = torch.einsum("kni,kjn->knij", W1.abs(), W2)
    return leak, inhibition


def leak_and_inhibition_sign(W1, W2):
    """The hint's two einsums, with torch.sign: where W1 is 0, s = 0 and the inhibition is 0."""
    out = W2.transpose(1, 2)
    leak = W1.abs()[..., :, None] * out[..., None, :]
    s = torch.sign(W1)[..., None]  # (k, n, i, 1)
    up = torch.einsum("kmi,kmj->kij", torch.relu(W1), torch.relu(-out))[:, None]
    down = torch.einsum("kmi,kmj->kij", torch.relu(-W1), torch.relu(-out))[:, None]
    return leak, torch.where(s > 0, up, torch.where(s < 0, down, 0.0))


@pytest.mark.parametrize(
    "correct",
    [motif.leak_and_inhibition, leak_and_inhibition_loop, leak_and_inhibition_broadcast, leak_and_inhibition_sign],
)
def test_leak_and_inhibition_check_accepts(correct, capsys):
    assert check_leak_and_inhibition(correct) is correct
    assert "leak_and_inhibition: all checks passed" in capsys.readouterr().out


def pull(reads, writes):
    """Σ_m reads[k, m, i] · writes[k, j, m], broadcast over n."""
    return torch.einsum("kmi,kjm->kij", reads, writes)[:, None]


def with_inhibition(inhibition_of):
    def planted(W1, W2):
        leak, _ = motif.leak_and_inhibition(W1, W2)
        return leak, inhibition_of(W1, W2).expand_as(leak).clone()

    return planted


def with_leak(leak_of):
    return lambda W1, W2: (leak_of(W1, W2), motif.leak_and_inhibition(W1, W2)[1])


def signed_pull(W1, writes):
    return torch.where((W1 > 0)[..., None], pull(torch.relu(W1), writes), pull(torch.relu(-W1), writes))


def without_own_neuron(W1, W2):
    _, inhibition = motif.leak_and_inhibition(W1, W2)
    s = torch.where(W1 > 0, 1.0, -1.0)
    own = torch.relu(s * W1)[..., None] * torch.relu(-W2).transpose(1, 2)[:, :, None, :]
    return inhibition - own


def in_place(W1, W2):
    W1.abs_()
    return motif.leak_and_inhibition(W1, W2)


def nan_where_zero(W1, W2):
    leak, _ = motif.leak_and_inhibition(W1, W2)
    s = (W1 / W1.abs())[..., None, None]  # NaN where W1 = 0
    reads = torch.relu(s * W1.transpose(1, 2)[:, None, :, :, None])  # (k, n, i, m, 1)
    return leak, (reads * torch.relu(-W2).transpose(1, 2)[:, None, None]).sum(3)


@pytest.mark.parametrize(
    "planted, message",
    [
        (
            with_leak(lambda W1, W2: W1[..., :, None] * W2.transpose(1, 2)[..., None, :]),
            r"leak on motif.hand_built_motif\(\) is wrong at .*Likely cause: the leak uses W1\[k, n, i\] with its sign",
        ),
        (
            with_leak(lambda W1, W2: W1.abs()[..., None, :] * W2.transpose(1, 2)[..., :, None]),
            "Likely cause: i and j are swapped",
        ),
        (
            with_leak(lambda W1, W2: W1.abs()[..., :, None] * W2.abs().transpose(1, 2)[..., None, :]),
            r"Likely cause: the leak uses \|W2\[k, j, n\]\|",
        ),
        # structure: which neurons, which sign, which output
        (
            with_inhibition(lambda W1, W2: pull(W1.abs(), torch.relu(-W2))),
            "Likely cause: the inhibition counts every neuron that reads x_i, whatever its sign",
        ),
        (
            with_inhibition(lambda W1, W2: pull(torch.relu(W1), torch.relu(-W2))),
            r"Likely cause: the inhibition always takes s = \+1",
        ),
        (
            with_inhibition(lambda W1, W2: signed_pull(W1, W2.abs())),
            r"the inhibition counts every write \|W2\[j, m\]\|",
        ),
        (with_inhibition(lambda W1, W2: signed_pull(W1, torch.relu(W2))), r"the inhibition counts the positive writes"),
        (
            with_inhibition(lambda W1, W2: signed_pull(W1, torch.relu(-W2)).diagonal(dim1=-2, dim2=-1)[..., None]),
            "the inhibition reads output i",
        ),
        (with_inhibition(without_own_neuron), "the inhibition leaves out m = n"),
        (nan_where_zero, r"inhibition on motif.hand_built_motif\(\) contains NaN or infinity"),
        (in_place, "modified its inputs"),
        (lambda W1, W2: motif.leak_and_inhibition(W1, W2)[0], "should return a tuple"),
        (
            lambda W1, W2: (motif.leak_and_inhibition(W1, W2)[0], pull(torch.relu(W1), torch.relu(-W2))[:, 0]),
            r"inhibition on .* has shape \(1, 3, 3\)",
        ),
        (
            lambda W1, W2: motif.leak_and_inhibition(W1, W2.transpose(1, 2)),
            r"leak_and_inhibition\(W1 \(1, 4, 3\), W2 \(1, 3, 4\)\) raised ValueError",
        ),
    ],
)
def test_leak_and_inhibition_check_rejects(planted, message):
    with pytest.raises(AssertionError, match=message):
        check_leak_and_inhibition(planted)


def test_random_weights_catch_what_the_hand_built_example_cannot():
    def right_only_when_small(W1, W2):
        if W1.shape[0] == 1:
            return motif.leak_and_inhibition(W1, W2)
        return with_inhibition(lambda W1, W2: signed_pull(W1, W2.abs()))(W1, W2)

    with pytest.raises(
        AssertionError,
        match=r"inhibition on random weights is wrong at inst \d+, d_hidden \d+, feats_i \d+, feats_j \d+",
    ):
        check_leak_and_inhibition(right_only_when_small)


# --- exercise 7.2: detect_motif --------------------------------------------------------------------


def detect(
    W1,
    W2,
    t,
    *,
    strict=(True, True, False, False, False),
    abs_in=True,
    flipped=True,
    inhibition=True,
    signed=True,
    abs_out=False,
):
    """The text's detector, written independently of the check, with one ingredient optionally broken."""

    def at_least(a, b, is_strict):
        return a > b if is_strict else a >= b

    loud = W1.abs() if abs_in else W1
    out = W2.transpose(1, 2)
    used = at_least(loud, t.reads, strict[0]) & at_least(out.abs() if abs_out else out, t.writes, strict[1])
    pair = used[..., :, None] & used[..., None, :]
    pair &= at_least(loud[..., :, None], t.ratio * loud[..., None, :], strict[2])
    if flipped:
        pair &= at_least(out[..., None, :], t.ratio * out[..., :, None], strict[3])
    else:
        pair &= at_least(out[..., :, None], t.ratio * out[..., None, :], strict[3])
    if not inhibition:
        return pair
    leak, cancel = motif.leak_and_inhibition(W1, W2)
    if not signed:
        cancel = pull(W1.abs(), torch.relu(-W2)).expand_as(leak)
    return pair & at_least(cancel, t.cancel * leak, strict[4])


def detect_loop(W1, W2, t):
    """Every (k, n, i, j) in turn, the inhibition summed over m by hand."""
    n_inst, d_hidden, n_features = W1.shape
    found = torch.zeros(n_inst, d_hidden, n_features, n_features, dtype=torch.bool)
    for k in range(n_inst):
        for n in range(d_hidden):
            for i in range(n_features):
                for j in range(n_features):
                    li, lj = abs(W1[k, n, i].item()), abs(W1[k, n, j].item())
                    oi, oj = W2[k, i, n].item(), W2[k, j, n].item()
                    if not (li > t.reads and lj > t.reads and oi > t.writes and oj > t.writes):
                        continue
                    if not (li >= t.ratio * lj and oj >= t.ratio * oi):
                        continue
                    s = 1.0 if W1[k, n, i] > 0 else -1.0
                    inhibition = sum(
                        max(s * W1[k, m, i].item(), 0.0) * max(-W2[k, j, m].item(), 0.0) for m in range(d_hidden)
                    )
                    found[k, n, i, j] = inhibition >= t.cancel * oj * li
    return found


def detect_with_divisions(W1, W2, t):
    """The ratios as quotients (exact for the check's powers of two) and the learner's own inhibition."""
    loud, out = W1.abs(), W2.transpose(1, 2)
    used = (loud > t.reads) & (out > t.writes)
    both = used[..., :, None] & used[..., None, :]
    with torch.no_grad():
        ratio_in = loud[..., :, None] / loud[..., None, :]
        ratio_out = out[..., None, :] / out[..., :, None]
    leak, inhibition = leak_and_inhibition_sign(W1, W2)
    return both & (ratio_in >= t.ratio) & (ratio_out >= t.ratio) & (inhibition >= t.cancel * leak)


@pytest.mark.parametrize("correct", [motif.detect_motif, detect, detect_loop, detect_with_divisions])
def test_detect_motif_check_accepts(correct, capsys):
    assert check_detect_motif(correct) is correct
    assert "detect_motif: all checks passed" in capsys.readouterr().out


@pytest.mark.parametrize(
    "planted, message",
    [
        # boundary conventions: a quantity exactly on its threshold
        (
            lambda W1, W2, t: detect(W1, W2, t, strict=(False, True, False, False, False)),
            r"reads = 0.5, exactly .*flags a motif that is not there.*Likely cause: \|W1\| > reads is strict",
        ),
        (
            lambda W1, W2, t: detect(W1, W2, t, strict=(True, False, False, False, False)),
            r"writes = 0.5, exactly .*Likely cause: W2 > writes is strict",
        ),
        (
            lambda W1, W2, t: detect(W1, W2, t, strict=(True, True, True, False, False)),
            r"ratio = 4 and W2\[0, 0\] = 0.25.*misses the motif.*Likely cause: the ratio condition on W1 is inclusive",
        ),
        (
            lambda W1, W2, t: detect(W1, W2, t, strict=(True, True, False, True, False)),
            r"ratio = 4 and W1\[0, 1\] = -0.25.*Likely cause: the ratio condition on W2 is inclusive",
        ),
        (
            lambda W1, W2, t: detect(W1, W2, t, strict=(True, True, False, False, True)),
            r"cancel = 1.25.*Likely cause: the cancellation is inclusive",
        ),
        # structure of the definition
        (
            lambda W1, W2, t: detect(W1, W2, t, inhibition=False),
            r"without its inhibitor.*Likely cause: the leak is never checked for cancellation",
        ),
        (
            lambda W1, W2, t: detect(W1, W2, t, signed=False),
            r"inhibitor of the wrong sign.*Likely cause: the inhibition counts neurons of either sign",
        ),
        (
            lambda W1, W2, t: detect(W1, W2, t, flipped=False),
            r"the hand-built motif \(.*misses the motif.*Likely cause: the read-out is not flipped",
        ),
        (lambda W1, W2, t: detect(W1, W2, t, abs_in=False), r"misses the motif.*Likely cause: loudness is a size"),
        (lambda W1, W2, t: detect(W1, W2, t, abs_out=True), r"Likely cause: writing is a positive weight"),
        (
            lambda W1, W2, t: detect(W1, W2, MotifThresholds()),
            r"with reads = 0.5, exactly .*Likely cause: it uses the default thresholds",
        ),
        (lambda W1, W2, t: detect(W1, W2, t).float(), "dtype torch.float32; expected torch.bool"),
        (lambda W1, W2, t: detect(W1, W2, t).any(dim=1), r"shape \(1, 3, 3\); expected"),
        (lambda W1, W2, t: detect(W1, W2.transpose(1, 2), t), r"raised RuntimeError.*W2 is \(inst, feats, d_hidden\)"),
    ],
)
def test_detect_motif_check_rejects(planted, message):
    with pytest.raises(AssertionError, match=message):
        check_detect_motif(planted)


def test_detect_motif_check_rejects_detectors_without_a_named_cause():
    def everything_shared(W1, W2, t):  # any neuron that reads and writes two features
        used = (W1.abs() > t.reads) & (W2.transpose(1, 2) > t.writes)
        return used[..., :, None] & used[..., None, :] & ~torch.eye(W1.shape[2], dtype=torch.bool)

    with pytest.raises(
        AssertionError,
        match=r"on the hand-built motif .*flags a motif that is not there at instance 0, neuron 0, i = 1, j = 0",
    ):
        check_detect_motif(everything_shared)

    def symmetric_too(W1, W2, t):  # ratios compared with 1 instead of `ratio`
        return detect(W1, W2, MotifThresholds(t.reads, t.writes, 1.0 + 1e-9, t.cancel))

    with pytest.raises(
        AssertionError, match=r"on a symmetric shared neuron .*flags a motif that is not there.*A motif needs"
    ):
        check_detect_motif(symmetric_too)

    def loud_only_when_positive(W1, W2, t):  # right on the hand-built cases, not for x_i < 0 drives
        return detect(W1, W2, t) if W1.shape[0] == 1 else detect(W1, W2, t, abs_in=False)

    with pytest.raises(AssertionError, match=r"on random weights, detect_motif misses the motif at instance \d+"):
        check_detect_motif(loud_only_when_positive)


def test_an_unfilled_stub_is_not_done_yet_and_hands_over_the_library_version(capsys):
    def stub(W1, W2, t):
        raise NotImplementedError("write detect_motif")

    assert check_detect_motif(stub) is motif.detect_motif
    assert "not done yet: fill in the stub above (write detect_motif)" in capsys.readouterr().out
    assert check_detect_motif(motif.detect_motif) is motif.detect_motif
