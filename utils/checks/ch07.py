"""Checks for chapter 7, the asymmetric superposition motif: `leak_and_inhibition` and `detect_motif`."""

from __future__ import annotations

import torch

from utils import motif as reference
from utils.checks.compare import (
    assert_close,
    assert_tensor,
    close,
    learner_check,
    passed,
    require_function,
)
from utils.motif import MotifThresholds

DIMS = "(inst, d_hidden, feats_i, feats_j)"


def _random_weights(n_inst: int = 16, d_hidden: int = 6, n_features: int = 5, seed: int = 0):
    """Random weights with d_hidden != feats (so a transposed W2 cannot pass), small enough that a loop over
    every (k, n, i, j) stays fast.

    70% of the entries are non-zero (30% exact zeros, where the sign of W1 is 0), with log-normal sizes,
    random signs in W1 and 30% negative in W2. Each instance also gets one planted asymmetric pair
    (n, i, j), driven by x_i > 0 or x_i < 0 at random, with one inhibitor m whose inhibition is 0.4 to 1.6
    times the leak, so that some of them cancel it. With the thresholds of `check_detect_motif` they hold
    17 motifs (6 driven by x_i < 0) in 12 of the 16 instances and 34 uncancelled asymmetric pairs, among
    246 entries (n, i != j) where neuron n reads and writes both features; every variant in
    `_DETECTOR_MISTAKES` gives a different answer on them.
    """
    g = torch.Generator().manual_seed(seed)

    def sizes(*shape):
        return torch.exp(torch.randn(shape, generator=g)) * (torch.rand(shape, generator=g) < 0.7)

    def signs(*shape, negative: float = 0.5):
        return torch.where(torch.rand(shape, generator=g) < negative, -1.0, 1.0)

    W1 = signs(n_inst, d_hidden, n_features) * sizes(n_inst, d_hidden, n_features)
    W2 = signs(n_inst, n_features, d_hidden, negative=0.3) * sizes(n_inst, n_features, d_hidden)
    for k in range(n_inst):
        n, m = torch.randperm(d_hidden, generator=g)[:2].tolist()
        i, j = torch.randperm(n_features, generator=g)[:2].tolist()
        s = 1.0 if torch.rand((), generator=g) < 0.5 else -1.0
        loud, quiet = 1 + 2 * torch.rand(2, generator=g)
        W1[k, n, i], W1[k, n, j] = s * loud, signs(1).item() * quiet / 4
        W2[k, i, n], W2[k, j, n] = quiet / 4, loud
        leak = W2[k, j, n] * W1[k, n, i].abs()
        W1[k, m, i] = s
        W2[k, j, m] = -leak * (0.4 + 1.2 * torch.rand((), generator=g))
    return W1, W2


def _call(fn, name: str, W1: torch.Tensor, W2: torch.Tensor, *args):
    """Call the learner's `fn` on copies; fail clearly if it raises or modifies its inputs."""
    W1_in, W2_in = W1.clone(), W2.clone()
    try:
        result = fn(W1_in, W2_in, *args)
    except NotImplementedError:
        raise
    except Exception as error:
        raise AssertionError(
            f"{name}(W1 {tuple(W1.shape)}, W2 {tuple(W2.shape)}) raised {type(error).__name__}: {error}. "
            "W1 is (inst, d_hidden, feats) and W2 is (inst, feats, d_hidden)."
        ) from error
    if not (torch.equal(W1_in, W1) and torch.equal(W2_in, W2)):
        raise AssertionError(f"{name} modified its inputs W1 or W2; work on new tensors (e.g. W1.abs(), not W1.abs_())")
    return result


# --- exercise 7.1 ---------------------------------------------------------------------------------


def _pull(W1_reads: torch.Tensor, W2_writes: torch.Tensor) -> torch.Tensor:
    """Σ_m W1_reads[k, m, i] · W2_writes[k, j, m] broadcast over n: `(inst, 1, feats, feats)`."""
    return torch.einsum("kmi,kjm->kij", W1_reads, W2_writes)[:, None]


