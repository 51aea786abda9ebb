"""Chapter 1's checks pass the reference and catch planted mistakes with the right message."""

import pytest
import torch

from utils import checks
from utils.data import generate_data as reference_generate_data
from utils.models import LinearToyModel
from utils.train import train_on_dataset


# --- generate_data -------------------------------------------------------------------------------

def density_instead_of_sparsity(n_points=1000, n_features=2, sparsity=0.0):
    return reference_generate_data(n_points, n_features, 1 - sparsity)


def half_the_sparsity(n_points=1000, n_features=2, sparsity=0.0):
    return reference_generate_data(n_points, n_features, sparsity / 2)


def shared_mask(n_points=1000, n_features=2, sparsity=0.0):
    keep = (torch.rand(n_points, 1) >= sparsity).float()
    return torch.rand(n_points, n_features) * keep


def gaussian_values(n_points=1000, n_features=2, sparsity=0.0):
    return torch.where(torch.rand(n_points, n_features) < sparsity, 0.0, torch.randn(n_points, n_features))


def float64(n_points=1000, n_features=2, sparsity=0.0):
    return reference_generate_data(n_points, n_features, sparsity).double()


def transposed(n_points=1000, n_features=2, sparsity=0.0):
    return reference_generate_data(n_points, n_features, sparsity).T


def same_values_for_every_feature(n_points=1000, n_features=2, sparsity=0.0):
    values = torch.rand(n_points, 1).expand(-1, n_features)
    return torch.where(torch.rand(n_points, n_features) < sparsity, 0.0, values)


def test_generate_data_check_passes_the_reference(capsys):
    checks.check_generate_data(reference_generate_data)
    assert "generate_data: all checks passed" in capsys.readouterr().out


@pytest.mark.parametrize("wrong, message", [
    (density_instead_of_sparsity, "with the default sparsity=0 no feature should be zero"),
    (half_the_sparsity, r"fraction of zeros in feature 0 \(sparsity is the probability that a feature is zero\) is 0.1[45].*expected 0.3000"),
    (shared_mask, r"both zero \(features must be zeroed independently\) is 0.29"),
    (gaussian_values, r"values must lie in \[0, 1\]"),
    (float64, "dtype torch.float64; expected torch.float32"),
    (transposed, r"shape \(2, 10\); expected"),
    (same_values_for_every_feature, "correlation"),
])
def test_generate_data_check_catches(wrong, message):
    with pytest.raises(AssertionError, match=message):
        checks.check_generate_data(wrong)


# --- the linear model ----------------------------------------------------------------------------

class Reference(LinearToyModel):
    pass


class NoBias(LinearToyModel):
    def decode(self, h):
        return torch.einsum("bih,ihf->bif", h, self.W)


class FirstInstanceOnly(LinearToyModel):
    def hidden(self, x):
        return torch.einsum("bif,hf->bih", x, self.W[0])


class ReLUByMistake(LinearToyModel):
    def decode(self, h):
        return torch.relu(torch.einsum("bih,ihf->bif", h, self.W) + self.b_final)


def test_linear_model_check_passes_the_reference(capsys):
    checks.check_linear_model(Reference)
    assert "the linear model: all checks passed" in capsys.readouterr().out


@pytest.mark.parametrize("wrong, message", [
    (NoBias, r"decode\(h\) .* is wrong at .*did you add the bias"),
    (FirstInstanceOnly, r"hidden\(x\) .* is wrong at batch 0, inst 1"),
    (ReLUByMistake, r"decode\(h\) .* is wrong at"),
])
def test_linear_model_check_catches(wrong, message):
    with pytest.raises(AssertionError, match=message):
        checks.check_linear_model(wrong)


# --- the loss ------------------------------------------------------------------------------------

def reference_loss(out, target, importance):
    return (importance * (out - target) ** 2).mean(dim=(0, 2))


@pytest.mark.parametrize("wrong, message", [
    (lambda o, t, i: (i * (o - t) ** 2).sum(dim=2).mean(dim=0), r"is wrong at inst 0: .* average over batch and features"),
    (lambda o, t, i: ((o - t) ** 2).mean(dim=(0, 2)), r"is wrong at inst 0"),
    (lambda o, t, i: (i * (o - t) ** 2).mean(), r"has shape \(\); expected \(inst,\) = \(3,\)"),
    (lambda o, t, i: (i * (o - t) ** 2).mean(dim=(0, 2)).tolist(), "should be a torch.Tensor, got list"),
])
def test_loss_check_catches(wrong, message):
    checks.check_importance_weighted_mse(reference_loss)
    with pytest.raises(AssertionError, match=message):
        checks.check_importance_weighted_mse(wrong)


# --- the training loop ---------------------------------------------------------------------------

def reference_train(model, x, steps=1000, lr=1e-2):
    return train_on_dataset(model, x, steps=steps, lr=lr, progress=False).losses


def make_train(optimizer_class=torch.optim.Adam, zero_grad=True, record_after_update=False):
    def train(model, x, steps=1000, lr=1e-2):
        batch = x[:, None, :].expand(-1, model.cfg.n_inst, -1)
        optimizer = optimizer_class(model.parameters(), lr=lr)
        losses = torch.empty(steps, model.cfg.n_inst)
        for step in range(steps):
            loss = reference_loss(model(batch), batch, model.importance)
            if zero_grad:
                optimizer.zero_grad()
            loss.sum().backward()
            optimizer.step()
            if record_after_update:
                loss = reference_loss(model(batch), batch, model.importance)
            losses[step] = loss.detach()
        return losses

    return train


def test_train_check_passes_the_reference_and_a_hand_written_loop(capsys):
    checks.check_train(reference_train)
    checks.check_train(make_train())
    assert capsys.readouterr().out.count("train: all checks passed") == 2


@pytest.mark.parametrize("wrong, message", [
    (make_train(zero_grad=False), r"the loss history is wrong at step 2, inst 0: .*zero the gradients every step"),
    (make_train(optimizer_class=torch.optim.SGD), r"the loss history is wrong at step 1"),
    (make_train(record_after_update=True), r"the loss at step 0 is wrong .*before the update"),
    (lambda model, x, steps=1000, lr=1e-2: reference_train(model, x, steps, lr)[:, 0], r"has shape \(60,\); expected \(steps, inst\)"),
])
def test_train_check_catches(wrong, message):
    with pytest.raises(AssertionError, match=message):
        checks.check_train(wrong)
