"""Chapter 8's checks accept correct answers written in several ways and reject planted mistakes, each with
a message that names it. The mistakes are written from the exercise text, as a learner would make them."""

import math

import pytest
import torch

from utils import adversarial, dynamics, memorisation
from utils.checks import check_interference_attack, check_learning_times, check_storage_ratio

# --- exercise 8.1: learning times ----------------------------------------------------------------


def times_loop(norms, steps, threshold=0.5):
    n_log, n_inst, n_feats = norms.shape
    out = torch.full((n_inst, n_feats), -1, dtype=torch.long)
    for k in range(n_inst):
        for i in range(n_feats):
            for t in range(n_log):
                if norms[t, k, i] > threshold:
                    out[k, i] = int(steps[t])
                    break
    return out


def times_cumsum_float(norms, steps, threshold=0.5):  # floats are fine: the text asks for whole numbers
    above = (norms > threshold).double()
    first = (above.cumsum(0) == 1) & (above > 0)
    hit = (first.double() * steps.double()[:, None, None]).sum(0)
    return torch.where(above.sum(0) > 0, hit, -1.0)


@pytest.mark.parametrize("correct", [dynamics.learning_times, times_loop, times_cumsum_float])
def test_learning_times_check_accepts(correct, capsys):
    assert check_learning_times(correct) is correct
    assert "learning_times: all checks passed" in capsys.readouterr().out


def first_index(norms, steps, threshold=0.5):
    above = norms > threshold
    return torch.where(above.any(0), above.long().argmax(0), -1)


def never_is_zero(norms, steps, threshold=0.5):
    return steps[(norms > threshold).long().argmax(0)]


def at_or_above(norms, steps, threshold=0.5):
    above = norms >= threshold
    return torch.where(above.any(0), steps[above.long().argmax(0)], -1)


def last_above(norms, steps, threshold=0.5):
    above = norms > threshold
    position = (above.long() * torch.arange(len(steps))[:, None, None]).argmax(0)
    return torch.where(above.any(0), steps[position], -1)


def first_below(norms, steps, threshold=0.5):
    below = norms <= threshold
    return torch.where(below.any(0), steps[below.long().argmax(0)], -1)


def wrong_axis(norms, steps, threshold=0.5):
    above = norms > threshold
    return torch.where(above.any(1), above.long().argmax(1), -1)


def clamps_in_place(norms, steps, threshold=0.5):
    norms.clamp_(max=threshold * 2)
    return dynamics.learning_times(norms, steps, threshold)


@pytest.mark.parametrize(
    "planted, message",
    [
        (first_index, "Likely cause: the index of the record, not the step"),
        (never_is_zero, "Likely cause: a feature that is never learned gets 0"),
        (at_or_above, r"Likely cause: the norm counts at the threshold \(>=\)"),
        # structure over time: the last crossing, the first step below, the wrong axis for time
        (last_above, "Likely cause: the last step above the threshold, not the first"),
        (first_below, "Likely cause: the first step at which the norm is below the threshold"),
        (wrong_axis, r"shape \(inst, feats\) = \(2, 5\), got \(7, 5\).*time is its first axis"),
        (clamps_in_place, "learning_times modified norms or steps"),
        (lambda norms, steps, threshold=0.5: dynamics.learning_times(norms, steps, threshold).tolist(), "got list"),
    ],
)
def test_learning_times_check_rejects(planted, message):
    with pytest.raises(AssertionError, match=message):
        check_learning_times(planted)


# --- exercise 8.3: the interference attack --------------------------------------------------------


def attack_loop(W, feature, eps):
    n_inst, _, n_feats = W.shape
    out = torch.zeros(n_inst, n_feats)
    for k in range(n_inst):
        row = torch.tensor([float(W[k, :, feature] @ W[k, :, i]) if i != feature else 0.0 for i in range(n_feats)])
        if row.norm() > 0:
            out[k] = -eps * row / row.norm()
    return out


def attack_gram_float64(W, feature, eps):
    gram = W.double().transpose(1, 2) @ W.double()
    row = gram[:, feature].clone()
    row[:, feature] = 0
    length = row.norm(dim=1, keepdim=True)
    return torch.where(length > 0, -eps * row / length.clamp_min(1e-300), 0.0)


@pytest.mark.parametrize("correct", [adversarial.interference_attack, attack_loop, attack_gram_float64])
def test_interference_attack_check_accepts(correct, capsys):
    assert check_interference_attack(correct) is correct
    assert "interference_attack: all checks passed" in capsys.readouterr().out


def row_of(W, feature, keep_own=False):
    row = torch.einsum("khf,kh->kf", W, W[:, :, feature])
    if not keep_own:
        row[:, feature] = 0
    return row


def unit(row):
    return row / row.norm(dim=1, keepdim=True).clamp_min(1e-30)


