"""Checks for chapter 2's exercises: the ReLU toy model, dimensionality, and correlated data.

Each check runs the learner's code next to the library's reference (`utils.models.ToyModel`,
`utils.metrics`, `utils.data.CorrelatedPairs` / `AnticorrelatedPairs`) on seeded input and raises
AssertionError with what is wrong and a likely cause.
"""

from __future__ import annotations

import torch

from utils import metrics
from utils.checks.compare import assert_close, assert_rate, assert_tensor, passed
from utils.models import ToyModel, ToyModelConfig

# Probabilities differ per instance *and* per feature, so a generator that ignores either shows.
_PROBABILITY = torch.tensor([[0.05, 0.3, 0.7, 1.0], [1.0, 0.5, 0.2, 0.0], [0.9, 0.1, 0.4, 0.6]])
_IMPORTANCE = torch.tensor([[1.0, 0.9, 0.81, 0.729], [1.0, 1.0, 1.0, 1.0], [0.5, 2.0, 1.0, 0.1]])
_CFG = ToyModelConfig(n_inst=3, n_features=4, d_hidden=2)
_STAT_BATCH = 20_000


def _ratio_is(got: float, expected: float, factor: float) -> bool:
    return expected != 0 and abs(got / expected - factor) < 1e-3 * max(1.0, factor)


def _models(cls) -> tuple[ToyModel, ToyModel]:
    """The learner's model and the reference, with the same weights and a non-zero bias."""
    if not (isinstance(cls, type) and issubclass(cls, ToyModel)):
        raise AssertionError(f"pass your class itself (a subclass of utils.models.ToyModel), got {cls!r}")
    for method in ("forward", "generate_batch", "calculate_loss"):
        if getattr(cls, method) is getattr(ToyModel, method):
            raise AssertionError(f"your class does not define {method}: write it in the class body (it must not inherit the library's)")
    kwargs = dict(feature_probability=_PROBABILITY, importance=_IMPORTANCE, device="cpu", seed=0)
    learner, reference = cls(_CFG, **kwargs), ToyModel(_CFG, **kwargs)
    bias = torch.randn(_CFG.n_inst, _CFG.n_features, generator=torch.Generator().manual_seed(1)) * 0.3
    with torch.no_grad():
        for model in (learner, reference):
            model.b_final.copy_(bias)
    return learner, reference


