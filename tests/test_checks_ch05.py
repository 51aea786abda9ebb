"""Chapter 5's checks accept correct answers written in several ways and reject planted mistakes, each
with a message that names it. The mistakes are written from the exercise text, as a learner would make them."""

import pytest
import torch

from utils.checks import check_neuron_computation_model, check_neuron_model
from utils.models import NeuronComputationModel, NeuronModel, ToyModel, ToyModelConfig

# --- exercise 5.1: the neuron model ----------------------------------------------------------------


def neuron(hidden):
    return type("Learner", (ToyModel,), {"hidden": hidden})


def hidden_loop(self, x):
    return torch.stack([torch.relu(x[..., k, :] @ self.W[k].T) for k in range(self.cfg.n_inst)], dim=-2)


@pytest.mark.parametrize(
    "correct",
    [
        neuron(lambda self, x: torch.relu(torch.einsum("...if,ihf->...ih", x, self.W))),
        neuron(lambda self, x: torch.relu(ToyModel.hidden(self, x))),
        neuron(hidden_loop),
        neuron(lambda self, x: (x.unsqueeze(-2) * self.W).sum(-1).clamp(min=0)),
        type(
            "FromNeuronModel",
            (NeuronModel,),
            {"hidden": lambda self, x: torch.nn.functional.relu(torch.einsum("...if,ihf->...ih", x, self.W))},
        ),
    ],
)
def test_neuron_model_check_accepts(correct, capsys):
    assert check_neuron_model(correct) is correct
    assert "NeuronModel: all checks passed" in capsys.readouterr().out


def pre(self, x):
    return torch.einsum("...if,ihf->...ih", x, self.W)


def no_grad_hidden(self, x):
    with torch.no_grad():
        return torch.relu(pre(self, x))


@pytest.mark.parametrize(
    "planted, message",
    [
        (type("NoHidden", (ToyModel,), {}), "does not define hidden: .*ToyModel.hidden"),
        (neuron(pre), "Likely cause: there is no ReLU on the neurons"),
        (
            neuron(lambda self, x: pre(self, torch.relu(x))),
            r"Likely cause: the ReLU is applied to the input, W ReLU\(x\)",
        ),
        (
            neuron(lambda self, x: torch.einsum("...if,ihf->...ih", x, torch.relu(self.W))),
            r"the ReLU is applied to the weights",
        ),
        (neuron(lambda self, x: pre(self, x).abs()), r"it takes \|W x\|"),
        # structure: instances share weights; no gradient; leading dimensions
        (
            neuron(lambda self, x: torch.relu(torch.einsum("...if,hf->...ih", x, self.W[0]))),
            "every instance uses instance 0's weights",
        ),
        (neuron(no_grad_hidden), r"hidden\(x\) carries no gradient"),
        (
            neuron(lambda self, x: torch.relu(torch.einsum("bif,ihf->bih", x, self.W))),
            r"hidden\(\(3, 6\)\) raised RuntimeError",
        ),
        (
            neuron(lambda self, x: torch.relu(pre(self, x)).sum(-1)),
            r"hidden\(x\) has shape \(8, 3\); expected \(batch, inst, d_hidden\)",
        ),
        (
            type(
                "RaisesInInit",
                (NeuronModel,),
                {"__init__": lambda self, cfg, **kw: (_ for _ in ()).throw(TypeError("oops")), "hidden": pre},
            ),
            "raised TypeError: oops; keep the parent's __init__",
        ),
    ],
)
def test_neuron_model_check_rejects(planted, message):
    with pytest.raises(AssertionError, match=message):
        check_neuron_model(planted)


def test_neuron_model_check_says_it_got_an_instance():
    model = neuron(pre)(ToyModelConfig(n_inst=1, n_features=2, d_hidden=1), device="cpu")
    with pytest.raises(AssertionError, match="not an instance of it"):
        check_neuron_model(model)


# --- exercise 5.2: the absolute-value model --------------------------------------------------------


def forward(self, x):
    h = torch.relu(torch.einsum("...if,ihf->...ih", x, self.W1))
    return torch.relu(torch.einsum("...ih,ifh->...if", h, self.W2) + self.b_final)


def generate_batch(self, batch_size, generator=None):
    shape = (batch_size, *self.feature_probability.shape)
    active = torch.rand(shape, generator=generator) < self.feature_probability
    return torch.where(active, 2 * torch.rand(shape, generator=generator) - 1, 0.0)


