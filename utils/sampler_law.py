"""A feature law made from any sampling function, so that a model can train on data drawn by code you
wrote (chapter 3 trains on the learner's correlated and anticorrelated generators)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from utils.validation import check_positive_int


class SamplerLaw:
    """Wrap `sample(feature_probability, batch_size) -> (batch, inst, feats)` as a feature law.

    Such a function draws from torch's global random generator. To make every batch reproducible
    from the model's own generator (and leave the global one untouched), each call runs inside
    `torch.random.fork_rng`, seeded with a number drawn from the generator it is given.

    Args:
        sample: the sampling function; it is called as `sample(feature_probability, batch_size)`.
        feature_probability: `(inst, k)` its first argument (e.g. one probability per pair).
        n_features: how many features one sample has (e.g. 2 per pair).
    """

    def __init__(
        self, sample: Callable[[torch.Tensor, int], torch.Tensor], feature_probability: torch.Tensor, n_features: int
    ):
        if not callable(sample):
            raise TypeError(
                f"sample must be a function (feature_probability, batch_size) -> batch, got {type(sample).__name__}"
            )
        feature_probability = torch.as_tensor(feature_probability, dtype=torch.float32)
        if feature_probability.dim() != 2:
            raise ValueError(f"feature_probability must have shape (inst, k), got {tuple(feature_probability.shape)}")
        check_positive_int(n_features, "n_features")
        self._sample = sample
        self.feature_probability = feature_probability
        self.n_inst, self.n_features = feature_probability.shape[0], n_features

    def sample(self, batch_size: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """A batch `(batch_size, inst, feats)` from the wrapped function, seeded from `generator`."""
        check_positive_int(batch_size, "batch_size")
        device = self.feature_probability.device
        seed = int(
            torch.randint(
                0, 2**62, (1,), generator=generator, device=generator.device if generator is not None else "cpu"
            )
        )
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(seed)
            batch = self._sample(self.feature_probability, batch_size)
        expected = (batch_size, self.n_inst, self.n_features)
        if not isinstance(batch, torch.Tensor) or tuple(batch.shape) != expected:
            shape = tuple(batch.shape) if isinstance(batch, torch.Tensor) else type(batch).__name__
            raise ValueError(
                f"the sampling function returned {shape}; a batch must have shape (batch, inst, feats) = {expected}"
            )
        return batch.to(device=device, dtype=torch.float32)
