"""Chapter 6's new checks (the ReLU MLP, the two error measures) pass the reference and valid
alternatives, and catch planted mistakes, each with the right message."""

import pytest
import torch

from utils import computation
from utils.checks import check_relu_mlp, check_two_measures
from utils.models import ReluComputationModel

# ---- the ReLU MLP ------------------------------------------------------------------------------------


def _mlp(forward=None, loss=None):
    """A subclass of ReluComputationModel with the given forward and loss_per_instance."""
    methods = {}
    if forward is not None:
        methods["forward"] = forward
    if loss is not None:
        methods["loss_per_instance"] = loss
    return type("Planted", (ReluComputationModel,), methods)


def _forward(self, x):
    return torch.einsum("bih,ifh->bif", torch.relu(torch.einsum("bif,ihf->bih", x, self.W_in)), self.W_out)


def _error(self, out, batch):
    return out - torch.relu(batch)


PLANTED_MLP = [
    (
        _mlp(forward=lambda self, x: torch.einsum("bif,ihf,ijh->bij", x, self.W_in, self.W_out)),
        "forward\\(x\\) is linear in x",
    ),
    (_mlp(forward=lambda self, x: torch.relu(_forward(self, x))), "has no ReLU on its output"),
    (_mlp(forward=lambda self, x: _forward(self, x).detach()), "carries no gradient"),
    (
        _mlp(
            forward=lambda self, x: torch.einsum(
                "bih,ifh->bif", torch.relu(torch.einsum("bif,ihf->bih", x, self.W_in)), self.W_out.flip(1)
            )
        ),
        "forward\\(x\\) is wrong at batch 0, inst 0",
    ),
    (
        _mlp(
            loss=lambda self, out, batch: (self.importance * (out - batch).abs() ** self.loss_power[:, None]).mean(
                dim=(0, 2)
            )
        ),
        "the target is ReLU\\(x\\)",
    ),
    (
        _mlp(loss=lambda self, out, batch: (self.importance * _error(self, out, batch) ** 2).mean(dim=(0, 2))),
        "uses the squared error for every instance",
    ),
    (
        _mlp(
            loss=lambda self, out, batch: (self.importance * _error(self, out, batch).abs() ** self.loss_power[0]).mean(
                dim=(0, 2)
            )
        ),
        "uses instance 0's power",
    ),
    (
        _mlp(
            loss=lambda self, out, batch: (self.importance * _error(self, out, batch) ** self.loss_power[:, None]).mean(
                dim=(0, 2)
            )
        ),
        "odd powers give negative terms",
    ),
    (
        _mlp(
            loss=lambda self, out, batch: (_error(self, out, batch).abs() ** self.loss_power[:, None]).mean(dim=(0, 2))
        ),
        "ignores the importances",
    ),
    (
        _mlp(
            loss=lambda self, out, batch: (
                (self.importance * _error(self, out, batch).abs() ** self.loss_power[:, None]).mean(dim=0).sum(dim=1)
            )
        ),
        "sums over features",
    ),
    (
        _mlp(
            loss=lambda self, out, batch: (
                self.importance * _error(self, out, batch).abs() ** self.loss_power[:, None]
            ).mean()
        ),
        "loss_per_instance\\(out, batch\\) has shape \\(\\); expected \\(inst,\\)",
    ),
    (
        _mlp(
            loss=lambda self, out, batch: (
                self.importance * _error(self, out, batch).detach().abs() ** self.loss_power[:, None]
            ).mean(dim=(0, 2))
        ),
        "no gradient with respect to W_in or W_out",
    ),
]


def test_relu_mlp_reference_passes(capsys):
    assert check_relu_mlp(ReluComputationModel) is ReluComputationModel
    assert "the ReLU MLP: all checks passed" in capsys.readouterr().out


def _loop_loss(self, out, batch):
    losses = []
    for k in range(out.shape[1]):
        e = (out[:, k] - batch[:, k].clamp_min(0)).abs()
        losses.append((self.importance[k] * e.pow(self.loss_power[k])).sum() / e.numel())
    return torch.stack(losses)


@pytest.mark.parametrize(
    "valid",
    [
        _mlp(
            forward=lambda self, x: torch.bmm(
                torch.relu(torch.bmm(x.transpose(0, 1), self.W_in.transpose(1, 2))), self.W_out.transpose(1, 2)
            ).transpose(0, 1),
            loss=_loop_loss,
        ),
        _mlp(
            forward=_forward,
            loss=lambda self, out, batch: torch.mean(
                self.importance
                * torch.pow((out - torch.where(batch > 0, batch, 0.0)).abs(), self.loss_power.reshape(-1, 1)),
                dim=(0, 2),
            ),
        ),
    ],
)
def test_relu_mlp_accepts_valid_alternatives(valid, capsys):
    assert check_relu_mlp(valid) is valid
    assert "all checks passed" in capsys.readouterr().out