def _inhibition_mistakes(W1: torch.Tensor, W2: torch.Tensor) -> dict[str, torch.Tensor]:
    """Wrong inhibitions a learner could compute from the text, each `(inst, d_hidden, feats, feats)`."""
    shape = (*W1.shape, W1.shape[-1])
    positive = (W1 > 0)[..., None]
    neg_W2 = torch.relu(-W2)

    def signed(writes: torch.Tensor) -> torch.Tensor:
        return torch.where(positive, _pull(torch.relu(W1), writes), _pull(torch.relu(-W1), writes)).expand(shape)

    s = torch.where(W1 > 0, 1.0, -1.0)  # (k, n, i)
    own = torch.relu(s * W1)[..., None] * neg_W2.transpose(1, 2)[:, :, None, :]  # neuron n's own term, m = n
    return {
        "the inhibition counts every neuron that reads x_i, whatever its sign: only neurons m that fire together "
        "with neuron n count, ReLU(s · W1[m, i]) with s = sign(W1[n, i]), not |W1[m, i]|": _pull(
            W1.abs(), neg_W2
        ).expand(shape),
        "the inhibition always takes s = +1: s = sign(W1[k, n, i]) depends on the neuron n and the feature i": _pull(
            torch.relu(W1), neg_W2
        ).expand(shape),
        "the inhibition counts every write |W2[j, m]|: only negative writes pull output j down, "
        "ReLU(-W2[j, m])": signed(W2.abs()),
        "the inhibition counts the positive writes ReLU(W2[j, m]): it is the negative ones, ReLU(-W2[j, m])": signed(
            torch.relu(W2)
        ),
        "the inhibition reads output i, W2[k, i, m]: the inhibitors pull down output j": signed(neg_W2)
        .diagonal(dim1=-2, dim2=-1)[..., None]
        .expand(shape),
        "the inhibition leaves out m = n: the sum runs over every neuron m, n included": signed(neg_W2) - own,
    }


def _leak_mistakes(W1: torch.Tensor, W2: torch.Tensor) -> dict[str, torch.Tensor]:
    out = W2.transpose(1, 2)  # (k, n, f)
    return {
        "the leak uses W1[k, n, i] with its sign: the push is W2[k, j, n] · |W1[k, n, i]|, whatever the sign of x_i "
        "that drives n": W1[..., :, None] * out[..., None, :],
        "i and j are swapped: leak[k, n, i, j] = W2[k, j, n] · |W1[k, n, i]|": W1.abs()[..., None, :]
        * out[..., :, None],
        "the leak uses |W2[k, j, n]|: W2 keeps its sign": W1.abs()[..., :, None] * out.abs()[..., None, :],
    }


def _consistent(results: list, answer_of, mistakes_of, compare_of=None) -> list[str]:
    """The messages of the mistakes (`mistakes_of(W1, W2) -> {message: wrong value}`) that the learner's answers
    (`answer_of(result)`) match on every input of `results` [(where, W1, W2, result)]."""
    names = None
    for _, W1, W2, result in results:
        mask = compare_of(W1) if compare_of else None
        matching = {m for m, wrong in mistakes_of(W1, W2).items() if close(answer_of(result), wrong, compare=mask)}
        names = matching if names is None else names & matching
    return [m for m in mistakes_of(*results[0][1:3]) if m in (names or set())]


def _driven(W1: torch.Tensor) -> torch.Tensor:
    """Where the inhibition is defined: W1[k, n, i] != 0, broadcast over j. Where W1[k, n, i] = 0 the neuron is
    not driven by x_i, its leak is 0, and the sign s (so the inhibition) is a convention: sign(0) = 0 gives 0,
    the library takes s = -1. Any finite value passes there."""
    return (W1 != 0)[..., None].expand(*W1.shape, W1.shape[-1])


