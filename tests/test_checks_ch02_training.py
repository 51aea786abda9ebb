"""Chapter 2's training-loop check (exercise 2.2) passes correct loops and names planted mistakes."""

import pytest
import torch

from utils import checks
from utils.checks.ch02_training import reference_train_fresh


def loop_with_calculate_loss(model, steps=1000, batch_size=1024, lr=1e-2):
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    history = []
    for _ in range(steps):
        batch = model.generate_batch(batch_size)
        out = model(batch)
        history.append(model.loss_per_instance(out, batch).detach())
        optimizer.zero_grad()
        model.calculate_loss(out, batch).backward()
        optimizer.step()
    return torch.stack(history)


def loop_with_explicit_einsum(model, steps=1000, batch_size=1024, lr=1e-2):
    optimizer = torch.optim.Adam([model.W, model.b_final], lr=lr)
    losses = torch.zeros(steps, model.cfg.n_inst)
    for step in range(steps):
        x = model.generate_batch(batch_size)
        h = torch.einsum("bif,ihf->bih", x, model.W)
        out = torch.relu(torch.einsum("bih,ihf->bif", h, model.W) + model.b_final)
        per_instance = torch.einsum("bif,if->i", (out - x) ** 2, model.importance) / (batch_size * model.cfg.n_features)
        optimizer.zero_grad(set_to_none=True)
        per_instance.sum().backward()
        optimizer.step()
        losses[step] = per_instance.detach()
    return losses


@pytest.mark.parametrize("train", [reference_train_fresh, loop_with_calculate_loss, loop_with_explicit_einsum])
def test_training_check_accepts(train, capsys):
    assert checks.check_train_fresh(train) is train
    assert "train_fresh: all checks passed" in capsys.readouterr().out


def fixed_batch(model, steps=1000, batch_size=1024, lr=1e-2):
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    batch = model.generate_batch(batch_size)
    losses = []
    for _ in range(steps):
        loss = model.loss_per_instance(model(batch), batch)
        optimizer.zero_grad()
        loss.sum().backward()
        optimizer.step()
        losses.append(loss.detach())
    return torch.stack(losses)


def dense_uniform_data(model, steps=1000, batch_size=1024, lr=1e-2):
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        batch = torch.rand(batch_size, model.cfg.n_inst, model.cfg.n_features)
        loss = model.loss_per_instance(model(batch), batch)
        optimizer.zero_grad()
        loss.sum().backward()
        optimizer.step()
        losses.append(loss.detach())
    return torch.stack(losses)


def without_importance(model, steps=1000, batch_size=1024, lr=1e-2):
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        batch = model.generate_batch(batch_size)
        loss = ((model(batch) - batch) ** 2).mean(dim=(0, 2))
        optimizer.zero_grad()
        loss.sum().backward()
        optimizer.step()
        losses.append(loss.detach())
    return torch.stack(losses)


def recorded_after_the_update(model, steps=1000, batch_size=1024, lr=1e-2):
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        batch = model.generate_batch(batch_size)
        loss = model.loss_per_instance(model(batch), batch)
        optimizer.zero_grad()
        loss.sum().backward()
        optimizer.step()
        with torch.no_grad():
            losses.append(model.loss_per_instance(model(batch), batch))
    return torch.stack(losses)


def without_zero_grad(model, steps=1000, batch_size=1024, lr=1e-2):
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        batch = model.generate_batch(batch_size)
        loss = model.loss_per_instance(model(batch), batch)
        loss.sum().backward()
        optimizer.step()
        losses.append(loss.detach())
    return torch.stack(losses)


def plain_sgd(model, steps=1000, batch_size=1024, lr=1e-2):
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        batch = model.generate_batch(batch_size)
        loss = model.loss_per_instance(model(batch), batch)
        optimizer.zero_grad()
        loss.sum().backward()
        optimizer.step()
        losses.append(loss.detach())
    return torch.stack(losses)


def summed_history(model, steps=1000, batch_size=1024, lr=1e-2):
    return reference_train_fresh(model, steps, batch_size, lr).sum(dim=1)


@pytest.mark.parametrize(
    "wrong, message",
    [
        (fixed_batch, "trains on one batch drawn once"),  # structure: fresh data each step
        (
            dense_uniform_data,
            r"loss at step 0 .*model.generate_batch\(batch_size\) \(the model's own sparse data",
        ),  # distribution
        (without_importance, "ignores the importances"),
        (recorded_after_the_update, "recorded after its update"),
        (without_zero_grad, r"gradients pile up.*zero_grad"),
        (plain_sgd, r"plain SGD: use torch.optim.Adam"),
        (summed_history, r"summed over instances; return each instance's loss"),
    ],
)
def test_training_check_catches(wrong, message):
    with pytest.raises(AssertionError, match=message):
        checks.check_train_fresh(wrong)
