"""Checks for chapter 3's exercises: dimensionality, correlated and anticorrelated data, and a training loop
on the learner's sampling function.

Each check runs the learner's code next to the library's reference (`utils.metrics`,
`utils.data.CorrelatedPairs` / `AnticorrelatedPairs`, the loop `reference_train_on_sampler`) on seeded
input and raises AssertionError with what is wrong, naming a likely cause only when the learner's answer
matches it.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from utils import metrics
from utils.checks.compare import (
    assert_close,
    assert_independent_activity,
    assert_independent_values,
    assert_rate,
    assert_tensor,
    assert_uniform,
    call_learner,
    close,
    learner_check,
    passed,
    require_function,
)
from utils.data import AnticorrelatedPairs, CorrelatedPairs
from utils.models import ToyModel, ToyModelConfig
from utils.train import Schedule, constant_lr, cosine_decay_lr


def reference_correlated_batch(feature_probability: torch.Tensor, batch_size: int) -> torch.Tensor:
    """The library's correlated pairs: `(inst, n_pairs)` probabilities -> `(batch_size, inst, 2 * n_pairs)`."""
    return CorrelatedPairs(feature_probability).sample(batch_size)


def reference_anticorrelated_batch(feature_probability: torch.Tensor, batch_size: int) -> torch.Tensor:
    """The library's anticorrelated pairs: `(inst, n_pairs)` probabilities -> `(batch_size, inst, 2 * n_pairs)`."""
    return AnticorrelatedPairs(feature_probability).sample(batch_size)


# --- exercises 3.1 and 3.2 ------------------------------------------------------------------------


def _geometry_weights() -> torch.Tensor:
    """Test weights `(4, 3, 6)`: a pentagon plus an unlearned feature, an antipodal pair with an
    orthogonal feature and unlearned ones, random, and all zero."""
    W = torch.zeros(4, 3, 6)
    angles = torch.arange(5) * 2 * torch.pi / 5
    W[0, 0, :5], W[0, 1, :5] = angles.cos(), angles.sin()
    W[1, 0, 0], W[1, 0, 1], W[1, 2, 2] = 1.0, -0.8, 1.2
    W[2] = torch.randn(3, 6, generator=torch.Generator().manual_seed(5))
    return W


def _guarded(numerator: torch.Tensor, denominator: torch.Tensor) -> torch.Tensor:
    return numerator / denominator.clamp_min(1e-8)


@learner_check(metrics.dimensionality, "`utils.metrics.dimensionality`")
def check_dimensionality(fn) -> None:
    """Check a learner's `dimensionality(W)`: `(inst, d_hidden, feats) -> (inst, feats)`, 0 for unlearned features."""
    require_function(fn, "dimensionality")
    W = _geometry_weights()
    given = W.clone()
    got = call_learner("dimensionality", fn, given)
    if not torch.equal(given, W):
        raise AssertionError(
            "dimensionality modified its input W: compute on new tensors (no in-place operations on W)"
        )
    expected = metrics.dimensionality(W)
    assert_tensor(got, "dimensionality(W)", tuple(expected.shape), "(inst, feats)")
    zero_columns = W.norm(dim=1) == 0
    if not torch.isfinite(got[zero_columns]).all():
        raise AssertionError(
            "dimensionality(W) is NaN or infinite for unlearned features (zero columns): guard each division (clamp "
            "the norm and the denominator away from 0) so that an unlearned feature gets 0"
        )
    norms = W.norm(dim=1)
    unit = W / norms[:, None, :].clamp_min(1e-8)
    overlaps = torch.einsum("khi,khj->kij", unit, W)
    mixed = torch.einsum("khi,lhj->kij", unit, W) / W.shape[0]
    assert_close(
        got,
        expected,
        "dimensionality(W)",
        "(inst, feats)",
        atol=1e-4,
        rtol=1e-3,
        rule="It should be D_i = ‖W_i‖² / Σ_j (Ŵ_i · W_j)², with Ŵ_i = W_i / ‖W_i‖, the sum including j = i, "
        "and 0 for a zero column.",
        mistakes={
            "the denominator uses W_i · W_j: project on the unit vector Ŵ_i = W_i / ‖W_i‖": _guarded(
                norms**2, (torch.einsum("khi,khj->kij", W, W) ** 2).sum(-1)
            ),
            "the denominator leaves out j = i: the sum runs over every feature, the feature itself included": _guarded(
                norms**2, (overlaps**2).sum(-1) - norms**2
            ),
            "the numerator is ‖W_i‖, not ‖W_i‖²": _guarded(norms, (overlaps**2).sum(-1)),
            "the overlaps are not squared: Σ_j (Ŵ_i · W_j)²": _guarded(norms**2, overlaps.abs().sum(-1)),
            "unlearned features (zero columns) get 1: they should get 0": torch.where(zero_columns, 1.0, expected),
            "the overlaps mix instances: contract only over d_hidden, within each instance": _guarded(
                norms**2, (mixed**2).sum(-1)
            ),
        },
    )
    passed("dimensionality")