@pytest.mark.parametrize(
    "planted, message",
    [
        (lambda W, f, eps: -adversarial.interference_attack(W, f, eps), "Likely cause: the attack raises the read-out"),
        (lambda W, f, eps: -eps * unit(row_of(W, f, keep_own=True)), "Likely cause: the feature's own entry is kept"),
        (lambda W, f, eps: -eps * row_of(W, f).sign(), r"Likely cause: the sign of each entry times eps"),
        (lambda W, f, eps: -eps * row_of(W, f), "Likely cause: not normalised"),
        # structure: one unit vector for all instances; NaN where nothing interferes; the feature argument ignored
        (lambda W, f, eps: -eps * row_of(W, f) / row_of(W, f).norm(), "the row is normalised across instances"),
        (lambda W, f, eps: adversarial.interference_attack(W, 0, eps), "Likely cause: the attack ignores `feature`"),
        (lambda W, f, eps: -eps * unit(W[:, :, f]), r"has shape \(3, 2\); expected \(inst, feats\) = \(3, 5\)"),
        (lambda W, f, eps: adversarial.interference_attack(W.mul_(2), f, eps), "interference_attack modified W"),
    ],
)
def test_interference_attack_check_rejects(planted, message):
    with pytest.raises(AssertionError, match=message):
        check_interference_attack(planted)


def test_interference_attack_check_names_the_zero_row_mistake():
    def nan_where_no_interference(W, f, eps):
        row = row_of(W, f)
        length = row.norm(dim=1, keepdim=True)
        return torch.where(length > 0, -eps * row / length.clamp_min(1e-30), float("nan"))

    with pytest.raises(AssertionError, match="contains NaN or infinity .first at inst 1"):
        check_interference_attack(nan_where_no_interference)


# --- exercise 8.5: the storage ratio --------------------------------------------------------------


def ratio_loop(W, x):
    n_inst = W.shape[0]
    out = torch.zeros(n_inst)
    for k in range(n_inst):
        lengths = [float((W[k] @ x[t, k]).norm()) for t in range(x.shape[0])]
        out[k] = sum(lengths) / len(lengths) / max(float(W[k, :, i].norm()) for i in range(W.shape[2]))
    return out


def ratio_matmul_float64(W, x):
    hidden = x.double().transpose(0, 1) @ W.double().transpose(1, 2)  # (inst, T, d_hidden)
    return hidden.norm(dim=2).mean(dim=1) / torch.linalg.vector_norm(W.double(), dim=1).amax(dim=1)


@pytest.mark.parametrize("correct", [memorisation.storage_ratio, ratio_loop, ratio_matmul_float64])
def test_storage_ratio_check_accepts(correct, capsys):
    assert check_storage_ratio(correct) is correct
    assert "storage_ratio: all checks passed" in capsys.readouterr().out


def hidden(W, x):
    return torch.einsum("tkf,khf->tkh", x, W)


def longest(W):
    return W.norm(dim=1).max(dim=1).values


def lengths(W, x):
    return hidden(W, x).norm(dim=2)


@pytest.mark.parametrize(
    "planted, message",
    [
        (lambda W, x: (lengths(W, x) ** 2).mean(0) / longest(W), "Likely cause: the mean of the squared lengths"),
        (lambda W, x: lengths(W, x).sum(0) / longest(W), "Likely cause: the sum over points, not the mean"),
        (lambda W, x: lengths(W, x).mean(0) / W.norm(dim=1).mean(1), "cause: divided by the mean feature length"),
        # structure: one longest feature for all instances; a ReLU the model does not have; the length of the mean
        (lambda W, x: lengths(W, x).mean(0) / longest(W).max(), "Likely cause: the longest feature over all instances"),
        (lambda W, x: hidden(W, x).relu().norm(dim=2).mean(0) / longest(W), "the hidden vectors go through a ReLU"),
        (lambda W, x: hidden(W, x).mean(0).norm(dim=1) / longest(W), "Likely cause: the length of the mean hidden"),
        (lambda W, x: lengths(W, x).mean(0) / W.norm(dim=2).amax(1), "feature lengths are taken over the features"),
        (lambda W, x: lengths(W, x).mean(1), r"has shape \(4,\); expected \(inst,\) = \(3,\)"),
        (lambda W, x: memorisation.storage_ratio(W.abs_(), x), "storage_ratio modified W or x"),
    ],
)
def test_storage_ratio_check_rejects(planted, message):
    with pytest.raises(AssertionError, match=message):
        check_storage_ratio(planted)


# --- exercise 8.2: training with plain SGD --------------------------------------------------------


def sgd_by_hand(model, steps, lr, batch_size, record_every, generator=None):  # the update written out, no optimizer
    recorded, weights, losses = [], [], []
    for step in range(steps):
        batch = model.generate_batch(batch_size, generator)
        loss = model.loss_per_instance(model(batch), batch)
        grads = torch.autograd.grad(loss.sum(), list(model.parameters()))
        with torch.no_grad():
            for parameter, grad in zip(model.parameters(), grads):
                parameter -= lr * grad
        losses.append(loss.detach())
        if step % record_every == 0:
            recorded.append(step)
            weights.append(model.W.detach().clone())
    return torch.tensor(recorded), torch.stack(weights), torch.stack(losses)


