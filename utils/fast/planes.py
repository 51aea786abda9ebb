"""The eager training step of small tied ReLU models, x' = ReLU(WᵀWx + b): gradient by hand, then Adam.

For one instance with weights W (hidden x feats), bias b, importances I and a batch of B inputs x,

    z = W x,    a = Wᵀz + b,    x' = ReLU(a),    L = 1/(B·F) Σ_batch Σ_f I_f (x'_f - x_f)².

Backward, with r_f := ∂L/∂a_f = 2 I_f (x'_f - x_f) 1[a_f > 0] / (B·F) (the ReLU passes the gradient
where it is on): ∂L/∂b_f = Σ_batch r_f, and W, which appears twice (read-in z = W x, read-out Wᵀz),
gets two terms, Σ_batch z rᵀ + W Σ_batch r xᵀ. As z = W x, both need only the batch sums
xr[g, f] = Σ_batch x_g r_f:

    ∂L/∂b_f = Σ_batch r_f,    ∂L/∂W_hf = Σ_g W_hg xr[g, f] + Σ_g W_hg xr[f, g].

Adam (`adam_update_`) with the arithmetic of torch.optim.Adam, weight decay added to the gradient: for
step t = 1, 2, ... with gradient g of parameter θ,

    g <- g + weight_decay·θ,   m <- m + (1 - β₁)(g - m),   v <- β₂ v + (1 - β₂) g²,
    θ <- θ - lr/(1 - β₁ᵗ) · m / (√v / √(1 - β₂ᵗ) + ε).

This is the one torch statement of that step (tests compare it with autograd and torch.optim.Adam;
`kernel.c` is the same step in C). Eager torch runs one op at a time, each a pass over memory, so the
layout is what costs (`PERFORMANCE.md`): samples are feature planes `(feats, batch, inst)` with
instances contiguous, intermediates live in planes allocated once, masks are 0/1 floats, and
a chunk's instances go in blocks of at most `BLOCK`, whose planes stay in cache. Models with more than
`SMALL` weights per instance train on autograd (or the kernel) instead.
"""

from __future__ import annotations

import math

import torch

SMALL = 64
"""Most weights per instance (hidden x feats) this step takes."""
BLOCK = 1024
"""Most instances per block: 256 samples x 1024 instances is 1 MB per plane."""
BETAS, EPS = (0.9, 0.999), 1e-8
"""Adam's, torch.optim.Adam's defaults."""

_relu_backward = torch.ops.aten.threshold_backward.grad_input


