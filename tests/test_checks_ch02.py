"""Chapter 2's check accepts correct toy models written in several ways and rejects planted mistakes,
each with a message that names it. The mistakes are written from the exercise text, as a learner
would make them."""

import pytest
import torch

from utils import checks
from utils.models import ToyModel, ToyModelConfig


def einsum_forward(self, x):
    h = torch.einsum("...if,ihf->...ih", x, self.W)
    return torch.relu(torch.einsum("...ih,ihf->...if", h, self.W) + self.b_final)


def where_batch(self, batch_size, generator=None):
    shape = (batch_size, self.cfg.n_inst, self.cfg.n_features)
    return torch.where(torch.rand(shape) < self.feature_probability, torch.rand(shape), 0.0)


def mean_loss(self, out, batch):
    return (self.importance * (out - batch) ** 2).mean(dim=(0, 2)).sum()


def toy(forward=einsum_forward, generate_batch=where_batch, calculate_loss=mean_loss):
    return type(
        "Learner", (ToyModel,), {"forward": forward, "generate_batch": generate_batch, "calculate_loss": calculate_loss}
    )


# --- valid alternatives ----------------------------------------------------------------------------


def loop_forward(self, x):
    out = torch.empty_like(x)
    for i in range(self.cfg.n_inst):
        W = self.W[i]  # (d_hidden, feats)
        out[..., i, :] = torch.relu(x[..., i, :] @ W.T @ W + self.b_final[i])
    return out


def loop_batch(self, batch_size, generator=None):
    batch = torch.zeros(batch_size, self.cfg.n_inst, self.cfg.n_features)
    for i in range(self.cfg.n_inst):
        for f in range(self.cfg.n_features):
            active = torch.rand(batch_size) < self.feature_probability[i, f]
            batch[:, i, f] = torch.where(active, torch.rand(batch_size), 0.0)
    return batch


def loop_loss(self, out, batch):
    return sum((self.importance[i] * (out[:, i] - batch[:, i]) ** 2).mean() for i in range(self.cfg.n_inst))


def bernoulli_batch(self, batch_size, generator=None):
    p = self.feature_probability.expand(batch_size, -1, -1)
    return torch.bernoulli(p) * torch.rand(p.shape)


def one_draw_batch(self, batch_size, generator=None):
    """The library's trick: active when u < p, with value u / p."""
    u = torch.rand(batch_size, self.cfg.n_inst, self.cfg.n_features)
    p = self.feature_probability
    return torch.where(u < p, u / p.clamp_min(1e-12), 0.0)


def matmul_forward(self, x):
    gram = self.W.transpose(1, 2) @ self.W  # (inst, feats, feats)
    return torch.relu((gram @ x.unsqueeze(-1)).squeeze(-1) + self.b_final)


@pytest.mark.parametrize(
    "correct",
    [
        toy(),
        toy(loop_forward, loop_batch, loop_loss),
        toy(matmul_forward, bernoulli_batch),
        toy(generate_batch=one_draw_batch),
    ],
)
def test_toy_model_check_accepts(correct, capsys):
    assert checks.check_toy_model(correct) is correct
    assert "all checks passed" in capsys.readouterr().out


# --- forward ---------------------------------------------------------------------------------------


def pre_activation(model, x):
    h = torch.einsum("...if,ihf->...ih", x, model.W)
    return torch.einsum("...ih,ihf->...if", h, model.W)


def no_leading_dims(self, x):
    h = torch.einsum("bif,ihf->bih", x, self.W)
    return torch.relu(torch.einsum("bih,ihf->bif", h, self.W) + self.b_final)


def detached_forward(self, x):
    return einsum_forward(self, x).detach()


@pytest.mark.parametrize(
    "forward, message",
    [
        (lambda self, x: pre_activation(self, x) + self.b_final, "Likely cause: there is no ReLU"),
        (lambda self, x: torch.relu(pre_activation(self, x)), "Likely cause: the bias is missing"),
        (lambda self, x: torch.relu(pre_activation(self, x)) + self.b_final, "the bias is added after the ReLU"),
        (
            lambda self, x: torch.relu(
                torch.einsum("...ih,ihf->...if", torch.relu(torch.einsum("...if,ihf->...ih", x, self.W)), self.W)
                + self.b_final
            ),
            "the hidden layer is rectified too",
        ),
        # structure: instances share weights; no gradient; only one batch shape
        (
            lambda self, x: torch.relu(
                torch.einsum("...h,hf->...f", torch.einsum("...f,hf->...h", x, self.W[0]), self.W[0]) + self.b_final
            ),
            r"forward\(x\) is wrong at batch 0, inst 1.*instance 0's weights",
        ),
        (detached_forward, r"forward\(x\) carries no gradient"),
        (no_leading_dims, r"forward\(\(3, 4\)\) raised RuntimeError"),
        (
            lambda self, x: torch.relu(pre_activation(self, x) * 2 + self.b_final),
            r"forward\(x\) is wrong at .*ReLU\(WᵀWx \+ b\)",
        ),
        (
            lambda self, x: torch.relu(torch.einsum("...if,ihf->...ih", x, self.W)),
            r"forward\(x\) has shape \(7, 3, 2\)",
        ),
    ],
)
def test_toy_model_check_rejects_forward(forward, message):
    with pytest.raises(AssertionError, match=message):
        checks.check_toy_model(toy(forward=forward))


