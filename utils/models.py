"""Toy models of superposition, batched over independent instances.

Every parameter has the instance dimension `inst` first, so one forward/backward pass trains
`n_inst` independent models; each model's loss is a mean over batch and features, and the training
loss is the *sum* over instances, so every instance trains exactly as if it were alone.

| model | map | target |
| --- | --- | --- |
| `ToyModel` | x' = ReLU(WᵀWx + b) | x |
| `LinearToyModel` | x' = WᵀWx + b | x |
| `NeuronModel` | x' = ReLU(Wᵀ ReLU(Wx) + b) | x |
| `NeuronComputationModel` | x' = ReLU(W2 ReLU(W1 x) + b), x on [-1, 1] | abs(x) |
| `ReluComputationModel` | y = W_out ReLU(W_in x), no biases, x on [-1, 1], Lp loss | ReLU(x) |
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from utils.data import FeatureLaw, SparseUniform
from utils.device import get_device, make_generator
from utils.validation import (
    broadcast_param,
    check_last_dims,
    check_nonnegative,
    check_positive_int,
    check_probability,
)


@dataclass(frozen=True)
class ToyModelConfig:
    """Sizes of a batch of toy models: `n_inst` independent models, `n_features` -> `d_hidden`."""

    n_inst: int
    n_features: int
    d_hidden: int

    def __post_init__(self):
        for name in ("n_inst", "n_features", "d_hidden"):
            check_positive_int(getattr(self, name), name)


def xavier_normal(n_inst: int, fan_out: int, fan_in: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Xavier-normal weights for each instance separately: `(inst, fan_out, fan_in)`, std √(2/(fan_in+fan_out))."""
    std = math.sqrt(2.0 / (fan_in + fan_out))
    return torch.randn(n_inst, fan_out, fan_in, generator=generator) * std


