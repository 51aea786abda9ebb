"""The reference the fast trainer's tests compare with: autograd through `ToyModel` and torch.optim.Adam."""

import numpy as np
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


def kernel_uniforms(rng: torch.Tensor, n_blocks: int, n_uniforms: int) -> torch.Tensor:
    """The uniforms kernel.c draws for the next `n_blocks` sample blocks from its random states `rng`
    (int32 `(inst, 4, LANES)`, from `Kernel.seed`): `(inst, n_blocks, n_uniforms, LANES)`, written
    from the description of xoshiro128+ (Blackman and Vigna 2018), not from the C code."""
    s = [word.copy() for word in rng.numpy().view(np.uint32).transpose(1, 0, 2)]  # 4 words (inst, LANES)
    out = np.empty((n_blocks * n_uniforms, *s[0].shape), dtype=np.float32)
    for k in range(len(out)):
        result, t = s[0] + s[3], s[1] << np.uint32(9)
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = (s[3] << np.uint32(11)) | (s[3] >> np.uint32(21))
        out[k] = (result >> np.uint32(8)).astype(np.float32) * np.float32(2.0**-24)  # the upper 24 bits
    return torch.from_numpy(out).unflatten(0, (n_blocks, n_uniforms)).permute(2, 0, 1, 3).contiguous()
