"""Checks for chapter 7, the asymmetric superposition motif: `leak_and_inhibition` and `detect_motif`."""

from __future__ import annotations

import torch

from utils import motif as reference
from utils.checks.compare import assert_close, assert_tensor, learner_check, passed

DIMS = "(inst, d_hidden, feats_i, feats_j)"


def _random_weights(n_inst: int = 400, d_hidden: int = 7, n_features: int = 5, seed: int = 0):
    """Random weights with d_hidden != feats (so a transposed W2 cannot pass): 70% of entries non-zero
    with log-normal sizes, random signs in W1 and 30% negative in W2. With the thresholds of
    `check_detect_motif` they hold 58 motifs (26 driven by x_i < 0) and 179 uncancelled asymmetric pairs."""
    g = torch.Generator().manual_seed(seed)

    def sizes(*shape):
        return torch.exp(torch.randn(shape, generator=g)) * (torch.rand(shape, generator=g) < 0.7)

    W1 = torch.where(torch.rand(n_inst, d_hidden, n_features, generator=g) < 0.5, -1.0, 1.0) * sizes(n_inst, d_hidden, n_features)
    W2 = torch.where(torch.rand(n_inst, n_features, d_hidden, generator=g) < 0.3, -1.0, 1.0) * sizes(n_inst, n_features, d_hidden)
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
            "Remember W1 is (inst, d_hidden, feats) and W2 is (inst, feats, d_hidden)."
        ) from error
    if not (torch.equal(W1_in, W1) and torch.equal(W2_in, W2)):
        raise AssertionError(f"{name} modified its inputs W1 or W2; work on new tensors (e.g. W1.abs(), not W1.abs_())")
    return result


@learner_check(reference.leak_and_inhibition, "`utils.motif.leak_and_inhibition`")
def check_leak_and_inhibition(leak_and_inhibition) -> None:
    """The learner's `leak_and_inhibition(W1, W2) -> (leak, inhibition)`, both `(inst, d_hidden, feats, feats)`."""
    W1, W2, _ = reference.hand_built_motif()
    result = _call(leak_and_inhibition, "leak_and_inhibition", W1, W2)
    if not isinstance(result, tuple) or len(result) != 2:
        raise AssertionError(f"leak_and_inhibition should return a tuple (leak, inhibition), got {type(result).__name__}")
    leak, inhibition = result
    assert_tensor(leak, "leak", (1, 4, 3, 3), DIMS)
    assert_tensor(inhibition, "inhibition", (1, 4, 3, 3), DIMS)
    if abs(leak[0, 0, 0, 1].item() - 4.0) > 1e-5:
        raise AssertionError(
            f"in the hand-built motif, leak[0, n=0, i=0, j=1] should be W2[j=1, n=0] · |W1[n=0, i=0]| = 2 · 2 = 4, "
            f"got {leak[0, 0, 0, 1].item():.4g}"
        )
    if abs(inhibition[0, 0, 0, 1].item() - 5.0) > 1e-5:
        raise AssertionError(
            "in the hand-built motif, inhibition[0, n=0, i=0, j=1] should be 5: neuron 1 fires with x_0 > 0 "
            f"(W1[1, 0] = 1) and writes output 1 with W2[1, 1] = -5; got {inhibition[0, 0, 0, 1].item():.4g}"
        )
    W1, W2 = _random_weights()
    leak, inhibition = _call(leak_and_inhibition, "leak_and_inhibition", W1, W2)
    expected_leak, expected_inhibition = reference.leak_and_inhibition(W1, W2)
    assert_close(leak, expected_leak, "leak", DIMS, hint="leak[k, n, i, j] = W2[k, j, n] · |W1[k, n, i]|")
    unsigned = torch.einsum("kmi,kjm->kij", W1.abs(), torch.relu(-W2))[:, None].expand_as(expected_inhibition)
    if isinstance(inhibition, torch.Tensor) and inhibition.shape == unsigned.shape and torch.allclose(inhibition, unsigned, atol=1e-5):
        raise AssertionError(
            "inhibition counts every neuron that reads x_i, whatever the sign: only neurons that fire together "
            "with neuron n count, so use ReLU(s · W1[m, i]) with s = sign(W1[n, i]), not |W1[m, i]|"
        )
    assert_close(
        inhibition,
        expected_inhibition,
        "inhibition",
        DIMS,
        hint="inhibition[k, n, i, j] = Σ_m ReLU(s · W1[k, m, i]) · ReLU(-W2[k, j, m]) with s = sign(W1[k, n, i])",
    )
    passed("leak_and_inhibition")