@pytest.mark.parametrize("planted, message", PLANTED_MLP)
def test_relu_mlp_catches(planted, message):
    with pytest.raises(AssertionError, match=message):
        check_relu_mlp(planted)


def test_relu_mlp_stub_hands_over_the_library_model(capsys):
    def stub(self, x):
        raise NotImplementedError("return W_out ReLU(W_in x)")

    assert check_relu_mlp(_mlp(forward=stub)) is ReluComputationModel
    assert "not done yet" in capsys.readouterr().out


# ---- the two error measures ------------------------------------------------------------------------


def _error_pow(y, x, power):
    return (y - torch.relu(x)).abs() ** power


PLANTED_MEASURES = [
    (
        lambda y, x, power: (
            (y - torch.relu(x)).abs().pow(power).mean(dim=(0, 2)),
            _error_pow(y, x, power).mean(dim=0),
        ),
        "average only over the samples in which that feature is active",
    ),
    (
        lambda y, x, power: (
            computation.two_measures(y, x, power)[0],
            (_error_pow(y, x, power) * (x > 0)).sum(dim=0) / (x > 0).sum(dim=0).clamp_min(1),
        ),
        "active when x > 0",
    ),
    (
        lambda y, x, power: (
            (_error_pow(y, x, power) * (x != 0)).sum(dim=(0, 2)) / (x != 0).sum(dim=(0, 2)),
            computation.two_measures(y, x, power)[1],
        ),
        "full averages only over the active entries",
    ),
    (
        lambda y, x, power: (
            (_error_pow(y, x, power) * (x != 0)).mean(dim=(0, 2)),
            computation.two_measures(y, x, power)[1],
        ),
        "full leaves out the outputs of inactive features",
    ),
    (
        lambda y, x, power: (((y - x).abs() ** power).mean(dim=(0, 2)), computation.two_measures(y, x, power)[1]),
        "the target is ReLU\\(x\\)",
    ),
    (
        lambda y, x, power: (((y - torch.relu(x)) ** power).mean(dim=(0, 2)), computation.two_measures(y, x, power)[1]),
        "signed error",
    ),
    (
        lambda y, x, power: (
            computation.two_measures(y, x, power)[0],
            (_error_pow(y, x, power) * (x != 0)).sum(dim=0) / (x != 0).sum(dim=0),
        ),
        "never active in the batch has error 0",
    ),
    (
        lambda y, x, power: (
            computation.two_measures(y, x, power)[0],
            computation.two_measures(y, x, power)[1].mean(dim=1),
        ),
        "per_active has shape \\(3,\\); expected \\(inst, feats\\)",
    ),
    (lambda y, x, power: computation.two_measures(y, x.relu_(), power), "modified y or x"),
    (lambda y, x, power: {"full": computation.two_measures(y, x, power)[0]}, "should return a tuple"),
]


def test_two_measures_reference_passes(capsys):
    assert check_two_measures(computation.two_measures) is computation.two_measures
    assert "two_measures: all checks passed" in capsys.readouterr().out


def _measures_loop(y, x, power):
    batch, n_inst, n_feats = x.shape
    full = torch.zeros(n_inst)
    per_active = torch.zeros(n_inst, n_feats)
    for k in range(n_inst):
        full[k] = sum(
            abs(float(y[b, k, j]) - max(float(x[b, k, j]), 0.0)) ** power for b in range(batch) for j in range(n_feats)
        ) / (batch * n_feats)
        for j in range(n_feats):
            terms = [
                abs(float(y[b, k, j]) - max(float(x[b, k, j]), 0.0)) ** power for b in range(batch) if x[b, k, j] != 0
            ]
            per_active[k, j] = sum(terms) / len(terms) if terms else 0.0
    return full, per_active


def _measures_masked(y, x, power):
    error = torch.abs(y - x.clamp(min=0)).pow(power)
    active = (x != 0).float()
    per_active = torch.nan_to_num((error * active).sum(dim=0) / active.sum(dim=0), nan=0.0)
    return error.flatten(start_dim=2).mean(dim=(0, 2)), per_active


@pytest.mark.parametrize("valid", [_measures_loop, _measures_masked])
def test_two_measures_accepts_valid_alternatives(valid, capsys):
    assert check_two_measures(valid) is valid
    assert "all checks passed" in capsys.readouterr().out


@pytest.mark.parametrize("planted, message", PLANTED_MEASURES)
def test_two_measures_catches(planted, message):
    with pytest.raises(AssertionError, match=message):
        check_two_measures(planted)
