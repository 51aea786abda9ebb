"""The exact expected loss of the two-feature ReLU model, its closed forms and its optimum (chapter 2)."""

import math

import pytest
import torch

from utils.optima import (
    TWO_FEATURE_STARTS,
    antipodal_loss,
    feature_variance,
    solution_kind,
    two_feature_loss,
    two_feature_optimum,
)


def monte_carlo_loss(W, b, density, importance, n=400_000, seed=0):
    """The same expectation from `n` samples per model: `(k, 2)` weights -> `(k,)`."""
    generator = torch.Generator().manual_seed(seed)
    k = W.shape[0]
    shape = (n, k, 2)
    x = (torch.rand(shape, generator=generator, dtype=torch.float64) < density[:, None]) * torch.rand(
        shape, generator=generator, dtype=torch.float64
    )
    out = torch.relu((x * W).sum(-1, keepdim=True) * W + b)
    return ((out - x) ** 2 * importance).mean(dim=(0, 2))


def test_exact_loss_matches_monte_carlo_on_random_models():
    generator = torch.Generator().manual_seed(1)
    k = 24
    W = torch.randn(k, 2, generator=generator, dtype=torch.float64)
    b = 0.3 * torch.randn(k, 2, generator=generator, dtype=torch.float64)
    W[:4, 1] = 0.0  # a feature without weight
    W[4:6] = 0.0  # no weights at all: only the bias
    b[6:8] = 0.0
    density = torch.rand(k, generator=generator, dtype=torch.float64)
    importance = torch.rand(k, 2, generator=generator, dtype=torch.float64) + 0.1
    exact = two_feature_loss(W, b, density, importance)
    sampled = monte_carlo_loss(W, b, density, importance)
    # 400,000 samples: the largest relative gap over these 24 models was 0.3% to 0.65% for sampling seeds 0-4.
    assert torch.allclose(exact, sampled, rtol=0.015)


def test_exact_loss_of_known_solutions():
    p = torch.tensor([0.01, 0.2, 4 / 7, 1.0], dtype=torch.float64)
    ones = torch.ones(4, 2, dtype=torch.float64)
    switch = two_feature_loss(
        torch.tensor([[1.0, -1.0]] * 4, dtype=torch.float64), torch.zeros(4, 2, dtype=torch.float64), p, ones
    )
    assert torch.allclose(switch, p**2 / 6, rtol=1e-12)
    assert torch.allclose(switch, antipodal_loss(p, ones), rtol=1e-12)
    keep_one = two_feature_loss(
        torch.tensor([[1.0, 0.0]] * 4, dtype=torch.float64),
        torch.stack([torch.zeros(4, dtype=torch.float64), p / 2], -1),
        p,
        ones,
    )
    variance = torch.tensor([feature_variance(v) for v in p.tolist()], dtype=torch.float64)
    assert torch.allclose(keep_one, variance / 2, rtol=1e-12)
    # At 4/7 the two cost the same.
    assert math.isclose(switch[2].item(), keep_one[2].item(), rel_tol=1e-12)


def test_exact_loss_is_differentiable_and_checks_shapes():
    W = torch.tensor([[0.9, -1.1]], dtype=torch.float64, requires_grad=True)
    b = torch.tensor([[0.05, -0.02]], dtype=torch.float64, requires_grad=True)
    loss = two_feature_loss(W, b, torch.tensor([0.3], dtype=torch.float64), torch.ones(1, 2, dtype=torch.float64))
    loss.sum().backward()
    # The gradient agrees with central differences.
    step = 1e-6
    for index in range(2):
        shifted = [W.detach().clone(), W.detach().clone()]
        shifted[0][0, index] += step
        shifted[1][0, index] -= step
        values = [
            two_feature_loss(
                w, b.detach(), torch.tensor([0.3], dtype=torch.float64), torch.ones(1, 2, dtype=torch.float64)
            )
            for w in shifted
        ]
        assert math.isclose(W.grad[0, index].item(), ((values[0] - values[1]) / (2 * step)).item(), rel_tol=1e-5)
    with pytest.raises(ValueError, match=r"W and b must both have shape \(k, 2\)"):
        two_feature_loss(torch.ones(3), torch.ones(3), torch.ones(1), torch.ones(2))


def test_optimum_beats_random_starts_and_closed_forms():
    density = torch.tensor([1.0, 0.5, 0.2, 0.05, 0.01, 0.3], dtype=torch.float64)
    importance2 = torch.tensor([0.3, 1.0, 1.0, 1.0, 0.2, 5.0], dtype=torch.float64)
    optimum = two_feature_optimum(density, importance2)
    generator = torch.Generator().manual_seed(0)
    random_starts = torch.cat(
        [
            torch.randn(16, 2, generator=generator, dtype=torch.float64),
            0.3 * torch.randn(16, 2, generator=generator, dtype=torch.float64),
        ],
        -1,
    )
    other = two_feature_optimum(density, importance2, starts=random_starts, iterations=40)
    assert (optimum.loss <= other.loss * (1 + 1e-9)).all()
    importance = torch.stack([torch.ones_like(importance2), importance2], -1)
    assert torch.allclose(two_feature_loss(optimum.W, optimum.b, density, importance), optimum.loss)
    candidates = (
        torch.stack(
            [
                antipodal_loss(density, importance),
                torch.tensor([feature_variance(v) for v in density.tolist()], dtype=torch.float64)
                * torch.minimum(importance2, torch.ones_like(importance2))
                / 2,
            ]
        )
        .min(0)
        .values
    )
    assert (optimum.loss <= candidates * (1 + 1e-9)).all()
    assert optimum.start_losses.shape == (6, len(TWO_FEATURE_STARTS))


def test_solution_kinds():
    W = torch.tensor([[1.0, 0.05], [0.02, 1.0], [1.0, -0.9], [0.9, 0.4], [1.0, 0.3]])
    assert solution_kind(W).tolist() == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match=r"W must have shape \(k, 2\)"):
        solution_kind(torch.ones(2, 3))


def test_optimum_rejects_bad_input():
    with pytest.raises(ValueError, match="density must lie in"):
        two_feature_optimum(torch.tensor([1.5]), torch.tensor([1.0]))
    with pytest.raises(ValueError, match="same length"):
        two_feature_optimum(torch.tensor([0.5, 0.2]), torch.tensor([1.0]))
