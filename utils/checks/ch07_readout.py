"""Check for chapter 7's exercise 7.3: `LinearOutputModel`, the absolute-value model without its output ReLU."""

from __future__ import annotations

import torch

from utils.checks.compare import assert_close, assert_tensor, build, call_learner, learner_check, passed
from utils.models import NeuronComputationModel, ToyModelConfig
from utils.motif import LinearOutputModel

CFG = ToyModelConfig(n_inst=3, n_features=6, d_hidden=4)  # d_hidden != feats, so a transposed W2 cannot pass
DIMS = "(batch, inst, feats)"


def _build(cls):
    """The learner's model and the reference with the same seed (so the same weights), and a bias with both signs."""
    kwargs = dict(
        feature_probability=torch.tensor([[1.0], [0.5], [0.2]]), importance=0.8 ** torch.arange(CFG.n_features)
    )
    model = build(cls, CFG, seed=0, device="cpu", **kwargs)
    if not isinstance(model, NeuronComputationModel):
        raise AssertionError(f"LinearOutputModel should subclass NeuronComputationModel, got a {type(model).__name__}")
    reference = LinearOutputModel(CFG, seed=0, device="cpu", **kwargs)
    with torch.no_grad():
        bias = torch.linspace(-0.5, 0.5, CFG.n_inst * CFG.n_features).reshape(CFG.n_inst, CFG.n_features)
        for m in (model, reference):
            m.b_final.copy_(bias)
    return model, reference


def _check_gradients(model, reference, x: torch.Tensor) -> None:
    """What `optimize` will train with: autograd (no step_gradients), or the learner's own, checked against it."""
    step = getattr(model, "step_gradients", None)
    if not callable(step):
        return
    if getattr(type(model), "step_gradients", None) is NeuronComputationModel.step_gradients:
        raise AssertionError(
            "your class inherits NeuronComputationModel.step_gradients, the hand-written gradients of the model WITH "
            "the output ReLU: utils.train.optimize would use them and train the parent's model, not yours. Set "
            "`step_gradients = None` in the class body (optimize then uses autograd through your forward)"
        )
    expected = {}
    loss = reference.loss_per_instance(reference(x), x).sum()
    for name, grad in zip(
        ("W1", "W2", "b_final"), torch.autograd.grad(loss, (reference.W1, reference.W2, reference.b_final))
    ):
        expected[name] = grad
    for parameter in model.parameters():
        parameter.grad = None
    call_learner("step_gradients", model.step_gradients, x.shape[0], None, x)
    for name in ("W1", "W2", "b_final"):
        grad = getattr(model, name).grad
        if grad is None:
            raise AssertionError(f"your step_gradients leaves {name}.grad unset; set every parameter's .grad")
        assert_close(
            grad,
            expected[name],
            f"the gradient of {name} from your step_gradients",
            "(inst, ...)",
            atol=1e-5,
            rule="compare with autograd through forward and loss_per_instance; without the output ReLU, "
            "every output passes its gradient (no mask on the output)",
        )


@learner_check(LinearOutputModel, "`utils.motif.LinearOutputModel`")
def check_linear_output_model(cls) -> None:
    """The learner's `LinearOutputModel`: forward = W2 ReLU(W1 x) + b with no ReLU at the end, target |x|,
    and training that does not fall back on the parent's hand-written gradients."""
    model, reference = _build(cls)
    x = torch.rand(64, CFG.n_inst, CFG.n_features, generator=torch.Generator().manual_seed(1)) * 2 - 1
    try:
        out = call_learner("forward", model, x)
    except AssertionError as error:
        raise AssertionError(
            f"{error}. W1 is (inst, d_hidden, feats), W2 is (inst, feats, d_hidden), x is {DIMS}"
        ) from error
    assert_tensor(out, "forward(x)", tuple(x.shape), DIMS)
    expected = reference(x).detach()
    if not (out < 0).any():
        raise AssertionError(
            "forward(x) is never negative, but W2 ReLU(W1 x) + b_final is negative for some of these inputs: "
            "remove the ReLU at the output (that is the point of this model)"
        )
    hidden = torch.relu(torch.einsum("bif,ihf->bih", x, reference.W1))
    no_hidden_relu = torch.einsum("bif,ihf->bih", x, reference.W1)
    without = {
        "the bias b_final": torch.einsum("bih,ifh->bif", hidden, reference.W2),
        "the ReLU on the hidden layer": torch.einsum("bih,ifh->bif", no_hidden_relu, reference.W2) + reference.b_final,
    }
    for part, value in without.items():
        if torch.allclose(out.detach(), value.detach(), atol=1e-5):
            raise AssertionError(
                f"forward(x) leaves out {part}: the model is W2 ReLU(W1 x) + b_final, only the output ReLU goes"
            )
    assert_close(
        out.detach(),
        expected,
        "forward(x)",
        DIMS,
        rule="output f of instance k is Σ_h W2[k, f, h] ReLU(W1 x)[h] + b_final[k, f]; W2 is (inst, feats, d_hidden)",
    )
    target = call_learner("target", model.target, x)
    if not (isinstance(target, torch.Tensor) and target.shape == x.shape and torch.allclose(target, x.abs())):
        raise AssertionError("target(x) should stay |x| (the parent's): only the output ReLU changes")
    loss = call_learner("loss_per_instance", model.loss_per_instance, out, x)
    assert_tensor(loss, "loss_per_instance(forward(x), x)", (CFG.n_inst,), "(inst,)")
    assert_close(
        loss.detach(),
        reference.loss_per_instance(expected, x).detach(),
        "loss_per_instance",
        "(inst,)",
        rule="keep the parent's loss: importance-weighted squared error against |x|",
    )
    _check_gradients(model, reference, x)
    passed("LinearOutputModel")
