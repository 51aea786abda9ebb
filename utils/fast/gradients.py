r"""The tied ReLU model's loss and its gradient, written out by hand (no autograd graph).

For one instance with weights W (d_hidden x feats), bias b (feats), importances I (feats) and a
batch of B inputs x (feats each), the model and its loss are

    z = W x,    a = Wᵀz + b,    x' = ReLU(a),    L = 1/(B·F) Σ_batch Σ_f I_f (x'_f - x_f)².

Backward, one sample at a time (then summed over the batch):

    ∂L/∂x'_f = 2 I_f (x'_f - x_f) / (B·F)
    r_f := ∂L/∂a_f = ∂L/∂x'_f · 1[a_f > 0]          (the ReLU passes the gradient where it is on)
    ∂L/∂b_f = Σ_batch r_f

W appears twice, in the read-in z = W x and in the read-out a = Wᵀz, so its gradient has two terms:

    read-out, z fixed:    ∂a_f/∂W_hf = z_h              ->  Σ_batch z_h r_f
    through z:            ∂L/∂z_h = Σ_f W_hf r_f = (W r)_h,   ∂z_h/∂W_hg = x_g   ->  Σ_batch (W r)_h x_g

    ∂L/∂W = Σ_batch z rᵀ + W (Σ_batch r xᵀ)          (d_hidden x feats)

So one step needs only batch sums of products: z rᵀ (d_hidden x feats), r xᵀ (feats x feats) and r
(feats); for 2 features in 1 dimension that is eight numbers per instance. Batches are laid out
as everywhere in the library, `x: (batch, inst, feats)`: with instances contiguous, inductor
vectorises across instances and sums over the batch in its outer loop.
"""

from __future__ import annotations

import torch

SMALL = 64
"""Up to this many weights per instance (hidden x feats), the model is written feature by feature:
sums of (batch, inst) planes, which inductor fuses into a few loops over the batch when compiling
(and `utils.fast.planes` runs eagerly); otherwise the contractions are batched matrix products
(`torch.einsum`)."""


def _use_planes(W: torch.Tensor, planes: bool | None) -> bool:
    """`planes`, or by default: whether `W: (inst, hidden, feats)` is small and the code is being
    compiled (eagerly, each plane costs one kernel launch, and fewer, bigger einsums are faster)."""
    if planes is not None:
        return planes
    return W.shape[-2] * W.shape[-1] <= SMALL and torch.compiler.is_compiling()


def forward(
    W: torch.Tensor, b: torch.Tensor, x: torch.Tensor, planes: bool | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Hidden z `(batch, inst, hidden)` and pre-activation a `(batch, inst, feats)` for `x: (batch, inst, feats)`.

    `planes`: write the model feature by feature (default: when small and compiling).
    """
    if not _use_planes(W, planes):
        z = torch.einsum("bif,ihf->bih", x, W)
        return z, torch.einsum("bih,ihf->bif", z, W) + b
    zs, pres = _forward_planes(W, b, x.unbind(-1))
    return torch.stack(zs, -1), torch.stack(pres, -1)


def _forward_planes(W, b, xs):
    """`forward` on feature planes: `xs` feats tensors `(batch, inst)` -> hidden and pre-activation planes."""
    hidden, feats = W.shape[1:]
    zs = [sum(W[:, h, f] * xs[f] for f in range(feats)) for h in range(hidden)]
    pres = [sum(W[:, h, f] * zs[h] for h in range(hidden)) + b[:, f] for f in range(feats)]
    return zs, pres


def loss(
    W: torch.Tensor, b: torch.Tensor, importance: torch.Tensor, x: torch.Tensor, planes: bool | None = None
) -> torch.Tensor:
    """Per-instance loss `(inst,)`: importance-weighted squared error, mean over batch and features."""
    _, a = forward(W, b, x, planes)
    return (importance * (torch.relu(a) - x) ** 2).mean(dim=(0, 2))


def loss_and_gradients(
    W: torch.Tensor, b: torch.Tensor, importance: torch.Tensor, x: torch.Tensor, planes: bool | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Loss `(inst,)` and its gradients with respect to `W: (inst, hidden, feats)` and `b: (inst, feats)`.

    `importance: (inst, feats)`, `x: (batch, inst, feats)`, `planes` as in `forward`; see the module
    docstring for the derivation.
    """
    n = x.shape[0] * x.shape[2]
    if not _use_planes(W, planes):
        z, a = forward(W, b, x, planes=False)
        error = torch.relu(a) - x
        weighted = importance * error
        per_instance = (weighted * error).sum(dim=(0, 2)) / n
        r = torch.where(a > 0, weighted, 0.0) * (2.0 / n)
        rx = torch.einsum("big,bif->igf", r, x)  # Σ_batch r xᵀ: (inst, feats, feats)
        grad_W = torch.einsum("bih,bif->ihf", z, r) + torch.einsum("ihg,igf->ihf", W, rx)
        return per_instance, grad_W, r.sum(0)
    hidden, feats = W.shape[1:]
    xs = x.unbind(-1)
    zs, pres = _forward_planes(W, b, xs)
    errors = [torch.relu(pres[f]) - xs[f] for f in range(feats)]
    weighted = [importance[:, f] * errors[f] for f in range(feats)]
    per_instance = sum((weighted[f] * errors[f]).sum(0) for f in range(feats)) / n
    rs = [torch.where(pres[f] > 0, weighted[f], 0.0) * (2.0 / n) for f in range(feats)]
    grad_b = torch.stack([r.sum(0) for r in rs], -1)
    rx = [[(rs[g] * xs[f]).sum(0) for f in range(feats)] for g in range(feats)]  # Σ_batch r_g x_f
    grad_W = torch.stack(
        [
            torch.stack(
                [(zs[h] * rs[f]).sum(0) + sum(W[:, h, g] * rx[g][f] for g in range(feats)) for f in range(feats)], -1
            )
            for h in range(hidden)
        ],
        1,
    )
    return per_instance, grad_W, grad_b
