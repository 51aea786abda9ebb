"""Chapter 2's checks pass the reference and catch planted mistakes with the right message."""

import pytest
import torch

from utils import checks
from utils.models import ToyModel


class Reference(ToyModel):
    """The library's methods, defined in the class body as a learner would."""

    def forward(self, features):
        return ToyModel.forward(self, features)

    def generate_batch(self, batch_size, generator=None):
        return ToyModel.generate_batch(self, batch_size, generator)

    def calculate_loss(self, out, batch):
        return ToyModel.calculate_loss(self, out, batch)


def variant(**methods):
    return type("Variant", (Reference,), methods)


def pre_activation(model, x):
    h = torch.einsum("...if,ihf->...ih", x, model.W)
    return torch.einsum("...ih,ihf->...if", h, model.W)


def test_toy_model_reference_passes(capsys):
    checks.check_toy_model(Reference)
    assert "all checks passed" in capsys.readouterr().out


@pytest.mark.parametrize(
    "forward, message",
    [
        (lambda self, x: pre_activation(self, x) + self.b_final, "without the ReLU"),
        (lambda self, x: torch.relu(pre_activation(self, x)), "misses the bias"),
        (lambda self, x: torch.relu(pre_activation(self, x)) + self.b_final, "inside the ReLU"),
        (lambda self, x: torch.relu(pre_activation(self, x) * 2 + self.b_final), "forward\\(x\\) is wrong at"),
        (lambda self, x: torch.relu(torch.einsum("bif,ihf->bih", x, self.W)), "shape"),
    ],
)
def test_toy_model_catches_wrong_forward(forward, message):
    with pytest.raises(AssertionError, match=message):
        checks.check_toy_model(variant(forward=forward))


def test_toy_model_catches_forward_without_leading_dims():
    def forward(self, x):
        h = torch.einsum("bif,ihf->bih", x, self.W)
        return torch.relu(torch.einsum("bih,ihf->bif", h, self.W) + self.b_final)

    with pytest.raises(Exception, match="einsum|shape|subscripts|operand"):
        checks.check_toy_model(variant(forward=forward))


def uniform(self, batch_size):
    return torch.rand(batch_size, self.cfg.n_inst, self.cfg.n_features)


@pytest.mark.parametrize(
    "generate_batch, message",
    [
        (lambda self, n, g=None: torch.where(uniform(self, n) < 1 - self.feature_probability, uniform(self, n), 0.0), "about 1 - p"),
        (lambda self, n, g=None: torch.where(uniform(self, n) < self.feature_probability[0], uniform(self, n), 0.0), "instance 0"),
        (lambda self, n, g=None: torch.where(uniform(self, n) < self.feature_probability, torch.randn(n, 3, 4), 0.0), "torch.rand, not torch.randn"),
        (lambda self, n, g=None: (uniform(self, n) < self.feature_probability).float(), "mean 1.000"),
        (lambda self, n, g=None: torch.where(uniform(self, n) < self.feature_probability, uniform(self, n), 0.0).transpose(0, 1), "shape"),
        (lambda self, n, g=None: torch.ones(n, 3, 4) * 0.5, "same batch twice"),
    ],
)
def test_toy_model_catches_wrong_generate_batch(generate_batch, message):
    with pytest.raises(AssertionError, match=message):
        checks.check_toy_model(variant(generate_batch=generate_batch))


@pytest.mark.parametrize(
    "calculate_loss, message",
    [
        (lambda self, out, batch: (self.importance * (out - batch) ** 2).mean(), "divided by n_inst"),
        (lambda self, out, batch: (self.importance * (out - batch) ** 2).mean(0).sum(), "n_features times too big"),
        (lambda self, out, batch: ((out - batch) ** 2).mean(dim=(0, 2)).sum(), "ignores the importances"),
        (lambda self, out, batch: (self.importance * (out - batch) ** 2).mean(dim=(0, 2)), "scalar"),
    ],
)
def test_toy_model_catches_wrong_loss(calculate_loss, message):
    with pytest.raises(AssertionError, match=message):
        checks.check_toy_model(variant(calculate_loss=calculate_loss))


def test_toy_model_needs_a_subclass_with_its_own_methods():
    with pytest.raises(AssertionError, match="subclass"):
        checks.check_toy_model(object)
    with pytest.raises(AssertionError, match="does not define forward"):
        checks.check_toy_model(type("Lazy", (ToyModel,), {}))
