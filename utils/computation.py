"""Measurements of an MLP that computes ReLU(x) in superposition (chapter 6, `ReluComputationModel`).

The model is y = W_out ReLU(W_in x) with `W_in: (inst, d_hidden, feats)` and `W_out: (inst, feats,
d_hidden)`; inputs are sparse, uniform on [-1, 1] when active. With one feature i active at value x,
each output is piecewise linear in x, so the response of output j is exactly

    y_j = x · G⁺[j, i] for x > 0,    y_j = |x| · G⁻[j, i] for x < 0,
    G⁺ = W_out ReLU(W_in),           G⁻ = W_out ReLU(-W_in),

and the gain of feature i is G⁺[i, i], its leak (the output at x_i = -1) G⁻[i, i]. The effective
linear map W_eff = W_out W_in = G⁺ - G⁻ mixes the two.

Errors come in two measures (`error_measures`): the *full objective*, the mean of |y_j - ReLU(x_j)|^p
over all samples and all outputs, which is what training minimises; and the error of each feature
*when it is active*, which the report in seed 003 uses and which ignores what an active feature
writes into the outputs of the inactive ones. The feature geometry (signed cosines, the frame
spectrum, the common direction) and a mean-field prediction of the gain are here too.

Functions take the weights (or a model, for sampling); none modifies its inputs.
"""

from __future__ import annotations

import math

import torch

from utils import metrics
from utils.data import SparseUniform
from utils.models import ReluComputationModel
from utils.validation import check_positive_int, check_probability

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


def naive_error(n_features: int, n_neurons: int, power: int = 2, feature_probability: float | None = None) -> float:
    """Expected error of the naive solution, mean over features: per active feature (default),
    (n - m)/n · E[ReLU(x)^p] ((n - m)/n · 1/6 for the squared error); or, given the
    `feature_probability` p, on the full objective (all samples, all outputs), p · (n - m)/n · E[ReLU(x)^p]:
    the naive solution writes nothing into the outputs of inactive features."""
    if power not in RELU_MOMENTS:
        raise ValueError(f"power must be one of {sorted(RELU_MOMENTS)}, got {power}")
    naive_weights(n_features, n_neurons)  # validates the sizes
    per_active = (n_features - n_neurons) / n_features * RELU_MOMENTS[power]
    if feature_probability is None:
        return per_active
    if not 0 <= feature_probability <= 1:
        raise ValueError(f"feature_probability must lie in [0, 1], got {feature_probability}")
    return feature_probability * per_active


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