@learner_check(metrics.dims_per_feature, "`utils.metrics.dims_per_feature`")
def check_dims_per_feature(fn) -> None:
    """Check a learner's `dims_per_feature(W)`: `(inst, d_hidden, feats) -> (inst,)`, D* = d_hidden / ‖W‖²_F."""
    require_function(fn, "dims_per_feature")
    W = _geometry_weights()[:3]
    given = W.clone()
    got = call_learner("dims_per_feature", fn, given)
    if not torch.equal(given, W):
        raise AssertionError("dims_per_feature modified its input W: compute on new tensors")
    expected = metrics.dims_per_feature(W)
    frobenius = W.pow(2).sum(dim=(1, 2))
    d_hidden, n_features = W.shape[1], W.shape[2]
    assert_close(
        got,
        expected,
        "dims_per_feature(W)",
        "(inst,)",
        atol=1e-4,
        rtol=1e-3,
        rule="It should be D* = d_hidden / ‖W‖²_F for each instance, ‖W‖²_F the sum of squares of its weights.",
        mistakes={
            "it divides by ‖W‖_F: divide by the *squared* Frobenius norm": d_hidden / frobenius.sqrt(),
            "the numerator is the number of features: it is d_hidden (W.shape[1])": n_features / frobenius,
            "it is inverted: D* = d_hidden / ‖W‖²_F": frobenius / d_hidden,
            "‖W‖²_F is summed over every instance at once: sum over d_hidden and feats only": (
                d_hidden / frobenius.sum()
            ).expand(W.shape[0]),
            "‖W‖²_F is a mean of squares: sum them": d_hidden / W.pow(2).mean(dim=(1, 2)),
            "every instance uses instance 0's weights": (d_hidden / frobenius[0]).expand(W.shape[0]),
        },
    )
    passed("dims_per_feature")


# --- exercises 3.3 and 3.4 ------------------------------------------------------------------------

_PAIR_PROBABILITY = torch.tensor([[0.1, 0.3, 0.5], [0.05, 0.2, 0.4]])
_PAIR_BATCH = 6_000
_PAIR_DIMS = "(batch, inst, 2 * n_pairs)"


def _pair_batch(fn, what: str) -> torch.Tensor:
    n_inst, n_pairs = _PAIR_PROBABILITY.shape
    require_function(fn, what)
    with torch.random.fork_rng():
        torch.manual_seed(6)
        batch = call_learner(what, fn, _PAIR_PROBABILITY.clone(), _PAIR_BATCH)
        other = call_learner(what, fn, _PAIR_PROBABILITY.clone(), _PAIR_BATCH)
    assert_tensor(batch, f"{what}(feature_probability, {_PAIR_BATCH})", (_PAIR_BATCH, n_inst, 2 * n_pairs), _PAIR_DIMS)
    if torch.equal(batch, other):
        raise AssertionError(f"{what} returned the same batch twice: draw fresh random numbers on every call")
    return batch


