"""Chapter 1's checks accept correct answers written in several ways and reject planted mistakes, each
with a message that names it. The mistakes are written from the exercise text, as a learner would make them."""

import random

import numpy as np
import pytest
import torch

from utils import checks
from utils.data import generate_data as library_generate_data
from utils.models import LinearToyModel, ToyModelConfig
from utils.train import train_on_dataset

# --- exercise 1.1: generate_data -------------------------------------------------------------------


def where_zero(zero, values):
    return torch.where(zero, 0.0, values)


def bernoulli(n_points=1000, n_features=2, sparsity=0.0):
    keep = torch.bernoulli(torch.full((n_points, n_features), 1.0 - sparsity))
    return keep * torch.rand(n_points, n_features)


def one_draw(n_points=1000, n_features=2, sparsity=0.0):
    """One uniform per entry: present when u >= sparsity, with value (u - sparsity) / (1 - sparsity)."""
    u = torch.rand(n_points, n_features)
    if sparsity >= 1:
        return torch.zeros(n_points, n_features)
    return torch.where(u < sparsity, 0.0, (u - sparsity) / (1 - sparsity))


def loop(n_points=1000, n_features=2, sparsity=0.0):
    rows = [
        [0.0 if random.random() < sparsity else random.random() for _ in range(n_features)] for _ in range(n_points)
    ]
    return torch.tensor(rows, dtype=torch.float32)


def with_numpy(n_points=1000, n_features=2, sparsity=0.0):
    rng = np.random.default_rng()
    x = rng.random((n_points, n_features)) * (rng.random((n_points, n_features)) >= sparsity)
    return torch.from_numpy(x).float()


@pytest.mark.parametrize("correct", [library_generate_data, bernoulli, one_draw, loop, with_numpy])
def test_generate_data_check_accepts(correct, capsys):
    assert checks.check_generate_data(correct) is correct
    assert "generate_data: all checks passed" in capsys.readouterr().out


def planted(body):
    """A `generate_data` with the text's signature that computes `body(n_points, n_features, sparsity)`."""

    def generate_data(n_points=1000, n_features=2, sparsity=0.0):
        return body(n_points, n_features, sparsity)

    return generate_data


PLANTED_GENERATE_DATA = {
    # the mask keeps entries with probability `sparsity` instead of zeroing them
    "density": (
        planted(lambda n, f, s: where_zero(torch.rand(n, f) >= s, torch.rand(n, f))),
        "with the default sparsity=0 no feature should be zero",
    ),
    "half the sparsity": (
        planted(lambda n, f, s: where_zero(torch.rand(n, f) < s / 2, torch.rand(n, f))),
        r"fraction of zeros in feature 0 is 0.1[45].*expected 0.3000",
    ),
    "1 - sparsity, at sparsity 0.3": (
        planted(lambda n, f, s: where_zero(torch.rand(n, f) < (1 - s if s > 0 else 0), torch.rand(n, f))),
        r"fraction of zeros in feature 0 is 0.\d+; expected 0.3000.*Likely cause: sparsity is the probability that a "
        r"feature is zero",
    ),
    # structure: one draw decides every feature of a point
    "one mask per point": (
        planted(lambda n, f, s: where_zero(torch.rand(n, 1) < s, torch.rand(n, f))),
        r"features 0 and 1 of instance 0 are both active .* is 0.7.*Likely cause: features 0 and 1 share one random "
        r"draw",
    ),
    # distribution: Gaussian values
    "randn values": (
        planted(lambda n, f, s: where_zero(torch.rand(n, f) < s, torch.randn(n, f))),
        r"the non-zero values: \d+ values from -[\d.]+ .*Likely cause: the values are standard normal \(torch.randn\)",
    ),
    # distribution: a constant where a uniform value is asked
    "constant 0.5": (
        planted(lambda n, f, s: where_zero(torch.rand(n, f) < s, torch.full((n, f), 0.5))),
        r"mean 0.500, std 0.000.*Every active value is one of \{0.5\}",
    ),
    # distribution: the value reuses the draw that decided the feature is present
    "reused draw": (
        planted(lambda n, f, s: (lambda u: where_zero(u < s, u))(torch.rand(n, f))),
        r"values from 0.3.*Likely cause: the value reuses the number that decided the feature is present",
    ),
    # structure: every feature of a point gets the same value
    "one value per point": (
        planted(lambda n, f, s: where_zero(torch.rand(n, f) < s, torch.rand(n, 1).expand(n, f))),
        r"correlation 1.000.*Likely cause: features 0 and 1 share one value draw",
    ),
    "values on [-1, 1]": (
        planted(lambda n, f, s: where_zero(torch.rand(n, f) < s, 2 * torch.rand(n, f) - 1)),
        r"values from -1 to 1, .*Likely cause: the values are uniform on \[-1, 1\]",
    ),
    "float64": (
        planted(lambda n, f, s: library_generate_data(n, f, s).double()),
        "dtype torch.float64; expected torch.float32",
    ),
    "transposed": (planted(lambda n, f, s: library_generate_data(n, f, s).T), r"shape \(2, 10\); expected"),
    "seeded inside": (
        planted(lambda n, f, s: library_generate_data(n, f, s, generator=torch.Generator().manual_seed(0))),
        "returned the same points twice",
    ),
    "sparsity ignored when 1": (
        planted(lambda n, f, s: library_generate_data(n, f, min(s, 0.99))),
        "with sparsity=1 every feature should be zero",
    ),
}


