"""utils.sae: the SAEs' forward pass and loss, TopK, grading against known features, resampling dead latents."""

import pytest
import torch

from utils import sae
from utils.data import HierarchicalPairs, SparseUniform
from utils.models import ToyModel, ToyModelConfig


def activations(n_inst=2, d_in=3, n_features=5, p=0.3, seed=0):
    W = torch.randn(n_inst, d_in, n_features, generator=torch.Generator().manual_seed(seed))
    return sae.ToyActivations(SparseUniform(torch.full((n_inst, n_features), p)), W)


def test_toy_activations_embed_the_features_with_each_instances_W():
    data = activations()
    x = data.sample_features(7, torch.Generator().manual_seed(1))
    h = data.embed(x)
    assert h.shape == (7, 2, 3)
    torch.testing.assert_close(h[:, 1], x[:, 1] @ data.W[1].T)


def test_from_model_copies_the_chosen_instances():
    probability = torch.tensor([[0.1], [0.2], [0.3]])
    model = ToyModel(ToyModelConfig(n_inst=3, n_features=4, d_hidden=2), feature_probability=probability)
    data = sae.ToyActivations.from_model(model, [2, 0, 2])
    torch.testing.assert_close(data.W[0], model.W.detach()[2])
    torch.testing.assert_close(data.features.feature_probability[:, 0], torch.tensor([0.3, 0.1, 0.3]))
    with torch.no_grad():
        model.W.add_(1.0)
    assert not torch.allclose(data.W[1], model.W.detach()[0])  # a copy
    hierarchy = ToyModel(ToyModelConfig(n_inst=2, n_features=2, d_hidden=2),
                         data=HierarchicalPairs(torch.tensor([0.2, 0.4]), torch.tensor([0.5, 0.1])))  # fmt: skip
    assert sae.ToyActivations.from_model(hierarchy, [1]).features.p_feature1.tolist() == pytest.approx([0.4])
    with pytest.raises(ValueError, match="instances must index the model's 3 instances"):
        sae.ToyActivations.from_model(model, [3])


def test_forward_and_loss_follow_the_definitions():
    data = activations()
    model = sae.SparseAutoencoder(sae.SAEConfig(2, 3, 4), data, l1_coefficient=torch.tensor([0.5, 2.0]), seed=0)
    with torch.no_grad():
        model.W_dec.mul_(torch.tensor([1.0, 2.0, 3.0, 4.0]))
        model.b_enc.fill_(0.1)
        model.b_dec.fill_(-0.2)
    h = data.sample(16, torch.Generator().manual_seed(2))
    out = model(h)
    k = 1
    z = torch.relu((h[:, k] - model.b_dec[k]) @ model.W_enc[k].T + model.b_enc[k])
    D = model.W_dec[k] / model.W_dec[k].norm(dim=0)
    torch.testing.assert_close(out.latents[:, k], z)
    torch.testing.assert_close(out.reconstruction[:, k], z @ D.T + model.b_dec[k])
    expected = ((out.reconstruction[:, k] - h[:, k]) ** 2).sum(-1).mean() + 2.0 * z.abs().sum(-1).mean()
    torch.testing.assert_close(model.loss_per_instance(out, h)[k], expected)
    torch.testing.assert_close(model.decoder_directions().norm(dim=1), torch.ones(2, 4))


def test_switched_off_latents_never_fire_and_topk_keeps_at_most_k():
    data = activations(p=0.9)
    model = sae.SparseAutoencoder(sae.SAEConfig(2, 3, 6), data, n_latents=torch.tensor([2, 6]), seed=0)
    with torch.no_grad():
        model.b_enc.fill_(5.0)  # every latent in use fires
    z = model.encode(data.sample(32))
    assert (z[:, 0, 2:] == 0).all() and (z[:, 0, :2] > 0).all() and (z[:, 1] > 0).all()
    topk = sae.TopKAutoencoder(sae.SAEConfig(2, 3, 6), data, k=torch.tensor([1, 3]), seed=0)
    with torch.no_grad():
        topk.b_enc.fill_(5.0)
    firing = (topk.encode(data.sample(32)) > 0).sum(-1)
    assert (firing[:, 0] == 1).all() and (firing[:, 1] == 3).all()


def test_topk_relu_keeps_each_instances_k_largest():
    pre = torch.tensor([[[3.0, -1.0, 2.0, 0.5], [-1.0, -2.0, 0.3, -0.5]]])
    out = sae.topk_relu(pre, torch.tensor([2, 3]))
    torch.testing.assert_close(out, torch.tensor([[[3.0, 0.0, 2.0, 0.0], [0.0, 0.0, 0.3, 0.0]]]))


def test_max_cosines_and_mmcs_grade_against_the_features():
    features = torch.randn(2, 4, 3, generator=torch.Generator().manual_seed(3))
    decoder = torch.cat([features[:, :, [2, 0, 1]] * 3.0, torch.randn(2, 4, 2)], dim=2)
    torch.testing.assert_close(sae.mmcs(decoder, features), torch.ones(2))
    opposite = sae.max_cosines(-features[:, :, :1], features[:, :, :1])
    torch.testing.assert_close(opposite, -torch.ones(2, 1))


