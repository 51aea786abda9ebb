"""Checks for chapter 2's exercise: the batched ReLU toy model.

The check runs the learner's class next to the library's reference (`utils.models.ToyModel`) on
seeded input and raises AssertionError with what is wrong and a likely cause.
"""

from __future__ import annotations

import torch

from utils import metrics
from utils.checks.compare import assert_close, assert_rate, assert_tensor, learner_check, passed
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


@learner_check(ToyModel, "`utils.models.ToyModel`")
def check_toy_model(cls) -> None:
    """Check a learner's `ToyModel` subclass: `forward`, `generate_batch` and `calculate_loss`."""
    learner, reference = _models(cls)
    _check_forward(learner, reference)
    _check_generate_batch(learner)
    _check_calculate_loss(learner, reference)
    passed("ToyModel (forward, generate_batch, calculate_loss)")
