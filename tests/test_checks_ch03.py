"""Chapter 3's checks pass the reference and catch planted mistakes with the right message."""

import pytest
import torch

from utils import checks, metrics
from utils.data import AnticorrelatedPairs, CorrelatedPairs


def test_dimensionality_reference_passes(capsys):
    checks.check_dimensionality(metrics.dimensionality)
    checks.check_dims_per_feature(metrics.dims_per_feature)
    assert capsys.readouterr().out.count("all checks passed") == 2


def unit(W):
    return W / W.norm(dim=1, keepdim=True)


def mutating(W):
    W /= W.norm(dim=1, keepdim=True).clamp_min(1e-8)
    return metrics.dimensionality(W)


@pytest.mark.parametrize(
    "fn, message",
    [
        (lambda W: W.norm(dim=1) ** 2 / (torch.einsum("khi,khj->kij", W, W) ** 2).sum(-1).clamp_min(1e-8), "unit vector"),
        (lambda W: W.norm(dim=1) ** 2 / (torch.einsum("khi,khj->kij", unit(W), W) ** 2).sum(-1), "NaN"),
        (
            lambda W: W.norm(dim=1) ** 2
            / ((metrics.overlaps(W) ** 2).sum(-1) - W.norm(dim=1) ** 2).clamp_min(1e-8),
            "include j = i",
        ),
        (lambda W: metrics.dimensionality(W).T, "shape"),
        (mutating, "modified its input"),
    ],
)
def test_dimensionality_catches_mistakes(fn, message):
    with pytest.raises(AssertionError, match=message):
        checks.check_dimensionality(fn)


@pytest.mark.parametrize(
    "fn, message",
    [
        (lambda W: W.shape[1] / W.pow(2).sum(dim=(1, 2)).sqrt(), "squared"),
        (lambda W: W.shape[2] / W.pow(2).sum(dim=(1, 2)), "d_hidden"),
        (lambda W: W.shape[1] / W.pow(2).sum(dim=(1, 2), keepdim=True), "shape"),
    ],
)
def test_dims_per_feature_catches_mistakes(fn, message):
    with pytest.raises(AssertionError, match=message):
        checks.check_dims_per_feature(fn)


def library_correlated(p, n):
    return CorrelatedPairs(p).sample(n)


def library_anticorrelated(p, n):
    return AnticorrelatedPairs(p).sample(n)


def test_pair_generators_reference_passes(capsys):
    checks.check_correlated_generator(library_correlated)
    checks.check_anticorrelated_generator(library_anticorrelated)
    assert capsys.readouterr().out.count("all checks passed") == 2


def independent(p, n):
    p = p.repeat_interleave(2, dim=-1)
    return torch.where(torch.rand(n, *p.shape) < p, torch.rand(n, *p.shape), 0.0)


def same_values(p, n):
    active = torch.rand(n, *p.shape) < p
    value = torch.rand(n, *p.shape)
    return torch.where(active, value, 0.0).repeat_interleave(2, dim=-1)


def anti_half_rate(p, n):
    u = torch.rand(n, *p.shape)
    first = torch.where(u < p / 2, torch.rand(n, *p.shape), 0.0)
    second = torch.where((u >= p / 2) & (u < p), torch.rand(n, *p.shape), 0.0)
    return torch.stack([first, second], -1).flatten(-2)


@pytest.mark.parametrize(
    "fn, message",
    [
        (independent, "active together"),
        (same_values, "correlation"),
        (lambda p, n: library_correlated(p, n)[:, :1], "shape"),
        (lambda p, n: library_correlated(p, n) * 2, "values in"),
        (lambda p, n: library_correlated(p.sqrt(), n), "fraction of samples"),
    ],
)
def test_correlated_check_catches_mistakes(fn, message):
    with pytest.raises(AssertionError, match=message):
        checks.check_correlated_generator(fn)


@pytest.mark.parametrize(
    "fn, message",
    [
        (independent, "never active together"),
        (anti_half_rate, "marginal probability p"),
        (lambda p, n: library_anticorrelated(p, n).double(), "dtype"),
        (lambda p, n: library_anticorrelated(p, n) ** 2, "mean"),
    ],
)
def test_anticorrelated_check_catches_mistakes(fn, message):
    with pytest.raises(AssertionError, match=message):
        checks.check_anticorrelated_generator(fn)