def _check_forward(learner: ToyModel, reference: ToyModel) -> None:
    x = torch.rand(7, _CFG.n_inst, _CFG.n_features, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        got = learner.forward(x.clone())
        expected = reference.forward(x)
        W, b = reference.W, reference.b_final
        h = torch.einsum("bif,ihf->bih", x, W)
        pre = torch.einsum("bih,ihf->bif", h, W)
        variants = {
            "x' has the values of WᵀWx + b without the ReLU: apply torch.relu at the end": pre + b,
            "x' misses the bias: add b_final before the ReLU": torch.relu(pre),
            "x' is ReLU(WᵀWx) + b: the bias goes inside the ReLU": torch.relu(pre) + b,
        }
    assert_tensor(got, "forward(x) for x of shape (batch, inst, feats)", tuple(expected.shape), "(batch, inst, feats)")
    hint = "x' = ReLU(WᵀWx + b): h = Wx per instance (einsum over feats), then Wᵀh + b_final, then ReLU"
    for message, variant in variants.items():
        if torch.allclose(got, variant, atol=1e-5) and not torch.allclose(got, expected, atol=1e-5):
            hint = message
    assert_close(got, expected, "forward(x)", "(batch, inst, feats)", hint=hint)
    with torch.no_grad():
        single = learner.forward(x[0].clone())
    assert_tensor(single, "forward(x) for x of shape (inst, feats)", tuple(expected[0].shape), "(inst, feats)")
    assert_close(single, expected[0], "forward(x) for one sample", "(inst, feats)", hint="use '...' for the leading dimensions in einsum")


def _check_generate_batch(learner: ToyModel) -> None:
    with torch.random.fork_rng():
        torch.manual_seed(3)
        batch = learner.generate_batch(_STAT_BATCH)
        other = learner.generate_batch(_STAT_BATCH)
    assert_tensor(batch, "generate_batch(batch_size)", (_STAT_BATCH, _CFG.n_inst, _CFG.n_features), "(batch, inst, feats)")
    if torch.equal(batch, other):
        raise AssertionError("generate_batch returned the same batch twice: draw fresh random numbers on every call")
    if not ((batch >= 0) & (batch <= 1)).all():
        raise AssertionError(
            f"generate_batch gave values in [{batch.min():.3g}, {batch.max():.3g}]; features must lie in [0, 1] "
            "(zero when inactive, uniform on [0, 1] when active): use torch.rand, not torch.randn"
        )
    active = batch != 0
    for k in range(_CFG.n_inst):
        for i in range(_CFG.n_features):
            p = _PROBABILITY[k, i].item()
            rate = active[:, k, i].float().mean().item()
            try:
                assert_rate(rate, p, _STAT_BATCH, f"the fraction of non-zero values of feature {i} in instance {k}")
            except AssertionError as error:
                hint = ""
                if abs(rate - (1 - p)) < 0.02 and abs(p - 0.5) > 0.1:
                    hint = " It is about 1 - p: a feature is *active* (non-zero) with probability feature_probability."
                elif abs(rate - _PROBABILITY[0, i].item()) < 0.02:
                    hint = " It matches instance 0's probability: use the probability of each instance, shape (inst, feats)."
                raise AssertionError(f"{error}.{hint}") from None
    values = batch[active]
    mean, spread = values.mean().item(), values.std().item()
    if abs(mean - 0.5) > 0.02 or abs(spread - 12**-0.5) > 0.02:
        raise AssertionError(
            f"active values have mean {mean:.3f} and standard deviation {spread:.3f}; a uniform value on [0, 1] has "
            f"0.5 and {12**-0.5:.3f}: draw the value with torch.rand, independently of whether the feature is active"
        )


def _check_calculate_loss(learner: ToyModel, reference: ToyModel) -> None:
    generator = torch.Generator().manual_seed(4)
    out = torch.rand(64, _CFG.n_inst, _CFG.n_features, generator=generator)
    batch = torch.rand(64, _CFG.n_inst, _CFG.n_features, generator=generator)
    got = learner.calculate_loss(out.clone(), batch.clone())
    expected = reference.calculate_loss(out, batch).detach()
    if not isinstance(got, torch.Tensor) or got.numel() != 1:
        raise AssertionError(
            f"calculate_loss should return a scalar tensor (the loss summed over instances), got "
            f"{tuple(got.shape) if isinstance(got, torch.Tensor) else type(got).__name__}"
        )
    value, target = got.detach().float().item(), expected.item()
    if abs(value - target) <= 1e-5 + 1e-4 * abs(target):
        return
    hint = "loss = Σ_inst mean_(batch, feats) importance · (out - batch)²"
    unweighted = ((out - batch) ** 2).mean(dim=(0, 2)).sum().item()
    if _ratio_is(value, target, 1 / _CFG.n_inst):
        hint = "it is the expected value divided by n_inst: sum over instances (each trains as if alone), don't average"
    elif _ratio_is(value, target, _CFG.n_features):
        hint = "it is n_features times too big: take the mean over features, not the sum"
    elif abs(value - unweighted) < 1e-5:
        hint = "it ignores the importances: weight each feature's squared error by self.importance"
    raise AssertionError(f"calculate_loss gave {value:.6g}, expected {target:.6g}: {hint}")


def check_toy_model(cls) -> None:
    """Check a learner's `ToyModel` subclass: `forward`, `generate_batch` and `calculate_loss`."""
    learner, reference = _models(cls)
    _check_forward(learner, reference)
    _check_generate_batch(learner)
    _check_calculate_loss(learner, reference)
    passed("ToyModel (forward, generate_batch, calculate_loss)")


def _geometry_weights() -> torch.Tensor:
    """Test weights `(4, 3, 6)`: a pentagon plus an unlearned feature, an antipodal pair, random, and all zero."""
    W = torch.zeros(4, 3, 6)
    angles = torch.arange(5) * 2 * torch.pi / 5
    W[0, 0, :5], W[0, 1, :5] = angles.cos(), angles.sin()
    W[1, 0, 0], W[1, 0, 1], W[1, 2, 2] = 1.0, -0.8, 1.2
    W[2] = torch.randn(3, 6, generator=torch.Generator().manual_seed(5))
    return W


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
