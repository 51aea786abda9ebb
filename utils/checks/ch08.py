"""Checks for chapter 8's exercises: learning times, the interference attack, and the storage ratio.

Each check runs the learner's function next to the library's (`utils.dynamics`, `utils.adversarial`,
`utils.memorisation`) on seeded input and raises AssertionError saying what is wrong, naming a likely
cause only when the learner's answer matches that mistake.
"""

from __future__ import annotations

import torch

from utils import adversarial, dynamics, memorisation
from utils.checks.compare import assert_close, call_learner, learner_check, passed, require_function


def _trajectories() -> tuple[torch.Tensor, torch.Tensor]:
    """Test norms `(7, 2, 5)` at steps 0, 1, 2, 4, 8, 16, 32: features rising at different times, one
    touching the threshold exactly (not above it), one never learned, one that rises and falls back."""
    steps = torch.tensor([0, 1, 2, 4, 8, 16, 32])
    norms = torch.zeros(7, 2, 5)
    norms[:, 0, 0] = torch.tensor([0.0, 0.2, 0.6, 0.9, 1.0, 1.0, 1.0])  # learned at step 2
    norms[:, 0, 1] = torch.tensor([0.0, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0])  # exactly 0.5 at step 8: above only at 16
    norms[:, 0, 2] = 0.01  # never
    norms[:, 0, 3] = torch.tensor([0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9])  # from the first record
    norms[:, 0, 4] = torch.tensor([0.0, 0.0, 0.0, 0.7, 0.2, 0.1, 0.0])  # up at step 4, then forgotten
    norms[:, 1] = torch.linspace(0, 1.2, 7)[:, None] * torch.tensor([1.0, 0.5, 2.0, 0.0, 0.8])
    return norms, steps


@learner_check(dynamics.learning_times, "`utils.dynamics.learning_times`")
def check_learning_times(fn) -> None:
    """The learner's `learning_times(norms, steps, threshold)`: `(n_log, inst, feats)`, `(n_log,)` ->
    `(inst, feats)`."""
    require_function(fn, "learning_times")
    norms, steps = _trajectories()
    given = norms.clone(), steps.clone()
    got = call_learner("learning_times", fn, given[0], given[1], 0.5)
    if not (torch.equal(given[0], norms) and torch.equal(given[1], steps)):
        raise AssertionError("learning_times modified norms or steps: compute on new tensors")
    expected = dynamics.learning_times(norms, steps, 0.5)
    if not isinstance(got, torch.Tensor) or tuple(got.shape) != tuple(expected.shape):
        shape = tuple(got.shape) if isinstance(got, torch.Tensor) else type(got).__name__
        raise AssertionError(
            f"learning_times should be a tensor of shape (inst, feats) = {tuple(expected.shape)}, got {shape} "
            "(norms is (n_log, inst, feats): time is its first axis)"
        )
    above = norms > 0.5
    last = torch.where(above.any(0), steps[(above.long() * torch.arange(7)[:, None, None]).argmax(0)], -1)
    assert_close(
        got.double(),
        expected.double(),
        "learning_times",
        "(inst, feats)",
        atol=0,
        rtol=0,
        rule="It should be the first recorded *step* (from `steps`) at which the norm is above the threshold, "
        "and -1 for a feature whose norm never is.",
        mistakes={
            "the index of the record, not the step: look the index up in `steps`": torch.where(
                above.any(0), above.long().argmax(0), -1
            ).double(),
            "a feature that is never learned gets 0 (argmax of all False is 0): give it -1": torch.where(
                above.any(0), steps[above.long().argmax(0)], 0
            ).double(),
            "the norm counts at the threshold (>=): it must be above it (>)": dynamics.learning_times(
                norms, steps, 0.5 - 1e-6
            ).double(),
            "the last step above the threshold, not the first": last.double(),
            "the first step at which the norm is below the threshold": torch.where(
                (~above).any(0), steps[(~above).long().argmax(0)], -1
            ).double(),
        },
    )
    passed("learning_times")


def _attack_weights() -> torch.Tensor:
    """Test weights `(3, 2, 5)`: random, an orthogonal pair with three zero features (no interference for
    feature 0), and an antipodal pair plus noise."""
    g = torch.Generator().manual_seed(8)
    W = torch.randn(3, 2, 5, generator=g)
    W[1] = 0.0
    W[1, 0, 0], W[1, 1, 1] = 1.0, 0.7
    W[2, :, 1] = -W[2, :, 0]
    return W