def sgd_preallocated(model, steps, lr, batch_size, record_every, generator=None):  # tensors filled in place
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.0)
    n_log = (steps - 1) // record_every + 1
    weights = torch.empty(n_log, *model.W.shape)
    losses = torch.empty(steps, model.W.shape[0])
    for step in range(steps):
        batch = model.generate_batch(batch_size, generator)
        optimizer.zero_grad(set_to_none=False)
        loss = model.loss_per_instance(model(batch), batch)
        loss.sum().backward()
        optimizer.step()
        losses[step] = loss.detach()
        if step % record_every == 0:
            weights[step // record_every] = model.W.detach()
    return torch.arange(0, steps, record_every), weights, losses


@pytest.mark.parametrize("correct", [dynamics.train_sgd, sgd_by_hand, sgd_preallocated])
def test_train_sgd_check_accepts(correct, capsys):
    from utils.checks import check_train_sgd

    assert check_train_sgd(correct) is correct
    assert "train_sgd: all checks passed" in capsys.readouterr().out


def _sgd(model, steps, lr, batch_size, record_every, generator, *, zero=True, fresh=True, momentum=0.0,
         mean=False, copy=True, before=False, first=0, keep_loss=True):
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    recorded, weights, losses = [], [], []
    batch = model.generate_batch(batch_size, generator)
    for step in range(steps):
        if zero:
            optimizer.zero_grad()
        if fresh and step:
            batch = model.generate_batch(batch_size, generator)
        loss = model.loss_per_instance(model(batch), batch)
        if before and step % record_every == first:
            weights.append(model.W.detach().clone())
        (loss.mean() if mean else loss.sum()).backward()
        optimizer.step()
        losses.append(loss.detach() if keep_loss else model.loss_per_instance(model(batch), batch).detach())
        if step % record_every == first:
            recorded.append(step)
            if not before:
                weights.append(model.W.detach().clone() if copy else model.W.detach())
    return torch.tensor(recorded), torch.stack(weights), torch.stack(losses)


SGD_MISTAKES = [  # (mistake, options, words the message must contain)
    ("no zero_grad", {"zero": False}, "never cleared"),
    ("one batch for every step", {"fresh": False}, "fresh batch"),  # structural: the data law over steps
    ("momentum", {"momentum": 0.9}, "momentum"),
    ("mean over models", {"mean": True}, "its own loss"),  # structural: models coupled through one scalar
    ("W not copied", {"copy": False}, "clone"),
    ("recorded before the update", {"before": True}, "before the step"),
    ("records at s % every == 1", {"first": 1}, "s % record_every == 0"),
    ("loss after the update", {"keep_loss": False}, "before that step's update"),
]


@pytest.mark.parametrize("mistake, options, words", SGD_MISTAKES, ids=[m[0] for m in SGD_MISTAKES])
def test_train_sgd_check_names_mistake(mistake, options, words):
    from utils.checks import check_train_sgd

    def wrong(model, steps, lr, batch_size, record_every, generator=None):
        return _sgd(model, steps, lr, batch_size, record_every, generator, **options)

    with pytest.raises(AssertionError, match=words.replace("(", r"\(").replace(")", r"\)").replace("%", "%")):
        check_train_sgd(wrong)


# --- exercise 8.4: vulnerability from the dimensionality ------------------------------------------


def vulnerability_loop(D):
    out = torch.empty_like(D)
    for index in range(D.numel()):
        out.view(-1)[index] = math.sqrt(1 / D.view(-1)[index].item() - 1)
    return out


def vulnerability_ratio(D):  # another form of the same expression
    return torch.sqrt((1 - D) / D)


@pytest.mark.parametrize("correct", [adversarial.vulnerability_from_dimensionality, vulnerability_loop,
                                     vulnerability_ratio])
def test_vulnerability_from_D_check_accepts(correct, capsys):
    from utils.checks import check_vulnerability_from_D

    assert check_vulnerability_from_D(correct) is correct
    assert "vulnerability_from_D: all checks passed" in capsys.readouterr().out


def vulnerability_in_place(D):  # structural: overwrites the learner's input
    return D.reciprocal_().sub_(1).sqrt_()


def vulnerability_mean(D):  # structural: one number per instance instead of one per feature
    return (1 / D - 1).sqrt().mean(dim=-1)


VULNERABILITY_MISTAKES = [
    (lambda D: (1 / D).sqrt(), "own term"),
    (lambda D: 1 / D - 1, "square root"),
    (lambda D: (1 - D).sqrt(), "1/D_j - 1"),
    (lambda D: (D / (1 - D).clamp_min(1e-12)).sqrt(), "inverse"),
    (lambda D: 1 / D.sqrt() - 1, "under the square root"),
    (vulnerability_in_place, "modified D"),
    (vulnerability_mean, "shape"),
]


@pytest.mark.parametrize("wrong, words", VULNERABILITY_MISTAKES)
def test_vulnerability_from_D_check_names_mistake(wrong, words):
    from utils.checks import check_vulnerability_from_D

    with pytest.raises(AssertionError, match=words.replace("(", r"\(")):
        check_vulnerability_from_D(wrong)