def loss_per_instance(self, out, batch):
    return (self.importance * (out - batch.abs()) ** 2).mean(dim=(0, 2))


def absolute(**methods):
    body = {"forward": forward, "generate_batch": generate_batch, "loss_per_instance": loss_per_instance, **methods}
    return type("Learner", (NeuronComputationModel,), body)


def forward_loop(self, x):
    outputs = []
    for k in range(self.cfg.n_inst):
        h = torch.relu(x[..., k, :] @ self.W1[k].T)
        outputs.append(torch.relu(h @ self.W2[k].T + self.b_final[k]))
    return torch.stack(outputs, dim=-2)


def batch_loop(self, batch_size, generator=None):
    batch = torch.zeros(batch_size, self.cfg.n_inst, self.cfg.n_features)
    for k in range(self.cfg.n_inst):
        for f in range(self.cfg.n_features):
            active = torch.rand(batch_size, generator=generator) < self.feature_probability[k, f]
            batch[:, k, f] = torch.where(active, torch.empty(batch_size).uniform_(-1, 1, generator=generator), 0.0)
    return batch


def batch_sign_times_size(self, batch_size, generator=None):
    """A random sign times a uniform size: also uniform on [-1, 1]."""
    shape = (batch_size, *self.feature_probability.shape)
    sign = torch.where(torch.rand(shape, generator=generator) < 0.5, -1.0, 1.0)
    return (
        (torch.rand(shape, generator=generator) < self.feature_probability)
        * sign
        * torch.rand(shape, generator=generator)
    )


def loss_loop(self, out, batch):
    return torch.stack(
        [(self.importance[k] * (out[:, k] - batch[:, k].abs()) ** 2).mean() for k in range(self.cfg.n_inst)]
    )


@pytest.mark.parametrize(
    "correct",
    [
        absolute(),
        absolute(forward=forward_loop, generate_batch=batch_loop, loss_per_instance=loss_loop),
        absolute(generate_batch=batch_sign_times_size),
    ],
)
def test_neuron_computation_model_check_accepts(correct, capsys):
    assert check_neuron_computation_model(correct) is correct
    assert "NeuronComputationModel: all checks passed" in capsys.readouterr().out


def hidden(self, x):
    return torch.relu(torch.einsum("...if,ihf->...ih", x, self.W1))


def write(self, h):
    return torch.einsum("...ih,ifh->...if", h, self.W2)


def batch_from(activity, values):
    def generate_batch(self, batch_size, generator=None):
        shape = (batch_size, *self.feature_probability.shape)
        return torch.where(activity(self, shape), values(shape), 0.0)

    return generate_batch


def fair(self, shape):
    return torch.rand(shape) < self.feature_probability


def values_off_stream(self, batch_size, generator=None):
    """Activity from `generator`, values from torch's global stream."""
    shape = (batch_size, *self.feature_probability.shape)
    active = torch.rand(shape, generator=generator) < self.feature_probability
    return torch.where(active, 2 * torch.rand(shape) - 1, 0.0)


