"""Chapter 5's checks pass the reference and catch planted mistakes, each with the right message."""

import pytest
import torch

from utils.checks import check_neuron_computation_model, check_neuron_model
from utils.models import NeuronComputationModel, NeuronModel, ToyModel

# ---- the neuron model -----------------------------------------------------------------------------


class NoHiddenRelu(ToyModel):
    pass  # inherits hidden = Wx


class TransposedWeights(ToyModel):
    def hidden(self, x):
        return torch.relu(torch.einsum("...if,ifh->...ih", x, self.W.transpose(1, 2).flip(1)))


class HiddenWrongShape(NeuronModel):
    def hidden(self, x):
        return super().hidden(x).sum(dim=-1)


class RaisesInInit(NeuronModel):
    def __init__(self, cfg, **kwargs):
        raise TypeError("oops")


def test_neuron_model_reference_passes(capsys):
    check_neuron_model(NeuronModel)
    assert "NeuronModel: all checks passed" in capsys.readouterr().out


@pytest.mark.parametrize(
    "planted, message",
    [
        (NoHiddenRelu, "hidden\\(x\\) has negative values: the neuron model applies a ReLU"),
        (TransposedWeights, "hidden\\(x\\) is wrong at .*neuron h of instance k is ReLU"),
        (HiddenWrongShape, "hidden\\(x\\) has shape \\(8, 3\\); expected \\(batch, inst, d_hidden\\)"),
        (RaisesInInit, "raised TypeError: oops; keep the parent's __init__"),
    ],
)
def test_neuron_model_catches(planted, message):
    with pytest.raises(AssertionError, match=message):
        check_neuron_model(planted)


# ---- the absolute-value model ----------------------------------------------------------------------


class NoOutputRelu(NeuronComputationModel):
    def forward(self, x):
        return torch.einsum("...ih,ifh->...if", self.hidden(x), self.W2) + self.b_final


class NoBias(NeuronComputationModel):
    def forward(self, x):
        return torch.relu(torch.einsum("...ih,ifh->...if", self.hidden(x), self.W2))


class PositiveValues(NeuronComputationModel):
    def generate_batch(self, batch_size, generator=None):
        return super().generate_batch(batch_size, generator).abs()


class OneProbability(NeuronComputationModel):
    def generate_batch(self, batch_size, generator=None):
        u = torch.rand(batch_size, self.cfg.n_inst, self.cfg.n_features)
        return torch.where(torch.rand_like(u) < self.feature_probability[0, 0], 2 * u - 1, 0.0)


class ReconstructionLoss(NeuronComputationModel):
    def loss_per_instance(self, out, batch):
        return (self.importance * (out - batch) ** 2).mean(dim=(0, 2))


class NoImportance(NeuronComputationModel):
    def loss_per_instance(self, out, batch):
        return ((out - batch.abs()) ** 2).mean(dim=(0, 2))


class SummedLoss(NeuronComputationModel):
    def loss_per_instance(self, out, batch):
        return super().loss_per_instance(out, batch).sum()


class MeanOverBatchOnly(NeuronComputationModel):
    def loss_per_instance(self, out, batch):
        return (self.importance * (out - batch.abs()) ** 2).mean(dim=0).sum(dim=-1)


def test_neuron_computation_model_reference_passes(capsys):
    check_neuron_computation_model(NeuronComputationModel)
    assert "NeuronComputationModel: all checks passed" in capsys.readouterr().out


@pytest.mark.parametrize(
    "planted, message",
    [
        (NoOutputRelu, "forward\\(x\\) has negative outputs: apply a ReLU"),
        (NoBias, "forward\\(x\\) is wrong at .*ReLU\\(W2 ReLU\\(W1 x\\) \\+ b_final\\)"),
        (PositiveValues, "no negative values: draw active features uniformly from \\[-1, 1\\]"),
        (OneProbability, "the fraction of active features in instance 1 \\(feature_probability 0.5\\) is 1.0000"),
        (ReconstructionLoss, "compares the output with x; the target of this model is \\|x\\|"),
        (NoImportance, "ignores the importances"),
        (SummedLoss, "loss_per_instance\\(out, batch\\) has shape \\(\\); expected \\(inst,\\)"),
        (MeanOverBatchOnly, "loss_per_instance is wrong at inst 0: .*mean over batch and features"),
    ],
)
def test_neuron_computation_model_catches(planted, message):
    with pytest.raises(AssertionError, match=message):
        check_neuron_computation_model(planted)
