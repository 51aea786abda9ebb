"""Statistics of the data generators, with fixed seeds and binomial tolerances (5 standard errors)."""

import pytest
import torch

from utils.data import (
    AnticorrelatedPairs,
    CorrelatedPairs,
    HierarchicalPairs,
    SparseUniform,
    anticorrelated_from_uniform,
    correlated_from_uniform,
    generate_data,
    hierarchical_from_uniform,
    sample_sparse_uniform_inst_first,
    sparse_from_uniform,
)


def within(observed: float, expected: float, n: int, sigmas: float = 5.0) -> bool:
    return abs(observed - expected) <= sigmas * (max(expected * (1 - expected), 1 / n) / n) ** 0.5


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_generate_data_law():
    x = generate_data(50_000, n_features=3, sparsity=0.7, generator=gen())
    assert x.shape == (50_000, 3) and x.dtype == torch.float32
    zero = x == 0
    for feature in range(3):
        assert within(zero[:, feature].float().mean().item(), 0.7, 50_000)
    assert within((zero[:, 0] & zero[:, 2]).float().mean().item(), 0.49, 50_000)
    active = x[~zero]
    assert 0 < active.min() and active.max() < 1
    assert abs(active.mean().item() - 0.5) < 5 * (1 / 12 / active.numel()) ** 0.5
    assert abs((active < 0.25).float().mean().item() - 0.25) < 0.01


def test_generate_data_is_reproducible_and_extreme_sparsities():
    assert torch.equal(generate_data(100, generator=gen(3)), generate_data(100, generator=gen(3)))
    assert (generate_data(500, sparsity=1.0) == 0).all()
    assert (generate_data(500, sparsity=0.0) > 0).all()


@pytest.mark.parametrize("kwargs, message", [
    (dict(sparsity=1.5), r"sparsity must lie in \[0, 1\]"),
    (dict(sparsity=-0.1), r"sparsity must lie in \[0, 1\]"),
    (dict(n_points=0), "n_points must be a positive integer"),
    (dict(n_features=2.5), "n_features must be a positive integer"),
])
def test_generate_data_rejects_bad_input(kwargs, message):
    with pytest.raises(ValueError, match=message):
        generate_data(**{"n_points": 10, **kwargs})


def test_sparse_uniform_rates_per_instance_and_feature():
    p = torch.tensor([[0.9, 0.5, 0.1], [0.02, 0.3, 1.0]])
    x = SparseUniform(p).sample(40_000, gen(1))
    assert x.shape == (40_000, 2, 3)
    rate = (x != 0).float().mean(dim=0)
    for i in range(2):
        for f in range(3):
            assert within(rate[i, f].item(), p[i, f].item(), 40_000)
    active = x[x != 0]
    assert abs(active.mean().item() - 0.5) < 5 * (1 / 12 / active.numel()) ** 0.5


def test_sparse_uniform_signed_range_is_uniform():
    x = SparseUniform(torch.full((1, 4), 0.5), low=-1.0, high=1.0).sample(40_000, gen(2))
    active = x[x != 0]
    assert -1 <= active.min() and active.max() <= 1
    assert abs(active.mean().item()) < 5 * (1 / 3 / active.numel()) ** 0.5
    assert abs((active < 0).float().mean().item() - 0.5) < 0.01


def test_hierarchical_pairs_marginal_and_conditional_rates():
    p1, p2 = torch.tensor([0.3, 0.8]), torch.tensor([0.5, 0.1])
    x = HierarchicalPairs(p1, p2).sample(60_000, gen(3))
    assert x.shape == (60_000, 2, 2)
    first, second = x[..., 0] != 0, x[..., 1] != 0
    assert not (second & ~first).any(), "feature 2 must never be active without feature 1"
    for i in range(2):
        n1 = int(first[:, i].sum())
        assert within(first[:, i].float().mean().item(), p1[i].item(), 60_000)
        assert within(second[first[:, i], i].float().mean().item(), p2[i].item(), n1)
    values = x[..., 1][second]
    assert abs(values.mean().item() - 0.5) < 5 * (1 / 12 / values.numel()) ** 0.5


def test_correlated_pairs_activate_together():
    p = torch.tensor([[0.2, 0.6]])
    x = CorrelatedPairs(p).sample(40_000, gen(4))
    assert x.shape == (40_000, 1, 4)
    active = x != 0
    assert torch.equal(active[..., 0], active[..., 1]) and torch.equal(active[..., 2], active[..., 3])
    assert within(active[..., 0].float().mean().item(), 0.2, 40_000)
    assert within(active[..., 2].float().mean().item(), 0.6, 40_000)
    both = x[active[..., 2]][:, 2:]
    assert abs(torch.corrcoef(both.T)[0, 1].item()) < 0.03, "values within a pair are independent"


