"""Chapter 3's checks accept correct answers written in several ways and reject planted mistakes, each
with a message that names it. The mistakes are written from the exercise text, as a learner would make them."""

import pytest
import torch

from utils import checks, metrics
from utils.checks.ch03 import reference_train_on_sampler
from utils.data import AnticorrelatedPairs, CorrelatedPairs

# --- exercise 3.1: dimensionality ------------------------------------------------------------------


def dimensionality_loop(W):
    n_inst, _, n_features = W.shape
    D = torch.zeros(n_inst, n_features)
    for k in range(n_inst):
        for i in range(n_features):
            norm = W[k, :, i].norm()
            if norm == 0:
                continue
            unit = W[k, :, i] / norm
            D[k, i] = norm**2 / sum((unit @ W[k, :, j]) ** 2 for j in range(n_features))
    return D


def dimensionality_nan_to_num(W):
    norms = W.norm(dim=1)
    overlaps = torch.einsum("khi,khj->kij", W / norms[:, None, :], W)
    return torch.nan_to_num(norms**2 / (overlaps**2).sum(-1), nan=0.0)


def dimensionality_cosines(W):
    """D_i = 1 / Σ_j cos²(i, j) ‖W_j‖² / ‖W_i‖², written with the cosine similarities."""
    cosine = metrics.cosine_similarities(W)  # (inst, feats, feats)
    norms = W.norm(dim=1)
    ratio = (norms[:, None, :] / norms[:, :, None].clamp_min(1e-8)) ** 2
    return torch.where(norms > 0, 1 / (cosine**2 * ratio).sum(-1).clamp_min(1e-8), 0.0)


@pytest.mark.parametrize(
    "correct", [metrics.dimensionality, dimensionality_loop, dimensionality_nan_to_num, dimensionality_cosines]
)
def test_dimensionality_check_accepts(correct, capsys):
    assert checks.check_dimensionality(correct) is correct
    assert "dimensionality: all checks passed" in capsys.readouterr().out


def unit(W):
    return W / W.norm(dim=1, keepdim=True).clamp_min(1e-8)


def guarded(numerator, denominator):
    return numerator / denominator.clamp_min(1e-8)


def mutating(W):
    W /= W.norm(dim=1, keepdim=True).clamp_min(1e-8)
    return metrics.dimensionality(W)


@pytest.mark.parametrize(
    "fn, message",
    [
        (
            lambda W: guarded(W.norm(dim=1) ** 2, (torch.einsum("khi,khj->kij", W, W) ** 2).sum(-1)),
            "Likely cause: the denominator uses W_i · W_j",
        ),
        (
            lambda W: guarded(W.norm(dim=1) ** 2, (metrics.overlaps(W) ** 2).sum(-1) - W.norm(dim=1) ** 2),
            "Likely cause: the denominator leaves out j = i",
        ),
        (
            lambda W: guarded(W.norm(dim=1), (torch.einsum("khi,khj->kij", unit(W), W) ** 2).sum(-1)),
            r"the numerator is ‖W_i‖, not ‖W_i‖²",
        ),
        (
            lambda W: guarded(W.norm(dim=1) ** 2, torch.einsum("khi,khj->kij", unit(W), W).abs().sum(-1)),
            "the overlaps are not squared",
        ),
        # structure: unlearned features, instances mixed, input modified
        (
            lambda W: (
                W.norm(dim=1) ** 2 / (torch.einsum("khi,khj->kij", W / W.norm(dim=1, keepdim=True), W) ** 2).sum(-1)
            ),
            "NaN or infinite for unlearned features",
        ),
        (
            lambda W: torch.where(W.norm(dim=1) > 0, metrics.dimensionality(W), 1.0),
            "unlearned features \\(zero columns\\) get 1",
        ),
        (
            lambda W: guarded(
                W.norm(dim=1) ** 2, ((torch.einsum("khi,lhj->kij", unit(W), W) / W.shape[0]) ** 2).sum(-1)
            ),
            "the overlaps mix instances",
        ),
        (mutating, "modified its input"),
        (lambda W: metrics.dimensionality(W).T, r"has shape \(6, 4\); expected \(inst, feats\) = \(4, 6\)"),
    ],
)
def test_dimensionality_check_rejects(fn, message):
    with pytest.raises(AssertionError, match=message):
        checks.check_dimensionality(fn)


# --- exercise 3.2: dims_per_feature ----------------------------------------------------------------


def dims_per_feature_loop(W):
    return torch.stack([W.shape[1] / (W[k] ** 2).sum() for k in range(W.shape[0])])