@learner_check(adversarial.interference_attack, "`utils.adversarial.interference_attack`")
def check_interference_attack(fn) -> None:
    """The learner's `interference_attack(W, feature, eps)`: `(inst, d_hidden, feats)` -> `(inst, feats)`."""
    require_function(fn, "interference_attack")
    W = _attack_weights()
    for feature, eps in ((0, 0.3), (3, 0.1)):
        given = W.clone()
        got = call_learner("interference_attack", fn, given, feature, eps)
        if not torch.equal(given, W):
            raise AssertionError("interference_attack modified W: compute on new tensors")
        expected = adversarial.interference_attack(W, feature, eps)
        gram = torch.einsum("khi,khj->kij", W, W)
        row = gram[:, feature]
        own = row.clone()
        own[:, feature] = 0
        length = own.norm(dim=1, keepdim=True)

        def unit(v: torch.Tensor) -> torch.Tensor:
            return v / v.norm(dim=1, keepdim=True).clamp_min(1e-30)

        assert_close(
            got,
            expected,
            f"interference_attack(W, feature={feature}, eps={eps})",
            "(inst, feats)",
            atol=1e-5,
            rtol=1e-4,
            rule="It should be -eps times the unit vector along row `feature` of WᵀW with that feature's own entry "
            "set to 0 (all zeros where that row is zero).",
            mistakes={
                "the attack raises the read-out: it should lower it (a minus sign)": -expected,
                "the feature's own entry is kept: the attack may only change the other features": -eps * unit(row),
                "the sign of each entry times eps (an ∞-norm attack): the bound is on the Euclidean norm": -eps
                * own.sign(),
                "not normalised: scale the row to length eps": -eps * own,
                "the row is normalised across instances: each instance gets its own unit vector": -eps
                * own
                / own.norm(),
                "an instance with no interference gets NaN or a non-zero vector: return zeros there": torch.where(
                    length > 0, expected, float("nan")
                ),
                "the attack ignores `feature` and always targets feature 0": adversarial.interference_attack(
                    W, 0, eps
                )
                if feature
                else None,
            },
            compare=None,
        )
    passed("interference_attack")


def _storage_inputs() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    W = torch.randn(3, 2, 6, generator=g)
    W[1, :, 4] *= 5  # one long feature in instance 1
    x = (torch.rand(4, 3, 6, generator=g) < 0.4) * torch.rand(4, 3, 6, generator=g)
    x[:, 2] = torch.rand(4, 6, generator=g)  # dense points in instance 2
    return W, x


@learner_check(memorisation.storage_ratio, "`utils.memorisation.storage_ratio`")
def check_storage_ratio(fn) -> None:
    """The learner's `storage_ratio(W, x)`: `(inst, d_hidden, feats)`, `(T, inst, feats)` -> `(inst,)`."""
    require_function(fn, "storage_ratio")
    W, x = _storage_inputs()
    given = W.clone(), x.clone()
    got = call_learner("storage_ratio", fn, given[0], given[1])
    if not (torch.equal(given[0], W) and torch.equal(given[1], x)):
        raise AssertionError("storage_ratio modified W or x: compute on new tensors")
    expected = memorisation.storage_ratio(W, x)
    hidden = torch.einsum("tkf,khf->tkh", x, W)
    lengths = hidden.norm(dim=2)
    longest = W.norm(dim=1).max(dim=1).values
    assert_close(
        got,
        expected,
        "storage_ratio",
        "(inst,)",
        rule="It should be, for each instance, the mean over its points of ‖W x_t‖ divided by the largest ‖W_i‖.",
        mistakes={
            "the mean of the squared lengths ‖W x_t‖²: use the lengths": (lengths**2).mean(0) / longest,
            "the sum over points, not the mean": lengths.sum(0) / longest,
            "divided by the mean feature length: use the longest feature": lengths.mean(0) / W.norm(dim=1).mean(1),
            "the longest feature over all instances: each instance has its own": lengths.mean(0) / longest.max(),
            "the hidden vectors go through a ReLU: h = W x has no ReLU in this model": torch.relu(hidden)
            .norm(dim=2)
            .mean(0)
            / longest,
            "the length of the mean hidden vector, not the mean length": hidden.mean(0).norm(dim=1) / longest,
            "the feature lengths are taken over the features axis (rows of W): ‖W_i‖ is a column's length": (
                lengths.mean(0) / W.norm(dim=2).max(dim=1).values
            ),
        },
    )
    passed("storage_ratio")


def _sgd_model():
    """A small seeded tied model `(2 inst, 6 feats, 2 hidden)` for the SGD check."""
    from utils.models import ToyModel, ToyModelConfig

    return ToyModel(
        ToyModelConfig(2, 6, 2), feature_probability=torch.tensor([[0.3], [0.1]]), importance=0.8 ** torch.arange(6),
        device="cpu", seed=4,
    )


def _sgd_run(fn, steps: int = 7, lr: float = 0.5, batch_size: int = 64, every: int = 3, **variant):
    """Run `fn` (or the library's `train_sgd` with a planted `variant`) on a fresh `_sgd_model`."""
    model = _sgd_model()
    generator = torch.Generator().manual_seed(11)
    if fn is not None:
        return call_learner("train_sgd", fn, model, steps, lr, batch_size, every, generator)
    return _sgd_variant(model, steps, lr, batch_size, every, generator, **variant)