def test_anticorrelated_pairs_never_overlap():
    p = torch.tensor([[0.1, 0.45]])
    x = AnticorrelatedPairs(p).sample(40_000, gen(5))
    active = x != 0
    assert not (active[..., 0] & active[..., 1]).any() and not (active[..., 2] & active[..., 3]).any()
    for f, expected in enumerate([0.1, 0.1, 0.45, 0.45]):
        assert within(active[..., f].float().mean().item(), expected, 40_000)
    for f in range(4):
        values = x[..., f][active[..., f]]
        assert abs(values.mean().item() - 0.5) < 5 * (1 / 12 / values.numel()) ** 0.5


def _probabilities(shape, generator):
    """Random probabilities with the edge cases planted: 0, 1, and below the uniforms' resolution 2^-24."""
    p = torch.rand(shape, generator=generator).flatten()
    p[::5], p[1::7], p[2::9] = 0.0, 1.0, 2.0**-25
    return p.reshape(shape)


def test_maps_from_uniforms_follow_their_definitions_into_any_layout():
    # The maps multiply by 0/1 masks (faster than torch.where on a CPU); they must give exactly the
    # definitions' numbers (a feature is active when u < p, with value u/p, ...), also where p = 0,
    # and also when written into a view of feature planes, as the fast trainer does.
    g = gen(11)
    u = torch.rand(64, 9, 4, generator=g)
    u[::3, ::2] = 0.0
    where = lambda active, value: torch.where(active, value, 0.0)  # noqa: E731
    p = _probabilities((9, 4), g)
    for low, high in ((0.0, 1.0), (-1.0, 1.0)):
        expected = where(u < p, low + (high - low) * (u / p))
        assert torch.equal(sparse_from_uniform(u, p, low, high), expected)
    p = _probabilities((9, 2), g)
    parent, child = u[..., 0] < p[:, 0], u[..., 1] < p[:, 1]
    expected = where(torch.stack([parent, parent & child], -1), u[..., :2] / p)
    assert torch.equal(hierarchical_from_uniform(u[..., :2], p), expected)
    planes = torch.full((2, 64, 9), float("nan"))
    hierarchical_from_uniform(u[..., :2].permute(2, 0, 1).contiguous().permute(1, 2, 0), p, out=planes.permute(1, 2, 0))
    assert torch.equal(planes.permute(1, 2, 0), expected)
    pairs = u.unflatten(-1, (2, 2))
    active = (pairs[..., 0] < p)[..., None]
    expected = where(active, torch.stack([pairs[..., 0] / p, pairs[..., 1]], -1)).flatten(-2)
    assert torch.equal(correlated_from_uniform(pairs, p), expected)
    p = p / 2
    first = where(u[..., :2] < p, u[..., :2] / p)
    second = where((u[..., :2] >= p) & (u[..., :2] < 2 * p), (u[..., :2] - p) / p)
    planes = torch.full((4, 64, 9), float("nan"))
    anticorrelated_from_uniform(u[..., :2], p, out=planes.permute(1, 2, 0))
    assert torch.equal(planes.permute(1, 2, 0), torch.stack([first, second], -1).flatten(-2))


@pytest.mark.parametrize("make, message", [
    (lambda: SparseUniform(torch.tensor([[1.2]])), r"feature_probability must lie in \[0, 1\]"),
    (lambda: SparseUniform(torch.tensor([0.5])), r"feature_probability must have shape \(inst, feats\)"),
    (lambda: SparseUniform(torch.tensor([[0.5]]), low=1.0, high=0.0), "low < high"),
    (lambda: HierarchicalPairs(torch.tensor([0.5]), torch.tensor([0.5, 0.5])), r"shape \(inst,\)"),
    (lambda: HierarchicalPairs(torch.tensor([0.5]), torch.tensor([float("nan")])), "p_feature2_given_1 must lie"),
    (lambda: AnticorrelatedPairs(torch.tensor([[0.6]])), r"feature_probability <= 0.5"),
])
def test_laws_reject_bad_input(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_sample_rejects_bad_batch_size():
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        SparseUniform(torch.tensor([[0.5]])).sample(0)


@pytest.mark.parametrize("p_max", [0.02, 0.5])
def test_inst_first_sampler_follows_the_sparse_uniform_law(p_max):
    # both branches (rare features drawn by geometric gaps, dense ones directly); 5-sigma tolerances
    p = torch.tensor([[p_max, p_max / 2, 0.0], [p_max / 4, p_max, p_max]])
    x = sample_sparse_uniform_inst_first(p, 40_000, -1.0, 1.0, torch.Generator().manual_seed(0))
    assert x.shape == (2, 40_000, 3) and x.dtype == torch.float32
    active = x != 0
    for k in range(2):
        for i in range(3):
            rate = active[k, :, i].float().mean().item()
            q = p[k, i].item()
            assert abs(rate - q) <= 5 * (max(q * (1 - q), 1e-6) / 40_000) ** 0.5, (k, i, rate, q)
    values = x[active]
    assert values.min() >= -1 and values.max() <= 1
    assert abs(values.mean().item()) < 5 * (1 / 3 / values.numel()) ** 0.5
    assert abs((values > 0).float().mean().item() - 0.5) < 5 * (0.25 / values.numel()) ** 0.5