@pytest.mark.parametrize(
    "correct",
    [
        metrics.dims_per_feature,
        dims_per_feature_loop,
        lambda W: W.shape[1] / torch.linalg.matrix_norm(W) ** 2,
        lambda W: W.shape[1] / W.flatten(1).norm(dim=1) ** 2,
    ],
)
def test_dims_per_feature_check_accepts(correct, capsys):
    assert checks.check_dims_per_feature(correct) is correct
    assert "dims_per_feature: all checks passed" in capsys.readouterr().out


@pytest.mark.parametrize(
    "fn, message",
    [
        (lambda W: W.shape[1] / W.pow(2).sum(dim=(1, 2)).sqrt(), "Likely cause: it divides by ‖W‖_F"),
        (lambda W: W.shape[2] / W.pow(2).sum(dim=(1, 2)), "the numerator is the number of features"),
        (lambda W: W.pow(2).sum(dim=(1, 2)) / W.shape[1], "it is inverted"),
        (lambda W: W.shape[1] / W.pow(2).mean(dim=(1, 2)), "a mean of squares"),
        # structure: instances summed together, or one instance for all
        (lambda W: (W.shape[1] / W.pow(2).sum()).expand(W.shape[0]), "summed over every instance at once"),
        (lambda W: (W.shape[1] / W[0].pow(2).sum()).expand(W.shape[0]), "every instance uses instance 0's weights"),
        (lambda W: W.shape[1] / W.pow(2).sum(dim=(1, 2), keepdim=True), r"shape \(3, 1, 1\)"),
        (lambda W: float(W.shape[1] / W.pow(2).sum()), "should be a torch.Tensor, got float"),
    ],
)
def test_dims_per_feature_check_rejects(fn, message):
    with pytest.raises(AssertionError, match=message):
        checks.check_dims_per_feature(fn)


# --- exercises 3.3 and 3.4: correlated and anticorrelated pairs ------------------------------------


def library_correlated(p, n):
    return CorrelatedPairs(p).sample(n)


def library_anticorrelated(p, n):
    return AnticorrelatedPairs(p).sample(n)


def correlated_as_in_the_hint(p, n):
    active = torch.rand(n, *p.shape, 1) < p[..., None]
    return (active * torch.rand(n, *p.shape, 2)).flatten(-2)


def correlated_loop(p, n):
    n_inst, n_pairs = p.shape
    batch = torch.zeros(n, n_inst, 2 * n_pairs)
    for k in range(n_inst):
        for pair in range(n_pairs):
            on = torch.rand(n) < p[k, pair]
            batch[:, k, 2 * pair] = torch.where(on, torch.rand(n), 0.0)
            batch[:, k, 2 * pair + 1] = torch.where(on, torch.rand(n), 0.0)
    return batch


def correlated_float64(p, n):
    return correlated_as_in_the_hint(p.double(), n).double()


@pytest.mark.parametrize(
    "correct", [library_correlated, correlated_as_in_the_hint, correlated_loop, correlated_float64]
)
def test_correlated_check_accepts(correct, capsys):
    assert checks.check_correlated_generator(correct) is correct
    assert "generate_correlated_batch: all checks passed" in capsys.readouterr().out


def independent(p, n):
    p = p.repeat_interleave(2, dim=-1)
    return torch.where(torch.rand(n, *p.shape) < p, torch.rand(n, *p.shape), 0.0)


def pairs_from(active, values):
    """`active: (batch, inst, n_pairs)` and `values: (batch, inst, n_pairs, 2)` -> `(batch, inst, 2 n_pairs)`."""
    return (active[..., None] * values).flatten(-2)


@pytest.mark.parametrize(
    "fn, message",
    [
        (independent, "one feature of a pair is active and the other not"),
        # structure: the two values of a pair shared; one draw for every pair
        (
            lambda p, n: pairs_from(torch.rand(n, *p.shape) < p, torch.rand(n, *p.shape, 1).expand(-1, -1, -1, 2)),
            "both features get one value draw",
        ),
        (
            lambda p, n: pairs_from(torch.rand(n, p.shape[0], 1) < p, torch.rand(n, *p.shape, 2)),
            r"pairs 0 and 1 of instance 0 are both active.*Likely cause: pairs 0 and 1 share one random draw",
        ),
        # distribution: the activity draw reused as the value, a constant value
        (
            lambda p, n: (lambda u: pairs_from(u < p, torch.stack([u, torch.rand_like(u)], -1)))(
                torch.rand(n, *p.shape)
            ),
            r"values of feature 0 in instance 0.*Likely cause: the value reuses the number u < p",
        ),
        (lambda p, n: pairs_from(torch.rand(n, *p.shape) < p, torch.full((n, *p.shape, 2), 0.5)), r"one of \{0.5\}"),
        (
            lambda p, n: pairs_from(torch.rand(n, *p.shape) < p, torch.rand(n, *p.shape, 2) * 2 - 1),
            r"uniform on \[-1, 1\]",
        ),
        (
            lambda p, n: pairs_from(torch.rand(n, *p.shape) < p.repeat(1, 1)[:, [0, 0, 0]], torch.rand(n, *p.shape, 2)),
            "fraction of samples where feature 2",
        ),
        (
            lambda p, n: pairs_from(torch.rand(n, *p.shape) < p[:1], torch.rand(n, *p.shape, 2)),
            "every instance uses instance 0's probabilities",
        ),
        (lambda p, n: library_correlated(p, n)[:, :1], "shape"),
        (lambda p, n: library_correlated(p, n).bool(), "dtype torch.bool; expected floating-point"),
    ],
)
def test_correlated_check_rejects(fn, message):
    with pytest.raises(AssertionError, match=message):
        checks.check_correlated_generator(fn)


