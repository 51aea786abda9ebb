"""The reference the fast trainer's tests compare with: autograd through `ToyModel` and torch.optim.Adam."""

import torch

from utils.models import ToyModel, ToyModelConfig


def reference_steps(W, b, importance, batches, lrs, weight_decay: float):
    """Train copies of `W: (inst, hidden, feats)`, `b: (inst, feats)` on `batches` (each `(batch, inst,
    feats)`) with learning rates `lrs`, the plain way. Returns the loss before each step `(steps, inst)`
    and the final W and b."""
    n_inst, hidden, feats = W.shape
    model = ToyModel(ToyModelConfig(n_inst, feats, hidden), importance=importance, device="cpu")
    with torch.no_grad():
        model.W.copy_(W)
        model.b_final.copy_(b)
    optimizer = torch.optim.Adam(model.parameters(), lr=1.0, weight_decay=weight_decay)
    losses = []
    for x, lr in zip(batches, lrs):
        for group in optimizer.param_groups:
            group["lr"] = float(lr)
        loss = model.loss_per_instance(model(x), x)
        optimizer.zero_grad()
        loss.sum().backward()
        optimizer.step()
        losses.append(loss.detach())
    return torch.stack(losses), model.W.detach(), model.b_final.detach()
