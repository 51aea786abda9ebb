"""Checks for chapter 5: the neuron model and the absolute-value model."""

from __future__ import annotations

import torch

from utils.checks.compare import assert_close, assert_rate, assert_tensor, call_learner, learner_check, passed
from utils.models import NeuronComputationModel, NeuronModel, ToyModelConfig

CFG = ToyModelConfig(n_inst=3, n_features=6, d_hidden=4)


def _build(cls, reference_cls, **kwargs):
    """The learner's model and the reference with the same seed (so the same weights)."""
    try:
        model = cls(CFG, seed=0, device="cpu", **kwargs)
    except Exception as error:
        raise AssertionError(
            f"{cls.__name__}(cfg, seed=0, device='cpu') raised {type(error).__name__}: {error}; keep the parent's __init__"
        ) from error
    return model, reference_cls(CFG, seed=0, device="cpu", **kwargs)




@learner_check(NeuronModel, "`utils.models.NeuronModel`")
def check_neuron_model(cls) -> None:
    """The learner's `NeuronModel`-like class: `hidden(x)` = ReLU(W x), and the forward pass through it."""
    model, reference = _build(cls, NeuronModel)
    x = torch.rand(8, CFG.n_inst, CFG.n_features, generator=torch.Generator().manual_seed(1))
    h = call_learner("hidden", model.hidden, x)
    assert_tensor(h, "hidden(x)", (8, CFG.n_inst, CFG.d_hidden), "(batch, inst, d_hidden)")
    if (h < 0).any():
        raise AssertionError("hidden(x) has negative values: the neuron model applies a ReLU to W x (that is what makes neurons a privileged basis)")
    assert_close(
        h, reference.hidden(x), "hidden(x)", "(batch, inst, d_hidden)",
        hint="neuron h of instance k is ReLU(Σ_i W[k, h, i] x[..., k, i]); W has shape (inst, d_hidden, feats)",
    )
    assert_close(
        call_learner("forward", model, x).detach(), reference(x).detach(), "forward(x)", "(batch, inst, feats)",
        hint="the read-out is unchanged: ReLU(Wᵀ h + b_final)",
    )
    passed("NeuronModel")


@learner_check(NeuronComputationModel, "`utils.models.NeuronComputationModel`")
def check_neuron_computation_model(cls) -> None:
    """The learner's absolute-value model: `forward`, `generate_batch` on [-1, 1], `loss_per_instance` against |x|."""
    p = torch.tensor([[1.0], [0.5], [0.1]])
    model, reference = _build(cls, NeuronComputationModel, feature_probability=p, importance=0.8 ** torch.arange(CFG.n_features))
    with torch.no_grad():
        for m in (model, reference):
            m.b_final.copy_(torch.linspace(-0.5, 0.5, CFG.n_inst * CFG.n_features).reshape(CFG.n_inst, CFG.n_features))
    x = torch.rand(8, CFG.n_inst, CFG.n_features, generator=torch.Generator().manual_seed(1)) * 2 - 1
    out = call_learner("forward", model, x)
    assert_tensor(out, "forward(x)", tuple(x.shape), "(batch, inst, feats)")
    if (out < 0).any():
        raise AssertionError("forward(x) has negative outputs: apply a ReLU to W2 h + b_final at the end")
    assert_close(
        out.detach(), reference(x).detach(), "forward(x)", "(batch, inst, feats)",
        hint="x' = ReLU(W2 ReLU(W1 x) + b_final) with W1: (inst, d_hidden, feats), W2: (inst, feats, d_hidden)",
    )

    batch = call_learner("generate_batch", model.generate_batch, 20_000)
    assert_tensor(batch, "generate_batch(20000)", (20_000, CFG.n_inst, CFG.n_features), "(batch, inst, feats)")
    if batch.min() < -1 or batch.max() > 1:
        raise AssertionError(f"generate_batch has values in [{batch.min():.3f}, {batch.max():.3f}]; active features are uniform on [-1, 1]")
    active = batch != 0
    if not (batch < 0).any():
        raise AssertionError("generate_batch has no negative values: draw active features uniformly from [-1, 1], not [0, 1]")
    for k in range(CFG.n_inst):
        assert_rate(active[:, k].float().mean().item(), p[k, 0].item(), active[:, k].numel(),
                    f"the fraction of active features in instance {k} (feature_probability {p[k, 0].item():g})")
    values = batch[active]
    assert_rate((values > 0).float().mean().item(), 0.5, values.numel(), "the fraction of active values above 0")

    g = torch.Generator().manual_seed(2)
    signed = torch.where(torch.rand(x.shape, generator=g) < 0.5, torch.rand(x.shape, generator=g) * 2 - 1, 0.0)
    guess = torch.rand(x.shape, generator=g)
    loss = call_learner("loss_per_instance", model.loss_per_instance, guess, signed)
    assert_tensor(loss, "loss_per_instance(out, batch)", (CFG.n_inst,), "(inst,)")
    expected = reference.loss_per_instance(guess, signed)
    as_reconstruction = (reference.importance * (guess - signed) ** 2).mean(dim=(0, 2))
    if torch.allclose(loss, as_reconstruction, atol=1e-6):
        raise AssertionError("loss_per_instance compares the output with x; the target of this model is |x|")
    unweighted = ((guess - signed.abs()) ** 2).mean(dim=(0, 2))
    if torch.allclose(loss, unweighted, atol=1e-6):
        raise AssertionError("loss_per_instance ignores the importances: weight each feature's squared error by self.importance")
    assert_close(loss.detach(), expected, "loss_per_instance", "(inst,)", hint="mean over batch and features of importance · (out - |x|)²")
    passed("NeuronComputationModel")
