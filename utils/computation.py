"""Measurements of an MLP that computes ReLU(x) in superposition (chapter 6, `ReluComputationModel`).

The model is y = W_out ReLU(W_in x) with `W_in: (inst, d_hidden, feats)` and `W_out: (inst, feats,
d_hidden)`; inputs are sparse, uniform on [-1, 1] when active. With one feature i active at value x,
each output is piecewise linear in x, so the response of output j is exactly

    y_j = x · G⁺[j, i] for x > 0,    y_j = |x| · G⁻[j, i] for x < 0,
    G⁺ = W_out ReLU(W_in),           G⁻ = W_out ReLU(-W_in),

and the gain of feature i is G⁺[i, i], its leak (the output at x_i = -1) G⁻[i, i]. The effective
linear map W_eff = W_out W_in = G⁺ - G⁻ mixes the two. Errors are measured per feature and
*conditioned on the feature being active*, as the report in seed 003 does.

Functions take the weights (or a model, for sampling); none modifies its inputs.
"""

from __future__ import annotations

import math

import torch

from utils import metrics
from utils.data import SparseUniform
from utils.validation import check_positive_int

RELU_MOMENTS = {2: 1 / 6, 4: 1 / 10}
"""E[ReLU(x)^p] for x uniform on [-1, 1]: the error of an ignored active feature under Lp."""


