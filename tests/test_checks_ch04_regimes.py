"""Chapter 4's regime check passes valid classifiers and names each planted mistake."""

import pytest
import torch

from utils import checks
from utils.hierarchy import REGIMES

DROPPED, OWN, ANTIPODAL, SAME = (REGIMES.index(name) for name in ("dropped", "own dimension", "antipodal", "same sign"))


def where_chain(W, threshold=0.2):
    w1, w2 = W[:, 0], W[:, 1]
    kept1, kept2 = w1.abs() >= threshold, w2.abs() >= threshold
    shared = torch.where(w1 * w2 < 0, ANTIPODAL, SAME)
    return torch.where(~kept2, DROPPED, torch.where(~kept1, OWN, shared)).long()


def row_loop(W, threshold=0.2):
    out = []
    for w1, w2 in W.tolist():
        if abs(w2) < threshold:
            out.append(DROPPED)
        elif abs(w1) < threshold:
            out.append(OWN)
        else:
            out.append(ANTIPODAL if w1 * w2 < 0 else SAME)
    return torch.tensor(out, dtype=torch.int64)


def sign_lookup(W, threshold=0.2):
    kept = (W.abs() >= threshold).long()  # (inst, 2)
    sign = (torch.sign(W[:, 0]) * torch.sign(W[:, 1]) > 0).long()
    table = torch.tensor([[DROPPED, DROPPED], [OWN, OWN], [ANTIPODAL, SAME]])  # row: 0 child dropped, 1 own, 2 shared
    row = kept[:, 1] * (1 + kept[:, 0])
    return table[row, sign]


@pytest.mark.parametrize("fn", [where_chain, row_loop, sign_lookup])
def test_valid_classifiers_pass(fn, capsys):
    assert checks.check_sharing_regime(fn) is fn
    assert "all checks passed" in capsys.readouterr().out


def no_gate(W, threshold=0.2):  # the sign alone decides, as if every child were kept
    return torch.where(W[:, 0] * W[:, 1] < 0, ANTIPODAL, SAME).long()


def sign_of_child(W, threshold=0.2):  # "antipodal" read as "the child's weight is negative"
    out = where_chain(W, threshold)
    shared = (W.abs() >= threshold).all(dim=1)
    return torch.where(shared, torch.where(W[:, 1] < 0, ANTIPODAL, SAME), out)


def parent_gates_the_drop(W, threshold=0.2):  # dropped when the parent is small
    out = where_chain(W, threshold)
    return torch.where(W[:, 0].abs() < threshold, DROPPED, out)


def strict(W, threshold=0.2):  # > instead of >=
    return where_chain(W, threshold + 1e-6)


def swapped(W, threshold=0.2):
    out = where_chain(W, threshold)
    return torch.where(out == ANTIPODAL, SAME, torch.where(out == SAME, ANTIPODAL, out))


def squared_parent(W, threshold=0.2):  # gates the parent on w1² (the source's superposition), not |w1|
    out = where_chain(W, threshold)
    return torch.where((W[:, 1].abs() >= threshold) & (W[:, 0] ** 2 < threshold), OWN, out)


def fixed_threshold(W, threshold=0.2):
    return where_chain(W)


def mutating(W, threshold=0.2):
    W.abs_()
    return where_chain(W, threshold)


@pytest.mark.parametrize(
    "fn, message",
    [
        (no_gate, r"below the threshold is dropped, whatever the signs"),
        (sign_of_child, r"both negative: the signs agree"),
        (parent_gates_the_drop, r"should be 'own dimension'"),
        (strict, r"equal to the threshold counts as kept"),
        (swapped, r"should be 'same sign' \(index 3\), got 'antipodal'"),
        (squared_parent, r"not on its square"),
        (fixed_threshold, r"use the `threshold` argument"),
        (mutating, r"modified its input"),
        (lambda W, threshold=0.2: where_chain(W, threshold).float(), r"dtype"),
        (lambda W, threshold=0.2: where_chain(W, threshold)[:, None], r"shape"),
    ],
)
def test_planted_mistakes_are_named(fn, message):
    with pytest.raises(AssertionError, match=message):
        checks.check_sharing_regime(fn)


def test_unfilled_stub_hands_over_the_library_version(capsys):
    def stub(W, threshold=0.2):
        raise NotImplementedError("return the regime index of each model")

    from utils.hierarchy import sharing_regimes

    assert checks.check_sharing_regime(stub) is sharing_regimes
    assert "not done yet" in capsys.readouterr().out