def _check_feature_rates(active: torch.Tensor, what: str, extra: dict[str, float] | None = None) -> None:
    """Each feature is active with its pair's probability p."""
    n_inst, n_pairs = _PAIR_PROBABILITY.shape
    for k in range(n_inst):
        for i in range(2 * n_pairs):
            p = _PAIR_PROBABILITY[k, i // 2].item()
            assert_rate(
                active[:, k, i].float().mean().item(),
                p,
                _PAIR_BATCH,
                f"{what}: the fraction of samples where feature {i} (pair {i // 2}, p = {p:g}) of instance {k} is "
                "active",
                {
                    "every instance uses instance 0's probabilities": _PAIR_PROBABILITY[0, i // 2].item(),
                    "feature i uses probability p[i % n_pairs] (torch.repeat): feature 2k and 2k + 1 both use pair k's "
                    "probability (torch.repeat_interleave)": _PAIR_PROBABILITY[k, i % n_pairs].item(),
                    **{message: factor * p for message, factor in (extra or {}).items()},
                },
            )


def _check_values(batch: torch.Tensor, active: torch.Tensor, what: str) -> None:
    """Active values are uniform on [0, 1] for every feature, and independent within a pair."""
    n_inst, n_pairs = _PAIR_PROBABILITY.shape
    for k in range(n_inst):
        for i in range(2 * n_pairs):
            p = _PAIR_PROBABILITY[k, i // 2].item()
            assert_uniform(
                batch[active[:, k, i], k, i],
                0.0,
                1.0,
                f"{what}: the active values of feature {i} in instance {k}",
                {
                    "the value reuses the number u < p that made the pair active, so it lies in [0, p): divide it by "
                    "p, or draw the values separately": (0.0, p),
                    "the value reuses the number u < 2p that made the pair active, so it lies in [0, 2p): divide it "
                    "by 2p, or draw the values separately": (0.0, 2 * p),
                    "the value reuses the number p <= u < 2p that chose the second feature: subtract p and divide by "
                    "p, "
                    "or draw the values separately": (p, 2 * p),
                    "the values are uniform on [-1, 1]: this law is uniform on [0, 1] (torch.rand)": (-1.0, 1.0),
                },
            )


@learner_check(reference_correlated_batch, "correlated pairs (`utils.data.CorrelatedPairs`)")
def check_correlated_generator(fn) -> None:
    """Check `fn(feature_probability, batch_size) -> (batch, inst, 2 * n_pairs)` against `utils.data.CorrelatedPairs`:
    each pair (features 2k, 2k+1) is active together with probability p, pairs independently, with independent
    uniform values."""
    what = "generate_correlated_batch"
    batch = _pair_batch(fn, what)
    active = batch != 0
    first, second = active[..., 0::2], active[..., 1::2]
    mismatch = (first != second).float().mean().item()
    if mismatch > 0:
        raise AssertionError(
            f"{what}: in {100 * mismatch:.1f}% of (sample, pair) cases one feature of a pair is active and the other "
            "not; "
            "correlated features are active together: draw one 'is the pair active?' number per pair, not per feature"
        )
    _check_feature_rates(active, what)
    assert_independent_activity(first, _PAIR_PROBABILITY, what, names="pair")
    _check_values(batch, active, what)
    n_inst, n_pairs = _PAIR_PROBABILITY.shape
    for k in range(n_inst):
        for pair in range(n_pairs):
            on = first[:, k, pair]
            a, b = batch[on, k, 2 * pair], batch[on, k, 2 * pair + 1]
            correlation = torch.corrcoef(torch.stack([a, b]).double())[0, 1].item()
            if abs(correlation) > 5 / len(a) ** 0.5:
                cause = " Likely cause: both features get one value draw." if correlation > 0.99 else ""
                raise AssertionError(
                    f"{what}: the two values of pair {pair} in instance {k} have correlation {correlation:.3f} over "
                    f"{len(a)} samples; they should be independent (only *whether* they are active is shared): draw "
                    f"each feature's value separately.{cause}"
                )
    assert_independent_values(batch[..., 0::2], first, what, names="pair")
    passed(what)


@learner_check(reference_anticorrelated_batch, "anticorrelated pairs (`utils.data.AnticorrelatedPairs`)")
def check_anticorrelated_generator(fn) -> None:
    """Check `fn(feature_probability, batch_size) -> (batch, inst, 2 * n_pairs)` against
    `utils.data.AnticorrelatedPairs`: each feature is active with probability p and never together
    with its partner; pairs are independent."""
    what = "generate_anticorrelated_batch"
    batch = _pair_batch(fn, what)
    active = batch != 0
    first, second = active[..., 0::2], active[..., 1::2]
    together = (first & second).float().mean().item()
    if together > 0:
        raise AssertionError(
            f"{what}: both features of a pair are active in {100 * together:.2f}% of (sample, pair) cases; "
            "anticorrelated features are never active together"
        )
    _check_feature_rates(
        active,
        what,
        {
            "the pair is active with probability p and one of its features is picked with a fair coin, so each feature "
            "has p/2: make the pair active with probability 2p": 0.5,
        },
    )
    # Pairs are independent of each other: which pairs are active, and which feature a pair picks.
    assert_independent_activity(first | second, 2 * _PAIR_PROBABILITY, what, names="pair")
    n_inst, n_pairs = _PAIR_PROBABILITY.shape
    for k in range(n_inst):
        for a in range(n_pairs):
            for b in range(a + 1, n_pairs):
                both = (first | second)[:, k, a] & (first | second)[:, k, b]
                m = int(both.sum())
                same = (first[both, k, a] == first[both, k, b]).float().mean().item()
                assert_rate(
                    same,
                    0.5,
                    m,
                    f"{what}: where pairs {a} and {b} of instance {k} are both active, the fraction in which they pick "
                    "the same feature (first or second)",
                    {
                        "one coin picks the feature for every pair: flip a coin for each pair": 1.0,
                    },
                )
    _check_values(batch, active, what)
    assert_independent_values(batch, active, what)
    passed(what)


# --- exercise 3.5 ---------------------------------------------------------------------------------


def reference_train_on_sampler(
    model,
    sample: Callable[[torch.Tensor, int], torch.Tensor],
    feature_probability: torch.Tensor,
    steps: int = 1000,
    batch_size: int = 256,
    lr: float = 1e-2,
    lr_scale: Schedule = constant_lr,
) -> torch.Tensor:
    """The answer to exercise 3.5: Adam on a fresh batch `sample(feature_probability, batch_size)` each step,
    at the rate `lr · lr_scale(step, steps)` (as `utils.train.optimize`); `(steps, inst)` per-instance losses,
    each measured before its step's update."""
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    losses = torch.empty(steps, model.cfg.n_inst)
    for step in range(steps):
        for group in optimizer.param_groups:
            group["lr"] = lr * lr_scale(step, steps)
        batch = sample(feature_probability, batch_size)
        per_instance = model.loss_per_instance(model(batch), batch)
        optimizer.zero_grad()
        per_instance.sum().backward()
        optimizer.step()
        losses[step] = per_instance.detach().cpu()
    return losses


_TRAIN_PROBABILITY = torch.tensor([[0.3, 0.5], [0.1, 0.2], [0.4, 0.6]])
_TRAIN_IMPORTANCE = torch.tensor([[1.0, 0.7, 0.4, 0.9], [1.0, 1.0, 1.0, 1.0], [2e-7, 1e-7, 3e-7, 1e-7]])
"""Instance 2's importances are tiny, so its gradients (about 1e-7) come near Adam's eps (1e-8): Adam ignores
a constant factor on the loss everywhere else, so only there does averaging the loss over the 3 instances
instead of summing it change training (by 5% of the loss within 30 steps; measured)."""
_TRAIN_STEPS, _TRAIN_BATCH, _TRAIN_LR, _TRAIN_DATA_SEED = 30, 64, 1e-2, 3


def _train_model() -> ToyModel:
    """The check's model: seeded weights; its own law (independent features at p = 0.05) differs from the
    sampler's correlated pairs, so a loop that draws from `model.generate_batch` trains on other data."""
    return ToyModel(
        ToyModelConfig(n_inst=3, n_features=4, d_hidden=2),
        feature_probability=0.05,
        importance=_TRAIN_IMPORTANCE,
        device="cpu",
        seed=7,
    )


def _mistaken_train(mistake: str) -> torch.Tensor:
    """The reference loop on a fresh check model and data stream, with one planted `mistake`."""
    model, steps = _train_model(), _TRAIN_STEPS
    optimizer = torch.optim.Adam(model.parameters(), lr=_TRAIN_LR)
    losses = torch.empty(steps, model.cfg.n_inst)
    with torch.random.fork_rng():
        torch.manual_seed(_TRAIN_DATA_SEED)
        for step in range(steps):
            scale = {"off by one": cosine_decay_lr(step + 1, steps), "ignored": 1.0}.get(
                mistake, cosine_decay_lr(step, steps)
            )
            for group in optimizer.param_groups:
                if mistake == "compounded":
                    group["lr"] *= scale
                elif mistake == "without lr":
                    group["lr"] = scale
                elif mistake != "one behind":
                    group["lr"] = _TRAIN_LR * scale
            batch = reference_correlated_batch(_TRAIN_PROBABILITY, _TRAIN_BATCH)
            per_instance = model.loss_per_instance(model(batch), batch)
            if mistake != "no zero_grad":
                optimizer.zero_grad()
            (per_instance.mean() if mistake == "averaged" else per_instance.sum()).backward()
            optimizer.step()
            if mistake == "one behind":
                for group in optimizer.param_groups:
                    group["lr"] = _TRAIN_LR * cosine_decay_lr(step, steps)
            if mistake == "after update":
                with torch.no_grad():
                    per_instance = model.loss_per_instance(model(batch), batch)
            losses[step] = per_instance.detach()
    return losses


_TRAIN_MISTAKES = {
    "no zero_grad": "the gradients pile up from step to step: call optimizer.zero_grad() before each backward()",
    "ignored": "the learning rate stays at lr: set each step's rate to lr * lr_scale(step, steps)",
    "off by one": "the schedule runs one step ahead: step k (counting from 0) uses lr * lr_scale(k, steps)",
    "one behind": "the schedule runs one step behind: set step k's rate before its optimizer.step(), not after",
    "compounded": "the multipliers compound (the rate is multiplied again every step): each step's rate is "
    "lr * lr_scale(step, steps), from the lr you were given",
    "without lr": "the rate is lr_scale(step, steps) alone: multiply it by lr",
    "averaged": "the loss is averaged over instances (.mean()): backpropagate its sum over instances, so that each "
    "instance trains as if it were alone",
    "after update": "each loss is recorded after its update: store the loss computed before optimizer.step()",
}


class _CountingSampler:
    """The check's sampling function (correlated pairs), recording how it was called."""

    def __init__(self):
        self.calls: list[tuple[object, object]] = []

    def __call__(self, feature_probability, batch_size):
        self.calls.append((feature_probability, batch_size))
        return reference_correlated_batch(_TRAIN_PROBABILITY, _TRAIN_BATCH)


def _check_sampler_calls(calls: list[tuple[object, object]]) -> None:
    """One call per step, with the `feature_probability` and `batch_size` the loop was given."""
    if not calls:
        raise AssertionError(
            "train_on_sampler never called sample: draw each step's batch with sample(feature_probability, "
            "batch_size) (model.generate_batch draws the model's own data, not the sampler's)"
        )
    if len(calls) == 1:
        raise AssertionError(
            f"train_on_sampler trains on one batch drawn once for all {_TRAIN_STEPS} steps: draw a fresh batch "
            "with sample(feature_probability, batch_size) at every step"
        )
    if len(calls) != _TRAIN_STEPS:
        raise AssertionError(
            f"train_on_sampler called sample {len(calls)} times in {_TRAIN_STEPS} steps: draw one batch per step, "
            "and use it both as the model's input and as the target"
        )
    for probability, batch_size in calls:
        if not (isinstance(probability, torch.Tensor) and torch.equal(probability, _TRAIN_PROBABILITY)):
            raise AssertionError(
                f"sample was called with feature_probability {probability!r:.60}: pass on the feature_probability "
                "train_on_sampler was given"
            )
        if batch_size != _TRAIN_BATCH:
            raise AssertionError(
                f"sample was called with batch_size {batch_size!r}: pass on the batch_size train_on_sampler was given "
                f"({_TRAIN_BATCH} here)"
            )


def _call_train(train_on_sampler, model: ToyModel, sampler: _CountingSampler) -> object:
    """The learner's loop on the check's model and data stream; a detached loss is named."""
    with torch.random.fork_rng():
        torch.manual_seed(_TRAIN_DATA_SEED)
        try:
            return call_learner(
                "train_on_sampler",
                train_on_sampler,
                model,
                sampler,
                _TRAIN_PROBABILITY.clone(),
                _TRAIN_STEPS,
                _TRAIN_BATCH,
                _TRAIN_LR,
                cosine_decay_lr,
            )
        except AssertionError as error:
            if "does not require grad" in str(error.__cause__):
                raise AssertionError(
                    "backward() was called on a loss cut off from the model's parameters (.detach(), .item() or "
                    "torch.no_grad()): backpropagate the loss computed from model(batch), and detach only the copy "
                    "you store"
                ) from error
            raise


@learner_check(reference_train_on_sampler, "training loop (the reference answer in `utils.checks.ch03`)")
def check_train_on_sampler(train_on_sampler) -> None:
    """`train_on_sampler(model, sample, feature_probability, steps, batch_size, lr, lr_scale) -> (steps, inst)`,
    compared step by step with the reference loop on the same model and random stream."""
    require_function(train_on_sampler, "train_on_sampler")
    model, sampler = _train_model(), _CountingSampler()
    start = model.W.detach().clone()
    losses = _call_train(train_on_sampler, model, sampler)
    _check_sampler_calls(sampler.calls)
    n_inst = model.cfg.n_inst
    if isinstance(losses, torch.Tensor) and losses.shape == (_TRAIN_STEPS,):
        raise AssertionError(
            f"train_on_sampler returned shape ({_TRAIN_STEPS},): one loss per step, summed over instances; return "
            f"each instance's loss, shape (steps, inst) = ({_TRAIN_STEPS}, {n_inst})"
        )
    assert_tensor(losses, "the returned loss history", (_TRAIN_STEPS, n_inst), "(steps, inst)")
    if torch.equal(model.W.detach(), start):
        raise AssertionError("the weights did not change: take one optimizer.step() per batch, on model.parameters()")
    reference = _train_model()
    with torch.random.fork_rng():
        torch.manual_seed(_TRAIN_DATA_SEED)
        expected = reference_train_on_sampler(
            reference, reference_correlated_batch, _TRAIN_PROBABILITY, _TRAIN_STEPS, _TRAIN_BATCH, _TRAIN_LR,
            cosine_decay_lr,
        )  # fmt: skip
    # Each instance's losses relative to its first (instance 2's are about 1e-8).
    got = losses.detach().cpu().float() / expected[0]
    relative = expected / expected[0]
    if not close(got[0], relative[0], atol=1e-5, rtol=1e-4):
        if close(got, _mistaken_train("after update") / expected[0], atol=1e-5, rtol=1e-4):
            raise AssertionError(_TRAIN_MISTAKES["after update"])
        raise AssertionError(
            f"the loss at step 0 is {losses[0].tolist()}, expected {expected[0].tolist()}: run model(batch) on the "
            "batch from sample(feature_probability, batch_size) and record model.loss_per_instance(out, batch)"
        )
    if not close(got, relative, atol=1e-5, rtol=1e-4):
        for mistake, message in _TRAIN_MISTAKES.items():
            if close(got, _mistaken_train(mistake) / expected[0], atol=1e-5, rtol=1e-4):
                raise AssertionError(f"the loss history differs from the reference from step 1 on: {message}")
    assert_close(
        got,
        relative,
        "the loss history (each instance's losses divided by its first)",
        "(step, inst)",
        atol=1e-5,
        rtol=1e-4,
        rule="each step: the rate lr * lr_scale(step, steps), batch = sample(feature_probability, batch_size), the "
        "loss per instance, optimizer.zero_grad(), backward() on the sum over instances, optimizer.step() (Adam)",
    )
    assert_close(model.W.detach(), reference.W.detach(), "the trained W", "(inst, d_hidden, feats)", atol=1e-5)
    passed("train_on_sampler")