# --- generate_batch --------------------------------------------------------------------------------


def planted_batch(activity, values):
    """A generate_batch from `activity(self, shape) -> bool mask` and `values(self, shape) -> values`."""

    def generate_batch(self, batch_size, generator=None):
        shape = (batch_size, self.cfg.n_inst, self.cfg.n_features)
        return torch.where(activity(self, shape), values(self, shape), 0.0)

    return generate_batch


def fair(self, shape):
    return torch.rand(shape) < self.feature_probability


def uniform(self, shape):
    return torch.rand(shape)


@pytest.mark.parametrize(
    "generate_batch, message",
    [
        (
            planted_batch(lambda self, s: torch.rand(s) < 1 - self.feature_probability, uniform),
            "Likely cause: a feature is \\*active\\*",
        ),
        (
            planted_batch(lambda self, s: torch.rand(s) < self.feature_probability[0], uniform),
            "instance 0's probabilities",
        ),
        (
            planted_batch(lambda self, s: torch.rand(s) < self.feature_probability[:, :1], uniform),
            "feature 0's probability",
        ),
        # structure: one activity draw for all features of a sample (the example)
        (
            planted_batch(lambda self, s: torch.rand(s[0], s[1], 1) < self.feature_probability, uniform),
            r"features 0 and 1 of instance 0 are both active.*Likely cause: features 0 and 1 share one random draw",
        ),
        # structure: one value for all features of a sample
        (planted_batch(fair, lambda self, s: torch.rand(s[0], s[1], 1).expand(s)), "share one value draw"),
        # distribution: Gaussian, constant, binary, the activity draw reused without dividing by p
        (planted_batch(fair, lambda self, s: torch.randn(s)), r"values are standard normal \(torch.randn\)"),
        (planted_batch(fair, lambda self, s: torch.full(s, 0.5)), r"Every active value is one of \{0.5\}"),
        (lambda self, n, g=None: fair(self, (n, 3, 4)).float(), r"Every active value is one of \{1\}"),
        (
            lambda self, n, g=None: (lambda u: torch.where(u < self.feature_probability, u, 0.0))(torch.rand(n, 3, 4)),
            r"values of feature 0 in instance 0 .*Likely cause: the value reuses the number u < p",
        ),
        (
            planted_batch(fair, lambda self, s: torch.rand(s) * 2 - 1),
            r"uniform on \[-1, 1\]: this law is uniform on \[0, 1\]",
        ),
        (lambda self, n, g=None: planted_batch(fair, uniform)(self, n).transpose(0, 1), r"has shape \(3, 4000, 4\)"),
        (lambda self, n, g=None: torch.ones(n, 3, 4) * 0.5, "same batch twice"),
    ],
)
def test_toy_model_check_rejects_generate_batch(generate_batch, message):
    with pytest.raises(AssertionError, match=message):
        checks.check_toy_model(toy(generate_batch=generate_batch))


# --- calculate_loss --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "calculate_loss, message",
    [
        (
            lambda self, out, batch: (self.importance * (out - batch) ** 2).mean(),
            "Likely cause: it averages over instances",
        ),
        (lambda self, out, batch: (self.importance * (out - batch) ** 2).mean(0).sum(), "it sums over features"),
        (lambda self, out, batch: ((out - batch) ** 2).mean(dim=(0, 2)).sum(), "it ignores the importances"),
        (
            lambda self, out, batch: ((self.importance * (out - batch)) ** 2).mean(dim=(0, 2)).sum(),
            "it squares the importance too",
        ),
        # a loss with no gradient
        (lambda self, out, batch: mean_loss(self, out, batch).detach(), "carries no gradient"),
        (lambda self, out, batch: torch.tensor(mean_loss(self, out, batch).item()), "carries no gradient"),
        (
            lambda self, out, batch: (self.importance * (out - batch) ** 2).mean(dim=(0, 2)),
            r"one number, a tensor of shape \(\).*got shape \(3,\)",
        ),
    ],
)
def test_toy_model_check_rejects_calculate_loss(calculate_loss, message):
    with pytest.raises(AssertionError, match=message):
        checks.check_toy_model(toy(calculate_loss=calculate_loss))


def test_toy_model_check_needs_a_subclass_with_its_own_methods():
    with pytest.raises(AssertionError, match="pass your class \\(a subclass of ToyModel\\), got a int"):
        checks.check_toy_model(3)
    with pytest.raises(AssertionError, match="must be a subclass of ToyModel"):
        checks.check_toy_model(object)
    with pytest.raises(AssertionError, match="does not define forward"):
        checks.check_toy_model(type("Lazy", (ToyModel,), {}))
    instance = toy()(ToyModelConfig(n_inst=1, n_features=2, d_hidden=1), device="cpu")
    with pytest.raises(AssertionError, match="pass your class itself, not an instance of it"):
        checks.check_toy_model(instance)