@pytest.mark.parametrize(
    "methods, message",
    [
        # forward
        (
            dict(forward=lambda self, x: write(self, hidden(self, x)) + self.b_final),
            "Likely cause: there is no ReLU at the output",
        ),
        (dict(forward=lambda self, x: torch.relu(write(self, hidden(self, x)))), "Likely cause: the bias is missing"),
        (
            dict(
                forward=lambda self, x: torch.relu(
                    write(self, torch.einsum("...if,ihf->...ih", x, self.W1)) + self.b_final
                )
            ),
            "the hidden layer has no ReLU",
        ),
        (
            dict(forward=lambda self, x: torch.relu(write(self, hidden(self, x)) + self.b_final).detach()),
            r"forward\(x\) carries no gradient",
        ),
        (
            dict(
                forward=lambda self, x: torch.relu(
                    torch.einsum("...ih,ihf->...if", hidden(self, x), self.W2) + self.b_final
                )
            ),
            r"forward\(\(8, 3, 6\)\) raised RuntimeError",
        ),
        (
            dict(
                forward=lambda self, x: torch.relu(
                    torch.einsum("bih,ifh->bif", torch.relu(torch.einsum("bif,ihf->bih", x, self.W1)), self.W2)
                    + self.b_final
                )
            ),
            r"forward\(\(3, 6\)\) raised RuntimeError",
        ),
        # generate_batch: distribution
        (
            dict(generate_batch=batch_from(fair, torch.rand)),
            r"Likely cause: the values are uniform on \[0, 1\]: draw them on \[-1, 1\]",
        ),
        (
            dict(generate_batch=batch_from(fair, lambda s: torch.rand(s) - 0.5)),
            r"Likely cause: the values are uniform on \[-0.5, 0.5\]",
        ),
        (dict(generate_batch=batch_from(fair, lambda s: torch.full(s, 0.5))), r"Every active value is one of \{0.5\}"),
        (
            dict(generate_batch=batch_from(fair, lambda s: torch.where(torch.rand(s) < 0.5, -0.5, 0.5))),
            r"Every active value is one of \{-0.5, 0.5\}",
        ),
        (dict(generate_batch=batch_from(fair, torch.randn)), "standard normal"),
        # generate_batch: structure
        (
            dict(
                generate_batch=batch_from(
                    lambda self, s: torch.rand(s[0], s[1], 1) < self.feature_probability,
                    lambda s: 2 * torch.rand(s) - 1,
                )
            ),
            r"Likely cause: features \d and \d share one random draw",
        ),
        (
            dict(generate_batch=batch_from(fair, lambda s: (2 * torch.rand(s[0], s[1], 1) - 1).expand(s))),
            "Likely cause: features 0 and 1 share one value draw",
        ),
        (
            dict(
                generate_batch=batch_from(
                    fair, lambda s: torch.where(torch.rand(s[0], s[1], 1) < 0.5, -1.0, 1.0) * torch.rand(s)
                )
            ),
            "where features 0 and 1 of instance 0 are both active, their values have correlation",
        ),
        (
            dict(
                generate_batch=batch_from(
                    lambda self, s: torch.rand(s) < self.feature_probability[0], lambda s: 2 * torch.rand(s) - 1
                )
            ),
            "every instance uses instance 0's probabilities",
        ),
        (
            dict(
                generate_batch=batch_from(
                    lambda self, s: torch.rand(s) < 1 - self.feature_probability, lambda s: 2 * torch.rand(s) - 1
                )
            ),
            "yours is active with 1 - p",
        ),
        # generate_batch: the data stream
        (
            dict(generate_batch=batch_from(fair, lambda s: 2 * torch.rand(s) - 1)),
            "gave different batches for two generators with the same seed",
        ),
        (dict(generate_batch=values_off_stream), "gave different batches for two generators with the same seed"),
        # loss_per_instance
        (
            dict(loss_per_instance=lambda self, out, batch: (self.importance * (out - batch) ** 2).mean(dim=(0, 2))),
            "Likely cause: it compares the output with x",
        ),
        (
            dict(
                loss_per_instance=lambda self, out, batch: (self.importance * (out - torch.relu(batch)) ** 2).mean(
                    dim=(0, 2)
                )
            ),
            r"the target is ReLU\(x\)",
        ),
        (
            dict(loss_per_instance=lambda self, out, batch: ((out - batch.abs()) ** 2).mean(dim=(0, 2))),
            "it ignores the importances",
        ),
        (
            dict(
                loss_per_instance=lambda self, out, batch: (self.importance * (out - batch.abs()) ** 2).mean(0).sum(-1)
            ),
            "it sums over features",
        ),
        (
            dict(loss_per_instance=lambda self, out, batch: loss_per_instance(self, out, batch).detach()),
            "carries no gradient",
        ),
        (
            dict(loss_per_instance=lambda self, out, batch: loss_per_instance(self, out, batch).sum()),
            r"has shape \(\); expected \(inst,\)",
        ),
    ],
)
def test_neuron_computation_model_check_rejects(methods, message):
    with pytest.raises(AssertionError, match=message):
        check_neuron_computation_model(absolute(**methods))


def test_neuron_computation_model_check_needs_its_methods():
    with pytest.raises(AssertionError, match="does not define generate_batch"):
        check_neuron_computation_model(
            type("Partial", (NeuronComputationModel,), {"forward": forward, "loss_per_instance": loss_per_instance})
        )
    with pytest.raises(AssertionError, match="must be a subclass of NeuronComputationModel"):
        check_neuron_computation_model(type("Other", (ToyModel,), {"forward": forward}))