def _compare_leak_and_inhibition(results: list) -> None:
    """`results`: [(where, W1, W2, the learner's result)], every input compared with the formulas of the text."""
    for _, _, _, result in results:
        if not isinstance(result, tuple) or len(result) != 2:
            raise AssertionError(
                f"leak_and_inhibition should return a tuple (leak, inhibition), got {type(result).__name__}"
            )
    leak_causes = _consistent(results, lambda result: result[0], _leak_mistakes)
    inhibition_causes = _consistent(results, lambda result: result[1], _inhibition_mistakes, _driven)
    for where_, W1, W2, (leak, inhibition) in results:
        expected_leak, expected_inhibition = reference.leak_and_inhibition(W1, W2)
        assert_close(
            leak,
            expected_leak,
            f"leak {where_}",
            DIMS,
            rule="It should be leak[k, n, i, j] = W2[k, j, n] · |W1[k, n, i]|.",
            mistakes={m: v for m, v in _leak_mistakes(W1, W2).items() if m in leak_causes},
        )
        assert_close(
            inhibition,
            expected_inhibition,
            f"inhibition {where_}",
            DIMS,
            rule="It should be inhibition[k, n, i, j] = Σ_m ReLU(s · W1[k, m, i]) · ReLU(-W2[k, j, m]) with "
            "s = sign(W1[k, n, i]).",
            mistakes={m: v for m, v in _inhibition_mistakes(W1, W2).items() if m in inhibition_causes},
            compare=_driven(W1),
        )


@learner_check(reference.leak_and_inhibition, "`utils.motif.leak_and_inhibition`")
def check_leak_and_inhibition(leak_and_inhibition) -> None:
    """The learner's `leak_and_inhibition(W1, W2) -> (leak, inhibition)`, both `(inst, d_hidden, feats, feats)`.

    Where W1[k, n, i] = 0 (neuron n not driven by x_i, s = sign(0)) any finite inhibition is accepted."""
    require_function(leak_and_inhibition, "leak_and_inhibition")
    results = []
    for where_, (W1, W2) in (
        ("on motif.hand_built_motif()", reference.hand_built_motif()[:2]),
        ("on random weights", _random_weights()),
    ):
        results.append((where_, W1, W2, _call(leak_and_inhibition, "leak_and_inhibition", W1, W2)))
    _compare_leak_and_inhibition(results)
    passed("leak_and_inhibition")


# --- exercise 7.2 ---------------------------------------------------------------------------------


def _detect(
    W1: torch.Tensor,
    W2: torch.Tensor,
    t: MotifThresholds,
    *,
    strict: tuple[bool, bool, bool, bool, bool] = (True, True, False, False, False),
    signed_loudness: bool = False,
    flipped: bool = True,
    cancelled: bool = True,
    signed_inhibition: bool = True,
    absolute_writes: bool = False,
) -> torch.Tensor:
    """The detector of the text with one ingredient changed (to name a learner's mistake).

    `strict` says which of (reads, writes, ratio in, ratio out, cancel) compare with `>` (else `>=`).
    """

    def compare(a, b, is_strict):
        return a > b if is_strict else a >= b

    loud = W1 if signed_loudness else W1.abs()
    out = W2.transpose(1, 2)
    writes = out.abs() if absolute_writes else out
    used = compare(loud, t.reads, strict[0]) & compare(writes, t.writes, strict[1])
    found = used[..., :, None] & used[..., None, :]
    found &= compare(loud[..., :, None], t.ratio * loud[..., None, :], strict[2])
    if flipped:
        found &= compare(out[..., None, :], t.ratio * out[..., :, None], strict[3])
    else:
        found &= compare(out[..., :, None], t.ratio * out[..., None, :], strict[3])
    if cancelled:
        leak, inhibition = reference.leak_and_inhibition(W1, W2)
        if not signed_inhibition:
            inhibition = _pull(W1.abs(), torch.relu(-W2)).expand_as(leak)
        found &= compare(inhibition, t.cancel * leak, strict[4])
    return found