def _pair(W_in: torch.Tensor, W_out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Detached float copies of the weights; checks `(inst, d_hidden, feats)` and `(inst, feats, d_hidden)`."""
    for W, name in ((W_in, "W_in"), (W_out, "W_out")):
        if not isinstance(W, torch.Tensor) or W.dim() != 3:
            shape = tuple(W.shape) if isinstance(W, torch.Tensor) else type(W).__name__
            raise ValueError(f"{name} must be a tensor with 3 dimensions, got {shape}")
    n_inst, d_hidden, n_features = W_in.shape
    if tuple(W_out.shape) != (n_inst, n_features, d_hidden):
        raise ValueError(
            f"W_out must have shape (inst, feats, d_hidden) = {(n_inst, n_features, d_hidden)} to match "
            f"W_in {tuple(W_in.shape)} = (inst, d_hidden, feats), got {tuple(W_out.shape)}"
        )
    return W_in.detach().float(), W_out.detach().float()


def naive_weights(n_features: int, n_neurons: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The naive solution: neuron h computes ReLU(x_h) exactly for the first `n_neurons` features,
    the other features are ignored. Returns `W_in: (1, n_neurons, feats)`, `W_out: (1, feats, n_neurons)`."""
    check_positive_int(n_features, "n_features")
    check_positive_int(n_neurons, "n_neurons")
    if n_neurons > n_features:
        raise ValueError(f"the naive solution needs n_neurons <= n_features, got {n_neurons} > {n_features}")
    W_in = torch.eye(n_neurons, n_features)[None]
    return W_in, W_in.transpose(1, 2).clone()


def naive_error(n_features: int, n_neurons: int, power: int = 2) -> float:
    """Expected error per active feature of the naive solution, mean over features:
    (n - m)/n · E[ReLU(x)^p] ((n - m)/n · 1/6 for the squared error)."""
    if power not in RELU_MOMENTS:
        raise ValueError(f"power must be one of {sorted(RELU_MOMENTS)}, got {power}")
    naive_weights(n_features, n_neurons)  # validates the sizes
    return (n_features - n_neurons) / n_features * RELU_MOMENTS[power]


def gains_and_leaks(W_in: torch.Tensor, W_out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each feature's response to itself alone: gain = output per unit of positive input, leak =
    output at x_i = -1 (from neurons that read x_i with a negative weight).

    `(inst, d_hidden, feats), (inst, feats, d_hidden) -> (inst, feats), (inst, feats)`.
    """
    W_in, W_out = _pair(W_in, W_out)
    gain = torch.einsum("kih,khi->ki", W_out, torch.relu(W_in))
    leak = torch.einsum("kih,khi->ki", W_out, torch.relu(-W_in))
    return gain, leak


def cross_gains(W_in: torch.Tensor, W_out: torch.Tensor) -> torch.Tensor:
    """G[j, i]: output j per unit of positive input on feature i alone, W_out ReLU(W_in):
    `-> (inst, feats_out, feats_in)`; its diagonal is the gain."""
    W_in, W_out = _pair(W_in, W_out)
    return torch.einsum("kjh,khi->kji", W_out, torch.relu(W_in))


def effective_weights(W_in: torch.Tensor, W_out: torch.Tensor) -> torch.Tensor:
    """The linear map without the hidden ReLU, W_eff = W_out W_in: `-> (inst, feats, feats)`."""
    W_in, W_out = _pair(W_in, W_out)
    return torch.einsum("kjh,khi->kji", W_out, W_in)


def off_diagonal(M: torch.Tensor) -> torch.Tensor:
    """The off-diagonal entries of square matrices: `(inst, n, n) -> (inst, n·(n-1))`."""
    n = M.shape[-1]
    if M.dim() != 3 or M.shape[-2] != n:
        raise ValueError(f"expected square matrices (inst, n, n), got {tuple(M.shape)}")
    return M[:, ~torch.eye(n, dtype=torch.bool)]


def response_curves(W_in: torch.Tensor, W_out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Output of feature i when feature i alone is set to each value of `x` (the others 0), computed
    by running the network: `x: (n_x,) -> (inst, n_x, feats)`."""
    W_in, W_out = _pair(W_in, W_out)
    x = torch.as_tensor(x, dtype=torch.float32).flatten()
    n_features = W_in.shape[2]
    # inputs (n_x, feats_in, inst, feats): value x[a] on feature i only
    inputs = x[:, None, None, None] * torch.eye(n_features)[None, :, None, :]
    hidden = torch.relu(torch.einsum("aikf,khf->aikh", inputs.expand(-1, -1, W_in.shape[0], -1), W_in))
    out = torch.einsum("aikh,kjh->aikj", hidden, W_out)
    return out.diagonal(dim1=1, dim2=3).permute(1, 0, 2)


def fitted_gain(x: torch.Tensor, curves: torch.Tensor) -> torch.Tensor:
    """Least-squares slope through the origin of response curves on x > 0:
    `x: (n_x,)`, `curves: (inst, n_x, feats) -> (inst, feats)`."""
    x = torch.as_tensor(x, dtype=torch.float32).flatten()
    positive = x > 0
    if not positive.any():
        raise ValueError("fitted_gain needs some positive x values")
    xp = x[positive]
    return torch.einsum("a,kaf->kf", xp, curves[:, positive]) / (xp**2).sum()


def isolated_error(W_in: torch.Tensor, W_out: torch.Tensor) -> torch.Tensor:
    """Squared error of feature i when it is the only active feature, x_i uniform on [-1, 1]:
    ((1 - gain)² + leak²) / 6, exact (the response is linear on each side of 0): `-> (inst, feats)`."""
    gain, leak = gains_and_leaks(W_in, W_out)
    return ((1 - gain) ** 2 + leak**2) / 6


@torch.no_grad()
def per_feature_error(
    model,
    feature_probability: float | torch.Tensor | None = None,
    power: float = 2.0,
    n_samples: int = 200_000,
    chunk: int = 8192,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Mean |y_i - ReLU(x_i)|^power over samples in which feature i is active: `-> (inst, feats)`.

    Args:
        model: a `ReluComputationModel` (or any model with `cfg`, `forward` and `target`).
        feature_probability: the probability that a feature is active, broadcast to `(inst, feats)`
            (default: the model's own).
        n_samples: samples drawn in total, `chunk` at a time.
    """
    check_positive_int(n_samples, "n_samples")
    shape = (model.cfg.n_inst, model.cfg.n_features)
    device = next(model.parameters()).device
    p = model.feature_probability if feature_probability is None else feature_probability
    law = SparseUniform(torch.as_tensor(p, dtype=torch.float32, device=device).broadcast_to(shape), *model.value_range)
    total = torch.zeros(shape, dtype=torch.float64, device=device)
    count = torch.zeros(shape, dtype=torch.float64, device=device)
    for start in range(0, n_samples, chunk):
        x = law.sample(min(chunk, n_samples - start), generator)
        active = x != 0
        error = (model(x) - model.target(x)).abs() ** power
        total += (error * active).sum(dim=0)
        count += active.sum(dim=0)
    return (total / count.clamp_min(1)).float().cpu()


def error_decomposition(model, **kwargs) -> dict[str, torch.Tensor]:
    """Split each feature's squared error under the training distribution into attenuation (the
    error it makes alone, `isolated_error`) and interference (the rest).

    Returns `(inst, feats)` tensors "total", "attenuation", "interference"; kwargs go to `per_feature_error`.
    """
    total = per_feature_error(model, power=2.0, **kwargs)
    attenuation = isolated_error(model.W_in, model.W_out).cpu()
    return {"total": total, "attenuation": attenuation, "interference": total - attenuation}


@torch.no_grad()
def output_scale_losses(
    model,
    scales: torch.Tensor,
    power: float | torch.Tensor | None = None,
    n_samples: int = 100_000,
    chunk: int = 8192,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """The loss of the model with its read-out multiplied by each of `scales` (W_out -> c·W_out, which
    scales every gain, leak and interference term by c), on one shared sample.

    Args:
        scales: `(n_c,)` multipliers c.
        power: the loss power per instance, `(inst,)` or a number (default: the model's `loss_power`).

    Returns:
        `(n_c, inst)` mean of |c·y - ReLU(x)|^p over samples and features (unweighted).
    """
    check_positive_int(n_samples, "n_samples")
    scales = torch.as_tensor(scales, dtype=torch.float32).flatten()
    device = next(model.parameters()).device
    p = torch.as_tensor(model.loss_power if power is None else power, dtype=torch.float32, device=device)
    p = p.broadcast_to((model.cfg.n_inst,))[None, :, None]
    total = torch.zeros(scales.numel(), model.cfg.n_inst, dtype=torch.float64, device=device)
    for start in range(0, n_samples, chunk):
        x = model.generate_batch(min(chunk, n_samples - start), generator)
        y, target = model(x), model.target(x)
        for index, c in enumerate(scales.tolist()):
            total[index] += ((c * y - target).abs() ** p).sum(dim=(0, 2))
    return (total / (n_samples * model.cfg.n_features)).float().cpu()


def best_output_scale(scales: torch.Tensor, losses: torch.Tensor) -> torch.Tensor:
    """The minimiser of each instance's loss over the read-out scale, refined by a parabola through
    the best grid point and its neighbours: `scales: (n_c,)`, `losses: (n_c, inst) -> (inst,)`."""
    scales = torch.as_tensor(scales, dtype=torch.float64).flatten()
    losses = losses.double()
    if losses.dim() != 2 or losses.shape[0] != scales.numel() or scales.numel() < 3:
        raise ValueError(f"losses must be (n_c, inst) with n_c = len(scales) >= 3, got {tuple(losses.shape)}")
    best = losses.argmin(dim=0).clamp(1, scales.numel() - 2)
    inst = torch.arange(losses.shape[1])
    c0, c1, c2 = scales[best - 1], scales[best], scales[best + 1]
    l0, l1, l2 = losses[best - 1, inst], losses[best, inst], losses[best + 1, inst]
    # vertex of the parabola through the three points
    numerator = (c1 - c0) ** 2 * (l1 - l2) - (c1 - c2) ** 2 * (l1 - l0)
    denominator = (c1 - c0) * (l1 - l2) - (c1 - c2) * (l1 - l0)
    safe = denominator.abs() > 1e-30
    return torch.where(safe, c1 - 0.5 * numerator / torch.where(safe, denominator, 1.0), c1).float()


def mean_abs_cosine(W_in: torch.Tensor) -> torch.Tensor:
    """Mean |cos| over pairs of distinct feature directions (columns of W_in): `(inst, d, feats) -> (inst,)`."""
    return off_diagonal(metrics.cosine_similarities(W_in).abs()).mean(dim=1)


def random_abs_cosine(d_hidden: int) -> float:
    """E|cos| between two independent uniformly random directions in d dimensions,
    Γ(d/2) / (√π Γ((d+1)/2)) (0.2587 for d = 10)."""
    check_positive_int(d_hidden, "d_hidden")
    if d_hidden == 1:
        return 1.0
    return math.exp(math.lgamma(d_hidden / 2) - math.lgamma((d_hidden + 1) / 2)) / math.sqrt(math.pi)


def welch_rms_cosine(n_features: int, d_hidden: int) -> float:
    """The least possible root-mean-square cosine over pairs of n unit vectors in d < n dimensions
    (the Welch bound √((n - d) / (d (n - 1)))); 0 when n <= d."""
    check_positive_int(n_features, "n_features")
    check_positive_int(d_hidden, "d_hidden")
    if n_features <= d_hidden:
        return 0.0
    return math.sqrt((n_features - d_hidden) / (d_hidden * (n_features - 1)))