def test_firing_given_feature_counts_conditional_firing():
    x = torch.tensor([[1.0, 0.0], [0.5, 0.2], [0.0, 0.0], [0.3, 0.0]])[:, None, :]
    z = torch.tensor([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0], [0.1, 0.0]])[:, None, :]
    expected = torch.tensor([[[2 / 3, 1 / 3], [0.0, 1.0]]])
    torch.testing.assert_close(sae.firing_given_feature(z, x), expected)


def test_training_recovers_orthogonal_features():
    """Three sparse features along the axes of a 3-dimensional space: an SAE with an L1 penalty finds them."""
    torch.manual_seed(0)
    data = sae.ToyActivations(SparseUniform(torch.full((1, 3), 0.2)), torch.eye(3)[None])
    model = sae.SparseAutoencoder(sae.SAEConfig(1, 3, 3), data, l1_coefficient=0.1, seed=1)
    model.optimize(steps=600, batch_size=256, lr=1e-2, progress=False)
    assert sae.mmcs(model.decoder_directions().detach(), data.W).item() > 0.99
    measures = sae.measure(model, 4096, torch.Generator().manual_seed(0))
    assert 0.5 < measures.l0.item() < 0.7  # about 3 · 0.2 = 0.6 features are active per input
    assert measures.variance_unexplained.item() < 0.1


def resampling_setup():
    data = activations(n_inst=2, d_in=3, n_features=5, p=0.5)
    model = sae.SparseAutoencoder(sae.SAEConfig(2, 3, 4), data, l1_coefficient=0.1, seed=0)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    h = data.sample(64, torch.Generator().manual_seed(4))
    model.calculate_loss(model(h), h).backward()
    optimizer.step()
    return model, optimizer, h


def test_resampling_changes_only_dead_latents_and_their_adam_state():
    model, optimizer, h = resampling_setup()
    dead = torch.tensor([[False, True, False, False], [True, False, False, True]])
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    with torch.no_grad():
        sae.resample_dead_latents(model, optimizer, dead, h, torch.Generator().manual_seed(5))
    live = ~dead
    assert torch.equal(model.W_dec[:, :, 2], before["W_dec"][:, :, 2])
    assert torch.equal(model.W_enc[live], before["W_enc"][live])
    new = model.W_dec.detach().transpose(1, 2)[dead]
    torch.testing.assert_close(new.norm(dim=-1), torch.ones(3))
    inputs = h / h.norm(dim=-1, keepdim=True)
    for (k, j), column in zip(dead.nonzero().tolist(), new):
        assert ((inputs[:, k] - column).abs().max(-1).values < 1e-5).any()
        live_norm = before["W_enc"][k][live[k]].norm(dim=-1).mean()
        torch.testing.assert_close(model.W_enc[k, j].norm(), 0.2 * live_norm)
    assert (model.b_enc[dead] == 0).all()
    state = optimizer.state[model.W_enc]
    assert (state["exp_avg"][dead] == 0).all() and (state["exp_avg"][live] != 0).any()


def test_resampler_revives_latents_that_never_fire():
    data = activations(n_inst=1, d_in=3, n_features=5, p=0.3)
    model = sae.SparseAutoencoder(sae.SAEConfig(1, 3, 6), data, l1_coefficient=0.05, seed=0)
    with torch.no_grad():
        model.b_enc[0, :3] = -100.0  # three latents can never fire
    resampler = sae.Resampler(every=50, until=120, n_samples=512, generator=torch.Generator().manual_seed(6))
    model.optimize(steps=200, batch_size=128, lr=1e-2, progress=False, callback=resampler)
    assert [step for step, _ in resampler.dead_counts] == [50, 100, 150, 200]
    assert resampler.dead_counts[0][1].item() == 3
    assert (model.b_enc.detach()[0, :3] > -50).all()
    counter = sae.Resampler(every=50, until=1, n_samples=512)
    model.optimize(steps=100, batch_size=128, lr=1e-2, progress=False, callback=counter)
    assert len(counter.dead_counts) == 2


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: sae.SAEConfig(0, 3, 4), "n_inst"),
        (lambda: sae.SparseAutoencoder(sae.SAEConfig(2, 4, 4), activations()), r"data makes \(inst, d_in\)"),
        (lambda: sae.SparseAutoencoder(sae.SAEConfig(2, 3, 4), activations(), l1_coefficient=-1.0), "non-negative"),
        (lambda: sae.SparseAutoencoder(sae.SAEConfig(2, 3, 4), activations(), n_latents=5), "n_latents"),
        (lambda: sae.TopKAutoencoder(sae.SAEConfig(2, 3, 4), activations(), k=0), "k must hold whole numbers"),
        (lambda: sae.ToyActivations(SparseUniform(torch.full((2, 4), 0.1)), torch.zeros(2, 3, 5)), "the feature law"),
        (lambda: sae.Resampler(every=0, until=10), "every"),
        (lambda: sae.Resampler(every=5, until=10, resample=3), "resample must be a function"),
    ],
)
def test_bad_input_gets_a_clear_error(make, message):
    with pytest.raises((ValueError, TypeError), match=message):
        make()
