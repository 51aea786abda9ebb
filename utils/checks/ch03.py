"""Checks for chapter 3's exercises: dimensionality, and correlated and anticorrelated data.

Each check runs the learner's code next to the library's reference (`utils.metrics`,
`utils.data.CorrelatedPairs` / `AnticorrelatedPairs`) on seeded input and raises AssertionError
with what is wrong and a likely cause.
"""

from __future__ import annotations

import torch

from utils import metrics
from utils.data import AnticorrelatedPairs, CorrelatedPairs


def reference_correlated_batch(feature_probability: torch.Tensor, batch_size: int) -> torch.Tensor:
    """The library's correlated pairs: `(inst, n_pairs)` probabilities -> `(batch_size, inst, 2 * n_pairs)`."""
    return CorrelatedPairs(feature_probability).sample(batch_size)


def reference_anticorrelated_batch(feature_probability: torch.Tensor, batch_size: int) -> torch.Tensor:
    """The library's anticorrelated pairs: `(inst, n_pairs)` probabilities -> `(batch_size, inst, 2 * n_pairs)`."""
    return AnticorrelatedPairs(feature_probability).sample(batch_size)
from utils.checks.compare import assert_close, assert_rate, assert_tensor, learner_check, passed


def _geometry_weights() -> torch.Tensor:
    """Test weights `(4, 3, 6)`: a pentagon plus an unlearned feature, an antipodal pair, random, and all zero."""
    W = torch.zeros(4, 3, 6)
    angles = torch.arange(5) * 2 * torch.pi / 5
    W[0, 0, :5], W[0, 1, :5] = angles.cos(), angles.sin()
    W[1, 0, 0], W[1, 0, 1], W[1, 2, 2] = 1.0, -0.8, 1.2
    W[2] = torch.randn(3, 6, generator=torch.Generator().manual_seed(5))
    return W


@learner_check(metrics.dimensionality, "`utils.metrics.dimensionality`")
def check_dimensionality(fn) -> None:
    """Check a learner's `dimensionality(W)`: `(inst, d_hidden, feats) -> (inst, feats)`, 0 for unlearned features."""
    W = _geometry_weights()
    original = W.clone()
    got = fn(W)
    if not torch.equal(W, original):
        raise AssertionError("dimensionality modified its input W: compute on copies (no in-place operations on W)")
    expected = metrics.dimensionality(W)
    assert_tensor(got, "dimensionality(W)", tuple(expected.shape), "(inst, feats)")
    if not torch.isfinite(got).all():
        raise AssertionError(
            "dimensionality(W) has NaN or infinity, e.g. for unlearned features (zero columns): guard the division "
            "(clamp the norm and the denominator away from 0) so that an unlearned feature gets 0"
        )
    hint = "D_i = ‖W_i‖² / Σ_j (Ŵ_i · W_j)², with Ŵ_i = W_i / ‖W_i‖ and the sum including j = i"
    overlaps_raw = torch.einsum("khi,khj->kij", W, W)
    unnormalised = (W.norm(dim=1) ** 2) / (overlaps_raw**2).sum(-1).clamp_min(1e-8)
    without_self = (W.norm(dim=1) ** 2) / ((metrics.overlaps(W) ** 2).sum(-1) - W.norm(dim=1) ** 2).clamp_min(1e-8)
    if torch.allclose(got, unnormalised, atol=1e-4):
        hint = "you used W_i · W_j in the denominator: project on the unit vector Ŵ_i = W_i / ‖W_i‖"
    elif torch.allclose(got[0, :5], without_self[0, :5], atol=1e-4):
        hint = "the denominator must include j = i (the feature's own ‖W_i‖²)"
    assert_close(got, expected, "dimensionality(W)", "(inst, feats)", atol=1e-4, rtol=1e-3, hint=hint)
    passed("dimensionality")


@learner_check(metrics.dims_per_feature, "`utils.metrics.dims_per_feature`")
def check_dims_per_feature(fn) -> None:
    """Check a learner's `dims_per_feature(W)`: `(inst, d_hidden, feats) -> (inst,)`, D* = d_hidden / ‖W‖²_F."""
    W = _geometry_weights()[:3]
    got = fn(W.clone())
    expected = metrics.dims_per_feature(W)
    assert_tensor(got, "dims_per_feature(W)", tuple(expected.shape), "(inst,)")
    frobenius = W.pow(2).sum(dim=(1, 2))
    hint = "D* = d_hidden / ‖W‖²_F, with ‖W‖²_F the sum of squares of all of an instance's weights"
    if torch.allclose(got, W.shape[1] / frobenius.sqrt(), atol=1e-4):
        hint = "divide by the *squared* Frobenius norm"
    elif torch.allclose(got, W.shape[2] / frobenius, atol=1e-4):
        hint = "the numerator is d_hidden (W.shape[1]), not the number of features"
    assert_close(got, expected, "dims_per_feature(W)", "(inst,)", atol=1e-4, rtol=1e-3, hint=hint)
    passed("dims_per_feature")


