"""Sparse autoencoders (SAEs) on the hidden activations of toy models, batched over instances.

An SAE reads a toy model's hidden vector h (`d_in` numbers) and writes it as a sparse, non-negative
combination of `d_sae` learned directions, its *latents*:

    z = ReLU(W_enc (h - b_dec) + b_enc),    ĥ = D z + b_dec,    D = W_dec with unit-norm columns,

trained on the loss  mean_batch ‖h - ĥ‖² + λ · mean_batch ‖z‖₁  (`SparseAutoencoder`), or with the
L1 penalty replaced by keeping only the k largest latents of each input (`TopKAutoencoder`).

Like every model of the book, the instance dimension comes first in every parameter, so one run
trains many SAEs (L1 coefficients, seeds, dictionary sizes) side by side with `utils.train.optimize`;
each instance reads its own stream of a toy model's activations (`ToyActivations`). Because the
toy model's features are known, the SAE can be graded exactly: `max_cosines` matches each true
feature with its closest latent, `measure` gives the sparsity (L0) and the reconstruction error.
`resample_dead_latents` (with `Resampler`, a training callback) revives latents that never fire.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import nn

from utils.data import HierarchicalPairs, SparseUniform
from utils.device import get_device, make_generator
from utils.validation import as_float_tensor, broadcast_param, check_generator, check_last_dims, check_positive_int

_EPS = 1e-8


@dataclass(frozen=True)
class SAEConfig:
    """Sizes of a batch of SAEs: `n_inst` independent SAEs, each reading `d_in` numbers into `d_sae` latents."""

    n_inst: int
    d_in: int
    d_sae: int

    def __post_init__(self):
        for name in ("n_inst", "d_in", "d_sae"):
            object.__setattr__(self, name, check_positive_int(getattr(self, name), name))

    @property
    def n_features(self) -> int:
        """The width of the input, `d_in` (the name `utils.train` sizes its blocks of samples by)."""
        return self.d_in

    @property
    def d_hidden(self) -> int:
        """The width of the hidden layer, `d_sae` (the name `utils.train` sizes its blocks of samples by)."""
        return self.d_sae


def _take_rows(law, rows: torch.Tensor):
    """The feature law `law` (SparseUniform or HierarchicalPairs) restricted to the instances `rows`, in that order."""
    if isinstance(law, SparseUniform):
        return SparseUniform(law.feature_probability[rows], law.low, law.high)
    if isinstance(law, HierarchicalPairs):
        return HierarchicalPairs(law.p_feature1[rows], law.p_feature2_given_1[rows])
    raise TypeError(f"features must be a SparseUniform or HierarchicalPairs law, got {type(law).__name__}")


class ToyActivations:
    """The hidden activations h = W x of a toy model, as a data law: `sample(batch)` is `(batch, inst, d_in)`.

    Each instance draws its own features x from `features` and maps them with its own `W`, so the
    SAEs of a batch see independent streams.

    Args:
        features: a feature law of `utils.data` (`SparseUniform` or `HierarchicalPairs`) with `n_inst` rows.
        W: `(inst, d_in, feats)`, column `W[k, :, i]` is feature i's direction in instance k's hidden space.
    """

    def __init__(self, features, W: torch.Tensor):
        W = as_float_tensor(W, "W", getattr(W, "device", None))
        if W.dim() != 3 or 0 in W.shape:
            raise ValueError(f"W must have shape (inst, d_in, feats), got {tuple(W.shape)}")
        if not all(hasattr(features, name) for name in ("sample", "n_inst", "n_features")):
            raise TypeError(f"features must be a feature law of utils.data, got {type(features).__name__}")
        if (features.n_inst, features.n_features) != (W.shape[0], W.shape[2]):
            raise ValueError(
                f"the feature law makes (inst, feats) = {(features.n_inst, features.n_features)}, but W has "
                f"(inst, d_in, feats) = {tuple(W.shape)}"
            )
        self.features, self.W = features, W
        self.n_inst, self.d_in, self.n_features = W.shape

    @classmethod
    def from_model(cls, model, instances: list[int] | torch.Tensor) -> ToyActivations:
        """The activations of the toy `model`'s instances `instances` (repeats allowed): SAE instance k reads
        toy instance `instances[k]`, with its feature law and its `W` (copied: later training of `model`
        does not change them)."""
        rows = torch.as_tensor(instances, dtype=torch.long).flatten()
        if rows.numel() == 0 or rows.min() < 0 or rows.max() >= model.cfg.n_inst:
            raise ValueError(f"instances must index the model's {model.cfg.n_inst} instances, got {rows.tolist()}")
        law = _take_rows(model.data, rows.to(model.W.device))
        return cls(law, model.W.detach()[rows.to(model.W.device)].clone())

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """h = W x: `(..., inst, feats) -> (..., inst, d_in)`."""
        return torch.einsum("...if,idf->...id", x, self.W)

    def sample_features(self, batch_size: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """The toy model's features `(batch, inst, feats)`."""
        return self.features.sample(batch_size, generator)

    def sample(self, batch_size: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Hidden activations `(batch, inst, d_in)` of fresh features."""
        return self.embed(self.sample_features(batch_size, generator))


class SAEOutput(NamedTuple):
    """An SAE's forward pass: the reconstruction `(..., inst, d_in)` and the latents `(..., inst, d_sae)`."""

    reconstruction: torch.Tensor
    latents: torch.Tensor


def unit_columns(W_dec: torch.Tensor) -> torch.Tensor:
    """Each latent's decoder column scaled to length 1: `(inst, d_in, d_sae)`, column `[k, :, j]` is latent j's
    direction (a zero column stays zero)."""
    return W_dec / W_dec.norm(dim=1, keepdim=True).clamp_min(_EPS)


class SparseAutoencoder(nn.Module):
    """A batch of ReLU SAEs with an L1 penalty on the latents.

    Parameters: `W_enc: (inst, d_sae, d_in)` (row j reads latent j), `b_enc: (inst, d_sae)`,
    `W_dec: (inst, d_in, d_sae)` (column j writes latent j; used with unit norm, see `decoder_directions`),
    `b_dec: (inst, d_in)`. The decoder starts as random unit columns and the encoder as its transpose.

    Args:
        cfg: the sizes.
        data: what the SAEs read, with `n_inst` and `d_in` matching `cfg` (a `ToyActivations`).
        l1_coefficient: λ, one number or one per instance `(inst,)`; non-negative.
        n_latents: how many of the `d_sae` latents each instance uses, one number or `(inst,)` (default
            all); the others are switched off (always 0), so dictionaries of several sizes train in one run.
        device: where the parameters live (default: `get_device()`).
        seed: seeds the initial weights (drawn on the CPU) and the model's own data stream.
    """

    def __init__(
        self,
        cfg: SAEConfig,
        data: ToyActivations,
        l1_coefficient: float | torch.Tensor = 0.0,
        n_latents: int | torch.Tensor | None = None,
        device: torch.device | str | None = None,
        seed: int | None = None,
    ):
        super().__init__()
        if not isinstance(cfg, SAEConfig):
            raise TypeError(f"cfg must be an SAEConfig(n_inst, d_in, d_sae), got {type(cfg).__name__} {cfg!r}")
        if not all(hasattr(data, name) for name in ("sample", "n_inst", "d_in")):
            raise TypeError(f"data must be a ToyActivations (a law of hidden activations), got {type(data).__name__}")
        if (data.n_inst, data.d_in) != (cfg.n_inst, cfg.d_in):
            raise ValueError(
                f"data makes (inst, d_in) = {(data.n_inst, data.d_in)}, but cfg has {(cfg.n_inst, cfg.d_in)}"
            )
        self.cfg, self.data = cfg, data
        self.device = get_device(device)
        l1 = broadcast_param(l1_coefficient, (cfg.n_inst,), "(inst,)", "l1_coefficient")
        if not (l1 >= 0).all():
            raise ValueError(f"l1_coefficient must be non-negative, got {l1.min().item():g}")
        width = broadcast_param(cfg.d_sae if n_latents is None else n_latents, (cfg.n_inst,), "(inst,)", "n_latents")
        if not ((width >= 1) & (width <= cfg.d_sae) & (width == width.round())).all():
            raise ValueError(f"n_latents must hold whole numbers from 1 to d_sae = {cfg.d_sae}, got {width.tolist()}")
        generator = make_generator(seed, "cpu")
        mask = (torch.arange(cfg.d_sae)[None, :] < width[:, None]).float()
        directions = unit_columns(torch.randn(cfg.n_inst, cfg.d_in, cfg.d_sae, generator=generator)) * mask[:, None, :]
        self.W_dec = nn.Parameter(directions)
        self.W_enc = nn.Parameter(directions.transpose(1, 2).clone())
        self.b_enc = nn.Parameter(torch.zeros(cfg.n_inst, cfg.d_sae))
        self.b_dec = nn.Parameter(torch.zeros(cfg.n_inst, cfg.d_in))
        self.register_buffer("l1_coefficient", l1)
        self.register_buffer("latent_mask", mask)
        self.to(self.device)
        self.generator = make_generator(seed, self.device)

    def generate_batch(self, batch_size: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Fresh hidden activations `(batch, inst, d_in)` from `data`."""
        return self.data.sample(batch_size, generator if generator is not None else self.generator)

    def check_input(self, h: torch.Tensor) -> None:
        """Raise unless `h` is `(..., inst, d_in)`."""
        check_last_dims(h, (self.cfg.n_inst, self.cfg.d_in), "(inst, d_in)", "h")

    def decoder_directions(self) -> torch.Tensor:
        """The decoder's columns with unit norm, `(inst, d_in, d_sae)`: latent j writes along column j."""
        return unit_columns(self.W_dec)

    def pre_activations(self, h: torch.Tensor) -> torch.Tensor:
        """W_enc (h - b_dec) + b_enc: `(..., inst, d_in) -> (..., inst, d_sae)`."""
        self.check_input(h)
        return torch.einsum("...id,ijd->...ij", h - self.b_dec, self.W_enc) + self.b_enc

    def encode(self, h: torch.Tensor) -> torch.Tensor:
        """The latents z = ReLU(W_enc (h - b_dec) + b_enc), switched-off latents at 0: `(..., inst, d_sae)`."""
        return torch.relu(self.pre_activations(h)) * self.latent_mask

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """ĥ = D z + b_dec with D the unit-norm decoder: `(..., inst, d_sae) -> (..., inst, d_in)`."""
        return torch.einsum("...ij,idj->...id", z, self.decoder_directions()) + self.b_dec

    def forward(self, h: torch.Tensor) -> SAEOutput:
        """`(..., inst, d_in)` -> `SAEOutput(reconstruction (..., inst, d_in), latents (..., inst, d_sae))`."""
        z = self.encode(h)
        return SAEOutput(self.decode(z), z)

    def loss_per_instance(self, out: SAEOutput, h: torch.Tensor) -> torch.Tensor:
        """mean_batch ‖h - ĥ‖² + λ mean_batch ‖z‖₁ per instance (`out = forward(h)`) -> `(inst,)`."""
        reconstruction, latents = out
        squared_error = ((reconstruction - h) ** 2).sum(dim=-1).mean(dim=0)
        return squared_error + self.l1_coefficient * latents.abs().sum(dim=-1).mean(dim=0)

    def calculate_loss(self, out: SAEOutput, h: torch.Tensor) -> torch.Tensor:
        """The training loss: `loss_per_instance` summed over instances (a scalar)."""
        return self.loss_per_instance(out, h).sum()

    def optimize(self, **kwargs) -> torch.Tensor:
        """Train in place with `utils.train.optimize` (same arguments); returns the `(n_logged, inst)` loss history."""
        from utils.train import optimize

        return optimize(self, **kwargs)


class TopKAutoencoder(SparseAutoencoder):
    """SAEs that keep the k largest latents of each input and zero the rest, with no L1 penalty.

    Args:
        k: how many latents may be non-zero for each input, one number or one per instance `(inst,)`,
            from 1 to d_sae (a latent whose pre-activation is negative stays 0, so fewer may fire).
        (the rest as `SparseAutoencoder`, without `l1_coefficient`)
    """

    def __init__(self, cfg: SAEConfig, data: ToyActivations, k: int | torch.Tensor = 1, **kwargs):
        super().__init__(cfg, data, l1_coefficient=0.0, **kwargs)
        ks = broadcast_param(k, (cfg.n_inst,), "(inst,)", "k")
        if not ((ks >= 1) & (ks <= cfg.d_sae) & (ks == ks.round())).all():
            raise ValueError(f"k must hold whole numbers from 1 to d_sae = {cfg.d_sae}, got {ks.tolist()}")
        self.register_buffer("k", ks.long().to(self.device))

    def encode(self, h: torch.Tensor) -> torch.Tensor:
        """The k largest of ReLU(W_enc (h - b_dec) + b_enc) for each input (k per instance), the rest 0."""
        return topk_relu(self.pre_activations(h).masked_fill(self.latent_mask == 0, -math.inf), self.k)


def topk_relu(pre: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """ReLU of the k largest entries of each row of `pre`, zero elsewhere: `(..., inst, d_sae)`, `k: (inst,)`.

    Ties at the k-th value keep every tied entry (they have measure zero for real-valued pre-activations).
    """
    k_max = int(k.max())
    kth = pre.topk(k_max, dim=-1).values.gather(-1, (k - 1).expand(*pre.shape[:-1])[..., None])  # (..., inst, 1)
    return torch.relu(pre) * (pre >= kth)


# --- grading an SAE against the true features ------------------------------------------------------


def max_cosines(decoder: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
    """For each true feature, the cosine similarity of its closest latent: `(inst, d_in, d_sae)` and
    `(inst, d_in, feats)` -> `(inst, feats)`; 0 for a zero feature or against zero latents."""
    D = decoder / decoder.norm(dim=1, keepdim=True).clamp_min(_EPS)
    F = features / features.norm(dim=1, keepdim=True).clamp_min(_EPS)
    return torch.einsum("kdj,kdi->kij", D, F).max(dim=-1).values


def mmcs(decoder: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
    """Mean max cosine similarity (Sharkey, Braun and Millidge 2022): for each true feature the cosine of
    its closest latent, averaged over features: `(inst, d_in, d_sae)` and `(inst, d_in, feats)` -> `(inst,)`."""
    return max_cosines(decoder, features).mean(dim=-1)


def firing_given_feature(latents: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
    """How often each latent fires when each feature is active: `latents: (batch, inst, d_sae)` and the
    features behind them `(batch, inst, feats)` -> `(inst, feats, d_sae)`, entry [k, i, j] the fraction of
    the inputs with feature i non-zero on which latent j is non-zero (0 for a feature never active)."""
    active = (features != 0).float()
    fires = (latents > 0).float()
    return torch.einsum("bki,bkj->kij", active, fires) / active.sum(dim=0).clamp_min(1)[..., None]


class SAEMeasures(NamedTuple):
    """What `measure` returns (each per instance).

    l0: `(inst,)` mean number of non-zero latents per input.
    squared_error: `(inst,)` mean ‖h - ĥ‖².
    variance_unexplained: `(inst,)` squared error over mean ‖h - mean h‖² (0 is perfect, 1 is as good as the mean).
    firing: `(inst, d_sae)` fraction of inputs on which each latent is non-zero.
    """

    l0: torch.Tensor
    squared_error: torch.Tensor
    variance_unexplained: torch.Tensor
    firing: torch.Tensor


@torch.no_grad()
def measure(model: SparseAutoencoder, n_samples: int = 16_384, generator: torch.Generator | None = None) -> SAEMeasures:
    """L0, reconstruction error and firing rates of every instance on `n_samples` fresh inputs (on the CPU)."""
    check_positive_int(n_samples, "n_samples")
    check_generator(generator)
    h = model.generate_batch(n_samples, generator)
    reconstruction, z = model(h)
    active = (z > 0).float()
    squared_error = ((reconstruction - h) ** 2).sum(-1).mean(0)
    variance = ((h - h.mean(0)) ** 2).sum(-1).mean(0)
    return SAEMeasures(
        active.sum(-1).mean(0).cpu(),
        squared_error.cpu(),
        (squared_error / variance.clamp_min(_EPS)).cpu(),
        active.mean(0).cpu(),
    )


# --- dead latents --------------------------------------------------------------------------------


@torch.no_grad()
def resample_dead_latents(
    model: SparseAutoencoder,
    optimizer: torch.optim.Optimizer,
    dead: torch.Tensor,
    h: torch.Tensor,
    generator: torch.Generator | None = None,
) -> None:
    """Give each dead latent a new direction, as Bricken et al. (2023) do, in place.

    For each instance, inputs are picked with probability proportional to the square of the SAE's
    squared reconstruction error on them, one (with replacement) for each dead latent; the dead
    latent's decoder column becomes the picked input's unit direction, its encoder row the same
    direction scaled to 0.2 times the mean norm of the live latents' encoder rows, its encoder bias 0;
    and Adam's moments of those entries are reset to 0. Live latents are left alone.

    Args:
        dead: `(inst, d_sae)` bool, the latents to resample.
        h: `(batch, inst, d_in)` inputs to pick from.
        generator: for the picks.
    """
    dead = dead & (model.latent_mask > 0)
    error = ((model(h).reconstruction - h) ** 2).sum(-1)  # (batch, inst)
    weights = (error**2).T + _EPS  # (inst, batch); every input may be picked when all are reconstructed
    norms = model.W_enc.norm(dim=-1)  # (inst, d_sae)
    live = ~dead & (model.latent_mask > 0)
    live_norm = (norms * live).sum(-1) / live.sum(-1).clamp_min(1)
    live_norm = torch.where(live.any(-1), live_norm, torch.ones_like(live_norm))
    for k in dead.any(-1).nonzero().flatten().tolist():
        latents = dead[k].nonzero().flatten()
        picks = torch.multinomial(weights[k], len(latents), replacement=True, generator=generator)
        directions = h[picks, k] / h[picks, k].norm(dim=-1, keepdim=True).clamp_min(_EPS)  # (n_dead, d_in)
        model.W_dec[k, :, latents] = directions.T
        model.W_enc[k, latents] = directions * 0.2 * live_norm[k]
        model.b_enc[k, latents] = 0.0
        for parameter, index in ((model.W_dec, (k, slice(None), latents)), (model.W_enc, (k, latents)),
                                 (model.b_enc, (k, latents))):  # fmt: skip
            state = optimizer.state.get(parameter, {})
            for name in ("exp_avg", "exp_avg_sq"):
                if name in state:
                    state[name][index] = 0.0


class Resampler:
    """A training callback (`optimize(..., callback=Resampler(...))`) that resamples dead latents.

    Every `every` steps it draws `n_samples` fresh inputs and counts each latent's firing on them;
    before step `until` it resamples the latents that fired on none (`resample_dead_latents`).
    `dead_counts` records `(step, (inst,) number of dead latents found)` at each check.

    Args:
        every: steps between checks.
        until: no resampling at or after this step (so the last resampled latents have time to train);
            `until=1` only counts.
        n_samples: inputs per check.
        generator: for the inputs and the picks (default: the model's own stream).
        resample: the function that resamples, called as `resample(model, optimizer, dead, h, generator)`
            (default `resample_dead_latents`; a learner's own version goes here).
    """

    def __init__(
        self,
        every: int,
        until: int,
        n_samples: int = 4096,
        generator: torch.Generator | None = None,
        resample=None,
    ):
        self.every = check_positive_int(every, "every")
        self.until = check_positive_int(until, "until")
        self.n_samples = check_positive_int(n_samples, "n_samples")
        check_generator(generator)
        if resample is not None and not callable(resample):
            raise TypeError(
                f"resample must be a function (model, optimizer, dead, h, generator), got {type(resample).__name__}"
            )
        self.generator = generator
        self.resample = resample_dead_latents if resample is None else resample
        self.dead_counts: list[tuple[int, torch.Tensor]] = []

    def __call__(self, step: int, model: SparseAutoencoder, optimizer: torch.optim.Optimizer) -> None:
        if (step + 1) % self.every:
            return
        h = model.generate_batch(self.n_samples, self.generator)
        dead = (model.encode(h) > 0).sum(0) == 0
        dead &= model.latent_mask > 0
        self.dead_counts.append((step + 1, dead.sum(-1).cpu()))
        if step + 1 < self.until and dead.any():
            self.resample(model, optimizer, dead, h, self.generator)
