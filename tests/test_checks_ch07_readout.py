"""Chapter 7's `check_linear_output_model` passes valid models and names each planted mistake.

The mistakes follow the exercise text: "forward returns W2 ReLU(W1 x) + b with no ReLU at the end;
the target stays |x|; optimize must not train it with the parent's hand-written gradients".
"""

import pytest
import torch

from utils.checks import check_linear_output_model
from utils.models import NeuronComputationModel
from utils.motif import LinearOutputModel


def linear_readout(model, x):
    return torch.einsum("...ih,ifh->...if", model.hidden(x), model.W2) + model.b_final


# ---- valid implementations ------------------------------------------------------------------------


class WithMatmul(NeuronComputationModel):
    """Another way to write the read-out: a batched matrix product."""

    step_gradients = None

    def forward(self, x):
        h = torch.relu((self.W1 @ x.unsqueeze(-1)).squeeze(-1))  # (..., inst, d_hidden)
        return (self.W2 @ h.unsqueeze(-1)).squeeze(-1) + self.b_final


class WithHandGradients(NeuronComputationModel):
    """Its own hand-written gradients, right for the linear read-out: optimize may use them."""

    def forward(self, x):
        return linear_readout(self, x)

    @torch.no_grad()
    def step_gradients(self, batch_size, generator=None, batch=None):
        x = batch.transpose(0, 1) if batch is not None else self.generate_batch(batch_size, generator).transpose(0, 1)
        pre = torch.bmm(x, self.W1.transpose(1, 2))
        h = torch.relu(pre)
        error = torch.baddbmm(self.b_final[:, None, :], h, self.W2.transpose(1, 2)) - x.abs()
        weight = self.importance / (x.shape[1] * self.cfg.n_features)
        grad_out = 2 * error * weight[:, None, :]
        self.b_final.grad = grad_out.sum(dim=1)
        self.W2.grad = torch.bmm(h.transpose(1, 2), grad_out).transpose(1, 2)
        self.W1.grad = torch.bmm((torch.bmm(grad_out, self.W2) * (pre > 0)).transpose(1, 2), x)
        return torch.einsum("ibf,if->i", error * error, weight)


@pytest.mark.parametrize("valid", [LinearOutputModel, WithMatmul, WithHandGradients])
def test_valid_models_pass(valid, capsys):
    assert check_linear_output_model(valid) is valid
    assert "LinearOutputModel: all checks passed" in capsys.readouterr().out


# ---- planted mistakes -----------------------------------------------------------------------------


class KeepsOutputRelu(NeuronComputationModel):
    step_gradients = None  # the parent's forward, with its ReLU


class InheritsHandGradients(NeuronComputationModel):
    def forward(self, x):
        return linear_readout(self, x)


class NoBias(LinearOutputModel):
    def forward(self, x):
        return torch.einsum("...ih,ifh->...if", self.hidden(x), self.W2)


class NoHiddenRelu(LinearOutputModel):
    def forward(self, x):
        return torch.einsum("...if,ihf,ijh->...ij", x, self.W1, self.W2) + self.b_final


class TransposedReadout(LinearOutputModel):
    def forward(self, x):
        return torch.einsum("...ih,ihf->...if", self.hidden(x), self.W2)


class InstanceFirst(LinearOutputModel):
    def forward(self, x):
        return linear_readout(self, x).transpose(0, 1)


class ReluTarget(LinearOutputModel):
    def target(self, batch):
        return torch.relu(batch)


class MaskedHandGradients(WithHandGradients):
    """Hand-written gradients that keep the output ReLU's mask (error only where the output is positive)."""

    @torch.no_grad()
    def step_gradients(self, batch_size, generator=None, batch=None):
        x = batch.transpose(0, 1)
        pre = torch.bmm(x, self.W1.transpose(1, 2))
        h = torch.relu(pre)
        out = torch.baddbmm(self.b_final[:, None, :], h, self.W2.transpose(1, 2))
        error = (out - x.abs()) * (out > 0)
        weight = self.importance / (x.shape[1] * self.cfg.n_features)
        grad_out = 2 * error * weight[:, None, :]
        self.b_final.grad = grad_out.sum(dim=1)
        self.W2.grad = torch.bmm(h.transpose(1, 2), grad_out).transpose(1, 2)
        self.W1.grad = torch.bmm((torch.bmm(grad_out, self.W2) * (pre > 0)).transpose(1, 2), x)
        return torch.einsum("ibf,if->i", error * error, weight)


class NotASubclass(torch.nn.Module):
    def __init__(self, cfg, **kwargs):
        super().__init__()


class ChangesInit(LinearOutputModel):
    def __init__(self, cfg, hidden_size, **kwargs):
        super().__init__(cfg, **kwargs)


@pytest.mark.parametrize(
    "planted, message",
    [
        (KeepsOutputRelu, r"forward\(x\) is never negative.*remove the ReLU at the output"),
        # structure: what optimize would train (the parent's gradients, or wrong hand-written ones)
        (
            InheritsHandGradients,
            r"inherits NeuronComputationModel.step_gradients.*would use them and train the parent's model",
        ),
        (MaskedHandGradients, r"gradient of W1 from your step_gradients is wrong.*no mask on the output"),
        (NoBias, r"forward\(x\) leaves out the bias b_final"),
        (NoHiddenRelu, r"forward\(x\) leaves out the ReLU on the hidden layer"),
        (TransposedReadout, r"forward\(\(64, 3, 6\)\) raised RuntimeError.*W2 is \(inst, feats, d_hidden\)"),
        (InstanceFirst, r"forward\(x\) has shape \(3, 64, 6\); expected \(batch, inst, feats\) = \(64, 3, 6\)"),
        # structure: the target the model is trained towards
        (ReluTarget, r"target\(x\) should stay \|x\|"),
        (NotASubclass, r"should subclass NeuronComputationModel"),
        (ChangesInit, r"raised TypeError.*keep the parent's __init__"),
    ],
)
def test_planted_mistakes_are_named(planted, message):
    with pytest.raises(AssertionError, match=message):
        check_linear_output_model(planted)


def test_an_unfilled_stub_hands_over_the_library_model(capsys):
    class Stub(NeuronComputationModel):
        step_gradients = None

        def forward(self, x):
            raise NotImplementedError("return W2 ReLU(W1 x) + b_final")

    assert check_linear_output_model(Stub) is LinearOutputModel
    assert "not done yet" in capsys.readouterr().out
