"""Check for chapter 2's training loop (exercise 2.2): Adam on a fresh batch every step, compared step
by step with the reference loop on the same model and random stream; common mistakes are recognised
by running them too and named."""

from __future__ import annotations

import torch

from utils.checks.compare import assert_close, assert_tensor, call_learner, learner_check, passed
from utils.models import ToyModel, ToyModelConfig


def reference_train_fresh(model, steps: int = 1000, batch_size: int = 1024, lr: float = 1e-2) -> torch.Tensor:
    """The answer to exercise 2.2: Adam on `model.generate_batch(batch_size)` each step; `(steps, inst)`
    per-instance losses, each measured before its step's update."""
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    losses = torch.empty(steps, model.cfg.n_inst)
    for step in range(steps):
        batch = model.generate_batch(batch_size)
        per_instance = model.loss_per_instance(model(batch), batch)
        optimizer.zero_grad()
        per_instance.sum().backward()
        optimizer.step()
        losses[step] = per_instance.detach().cpu()
    return losses


def _mistaken_train(model, steps: int, batch_size: int, lr: float, mistake: str) -> torch.Tensor:
    """The reference loop with one planted mistake, to recognise what a learner's loop did."""
    optimizer = (torch.optim.SGD if mistake == "sgd" else torch.optim.Adam)(model.parameters(), lr=lr)
    losses = torch.empty(steps, model.cfg.n_inst)
    fixed = model.generate_batch(batch_size) if mistake == "fixed batch" else None
    for step in range(steps):
        batch = fixed if fixed is not None else model.generate_batch(batch_size)
        per_instance = model.loss_per_instance(model(batch), batch)
        if mistake != "no zero_grad":
            optimizer.zero_grad()
        per_instance.sum().backward()
        optimizer.step()
        if mistake == "after update":
            with torch.no_grad():
                per_instance = model.loss_per_instance(model(batch), batch)
        losses[step] = per_instance.detach().cpu()
    return losses


MISTAKES = {
    "fixed batch": "it trains on one batch drawn once: draw a fresh batch with model.generate_batch(batch_size) at "
    "every step",
    "no zero_grad": "the gradients pile up from step to step: call optimizer.zero_grad() before each backward()",
    "sgd": "that is plain SGD: use torch.optim.Adam(model.parameters(), lr=lr)",
    "after update": "each loss is recorded after its update: store the loss computed before optimizer.step()",
}

CONFIG = ToyModelConfig(n_inst=3, n_features=3, d_hidden=2)
STEPS, BATCH, LR = 30, 64, 1e-2


def _fresh_model() -> ToyModel:
    """The check's model: seeded weights and data stream, sparse features, unequal importances."""
    return ToyModel(
        CONFIG,
        feature_probability=torch.tensor([[0.3], [0.1], [0.6]]),
        importance=torch.tensor([[1.0, 0.7, 0.4], [1.0, 1.0, 1.0], [0.2, 1.0, 0.5]]),
        device="cpu",
        seed=7,
    )


@learner_check(reference_train_fresh, "training loop (the reference answer in `utils.checks.ch02_training`)")
def check_train_fresh(train_fresh) -> None:
    """`train_fresh(model, steps, batch_size, lr) -> (steps, inst)`, compared with the reference step by step."""
    model, reference = _fresh_model(), _fresh_model()
    losses = call_learner("train_fresh", train_fresh, model, STEPS, BATCH, LR)
    expected = reference_train_fresh(reference, STEPS, BATCH, LR)
    if isinstance(losses, torch.Tensor) and losses.shape == (STEPS,):
        raise AssertionError(
            f"train_fresh returned shape ({STEPS},): one loss per step, summed over instances; return each "
            f"instance's loss, shape (steps, inst) = ({STEPS}, {CONFIG.n_inst})"
        )
    assert_tensor(losses, "the returned loss history", (STEPS, CONFIG.n_inst), "(steps, inst)")
    losses = losses.detach().cpu()
    if not torch.allclose(losses[0], expected[0], rtol=1e-4, atol=1e-6):
        first = _fresh_model()
        batch = first.generate_batch(BATCH)
        with torch.no_grad():
            unweighted = ((first(batch) - batch) ** 2).mean(dim=(0, 2))
        if torch.allclose(losses[0], unweighted, rtol=1e-4, atol=1e-6):
            raise AssertionError(
                "the loss at step 0 ignores the importances: weight each squared error by model.importance"
            )
        if torch.allclose(
            losses, _mistaken_train(_fresh_model(), STEPS, BATCH, LR, "after update"), rtol=1e-4, atol=1e-6
        ):
            raise AssertionError(MISTAKES["after update"])
        raise AssertionError(
            f"the loss at step 0 is {losses[0].tolist()}, expected {expected[0].tolist()}: draw the batch with "
            "model.generate_batch(batch_size) (the model's own sparse data and random stream), run model(batch), "
            "and record model.loss_per_instance(out, batch) (shape (inst,))"
        )
    if not torch.allclose(losses, expected, rtol=1e-4, atol=1e-6):
        for mistake, message in MISTAKES.items():
            if torch.allclose(losses, _mistaken_train(_fresh_model(), STEPS, BATCH, LR, mistake), rtol=1e-4, atol=1e-6):
                raise AssertionError(f"the loss history differs from the reference from step 1 on: {message}")
    assert_close(
        losses,
        expected,
        "the loss history",
        "(step, inst)",
        atol=1e-6,
        rtol=1e-4,
        rule=f"each step: batch = model.generate_batch(batch_size), loss per instance, optimizer.zero_grad(), "
        f"backward() on the sum over instances, optimizer.step() (Adam, lr={LR})",
    )
    assert_close(model.W.detach(), reference.W.detach(), "the trained W", "(inst, d_hidden, feats)", atol=1e-5)
    passed("train_fresh")