class ToyModelBase(nn.Module):
    """What all toy models share: sizes, importances, the data law, the loss and training.

    Args:
        cfg: the sizes.
        feature_probability: probability that a feature is active, broadcast to `(inst, feats)`
            (e.g. shape `(inst, 1)` for one sparsity per instance); not together with `data`.
        importance: loss weight per feature, broadcast to `(inst, feats)`; non-negative.
        data: a feature law from `utils.data` with `n_inst` and `n_features` matching `cfg`, instead
            of independent sparse features.
        device: where the parameters live (default: `get_device()`).
        seed: seeds the initial weights (drawn on the CPU, so the same on every device) and the
            model's own data stream; None uses torch's global generator.
    """

    value_range: tuple[float, float] = (0.0, 1.0)

    def __init__(
        self,
        cfg: ToyModelConfig,
        feature_probability: float | torch.Tensor | None = None,
        importance: float | torch.Tensor = 1.0,
        data: FeatureLaw | None = None,
        device: torch.device | str | None = None,
        seed: int | None = None,
    ):
        super().__init__()
        if not isinstance(cfg, ToyModelConfig):
            raise TypeError(f"cfg must be a ToyModelConfig, got {type(cfg).__name__}")
        self.cfg = cfg
        self.device = get_device(device)
        shape = (cfg.n_inst, cfg.n_features)
        self.importance = broadcast_param(importance, shape, "(inst, feats)", "importance", self.device)
        check_nonnegative(self.importance, "importance")
        if data is None:
            probability = broadcast_param(
                1.0 if feature_probability is None else feature_probability,
                shape,
                "(inst, feats)",
                "feature_probability",
                self.device,
            )
            check_probability(probability, "feature_probability")
            data = SparseUniform(probability, *self.value_range)
        elif feature_probability is not None:
            raise ValueError("pass either feature_probability or data (a feature law), not both")
        elif (data.n_inst, data.n_features) != shape:
            raise ValueError(
                f"the data law makes (inst, feats) = {(data.n_inst, data.n_features)}, but the model has {shape}"
            )
        self.data = data
        self.init_parameters(make_generator(seed, "cpu"))
        self.to(self.device)
        self.generator = make_generator(seed, self.device)

    def init_parameters(self, generator: torch.Generator | None) -> None:
        """Create the model's `nn.Parameter`s (on the CPU; the base class moves them)."""
        raise NotImplementedError

    @property
    def feature_probability(self) -> torch.Tensor:
        """`(inst, feats)` probability that each feature is active (laws with independent features only)."""
        if not isinstance(self.data, SparseUniform):
            raise AttributeError(f"the model's data law {type(self.data).__name__} has no single feature_probability")
        return self.data.feature_probability

    def generate_batch(self, batch_size: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """A fresh batch `(batch, inst, feats)` from the model's data law."""
        return self.data.sample(batch_size, generator if generator is not None else self.generator)

    def target(self, batch: torch.Tensor) -> torch.Tensor:
        """What the model should output for `batch`: the input itself (reconstruction)."""
        return batch

    def loss_per_instance(self, out: torch.Tensor, batch: torch.Tensor) -> torch.Tensor:
        """Importance-weighted squared error, mean over batch and features: `(batch, inst, feats)` x2 -> `(inst,)`."""
        error = self.importance * (out - self.target(batch)) ** 2
        return error.mean(dim=(0, 2))

    def calculate_loss(self, out: torch.Tensor, batch: torch.Tensor) -> torch.Tensor:
        """The training loss: `loss_per_instance` summed over instances (a scalar)."""
        return self.loss_per_instance(out, batch).sum()

    def check_input(self, x: torch.Tensor) -> None:
        check_last_dims(x, (self.cfg.n_inst, self.cfg.n_features), "(inst, feats)", "features")

    def optimize(self, **kwargs) -> torch.Tensor:
        """Train in place with `utils.train.optimize` (same arguments); returns the `(n_logged, inst)` loss history."""
        from utils.train import optimize

        return optimize(self, **kwargs)


class ToyModel(ToyModelBase):
    """Tied-weight ReLU model x' = ReLU(WᵀWx + b).

    Parameters: `W: (inst, d_hidden, feats)`, `b_final: (inst, feats)`.
    """

    def init_parameters(self, generator):
        cfg = self.cfg
        self.W = nn.Parameter(xavier_normal(cfg.n_inst, cfg.d_hidden, cfg.n_features, generator))
        self.b_final = nn.Parameter(torch.zeros(cfg.n_inst, cfg.n_features))

    def hidden(self, x: torch.Tensor) -> torch.Tensor:
        """h = Wx: `(..., inst, feats) -> (..., inst, d_hidden)`."""
        self.check_input(x)
        return torch.einsum("...if,ihf->...ih", x, self.W)

    def decode(self, h: torch.Tensor) -> torch.Tensor:
        """x' = ReLU(Wᵀh + b): `(..., inst, d_hidden) -> (..., inst, feats)`."""
        return torch.relu(torch.einsum("...ih,ihf->...if", h, self.W) + self.b_final)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x' = ReLU(WᵀWx + b): `(..., inst, feats) -> (..., inst, feats)`."""
        return self.decode(self.hidden(x))


class LinearToyModel(ToyModel):
    """The linear variant x' = WᵀWx + b (chapter 1): same parameters as `ToyModel`, no ReLU."""

    def decode(self, h: torch.Tensor) -> torch.Tensor:
        """x' = Wᵀh + b: `(..., inst, d_hidden) -> (..., inst, feats)`."""
        return torch.einsum("...ih,ihf->...if", h, self.W) + self.b_final


class NeuronModel(ToyModel):
    """A ReLU on the hidden layer too, which privileges the neuron basis: x' = ReLU(Wᵀ ReLU(Wx) + b)."""

    def hidden(self, x: torch.Tensor) -> torch.Tensor:
        """h = ReLU(Wx): `(..., inst, feats) -> (..., inst, d_hidden)`."""
        return torch.relu(super().hidden(x))


class NeuronComputationModel(ToyModelBase):
    """Untied weights computing abs(x) for x on [-1, 1]: x' = ReLU(W2 ReLU(W1 x) + b).

    Parameters: `W1: (inst, d_hidden, feats)`, `W2: (inst, feats, d_hidden)`, `b_final: (inst, feats)`.
    """

    value_range = (-1.0, 1.0)

    def init_parameters(self, generator):
        cfg = self.cfg
        self.W1 = nn.Parameter(xavier_normal(cfg.n_inst, cfg.d_hidden, cfg.n_features, generator))
        self.W2 = nn.Parameter(xavier_normal(cfg.n_inst, cfg.n_features, cfg.d_hidden, generator))
        self.b_final = nn.Parameter(torch.zeros(cfg.n_inst, cfg.n_features))

    def hidden(self, x: torch.Tensor) -> torch.Tensor:
        """ReLU(W1 x): `(..., inst, feats) -> (..., inst, d_hidden)`."""
        self.check_input(x)
        return torch.relu(torch.einsum("...if,ihf->...ih", x, self.W1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """`(..., inst, feats) -> (..., inst, feats)`."""
        return torch.relu(torch.einsum("...ih,ifh->...if", self.hidden(x), self.W2) + self.b_final)

    def target(self, batch: torch.Tensor) -> torch.Tensor:
        return batch.abs()


class ReluComputationModel(ToyModelBase):
    """An MLP without biases computing ReLU(x) for x on [-1, 1]: y = W_out ReLU(W_in x), Lp loss.

    Parameters: `W_in: (inst, d_hidden, feats)`, `W_out: (inst, feats, d_hidden)`.

    Args:
        loss_power: p in the loss mean(importance * |y - ReLU(x)|^p); 2 is the squared error.
        (the rest as `ToyModelBase`)
    """

    value_range = (-1.0, 1.0)

    def __init__(self, cfg: ToyModelConfig, *args, loss_power: float = 4.0, **kwargs):
        if not loss_power >= 1:
            raise ValueError(f"loss_power must be >= 1, got {loss_power}")
        self.loss_power = float(loss_power)
        super().__init__(cfg, *args, **kwargs)

    def init_parameters(self, generator):
        cfg = self.cfg
        self.W_in = nn.Parameter(xavier_normal(cfg.n_inst, cfg.d_hidden, cfg.n_features, generator))
        self.W_out = nn.Parameter(xavier_normal(cfg.n_inst, cfg.n_features, cfg.d_hidden, generator))

    def hidden(self, x: torch.Tensor) -> torch.Tensor:
        """ReLU(W_in x): `(..., inst, feats) -> (..., inst, d_hidden)`."""
        self.check_input(x)
        return torch.relu(torch.einsum("...if,ihf->...ih", x, self.W_in))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """`(..., inst, feats) -> (..., inst, feats)`."""
        return torch.einsum("...ih,ifh->...if", self.hidden(x), self.W_out)

    def target(self, batch: torch.Tensor) -> torch.Tensor:
        return torch.relu(batch)

    def loss_per_instance(self, out: torch.Tensor, batch: torch.Tensor) -> torch.Tensor:
        """Importance-weighted |error|^p, mean over batch and features: `-> (inst,)`."""
        error = self.importance * (out - self.target(batch)).abs() ** self.loss_power
        return error.mean(dim=(0, 2))