@pytest.mark.parametrize("name", PLANTED_GENERATE_DATA)
def test_generate_data_check_rejects(name):
    wrong, message = PLANTED_GENERATE_DATA[name]
    with pytest.raises(AssertionError, match=message):
        checks.check_generate_data(wrong)


def test_generate_data_check_says_what_it_was_given():
    with pytest.raises(
        AssertionError, match=r"pass the function `generate_data` itself.*got a tensor of shape \(10, 2\)"
    ):
        checks.check_generate_data(library_generate_data(10))


# --- exercise 1.2: the linear model ----------------------------------------------------------------


def linear(hidden=None, decode=None):
    methods = {
        "hidden": hidden or (lambda self, x: torch.einsum("bif,ihf->bih", x, self.W)),
        "decode": decode or (lambda self, h: torch.einsum("bih,ihf->bif", h, self.W) + self.b_final),
    }
    return type("Learner", (LinearToyModel,), methods)


def loop_over_instances_hidden(self, x):
    return torch.stack([x[:, i] @ self.W[i].T for i in range(self.cfg.n_inst)], dim=1)


def loop_over_instances_decode(self, h):
    return torch.stack([h[:, i] @ self.W[i] + self.b_final[i] for i in range(self.cfg.n_inst)], dim=1)


def no_grad_hidden(self, x):
    with torch.no_grad():
        return torch.einsum("bif,ihf->bih", x, self.W)


@pytest.mark.parametrize(
    "correct",
    [
        linear(),
        linear(loop_over_instances_hidden, loop_over_instances_decode),
        linear(
            lambda self, x: (self.W[None] * x[:, :, None, :]).sum(-1),
            lambda self, h: torch.matmul(h[:, :, None, :], self.W[None]).squeeze(2) + self.b_final,
        ),
    ],
)
def test_linear_model_check_accepts(correct, capsys):
    assert checks.check_linear_model(correct) is correct
    assert "the linear model: all checks passed" in capsys.readouterr().out


