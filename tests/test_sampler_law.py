"""SamplerLaw: any sampling function as a feature law, reproducible from the model's generator."""

import pytest
import torch

from utils.data import CorrelatedPairs
from utils.models import ToyModel, ToyModelConfig
from utils.sampler_law import SamplerLaw
from utils.train import optimize


def correlated(feature_probability, batch_size):
    n_inst, n_pairs = feature_probability.shape
    active = torch.rand(batch_size, n_inst, n_pairs, 1) < feature_probability[..., None]
    return (active * torch.rand(batch_size, n_inst, n_pairs, 2)).flatten(-2)


def test_batches_are_reproducible_and_leave_the_global_generator_alone():
    law = SamplerLaw(correlated, torch.full((3, 2), 0.3), n_features=4)
    torch.manual_seed(0)
    before = torch.rand(1)
    torch.manual_seed(0)
    first = law.sample(500, torch.Generator().manual_seed(5))
    after = torch.rand(1)
    assert torch.equal(before, after)  # the global stream did not move
    assert torch.equal(first, law.sample(500, torch.Generator().manual_seed(5)))
    assert not torch.equal(first, law.sample(500, torch.Generator().manual_seed(6)))
    assert first.shape == (500, 3, 4)


def test_a_model_trains_on_it_like_on_the_library_law():
    p = torch.full((4, 2), 0.1)
    losses = {}
    for name, law in [("sampler", SamplerLaw(correlated, p, 4)), ("library", CorrelatedPairs(p))]:
        model = ToyModel(ToyModelConfig(n_inst=4, n_features=4, d_hidden=2), data=law, device="cpu", seed=0)
        history = optimize(model, steps=300, batch_size=256, lr=1e-2, progress=False)
        losses[name] = history[-20:].mean()
    # Same law, different random numbers: the late training losses agree to sampling noise.
    assert abs(losses["sampler"] / losses["library"] - 1) < 0.2


def test_bad_input_is_named():
    with pytest.raises(TypeError, match="sample must be a function"):
        SamplerLaw(3, torch.ones(2, 1), 2)
    with pytest.raises(ValueError, match=r"feature_probability must have shape \(inst, k\)"):
        SamplerLaw(correlated, torch.ones(2), 2)
    law = SamplerLaw(lambda p, b: torch.zeros(b, 2), torch.ones(2, 1), 2)
    with pytest.raises(
        ValueError, match=r"returned \(7, 2\); a batch must have shape \(batch, inst, feats\) = \(7, 2, 2\)"
    ):
        law.sample(7)