def _error_sums(y: torch.Tensor, x: torch.Tensor, power: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sums over the batch of |y_j - ReLU(x_j)|^power on the samples where feature j is active and where it
    is not, and the number of active samples: `y, x: (batch, inst, feats) -> 3 x (inst, feats)` (float64)."""
    if not (isinstance(y, torch.Tensor) and isinstance(x, torch.Tensor)) or y.shape != x.shape or x.dim() != 3:
        raise ValueError(
            f"y and x must be tensors of the same shape (batch, inst, feats), got {getattr(y, 'shape', y)} and "
            f"{getattr(x, 'shape', x)}"
        )
    active = x != 0
    error = (y - torch.relu(x)).abs().double() ** power
    return (error * active).sum(dim=0), (error * ~active).sum(dim=0), active.sum(dim=0).double()


def two_measures(y: torch.Tensor, x: torch.Tensor, power: float = 2.0) -> tuple[torch.Tensor, torch.Tensor]:
    """The two error measures on one batch, e = y - ReLU(x): the full objective, the mean of |e|^power
    over the batch and all outputs, `(inst,)`; and the error per active feature, the mean of |e_j|^power
    over the samples in which x_j != 0 (0 for a feature never active), `(inst, feats)`.

    `y, x: (batch, inst, feats)`, float32 results.
    """
    on_active, on_inactive, count = _error_sums(y, x, power)
    full = (on_active + on_inactive).mean(dim=1) / x.shape[0]
    return full.float(), (on_active / count.clamp_min(1)).float()


@torch.no_grad()
def error_measures(
    model,
    power: float = 2.0,
    feature_probability: float | torch.Tensor | None = None,
    n_samples: int = 200_000,
    chunk: int = 8192,
    generator: torch.Generator | None = None,
) -> dict[str, torch.Tensor]:
    """The two error measures of a model computing ReLU(x) (see `two_measures`), on `n_samples` inputs.

    With e_j = y_j - ReLU(x_j), returns:
        "full": `(inst,)` mean of importance_j · |e_j|^power over samples and outputs, the training
            objective (for `power` equal to the model's loss power);
        "on_active", "on_inactive": `(inst, feats)` mean over *all* samples of |e_j|^power on the
            samples in which feature j is active, resp. inactive (their sum, weighted by importance
            and averaged over features, is "full");
        "per_active": `(inst, feats)` mean of |e_j|^power over the samples in which feature j is
            active, the measure of the report in seed 003 (it ignores "on_inactive").

    Args:
        model: a `ReluComputationModel` (or any model with `cfg`, `forward`, `importance`, `value_range`).
        feature_probability: the probability that a feature is active, broadcast to `(inst, feats)`
            (default: the model's own).
    """
    check_positive_int(n_samples, "n_samples")
    check_positive_int(chunk, "chunk")
    shape = (model.cfg.n_inst, model.cfg.n_features)
    device = next(model.parameters()).device
    p = model.feature_probability if feature_probability is None else feature_probability
    law = SparseUniform(torch.as_tensor(p, dtype=torch.float32, device=device).broadcast_to(shape), *model.value_range)
    sums = [torch.zeros(shape, dtype=torch.float64, device=device) for _ in range(3)]
    for start in range(0, n_samples, chunk):
        x = law.sample(min(chunk, n_samples - start), generator)
        for total, part in zip(sums, _error_sums(model(x), x, power)):
            total += part
    on_active, on_inactive, count = sums
    full = (model.importance * (on_active + on_inactive)).mean(dim=1) / n_samples
    return {
        "full": full.float().cpu(),
        "on_active": (on_active / n_samples).float().cpu(),
        "on_inactive": (on_inactive / n_samples).float().cpu(),
        "per_active": (on_active / count.clamp_min(1)).float().cpu(),
    }


class NonNegativeInputModel(ReluComputationModel):
    """A `ReluComputationModel` whose input weights are kept non-negative during training (projected Adam).

    Every training step first sets the negative entries of `W_in` to 0, then computes the gradient:
    train it with `utils.train.optimize` on its hand-written step (the default, `fast=None`), then
    call `project()` once to clear what the last update left below 0. With W_in >= 0 a lone negative
    input silences every neuron, so the model never leaks: its output for x_i < 0 alone is exactly 0.
    """

    @torch.no_grad()
    def project(self) -> None:
        """Set the negative input weights to 0, in place."""
        self.W_in.clamp_(min=0)

    def step_gradients(self, *args, **kwargs) -> torch.Tensor:
        """Project, then `ReluComputationModel.step_gradients` (same arguments and result)."""
        self.project()
        return super().step_gradients(*args, **kwargs)


def mean_abs_cosine(W_in: torch.Tensor) -> torch.Tensor:
    """Mean |cos| over pairs of distinct feature directions (columns of W_in): `(inst, d, feats) -> (inst,)`."""
    return off_diagonal(metrics.cosine_similarities(W_in).abs()).mean(dim=1)


def mean_cosine(W_in: torch.Tensor) -> torch.Tensor:
    """Mean *signed* cosine over pairs of distinct feature directions: `(inst, d, feats) -> (inst,)`; about 0
    (standard deviation √(2/d)/n for n features) for independent random directions."""
    return off_diagonal(metrics.cosine_similarities(W_in)).mean(dim=1)


def random_abs_cosine(d_hidden: int) -> float:
    """E|cos| between two independent uniformly random directions in d dimensions,
    Γ(d/2) / (√π Γ((d+1)/2)) (0.2587 for d = 10)."""
    check_positive_int(d_hidden, "d_hidden")
    if d_hidden == 1:
        return 1.0
    return math.exp(math.lgamma(d_hidden / 2) - math.lgamma((d_hidden + 1) / 2)) / math.sqrt(math.pi)


def _unit_columns(W: torch.Tensor) -> torch.Tensor:
    if not isinstance(W, torch.Tensor) or W.dim() != 3:
        shape = tuple(W.shape) if isinstance(W, torch.Tensor) else type(W).__name__
        raise ValueError(f"W must have shape (inst, d_hidden, feats), got {shape}")
    W = W.detach().double().cpu()
    return W / W.norm(dim=1, keepdim=True).clamp_min(1e-12)


def frame_spectrum(W: torch.Tensor) -> torch.Tensor:
    """Eigenvalues of the frame operator Σ_i û_i û_iᵀ of the unit feature directions û_i (columns of W,
    zero columns count 0), largest first: `(inst, d_hidden, feats) -> (inst, d_hidden)`.

    They sum to the number of (non-zero) features; all equal n/d for a tight frame (the directions
    spread evenly over every direction of the space); one large eigenvalue means a direction that all
    features share.
    """
    U = _unit_columns(W)
    return torch.linalg.eigvalsh(U @ U.transpose(1, 2)).flip(-1).float()


def random_frame_spectra(
    n_features: int, d_hidden: int, n_frames: int = 1000, generator: torch.Generator | None = None
) -> torch.Tensor:
    """`frame_spectrum` of `n_frames` frames of `n_features` independent uniformly random directions in
    `d_hidden` dimensions: `(n_frames, d_hidden)`, largest first."""
    for value, name in ((n_features, "n_features"), (d_hidden, "d_hidden"), (n_frames, "n_frames")):
        check_positive_int(value, name)
    return frame_spectrum(torch.randn(n_frames, d_hidden, n_features, generator=generator))


def common_direction(W: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The direction the features share most: the top eigenvector v of the frame operator, signed so
    that the mean projection is positive, and every unit feature direction's projection on it.

    `(inst, d_hidden, feats) -> v: (inst, d_hidden), projections û_i · v: (inst, feats)`.
    """
    U = _unit_columns(W)
    v = torch.linalg.eigh(U @ U.transpose(1, 2)).eigenvectors[:, :, -1]
    projections = torch.einsum("kh,khi->ki", v, U)
    sign = torch.where(projections.mean(dim=1, keepdim=True) < 0, -1.0, 1.0).double()
    return (v * sign).float(), (projections * sign).float()


def weakest_readout(W_out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The hidden direction the read-out is least sensitive to: the right singular vector of W_out with
    the smallest singular value, and all singular values (largest first).

    `W_out: (inst, feats, d_hidden) -> direction (inst, d_hidden), singular values (inst, d_hidden)`.
    """
    if not isinstance(W_out, torch.Tensor) or W_out.dim() != 3:
        raise ValueError(
            f"W_out must have shape (inst, feats, d_hidden), got {getattr(W_out, 'shape', type(W_out).__name__)}"
        )
    _, singular, Vh = torch.linalg.svd(W_out.detach().double().cpu(), full_matrices=False)
    return Vh[:, -1].float(), singular.float()


def cross_gains_through(W_in: torch.Tensor, W_out: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """The part of the cross-gains G = W_out ReLU(W_in) that passes through the hidden direction v:
    G_v[j, i] = (W_out v)_j (v · ReLU(W_in)[:, i]): `v: (inst, d_hidden) -> (inst, feats, feats)`."""
    W_in, W_out = _pair(W_in, W_out)
    v = v.detach().float().to(W_in.device)
    v = v / v.norm(dim=1, keepdim=True).clamp_min(1e-12)
    return (
        torch.einsum("kjh,kh->kj", W_out, v)[:, :, None] * torch.einsum("kh,khi->ki", v, torch.relu(W_in))[:, None, :]
    )


def _term_moments(a: torch.Tensor, b: torch.Tensor, p: float) -> list[torch.Tensor]:
    """E[Z^k], k = 1..4, for Z = 0 with probability 1 - p, a·U or b·U with probability p/2 each, U uniform on [0, 1]."""
    return [p / 2 * (a**k + b**k) / (k + 1) for k in range(1, 5)]


def _cumulants(m: list[torch.Tensor]) -> list[torch.Tensor]:
    m1, m2, m3, m4 = m
    return [m1, m2 - m1**2, m3 - 3 * m2 * m1 + 2 * m1**3, m4 - 4 * m3 * m1 - 3 * m2**2 + 12 * m2 * m1**2 - 6 * m1**4]


def _moment_from_cumulants(K: list[torch.Tensor], power: int) -> torch.Tensor:
    K1, K2, K3, K4 = K
    if power == 2:
        return K2 + K1**2
    return K4 + 4 * K3 * K1 + 3 * K2**2 + 6 * K2 * K1**2 + K1**4


def _check_power(power: int) -> None:
    if power not in (2, 4):
        raise ValueError(f"power must be 2 or 4, got {power}")


def additive_error(W_in: torch.Tensor, W_out: torch.Tensor, feature_probability: float, power: int = 4) -> torch.Tensor:
    """E|e_j|^power for each output, exactly, *if* the outputs were sums of one response per active feature.

    Feature i alone at value x adds G⁺[j, i]·x (x > 0) or G⁻[j, i]·|x| (x < 0) to output j; assuming
    these add up when several features are active (the hidden ReLU makes them interact, so this is an
    approximation), e_j is a sum of independent terms, and its 2nd and 4th moments follow from the
    terms' cumulants in closed form. `-> (inst, feats)`, the full objective per output; features
    independent, active with probability `feature_probability`, uniform on [-1, 1].
    """
    _check_power(power)
    check_probability(torch.tensor(float(feature_probability)), "feature_probability")
    W_in, W_out = _pair(W_in, W_out)
    W_in, W_out = W_in.double().cpu(), W_out.double().cpu()
    G_plus = torch.einsum("kjh,khi->kji", W_out, torch.relu(W_in))
    G_minus = torch.einsum("kjh,khi->kji", W_out, torch.relu(-W_in))
    eye = torch.eye(W_in.shape[2], dtype=torch.bool)
    a = torch.where(eye, G_plus - 1, G_plus)  # output j's own target ReLU(x_j) is subtracted
    K = [c.sum(dim=2) for c in _cumulants(_term_moments(a, G_minus, feature_probability))]
    return _moment_from_cumulants(K, power).float()


def mean_field_gain(
    W_in: torch.Tensor,
    W_out: torch.Tensor,
    feature_probability: float,
    power: int = 4,
    gains: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The common gain g that minimises the full objective in a mean-field model of the learned geometry.

    The geometry is the cross-gains divided by the mean gain, Ĝ± = G± / mean(gain), so that the model
    is G± = g·Ĝ±: every output has gain g, leak g·λ (λ the mean leak over the mean gain), and receives,
    from each of the n - 1 other features, a response drawn from the learned off-diagonal entries
    (the same law for every output). Responses add (as in `additive_error`), so the objective is a
    polynomial in g, minimised over the grid `gains` (default 0.001 to 1.5).

    Returns `(inst,)` the predicted gains, and `(inst, n_gains)` the mean-field objective on the grid.
    """
    _check_power(power)
    check_probability(torch.tensor(float(feature_probability)), "feature_probability")
    W_in, W_out = _pair(W_in, W_out)
    W_in, W_out = W_in.double().cpu(), W_out.double().cpu()
    gains = (
        torch.linspace(1e-3, 1.5, 1500, dtype=torch.float64)
        if gains is None
        else torch.as_tensor(gains, dtype=torch.float64)
    )
    n = W_in.shape[2]
    G_plus = torch.einsum("kjh,khi->kji", W_out, torch.relu(W_in))
    G_minus = torch.einsum("kjh,khi->kji", W_out, torch.relu(-W_in))
    scale = G_plus.diagonal(dim1=1, dim2=2).mean(dim=1)  # the mean gain
    if not (scale > 0).all():
        raise ValueError("mean_field_gain needs a positive mean gain in every instance")
    leak_ratio = G_minus.diagonal(dim1=1, dim2=2).mean(dim=1) / scale
    off = ~torch.eye(n, dtype=torch.bool)
    a_hat, b_hat = G_plus[:, off] / scale[:, None], G_minus[:, off] / scale[:, None]  # (inst, n(n-1))
    # the k-th moment of a response scales as g^k: average the unit-gain moments over the entries once
    unit = [m.mean(dim=1) for m in _term_moments(a_hat, b_hat, feature_probability)]  # k = 1..4, each (inst,)
    interference = [
        (n - 1) * c for c in _cumulants([m[:, None] * gains[None, :] ** k for k, m in enumerate(unit, start=1)])
    ]
    own = _cumulants(_term_moments(gains[None, :] - 1, gains[None, :] * leak_ratio[:, None], feature_probability))
    objective = _moment_from_cumulants([x + y for x, y in zip(interference, own)], power)
    return gains[objective.argmin(dim=1)].float(), objective.float()
