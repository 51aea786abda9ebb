"""Chapter 4's checks pass the reference and catch planted mistakes, each with the right message."""

import pytest
import torch

from utils import computation
from utils.checks import check_gains_and_leaks, check_neuron_computation_model, check_neuron_model
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


# ---- gains and leaks -------------------------------------------------------------------------------


def gain_from_w_eff(W_in, W_out):
    _, leak = computation.gains_and_leaks(W_in, W_out)
    return computation.effective_weights(W_in, W_out).diagonal(dim1=1, dim2=2).clone(), leak


def leak_wrong_sign(W_in, W_out):
    gain, leak = computation.gains_and_leaks(W_in, W_out)
    return gain, -leak


def gain_transposed(W_in, W_out):
    _, leak = computation.gains_and_leaks(W_in, W_out)
    return torch.einsum("khi,kih->ki", W_out.transpose(1, 2), torch.relu(W_in).transpose(1, 2)).flip(1), leak


def leak_from_positive_weights(W_in, W_out):
    gain, _ = computation.gains_and_leaks(W_in, W_out)
    return gain, torch.einsum("kih,khi->ki", W_out, torch.relu(W_in)) * 0.5


def in_place(W_in, W_out):
    W_in.relu_()
    return computation.gains_and_leaks(W_in, W_out)


def test_gains_and_leaks_reference_passes(capsys):
    check_gains_and_leaks(computation.gains_and_leaks)
    assert "gains_and_leaks: all checks passed" in capsys.readouterr().out


@pytest.mark.parametrize(
    "planted, message",
    [
        (gain_from_w_eff, "gain equals the diagonal of W_eff"),
        (leak_wrong_sign, "leak has the wrong sign"),
        (gain_transposed, "gain is wrong at inst 0, feats 0: .*Σ_h W_out\\[k, i, h\\] · ReLU\\(W_in\\[k, h, i\\]\\)"),
        (leak_from_positive_weights, "leak is wrong at .*ReLU\\(-W_in\\[k, h, i\\]\\)"),
        (in_place, "modified W_in or W_out"),
        (lambda W_in, W_out: computation.gains_and_leaks(W_in, W_out)[0], "should return a tuple"),
        (lambda W_in, W_out: tuple(t.double() for t in computation.gains_and_leaks(W_in, W_out)), "gain has dtype torch.float64"),
    ],
)
def test_gains_and_leaks_catches(planted, message):
    with pytest.raises(AssertionError, match=message):
        check_gains_and_leaks(planted)