PLANTED_LINEAR = {
    "no bias": (
        linear(decode=lambda self, h: torch.einsum("bih,ihf->bif", h, self.W)),
        r"decode\(h\) .* is wrong at .*leaves out the bias",
    ),
    "ReLU": (
        linear(decode=lambda self, h: torch.relu(torch.einsum("bih,ihf->bif", h, self.W) + self.b_final)),
        r"decode\(h\) .* is wrong at .*Likely cause: decode applies a ReLU",
    ),
    "bias subtracted": (
        linear(decode=lambda self, h: torch.einsum("bih,ihf->bif", h, self.W) - self.b_final),
        "decode subtracts the bias",
    ),
    # structure: instances share weights, or mix
    "instance 0's weights": (
        linear(hidden=lambda self, x: torch.einsum("bif,hf->bih", x, self.W[0])),
        r"hidden\(x\) .* is wrong at batch 0, inst 1.*instance 0's weights",
    ),
    "sums over instances": (
        linear(hidden=lambda self, x: torch.einsum("bif,jhf->bih", x, self.W)),
        r"hidden\(x\) .* is wrong at .*sums over the weights of every instance",
    ),
    # structure: no gradient reaches W
    "no gradient": (linear(hidden=no_grad_hidden), r"hidden\(x\) carries no gradient"),
    "instance 0's bias": (
        linear(decode=lambda self, h: torch.einsum("bih,ihf->bif", h, self.W) + self.b_final[0]),
        r"decode\(h\) .* is wrong at batch 0, inst 1.*every instance uses instance 0's bias",
    ),
    "inherits decode": (type("Lazy", (LinearToyModel,), {"hidden": linear().hidden}), "does not define decode"),
    "not a subclass": (type("Alone", (torch.nn.Module,), {}), "must be a subclass of LinearToyModel"),
}


@pytest.mark.parametrize("name", PLANTED_LINEAR)
def test_linear_model_check_rejects(name):
    wrong, message = PLANTED_LINEAR[name]
    with pytest.raises(AssertionError, match=message):
        checks.check_linear_model(wrong)


def test_linear_model_check_says_it_got_an_instance():
    instance = linear()(ToyModelConfig(n_inst=1, n_features=2, d_hidden=1), device="cpu")
    with pytest.raises(AssertionError, match="pass your class itself, not an instance of it: got a Learner object"):
        checks.check_linear_model(instance)


# --- exercise 1.3: the loss ------------------------------------------------------------------------


def loss_loop(out, target, importance):
    return torch.stack([(importance[i] * (out[:, i] - target[:, i]) ** 2).mean() for i in range(out.shape[1])])


@pytest.mark.parametrize(
    "correct",
    [
        lambda o, t, i: (i * (o - t) ** 2).mean(dim=(0, 2)),
        loss_loop,
        lambda o, t, i: torch.einsum("bif,if->i", (o - t) ** 2, i) / (o.shape[0] * o.shape[2]),
        lambda o, t, i: (torch.nn.functional.mse_loss(o, t, reduction="none") * i).mean(0).mean(-1),
    ],
)
def test_loss_check_accepts(correct, capsys):
    assert checks.check_importance_weighted_mse(correct) is correct
    assert "importance_weighted_mse: all checks passed" in capsys.readouterr().out


@pytest.mark.parametrize(
    "wrong, message",
    [
        (
            lambda o, t, i: (i * (o - t) ** 2).sum(dim=2).mean(dim=0),
            r"is wrong at inst 0: .*Likely cause: it sums over the features",
        ),
        (lambda o, t, i: (i * (o - t) ** 2).sum(dim=0).mean(dim=1), "it sums over the batch"),
        (lambda o, t, i: ((o - t) ** 2).mean(dim=(0, 2)), "it ignores the importance"),
        (lambda o, t, i: ((i * (o - t)) ** 2).mean(dim=(0, 2)), "it squares the importance too"),
        (lambda o, t, i: (i * (o - t).abs()).mean(dim=(0, 2)), "it uses the absolute error"),
        (lambda o, t, i: (i * (o - t) ** 2).mean(dim=(0, 2)).sqrt(), r"it takes a square root \(RMSE\)"),
        # structure: one instance's importances for all, no gradient
        (lambda o, t, i: (i[0] * (o - t) ** 2).mean(dim=(0, 2)), "every instance uses instance 0's importances"),
        (lambda o, t, i: (i * (o - t) ** 2).mean(dim=(0, 2)).detach(), "carries no gradient"),
        (
            lambda o, t, i: torch.tensor([(i[k] * (o[:, k] - t[:, k]) ** 2).mean().item() for k in range(3)]),
            "carries no gradient",
        ),
        (lambda o, t, i: (i * (o - t) ** 2).mean(), r"has shape \(\); expected \(inst,\) = \(3,\)"),
        (lambda o, t, i: (i * (o - t) ** 2).mean(dim=(0, 2)).tolist(), "should be a torch.Tensor, got list"),
        (
            lambda o, t, i: (i[:, None] * (o - t) ** 2).mean(dim=(0, 2)),
            r"importance_weighted_mse\(\(7, 3, 4\), \(7, 3, 4\), \(3, 4\)\) raised RuntimeError",
        ),
    ],
)
def test_loss_check_rejects(wrong, message):
    with pytest.raises(AssertionError, match=message):
        checks.check_importance_weighted_mse(wrong)