class PlaneChunk:
    """A chunk of instances in the planes layout, trained in place by `step`.

    Args:
        W: `(inst, hidden, feats)`, b, importance: `(inst, feats)`, params: `(inst, k)` (the law's).
        transform, n_uniforms: the law's map from uniforms and their number per sample (`LawSpec`).
        batch: samples per step.
    """

    def __init__(self, W, b, importance, params, transform, n_uniforms: int, batch: int):
        inst, self.hidden, self.feats = W.shape
        self.W = W.permute(1, 2, 0).contiguous()  # (hidden, feats, inst)
        self.b = b.T.contiguous()  # (feats, inst)
        self.moments = [torch.zeros_like(t) for t in (self.W, self.W, self.b, self.b)]
        self.importance, self.params = importance.T.contiguous(), params.T.contiguous()
        self.transform, self.batch = transform, batch
        self.loss = torch.empty(inst, device=W.device)
        self.grad_W, self.grad_b = torch.empty_like(self.W), torch.empty_like(self.b)
        n_blocks = math.ceil(inst / BLOCK)
        self.width = math.ceil(inst / n_blocks)
        # a block's planes (n, batch, width), allocated once: uniforms U, inputs X, hidden Z,
        # pre-activations A, errors where a > 0 R, scratch T
        sizes = (n_uniforms, self.feats, self.hidden, self.feats, self.feats, self.feats)
        self.planes = [torch.empty(n, batch, self.width, device=W.device) for n in sizes]

    def write_to(self, W: torch.Tensor, b: torch.Tensor) -> None:
        """Copy the trained weights into `W: (inst, hidden, feats)` and `b: (inst, feats)`."""
        W.copy_(self.W.permute(2, 0, 1))
        b.copy_(self.b.T)

    def step(self, u: torch.Tensor, lr: torch.Tensor, step: torch.Tensor, weight_decay: torch.Tensor,
             with_loss: bool = True) -> torch.Tensor | None:  # fmt: skip
        """One Adam step on the batch drawn from uniforms `u: (batch, inst, n_uniforms)`.

        Returns the per-instance loss `(inst,)` before the update (a buffer the next step overwrites),
        or None without `with_loss` (a step that logs nothing skips it). `lr, step, weight_decay`:
        0-d tensors, as `adam_update_`.
        """
        inst = self.loss.shape[0]
        for start in range(0, inst, self.width):
            self._block(u, slice(start, min(inst, start + self.width)), with_loss)
        m_W, v_W, m_b, v_b = self.moments
        adam_update_(self.W, self.grad_W, m_W, v_W, lr, step, weight_decay)
        adam_update_(self.b, self.grad_b, m_b, v_b, lr, step, weight_decay)
        return self.loss if with_loss else None

    def _block(self, u: torch.Tensor, cols: slice, with_loss: bool) -> None:
        """Gradients (and loss) of the instances `cols`, into `self.grad_W`, `self.grad_b` (`self.loss`)."""
        feats, hidden = self.feats, self.hidden
        width = cols.stop - cols.start  # a last block may be narrower
        U, X, Z, A, R, T = (plane[..., :width] for plane in self.planes)
        W, b, importance = self.W[..., cols], self.b[:, cols], self.importance[:, cols]
        U.copy_(u[:, cols].permute(2, 0, 1))
        self.transform(U.permute(1, 2, 0), self.params[:, cols].T, out=X.permute(1, 2, 0))
        for h in range(hidden):  # z_h = Σ_f W_hf x_f
            torch.mul(X[0], W[h, 0], out=Z[h])
            for f in range(1, feats):
                Z[h].addcmul_(X[f], W[h, f])
        torch.addcmul(b[:, None], Z[0][None], W[0][:, None], out=A)  # a_f = b_f + Σ_h W_hf z_h
        for h in range(1, hidden):
            A.addcmul_(Z[h][None], W[h][:, None])
        # R = ReLU(a) - x where a > 0, which is a - x there
        _relu_backward(torch.sub(A, X, out=R), A, 0.0, grad_input=R)
        n = self.batch * feats
        scale = importance * (2.0 / n)  # r = scale · R
        self.grad_b[:, cols] = R.sum(1) * scale
        # xr[f, g] = Σ_batch x_f r_g; then Σ_batch z_h r_f = Σ_g W_hg xr[g, f], as z_h = Σ_g W_hg x_g
        xr = torch.stack([torch.mul(R, X[f], out=T).sum(1) for f in range(feats)]) * scale
        self.grad_W[..., cols] = (W[:, :, None] * xr[None]).sum(1) + (W[:, None] * xr[None]).sum(2)
        if with_loss:
            error = torch.clamp_min(A, 0.0, out=T).sub_(X)  # x' - x
            self.loss[cols] = (error.square_().sum(1) * importance).sum(0) / n


def adam_update_(param, grad, exp_avg, exp_avg_sq, lr, step, weight_decay) -> None:
    """One Adam update of `param` in place, and of its moments `exp_avg`, `exp_avg_sq` (same shape).

    `lr`, `weight_decay`: 0-d float tensors; `step`: 0-d tensor, the number of this step from 1.
    """
    beta1, beta2 = BETAS
    grad = grad + weight_decay * param
    exp_avg.lerp_(grad, 1 - beta1)
    exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
    # 1 - βᵗ as -expm1(t log β): exact to float32 rounding even where βᵗ is close to 1.
    step = step.to(param.dtype)
    bias_correction1 = -torch.expm1(step * math.log(beta1))
    bias_correction2_sqrt = (-torch.expm1(step * math.log(beta2))).sqrt()
    denom = exp_avg_sq.sqrt() / bias_correction2_sqrt + EPS
    param.sub_(lr / bias_correction1 * exp_avg / denom)