_BROKEN = {
    "the same weights without the inhibitor (W2[1, 1] = 0)": ("W2", (0, 1, 1), 0.0),
    "an inhibitor of the wrong sign (W1[1, 0] = -1: it fires when x_0 < 0, while neuron 0 is silent)": ("W1", (0, 1, 0), -1.0),
    "an unflipped neuron (feature 0 loud both in W1 and W2: W2[0, 0] = 2, W2[1, 0] = 0.5)": ("W2", (0, slice(0, 2), 0), torch.tensor([2.0, 0.5])),
    "a symmetric shared neuron (W1[0, :2] = [1, -1], W2[:2, 0] = [1, 1])": ("both", None, None),
}


def _broken_motifs():
    """Variants of the hand-built motif that must not be flagged: {description: (W1, W2)}."""
    W1, W2, _ = reference.hand_built_motif()
    variants = {}
    for description, (which, index, value) in _BROKEN.items():
        V1, V2 = W1.clone(), W2.clone()
        if which == "W1":
            V1[index] = value
        elif which == "W2":
            V2[index] = value
        else:
            V1[0, 0, :2] = torch.tensor([1.0, -1.0])
            V2[0, :2, 0] = 1.0
        variants[description] = (V1, V2)
    return variants


def _describe(W1, W2, thresholds, k, n, i, j) -> str:
    leak, inhibition = reference.leak_and_inhibition(W1[k : k + 1], W2[k : k + 1])
    return (
        f"|W1[n, i]| = {W1[k, n, i].abs():.3f}, |W1[n, j]| = {W1[k, n, j].abs():.3f}, W2[i, n] = {W2[k, i, n]:.3f}, "
        f"W2[j, n] = {W2[k, j, n]:.3f}, leak = {leak[0, n, i, j]:.3f}, inhibition = {inhibition[0, n, i, j]:.3f} "
        f"with {thresholds}"
    )


@learner_check(reference.detect_motif, "`utils.motif.detect_motif`")
def check_detect_motif(detect_motif) -> None:
    """The learner's `detect_motif(W1, W2, thresholds) -> (inst, d_hidden, feats, feats)` bool."""
    default = reference.MotifThresholds()
    W1, W2, _ = reference.hand_built_motif()
    found = _call(detect_motif, "detect_motif", W1, W2, default)
    assert_tensor(found, "detect_motif's result", (1, 4, 3, 3), DIMS, dtype=torch.bool)
    if not found[0, 0, 0, 1]:
        raise AssertionError(
            "detect_motif misses the hand-built motif: neuron 0 stores feature 0 loudly and feature 1 quietly "
            "(W1 = [2, -1/2]), reads them out the other way round (W2 = [1/2, 2]), and neuron 1 cancels the leak "
            "(inhibition 5 >= 0.5 · leak 4); expected True at [0, n=0, i=0, j=1]. Loudness is a size: compare sizes "
            "with |W1| (W1[0, 1] = -1/2 is negative)"
        )
    if found.sum() != 1:
        extra = [tuple(index) for index in found.nonzero().tolist() if tuple(index) != (0, 0, 0, 1)]
        raise AssertionError(f"in the hand-built motif only [0, 0, 0, 1] is a motif, but detect_motif also flags {extra}")
    W1, W2, _ = reference.hand_built_pairs()
    if _call(detect_motif, "detect_motif", W1, W2, default).any():
        raise AssertionError("detect_motif flags a motif in plain paired neurons (each neuron reads a single feature)")
    for description, (V1, V2) in _broken_motifs().items():
        flagged = _call(detect_motif, "detect_motif", V1, V2, default)
        if flagged.any():
            raise AssertionError(f"detect_motif flags {description}, which is not the motif")
    thresholds = reference.MotifThresholds(reads=0.3, writes=0.2, ratio=1.5, cancel=0.8)
    W1, W2 = _random_weights()
    found = _call(detect_motif, "detect_motif", W1, W2, thresholds)
    expected = reference.detect_motif(W1, W2, thresholds)
    assert_tensor(found, "detect_motif's result", tuple(expected.shape), DIMS, dtype=torch.bool)
    wrong = found != expected
    if wrong.any():
        k, n, i, j = wrong.nonzero()[0].tolist()
        verdict = "misses a motif" if expected[k, n, i, j] else "flags a triple that is not a motif"
        raise AssertionError(
            f"on random weights, detect_motif {verdict} at instance {k}, neuron {n}, i = {i}, j = {j} "
            f"({wrong.sum().item()} of {wrong.numel()} entries differ): {_describe(W1, W2, thresholds, k, n, i, j)}. "
            "Use the thresholds you are given, not the defaults."
        )
    passed("detect_motif")