# --- exercise 1.4: the training loop ---------------------------------------------------------------


def reference_loss(out, target, importance):
    return (importance * (out - target) ** 2).mean(dim=(0, 2))


def make_train(
    optimizer_class=torch.optim.Adam,
    zero_grad=True,
    record_after_update=False,
    weighted=True,
    optimizer_every_step=False,
    detach=False,
    as_list=False,
):
    def train(model, x, steps=1000, lr=1e-2):
        batch = x[:, None, :].expand(-1, model.cfg.n_inst, -1)
        importance = model.importance if weighted else torch.ones_like(model.importance)
        optimizer = optimizer_class(model.parameters(), lr=lr)
        losses = [] if as_list else torch.empty(steps, model.cfg.n_inst)
        for step in range(steps):
            if optimizer_every_step:
                optimizer = optimizer_class(model.parameters(), lr=lr)
            loss = reference_loss(model(batch), batch, importance)
            if detach:
                loss = loss.detach()
            if zero_grad:
                optimizer.zero_grad()
            loss.sum().backward()
            optimizer.step()
            if record_after_update:
                with torch.no_grad():
                    loss = reference_loss(model(batch), batch, importance)
            if as_list:
                losses.append(loss.detach())
            else:
                losses[step] = loss.detach()
        return torch.stack(losses) if as_list else losses

    return train


def library_train(model, x, steps=1000, lr=1e-2):
    return train_on_dataset(model, x, steps=steps, lr=lr, progress=False).losses


@pytest.mark.parametrize("correct", [library_train, make_train(), make_train(as_list=True)])
def test_train_check_accepts(correct, capsys):
    assert checks.check_train(correct) is correct
    assert "train: all checks passed" in capsys.readouterr().out


@pytest.mark.parametrize(
    "wrong, message",
    [
        # structure of the loop
        (make_train(zero_grad=False), r"the loss history is wrong at step 2, inst 0: .*the gradients are never zeroed"),
        (make_train(optimizer_every_step=True), "a new optimizer is created at every step"),
        (make_train(record_after_update=True), r"wrong at step 0, .*each loss is recorded after the update"),
        (make_train(optimizer_class=torch.optim.SGD), r"wrong at step 1, .*the optimizer is plain SGD"),
        (make_train(weighted=False), "the loss ignores the importances"),
        # a loss with no gradient
        (
            make_train(detach=True),
            r"train\(LinearToyModel\(\), \(200, 2\), steps=60, lr=0.01\) raised RuntimeError: element 0 of tensors "
            r"does not require grad",
        ),
        (
            lambda model, x, steps=1000, lr=1e-2: library_train(model, x, steps, lr).sum(1),
            r"has shape \(60,\); expected \(steps, inst\)",
        ),
        (
            lambda model, x, steps=1000, lr=1e-2: library_train(model, x, steps, 1e-3),
            r"the loss history is wrong at step 1",
        ),
    ],
)
def test_train_check_rejects(wrong, message):
    with pytest.raises(AssertionError, match=message):
        checks.check_train(wrong)