def _sgd_variant(model, steps, lr, batch_size, every, generator, accumulate=False, before=False, alias=False,
                 mean=False, momentum=0.0, one_batch=False, offset=0):
    """`dynamics.train_sgd` with one planted mistake switched on (for naming the learner's mistake)."""
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    recorded, weights, losses = [], [], []
    batch = model.generate_batch(batch_size, generator)
    for step in range(steps):
        if not accumulate:
            optimizer.zero_grad()
        if step and not one_batch:
            batch = model.generate_batch(batch_size, generator)
        loss = model.loss_per_instance(model(batch), batch)
        record = step % every == offset
        if record and before:
            weights.append(model.W.detach().clone())
        (loss.mean() if mean else loss.sum()).backward()
        optimizer.step()
        losses.append(loss.detach())
        if record:
            recorded.append(step)
            if not before:
                weights.append(model.W if alias else model.W.detach().clone())
    return torch.tensor(recorded), torch.stack([w.detach() for w in weights]), torch.stack(losses)


@learner_check(dynamics.train_sgd, "`utils.dynamics.train_sgd`")
def check_train_sgd(fn) -> None:
    """The learner's `train_sgd(model, steps, lr, batch_size, record_every, generator)` -> recorded steps
    `(n_log,)`, weights `(n_log, inst, d_hidden, feats)`, losses `(steps, inst)`."""
    require_function(fn, "train_sgd")
    got = _sgd_run(fn)
    if not isinstance(got, tuple) or len(got) != 3:
        raise AssertionError(f"train_sgd should return three tensors (steps, weights, losses), got {got!r:.60}")
    expected = _sgd_run(None)
    steps = torch.as_tensor(got[0])
    if tuple(steps.shape) != (3,) or not torch.equal(steps.long(), expected[0]):
        raise AssertionError(
            f"train_sgd recorded steps {steps.tolist()}, expected {expected[0].tolist()} for 7 steps recorded every 3: "
            "record after the update of every step s with s % record_every == 0, counting steps from 0"
        )
    variants = {
        "the gradients are never cleared (call optimizer.zero_grad() every step): they add up from step to step": {
            "accumulate": True
        },
        "W is recorded before the step's update: record it after optimizer.step()": {"before": True},
        "the mean of the per-model losses is descended: each model's step must come from its own loss (their sum)": {
            "mean": True
        },
        "this is SGD with momentum: plain SGD has none": {"momentum": 0.9},
        "one batch is reused at every step: draw a fresh batch each step": {"one_batch": True},
    }
    plain = {key: _sgd_run(None, **value) for key, value in variants.items()}
    assert_close(
        got[1],
        expected[1],
        "train_sgd's weights",
        "(n_log, inst, d_hidden, feats)",
        rule="Each step: zero the gradients, draw a fresh batch, descend the sum of loss_per_instance with "
        "torch.optim.SGD (no momentum), then record a copy of W on recorded steps.",
        mistakes={
            "every record is the same tensor, model.W itself, which kept changing: store model.W.detach().clone()":
            expected[1][-1:].expand_as(expected[1]).clone(),
            **{key: value[1] for key, value in plain.items()},
        },
    )
    assert_close(
        got[2],
        expected[2],
        "train_sgd's losses",
        "(steps, inst)",
        rule="Keep loss_per_instance of every step's batch (computed before that step's update), one row per step.",
        mistakes={key: value[2] for key, value in plain.items()},
    )
    passed("train_sgd")


@learner_check(adversarial.vulnerability_from_dimensionality, "`utils.adversarial.vulnerability_from_dimensionality`")
def check_vulnerability_from_D(fn) -> None:
    """The learner's `vulnerability_from_D(D)`: dimensionalities in (0, 1], any shape -> the same shape."""
    require_function(fn, "vulnerability_from_D")
    D = torch.tensor([[1.0, 0.5, 0.4, 0.25], [0.9, 0.1, 1 / 3, 0.05]], dtype=torch.float64)
    given = D.clone()
    got = call_learner("vulnerability_from_D", fn, given)
    if not torch.equal(given, D):
        raise AssertionError("vulnerability_from_D modified D: compute on a new tensor")
    assert_close(
        got,
        adversarial.vulnerability_from_dimensionality(D),
        "vulnerability_from_D",
        "(inst, feats)",
        rule="It should be ‖r_j‖ / ‖W_j‖², written with D_j alone, for every entry (0 where D_j = 1).",
        mistakes={
            "√(1/D): the feature's own term is still in ‖r_j‖ (subtract it: 1/D - 1)": (1 / D).sqrt(),
            "1/D - 1 is the squared ratio: take its square root": 1 / D - 1,
            "√(1 - D): D_j = ‖W_j‖⁴ / Σ_k (W_j · W_k)², so ‖r_j‖² / ‖W_j‖⁴ = 1/D_j - 1": (1 - D).sqrt(),
            "the inverse, √(D / (1 - D)): the ratio is interference over the feature's own term": (
                D / (1 - D).clamp_min(1e-12)
            ).sqrt(),
            "1/√D - 1: subtract 1 under the square root": 1 / D.sqrt() - 1,
        },
    )
    passed("vulnerability_from_D")