def anticorrelated_as_in_the_hint(p, n):
    pair_active = torch.rand(n, *p.shape) < 2 * p
    first = torch.rand(n, *p.shape) < 0.5
    which = torch.stack([first, ~first], dim=-1)
    return ((pair_active[..., None] & which) * torch.rand(n, *p.shape, 2)).flatten(-2)


def anticorrelated_loop(p, n):
    n_inst, n_pairs = p.shape
    batch = torch.zeros(n, n_inst, 2 * n_pairs)
    for k in range(n_inst):
        for pair in range(n_pairs):
            u = torch.rand(n)
            batch[:, k, 2 * pair] = torch.where(u < p[k, pair], torch.rand(n), 0.0)
            batch[:, k, 2 * pair + 1] = torch.where((u >= p[k, pair]) & (u < 2 * p[k, pair]), torch.rand(n), 0.0)
    return batch


@pytest.mark.parametrize("correct", [library_anticorrelated, anticorrelated_as_in_the_hint, anticorrelated_loop])
def test_anticorrelated_check_accepts(correct, capsys):
    assert checks.check_anticorrelated_generator(correct) is correct
    assert "generate_anticorrelated_batch: all checks passed" in capsys.readouterr().out


def anticorrelated(pair_active, first, values):
    which = torch.stack([first, ~first], dim=-1)
    return ((pair_active[..., None] & which) * values).flatten(-2)


@pytest.mark.parametrize(
    "fn, message",
    [
        (independent, "never active together"),
        (
            lambda p, n: anticorrelated(
                torch.rand(n, *p.shape) < p, torch.rand(n, *p.shape) < 0.5, torch.rand(n, *p.shape, 2)
            ),
            "Likely cause: the pair is active with probability p and one of its features is picked with a fair coin",
        ),
        # structure: one draw or one coin for every pair
        (
            lambda p, n: anticorrelated(
                torch.rand(n, p.shape[0], 1) < 2 * p, torch.rand(n, *p.shape) < 0.5, torch.rand(n, *p.shape, 2)
            ),
            "Likely cause: pairs 0 and 1 share one random draw",
        ),
        (
            lambda p, n: anticorrelated(
                torch.rand(n, *p.shape) < 2 * p,
                torch.rand(n, p.shape[0], 1).expand(-1, -1, p.shape[1]) < 0.5,
                torch.rand(n, *p.shape, 2),
            ),
            "Likely cause: one coin picks the feature for every pair",
        ),
        # distribution: the pair's draw reused as the value
        (
            lambda p, n: (
                lambda u: anticorrelated(u < 2 * p, torch.rand(n, *p.shape) < 0.5, u[..., None].expand(-1, -1, -1, 2))
            )(torch.rand(n, *p.shape)),
            r"Likely cause: the value reuses the number u < 2p",
        ),
        (
            lambda p, n: anticorrelated(
                torch.rand(n, *p.shape) < 2 * p, torch.rand(n, *p.shape) < 0.5, torch.full((n, *p.shape, 2), 0.5)
            ),
            r"one of \{0.5\}",
        ),
        (
            lambda p, n: anticorrelated(
                torch.rand(n, *p.shape) < 2 * p, torch.rand(n, *p.shape) < 0.8, torch.rand(n, *p.shape, 2)
            ),
            "fraction of samples where feature 0",
        ),
        (lambda p, n: library_anticorrelated(p, n) ** 2, "the active values of feature 0 in instance 0"),
    ],
)
def test_anticorrelated_check_rejects(fn, message):
    with pytest.raises(AssertionError, match=message):
        checks.check_anticorrelated_generator(fn)


def test_generator_checks_say_what_they_were_given():
    with pytest.raises(AssertionError, match="pass the function `generate_correlated_batch` itself"):
        checks.check_correlated_generator(library_correlated(torch.full((1, 1), 0.1), 5))


