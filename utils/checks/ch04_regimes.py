"""Check for chapter 4's regime exercise: what a model does with the child, from its two weights."""

from __future__ import annotations

import torch

from utils.checks.compare import assert_tensor, call_learner, learner_check, passed
from utils.hierarchy import REGIMES, sharing_regimes

CASES = [
    # (w1, w2, expected regime, what the case is about)
    (1.0, 1.2, "same sign", "both kept, w1·w2 > 0"),
    (1.0, -1.25, "antipodal", "both kept, w1·w2 < 0"),
    (-0.9, -0.5, "same sign", "both negative: the signs agree, so it is same-sign sharing"),
    (-1.0, 1.3, "antipodal", "a negative parent and a positive child"),
    (1.0, 0.05, "dropped", "a child below the threshold is dropped, whatever the signs"),
    (-1.0, 0.01, "dropped", "a child below the threshold is dropped, whatever the signs"),
    (1.0, -0.15, "dropped", "a child below the threshold is dropped, whatever the signs"),
    (0.05, 1.0, "own dimension", "a kept child with a parent below the threshold has the dimension to itself"),
    (-0.1, -1.0, "own dimension", "a kept child with a parent below the threshold has the dimension to itself"),
    (0.0, 0.0, "dropped", "a model with no weights keeps nothing: the child is dropped"),
    (0.01, 0.1, "dropped", "both below the threshold: the child is dropped"),
    (
        0.3,
        -0.9,
        "antipodal",
        "the threshold is on the size of the weight |w1|, not on its square: a parent of 0.3 is kept",
    ),
    (0.96, 0.52, "same sign", "a child kept in part is still kept (|w2| above the threshold)"),
    (0.2, 0.2, "same sign", "a weight equal to the threshold counts as kept (≥)"),
    (0.2, -0.5, "antipodal", "a weight equal to the threshold counts as kept (≥)"),
    (1.0, 0.2, "same sign", "a weight equal to the threshold counts as kept (≥)"),
    (0.19, 0.8, "own dimension", "a parent just below the threshold is dropped"),
]


@learner_check(sharing_regimes, "`utils.hierarchy.sharing_regimes`")
def check_sharing_regime(learner_sharing_regime) -> None:
    """`sharing_regime(W, threshold=0.2) -> (inst,)` int64 indices into `REGIMES` for `W: (inst, 2)`."""
    W = torch.tensor([[w1, w2] for w1, w2, _, _ in CASES])
    got = call_learner("sharing_regime", learner_sharing_regime, W, 0.2)
    if not torch.equal(W, torch.tensor([[w1, w2] for w1, w2, _, _ in CASES])):
        raise AssertionError("sharing_regime modified its input W; work on a copy")
    assert_tensor(got, "the regimes", (len(CASES),), "(inst,)", dtype=torch.int64)
    for i, (w1, w2, name, why) in enumerate(CASES):
        index = int(got[i])
        if not 0 <= index < len(REGIMES):
            raise AssertionError(f"regime {index} at inst {i} is not an index into REGIMES = {REGIMES}")
        if REGIMES[index] != name:
            raise AssertionError(
                f"W = ({w1}, {w2}) (inst {i}) should be {name!r} (index {REGIMES.index(name)}), "
                f"got {REGIMES[index]!r} (index {index}): {why}"
            )
    big = torch.tensor([[1.0, 0.3], [1.0, -0.3], [0.3, 1.0]])
    got = call_learner("sharing_regime", learner_sharing_regime, big.clone(), 0.5)
    expected = sharing_regimes(big, 0.5)
    if not torch.equal(torch.as_tensor(got), expected):
        raise AssertionError(
            f"with threshold=0.5, W = {big.tolist()} should give {[REGIMES[i] for i in expected]}, "
            f"got {[REGIMES[int(i)] for i in got]}: use the `threshold` argument, not a fixed 0.2"
        )
    passed("sharing_regime")