_PAIR_PROBABILITY = torch.tensor([[0.1, 0.3, 0.5], [0.05, 0.2, 0.4]])
_PAIR_BATCH = 40_000


def _pair_batch(fn, what: str) -> torch.Tensor:
    n_inst, n_pairs = _PAIR_PROBABILITY.shape
    with torch.random.fork_rng():
        torch.manual_seed(6)
        batch = fn(_PAIR_PROBABILITY.clone(), _PAIR_BATCH)
    assert_tensor(batch, what, (_PAIR_BATCH, n_inst, 2 * n_pairs), "(batch, inst, feats)")
    if not ((batch >= 0) & (batch <= 1)).all():
        raise AssertionError(f"{what} has values in [{batch.min():.3g}, {batch.max():.3g}]; features lie in [0, 1]")
    values = batch[batch != 0]
    if abs(values.mean().item() - 0.5) > 0.01 or abs(values.std().item() - 12**-0.5) > 0.01:
        raise AssertionError(
            f"{what}: active values have mean {values.mean():.3f} and std {values.std():.3f}; uniform on [0, 1] has 0.5 and "
            f"{12**-0.5:.3f}"
        )
    return batch


def _check_marginals(active: torch.Tensor, what: str) -> None:
    n_inst, n_pairs = _PAIR_PROBABILITY.shape
    for k in range(n_inst):
        for i in range(2 * n_pairs):
            p = _PAIR_PROBABILITY[k, i // 2].item()
            assert_rate(
                active[:, k, i].float().mean().item(), p, _PAIR_BATCH,
                f"{what}: the fraction of samples where feature {i} (pair {i // 2}) of instance {k} is active",
            )


@learner_check(reference_correlated_batch, "correlated pairs (`utils.data.CorrelatedPairs`)")
def check_correlated_generator(fn) -> None:
    """Check `fn(feature_probability, batch_size) -> (batch, inst, 2 * n_pairs)` against `utils.data.CorrelatedPairs`:
    each pair (features 2k, 2k+1) is active together with probability p, with independent uniform values."""
    what = "generate_correlated_batch"
    batch = _pair_batch(fn, what)
    active = batch != 0
    first, second = active[..., 0::2], active[..., 1::2]
    mismatch = (first != second).float().mean().item()
    if mismatch > 0:
        raise AssertionError(
            f"{what}: in {100 * mismatch:.1f}% of (sample, pair) cases one feature of a pair is active and the other not; "
            "correlated features are active together: draw one 'is the pair active?' number per pair"
        )
    _check_marginals(active, what)
    both = first & second
    a, b = batch[..., 0::2][both], batch[..., 1::2][both]
    correlation = torch.corrcoef(torch.stack([a, b]))[0, 1].item()
    if abs(correlation) > 5 / len(a) ** 0.5:
        raise AssertionError(
            f"{what}: the two values of an active pair have correlation {correlation:.3f}; they should be independent "
            "(only *whether* they are active is shared): draw each value separately"
        )
    passed(what)


@learner_check(reference_anticorrelated_batch, "anticorrelated pairs (`utils.data.AnticorrelatedPairs`)")
def check_anticorrelated_generator(fn) -> None:
    """Check `fn(feature_probability, batch_size) -> (batch, inst, 2 * n_pairs)` against `utils.data.AnticorrelatedPairs`:
    each feature is active with probability p and never together with its partner."""
    what = "generate_anticorrelated_batch"
    batch = _pair_batch(fn, what)
    active = batch != 0
    together = (active[..., 0::2] & active[..., 1::2]).float().mean().item()
    if together > 0:
        raise AssertionError(
            f"{what}: both features of a pair are active in {100 * together:.2f}% of (sample, pair) cases; "
            "anticorrelated features are never active together"
        )
    try:
        _check_marginals(active, what)
    except AssertionError as error:
        raise AssertionError(
            f"{error}. Each feature must keep the marginal probability p: the pair is active with probability 2p, "
            "and then one of the two, chosen with equal chance"
        ) from None
    passed(what)
