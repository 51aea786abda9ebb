"""Feature-geometry metrics on known shapes, and the exact optima of the linear model."""

import math

import pytest
import torch

from utils.data import generate_data
from utils.metrics import (
    cosine_similarities,
    dimensionality,
    dims_per_feature,
    feature_norms,
    interference,
)
from utils.optima import feature_variance, linear_optimum, population_optimum


def polygon(n: int, radius: float = 1.0) -> torch.Tensor:
    """`(1, 2, n)`: n features at the vertices of a regular polygon."""
    angles = torch.arange(n) * 2 * math.pi / n
    return radius * torch.stack([angles.cos(), angles.sin()])[None]


def tetrahedron() -> torch.Tensor:
    return torch.tensor([[1.0, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]]).T[None] / math.sqrt(3)


@pytest.mark.parametrize("W, expected", [
    (torch.tensor([[[1.0, -1.0]]]), [0.5, 0.5]),  # antipodal pair
    (polygon(3), [2 / 3] * 3),  # triangle
    (polygon(5), [2 / 5] * 5),  # pentagon
    (tetrahedron(), [3 / 4] * 4),
    (torch.eye(3)[None], [1.0] * 3),  # orthogonal
])
def test_dimensionality_of_known_geometries(W, expected):
    assert torch.allclose(dimensionality(W), torch.tensor([expected]), atol=1e-6)
    # Scaling all features together does not change their share of the dimensions.
    assert torch.allclose(dimensionality(3 * W), torch.tensor([expected]), atol=1e-6)


def test_dimensionality_of_unlearned_feature_is_zero_not_nan():
    W = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]])
    assert dimensionality(W).tolist() == [[1.0, 1.0, 0.0]]


def test_interference_and_norms_by_hand():
    W = torch.tensor([[[1.0, 0.6, 0.0], [0.0, 0.8, 2.0]]])
    # Unit directions: (1,0), (0.6,0.8), (0,1).
    # Feature 0 sees 0.6² + 0² ; feature 1 sees 0.6² + 1.6²; feature 2 sees 0 + 0.8².
    assert torch.allclose(interference(W), torch.tensor([[0.36, 0.36 + 2.56, 0.64]]), atol=1e-6)
    assert torch.allclose(feature_norms(W), torch.tensor([[1.0, 1.0, 2.0]]))
    assert torch.allclose(cosine_similarities(W)[0, 0, 1], torch.tensor(0.6))


def test_dims_per_feature():
    assert torch.allclose(dims_per_feature(polygon(5)), torch.tensor([2 / 5]))
    assert torch.allclose(dims_per_feature(torch.tensor([[[1.0, -1.0]]])), torch.tensor([0.5]))


def test_metrics_reject_wrong_shapes_and_do_not_mutate():
    with pytest.raises(ValueError, match=r"W must have shape \(inst, d_hidden, feats\), got \(2, 5\)"):
        dimensionality(torch.ones(2, 5))
    W = polygon(4).requires_grad_()
    before = W.detach().clone()
    dimensionality(W)
    assert torch.equal(W.detach(), before)


def test_feature_variance_and_population_optimum():
    assert math.isclose(feature_variance(1.0), 1 / 12)
    assert math.isclose(feature_variance(0.2), 0.2 / 3 - 0.01)
    assert math.isclose(population_optimum(1.0, torch.tensor([1.0, 1.0])), 1 / 24)
    assert math.isclose(
        population_optimum(0.2, torch.tensor([1.0, 0.1])), 0.1 * feature_variance(0.2) / 2, rel_tol=1e-6
    )
    with pytest.raises(ValueError, match=r"density must lie in \[0, 1\]"):
        feature_variance(1.2)


def test_linear_optimum_matches_brute_force_minimisation():
    x = generate_data(400, sparsity=0.6, generator=torch.Generator().manual_seed(0))
    importance = torch.tensor([1.0, 0.7])
    optimum = linear_optimum(x, importance)
    x, importance = x.double(), importance.double()

    def loss(W, b):
        return (importance * (x @ torch.outer(W, W) + b - x) ** 2).mean()

    assert math.isclose(loss(optimum.W.double(), optimum.b.double()).item(), optimum.loss, rel_tol=1e-5)
    best = float("inf")
    for start in range(8):
        W = torch.randn(2, generator=torch.Generator().manual_seed(start), dtype=torch.float64).requires_grad_()
        b = torch.zeros(2, dtype=torch.float64, requires_grad=True)
        optimizer = torch.optim.LBFGS([W, b], max_iter=500, tolerance_grad=1e-12, tolerance_change=1e-14)

        def closure(optimizer=optimizer, W=W, b=b):
            optimizer.zero_grad()
            value = loss(W, b)
            value.backward()
            return value

        optimizer.step(closure)
        best = min(best, loss(W, b).item())
    assert optimum.loss <= best * (1 + 1e-6)
    assert math.isclose(optimum.loss, best, rel_tol=1e-5)


def test_linear_optimum_rejects_bad_input():
    with pytest.raises(ValueError, match=r"x must have shape \(n_points, 2\)"):
        linear_optimum(torch.rand(10, 3), torch.ones(2))
    with pytest.raises(ValueError, match="importance must be 2 non-negative numbers"):
        linear_optimum(torch.rand(10, 2), torch.tensor([1.0, -1.0]))