# --- exercise 3.5: training on your sampling function ----------------------------------------------


def scheduled_with_lambda_lr(model, sample, feature_probability, steps=1000, batch_size=256, lr=1e-2, lr_scale=None):
    """LambdaLR sets the rate lr * lr_scale(step, steps) for each step; zero_grad at the end of the step."""
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_scale(step, steps))
    history = []
    for _ in range(steps):
        batch = sample(feature_probability, batch_size)
        out = model(batch)
        history.append(model.loss_per_instance(out, batch).detach())
        model.calculate_loss(out, batch).backward()
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
    return torch.stack(history)


def explicit_einsum_loss(model, sample, feature_probability, steps=1000, batch_size=256, lr=1e-2, lr_scale=None):
    """The loss written out, Adam on [W, b_final], the rate set after backward (still before the step)."""
    optimizer = torch.optim.Adam([model.W, model.b_final], lr=lr)
    losses = torch.zeros(steps, model.cfg.n_inst)
    for step in range(steps):
        x = sample(feature_probability, batch_size)
        h = torch.einsum("bif,ihf->bih", x, model.W)
        out = torch.relu(torch.einsum("bih,ihf->bif", h, model.W) + model.b_final)
        per_instance = torch.einsum("bif,if->i", (out - x) ** 2, model.importance) / (batch_size * model.cfg.n_features)
        optimizer.zero_grad()
        per_instance.sum().backward()
        optimizer.param_groups[0]["lr"] = lr * lr_scale(step, steps)
        optimizer.step()
        losses[step] = per_instance.detach()
    return losses


@pytest.mark.parametrize("correct", [reference_train_on_sampler, scheduled_with_lambda_lr, explicit_einsum_loss])
def test_train_on_sampler_check_accepts(correct, capsys):
    assert checks.check_train_on_sampler(correct) is correct
    assert "train_on_sampler: all checks passed" in capsys.readouterr().out


def sampler_loop(mistake):
    """A loop written from the exercise text with one `mistake`."""

    def train(model, sample, feature_probability, steps=1000, batch_size=256, lr=1e-2, lr_scale=None):
        optimizer = torch.optim.Adam(model.parameters(), lr=lr)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_scale(step, steps))
        fixed = sample(feature_probability, batch_size) if mistake == "fixed batch" else None
        losses = torch.empty(steps, model.cfg.n_inst)
        for step in range(steps):
            if mistake == "compounded":
                optimizer.param_groups[0]["lr"] *= lr_scale(step, steps)
            elif mistake == "scale without lr":
                optimizer.param_groups[0]["lr"] = lr_scale(step, steps)
            elif mistake == "scheduler first":
                scheduler.step()
            elif mistake != "schedule ignored":
                optimizer.param_groups[0]["lr"] = lr * lr_scale(step, steps)
            if fixed is not None:
                batch = fixed
            elif mistake == "model's data":
                batch = model.generate_batch(batch_size)
            else:
                batch = sample(feature_probability, batch_size)
            target = sample(feature_probability, batch_size) if mistake == "separate target" else batch
            per_instance = model.loss_per_instance(model(batch), target)
            if mistake == "detached":
                per_instance = per_instance.detach()
            if mistake != "no zero_grad":
                optimizer.zero_grad()
            (per_instance.mean() if mistake == "mean over instances" else per_instance.sum()).backward()
            optimizer.step()
            if mistake == "after update":
                with torch.no_grad():
                    per_instance = model.loss_per_instance(model(batch), batch)
            losses[step] = per_instance.detach()
        return losses.sum(dim=1) if mistake == "summed history" else losses

    return train


@pytest.mark.parametrize(
    "mistake, message",
    [
        ("fixed batch", "one batch drawn once"),  # structure: a fresh batch every step
        ("model's data", r"never called sample.*model.generate_batch"),  # distribution: the sampler's data
        ("separate target", r"called sample 60 times in 30 steps"),  # structure: one batch per step
        ("detached", r"cut off from the model's parameters"),  # structure: a gradient must flow
        ("no zero_grad", r"gradients pile up.*zero_grad"),
        ("schedule ignored", r"stays at lr: .*lr \* lr_scale\(step, steps\)"),
        ("scheduler first", "one step ahead"),
        ("compounded", "multipliers compound"),
        ("scale without lr", r"lr_scale\(step, steps\) alone: multiply it by lr"),
        ("mean over instances", "averaged over instances"),
        ("after update", "recorded after its update"),
        ("summed history", r"summed over instances; return each instance's loss"),
    ],
)
@pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step\\(\\)` before")
def test_train_on_sampler_check_catches(mistake, message):
    with pytest.raises(AssertionError, match=message):
        checks.check_train_on_sampler(sampler_loop(mistake))