_DETECTOR_MISTAKES = {
    "|W1| > reads is strict: a weight exactly at `reads` does not count as reading": dict(
        strict=(False, True, False, False, False)
    ),
    "W2 > writes is strict: a weight exactly at `writes` does not count as writing": dict(
        strict=(True, False, False, False, False)
    ),
    "the ratio condition on W1 is inclusive: |W1[n, i]| >= ratio · |W1[n, j]|, not >": dict(
        strict=(True, True, True, False, False)
    ),
    "the ratio condition on W2 is inclusive: W2[j, n] >= ratio · W2[i, n], not >": dict(
        strict=(True, True, False, True, False)
    ),
    "the cancellation is inclusive: inhibition >= cancel · leak, not >": dict(strict=(True, True, False, False, True)),
    "loudness is a size: compare |W1| (a negative weight can be loud)": dict(signed_loudness=True),
    "the read-out is not flipped: feature j is read out loudly, W2[j, n] >= ratio · W2[i, n]": dict(flipped=False),
    "the leak is never checked for cancellation: the motif needs inhibition >= cancel · leak": dict(cancelled=False),
    "the inhibition counts neurons of either sign: only neurons that fire with neuron n, ReLU(s · W1[m, i]), "
    "inhibit": dict(signed_inhibition=False),
    "writing is a positive weight, W2[f, n] > writes, not |W2[f, n]|": dict(absolute_writes=True),
}


def _hand_built_cases() -> list[tuple[str, torch.Tensor, torch.Tensor, MotifThresholds]]:
    """(description, W1, W2, thresholds): the hand-built motif, plain pairs, broken motifs, and motifs with one
    quantity exactly on its threshold (powers of two, so every product is exact)."""
    W1, W2, _ = reference.hand_built_motif()
    default = MotifThresholds()

    def changed(description, edits, thresholds=default):
        V1, V2 = W1.clone(), W2.clone()
        for which, index, value in edits:
            (V1 if which == "W1" else V2)[index] = value
        return description, V1, V2, thresholds

    pairs_W1, pairs_W2, _ = reference.hand_built_pairs()
    return [
        ("the hand-built motif (motif.hand_built_motif(), default thresholds)", W1, W2, default),
        (
            "plain paired neurons (motif.hand_built_pairs(): each neuron reads a single feature)",
            pairs_W1,
            pairs_W2,
            default,
        ),
        changed("the hand-built motif without its inhibitor (W2[1, 1] = 0)", [("W2", (0, 1, 1), 0.0)]),
        changed(
            "the hand-built motif with an inhibitor of the wrong sign (W1[1, 0] = -1: it fires when x_0 < 0, while "
            "neuron 0 is silent)",
            [("W1", (0, 1, 0), -1.0)],
        ),
        changed(
            "an unflipped neuron (feature 0 loud both in W1 and W2: W2[0, 0] = 2, W2[1, 0] = 0.5)",
            [("W2", (0, 0, 0), 2.0), ("W2", (0, 1, 0), 0.5)],
        ),
        changed(
            "a symmetric shared neuron (W1[0, :2] = [1, -1], W2[:2, 0] = [1, 1])",
            [("W1", (0, 0, 0), 1.0), ("W1", (0, 0, 1), -1.0), ("W2", (0, 0, 0), 1.0), ("W2", (0, 1, 0), 1.0)],
        ),
        changed(
            "the hand-built motif driven by x_0 < 0 (W1[0, 0] = -2, inhibitor W1[1, 0] = -1)",
            [("W1", (0, 0, 0), -2.0), ("W1", (0, 1, 0), -1.0), ("W1", (0, 2, 0), 1.0)],
        ),
        changed(
            "the hand-built motif with reads = 0.5, exactly |W1[0, 1]| (strict: feature 1 is not read)",
            [],
            MotifThresholds(reads=0.5),
        ),
        changed(
            "the hand-built motif with writes = 0.5, exactly W2[0, 0] (strict: feature 0 is not written)",
            [],
            MotifThresholds(writes=0.5),
        ),
        changed(
            "the hand-built motif with ratio = 4 and W2[0, 0] = 0.25: |W1[0, 0]| = 2 is exactly 4 · |W1[0, 1]| "
            "(inclusive: a motif)",
            [("W2", (0, 0, 0), 0.25)],
            MotifThresholds(ratio=4.0),
        ),
        changed(
            "the hand-built motif with ratio = 4 and W1[0, 1] = -0.25: W2[1, 0] = 2 is exactly 4 · W2[0, 0] "
            "(inclusive: a motif)",
            [("W1", (0, 0, 1), -0.25)],
            MotifThresholds(ratio=4.0),
        ),
        changed(
            "the hand-built motif with cancel = 1.25: the inhibition 5 is exactly 1.25 · the leak 4 "
            "(inclusive: a motif)",
            [],
            MotifThresholds(cancel=1.25),
        ),
    ]


