"""Adam, in place, with the exact arithmetic of `torch.optim.Adam` (L2 weight decay added to the gradient).

For step t = 1, 2, ... with gradient g of parameter θ:

    g <- g + weight_decay·θ
    m <- m + (1 - β₁)(g - m)                   (exp_avg)
    v <- β₂ v + (1 - β₂) g²                    (exp_avg_sq)
    θ <- θ - lr/(1 - β₁ᵗ) · m / (√v / √(1 - β₂ᵗ) + ε)

(kernel.c's `adam` is the same update in C.)
"""

from __future__ import annotations

import math

import torch

BETAS = (0.9, 0.999)
EPS = 1e-8


def adam_update_(
    param: torch.Tensor,
    grad: torch.Tensor,
    exp_avg: torch.Tensor,
    exp_avg_sq: torch.Tensor,
    lr: torch.Tensor,
    step: torch.Tensor,
    weight_decay: torch.Tensor,
) -> None:
    """One Adam update of `param` in place (and of its moments `exp_avg`, `exp_avg_sq`, same shape).

    Args:
        lr, weight_decay: 0-d float tensors.
        step: 0-d tensor, the number of this step counting from 1.
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