_RANDOM_THRESHOLDS = MotifThresholds(reads=0.3, writes=0.2, ratio=1.5, cancel=0.8)


def _describe_entry(W1, W2, t: MotifThresholds, k: int, n: int, i: int, j: int) -> str:
    leak, inhibition = reference.leak_and_inhibition(W1[k : k + 1], W2[k : k + 1])
    return (
        f"|W1[n, i]| = {W1[k, n, i].abs():.4g}, |W1[n, j]| = {W1[k, n, j].abs():.4g}, W2[i, n] = {W2[k, i, n]:.4g}, "
        f"W2[j, n] = {W2[k, j, n]:.4g}, leak = {leak[0, n, i, j]:.4g}, inhibition = {inhibition[0, n, i, j]:.4g}, "
        f"with reads = {t.reads:g}, writes = {t.writes:g}, ratio = {t.ratio:g}, cancel = {t.cancel:g}"
    )


def _detector_mistakes(W1, W2, t: MotifThresholds) -> dict[str, torch.Tensor]:
    """What each variant of `_DETECTOR_MISTAKES` (and the default thresholds) finds on (W1, W2, t)."""
    found = {cause: _detect(W1, W2, t, **change) for cause, change in _DETECTOR_MISTAKES.items()}
    found["it uses the default thresholds, not the ones it is given"] = _detect(W1, W2, MotifThresholds())
    return found


def _compare_detections(results: list) -> None:
    """`results`: [(description, W1, W2, thresholds, the learner's answer)]; a likely cause is named only when it
    gives the learner's answers on every input."""
    for description, W1, W2, t, found in results:
        expected = _detect(W1, W2, t)
        assert_tensor(found, f"detect_motif's result on {description}", tuple(expected.shape), DIMS, dtype=torch.bool)
    causes = None
    for _, W1, W2, t, found in results:
        matching = {cause for cause, wrong in _detector_mistakes(W1, W2, t).items() if torch.equal(found, wrong)}
        causes = matching if causes is None else causes & matching
    for description, W1, W2, t, found in results:
        expected = _detect(W1, W2, t)
        wrong = found != expected
        if not wrong.any():
            continue
        k, n, i, j = wrong.nonzero()[0].tolist()
        verdict = "misses the motif" if expected[k, n, i, j] else "flags a motif that is not there"
        message = (
            f"on {description}, detect_motif {verdict} at instance {k}, neuron {n}, i = {i}, j = {j} "
            f"({wrong.sum().item()} of {wrong.numel()} entries differ): {_describe_entry(W1, W2, t, k, n, i, j)}"
        )
        cause = next((c for c in _detector_mistakes(W1, W2, t) if c in causes), None)
        if cause:
            raise AssertionError(f"{message}. Likely cause: {cause}")
        raise AssertionError(
            f"{message}. A motif needs: |W1[n, i]|, |W1[n, j]| > reads and W2[i, n], W2[j, n] > writes; "
            "|W1[n, i]| >= ratio · |W1[n, j]| and W2[j, n] >= ratio · W2[i, n]; inhibition >= cancel · leak"
        )


@learner_check(reference.detect_motif, "`utils.motif.detect_motif`")
def check_detect_motif(detect_motif) -> None:
    """The learner's `detect_motif(W1, W2, thresholds) -> (inst, d_hidden, feats, feats)` bool: hand-built cases
    (including quantities exactly on each threshold), then random weights with planted motifs."""
    require_function(detect_motif, "detect_motif")
    cases = [*_hand_built_cases(), ("random weights", *_random_weights(), _RANDOM_THRESHOLDS)]
    results = [
        (description, W1, W2, t, _call(detect_motif, "detect_motif", W1, W2, t)) for description, W1, W2, t in cases
    ]
    _compare_detections(results)
    passed("detect_motif")
