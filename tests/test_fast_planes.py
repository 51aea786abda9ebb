"""The eager fast path for small models (utils.fast.planes) and its background uniforms (utils.fast.prefetch)."""

import threading

import pytest
import torch
from fast_reference import reference_steps

from utils.data import AnticorrelatedPairs, CorrelatedPairs, HierarchicalPairs, SparseUniform
from utils.fast import planes, prefetch, trainer
from utils.fast.laws import law_spec
from utils.models import ToyModel, ToyModelConfig

LAWS = {
    "SparseUniform": lambda n: SparseUniform(torch.linspace(0.1, 0.9, n * 3).reshape(n, 3), low=-1.0, high=1.0),
    "HierarchicalPairs": lambda n: HierarchicalPairs(torch.linspace(0.2, 1.0, n), torch.linspace(1.0, 0.3, n)),
    "CorrelatedPairs": lambda n: CorrelatedPairs(torch.linspace(0.1, 0.6, n * 2).reshape(n, 2)),
    "AnticorrelatedPairs": lambda n: AnticorrelatedPairs(torch.linspace(0.05, 0.5, n * 2).reshape(n, 2)),
}


@pytest.mark.parametrize("hidden", [1, 3])
@pytest.mark.parametrize("law", list(LAWS))
def test_plane_steps_equal_autograd_and_torch_adam_over_uneven_blocks(law, hidden, monkeypatch):
    # 10 instances in blocks of at most 4 (4, 4 and a narrower 2): 20 steps with a changing learning
    # rate and weight decay equal autograd through ToyModel with torch.optim.Adam on the same batches.
    monkeypatch.setattr(planes, "BLOCK", 4)
    data = LAWS[law](10)
    spec = law_spec(data)
    model = ToyModel(ToyModelConfig(10, data.n_features, hidden), data=data, importance=0.8, seed=1, device="cpu")
    with torch.no_grad():
        model.b_final.normal_(0, 0.3, generator=torch.Generator().manual_seed(0))  # some outputs below 0
    W, b = model.W.detach().clone(), model.b_final.detach().clone()
    chunk = planes.PlaneChunk(W, b, model.importance, spec.params, spec.transform, spec.n_uniforms, batch=32)
    assert chunk.width == 4
    generator = torch.Generator().manual_seed(2)
    uniforms = [torch.rand(32, 10, spec.n_uniforms, generator=generator) for _ in range(20)]
    lrs = torch.linspace(3e-2, 1e-2, 20)
    losses, W_ref, b_ref = reference_steps(W, b, model.importance, [spec.transform(u, spec.params) for u in uniforms],
                                           lrs, weight_decay=1e-3)  # fmt: skip
    for step, u in enumerate(uniforms):
        logs = step % 5 == 0
        mine = chunk.step(u, lrs[step], torch.tensor(step + 1), torch.tensor(1e-3), with_loss=logs)
        if logs:
            torch.testing.assert_close(mine, losses[step], rtol=1e-5, atol=1e-7)
        else:
            assert mine is None
    trained_W, trained_b = torch.empty_like(W), torch.empty_like(b)
    chunk.write_to(trained_W, trained_b)
    torch.testing.assert_close(trained_W, W_ref, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(trained_b, b_ref, rtol=1e-4, atol=1e-6)


def test_nan_weights_give_a_nan_loss_on_the_plane_step():
    data = LAWS["HierarchicalPairs"](3)
    spec = law_spec(data)
    W = torch.tensor([[[1.0, 0.5]], [[float("nan"), 0.5]], [[0.3, -0.2]]])
    chunk = planes.PlaneChunk(W, torch.zeros(3, 2), torch.ones(3, 2), spec.params, spec.transform, 2, batch=16)
    loss = chunk.step(torch.rand(16, 3, 2), torch.tensor(1e-2), torch.tensor(1), torch.tensor(0.0))
    assert loss.isnan().tolist() == [False, True, False]


def test_prefetch_draws_the_plain_loop_numbers_and_leaves_the_generator_as_it():
    threads = torch.get_num_threads()
    plain, ahead = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    with prefetch.prefetched((8, 5, 2), 6, ahead, ahead=2) as batches:
        assert torch.get_num_threads() == max(1, threads - 1)
        taken = [batch.clone() for batch in batches]  # each batch is valid until the next is taken
    assert len(taken) == 6 and all(torch.equal(batch, torch.rand(8, 5, 2, generator=plain)) for batch in taken)
    assert torch.get_num_threads() == threads
    assert torch.equal(ahead.get_state(), plain.get_state())


def test_prefetch_stops_its_thread_when_left_early_and_reports_errors():
    def drawing() -> bool:
        return any(thread.name.startswith("UniformPrefetch") for thread in threading.enumerate())

    with prefetch.prefetched((4, 3), 100, torch.Generator().manual_seed(0)) as batches:
        next(batches)
        assert drawing()
    assert not drawing()
    with pytest.raises(TypeError, match="generator"):  # raised where the batch is taken
        with prefetch.prefetched((4, 3), 2, "not a generator") as batches:
            next(batches)
    assert not drawing()
    with pytest.raises(ValueError, match="ahead must be at least 1"):
        with prefetch.prefetched((4, 3), 2, None, ahead=0):
            pass


def test_training_with_prefetched_uniforms_is_the_same_run(monkeypatch):
    # One thread throughout, so that both runs sum in the same order: then they are equal bit for bit.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    histories, weights = [], []
    try:
        for min_numbers in (10**9, 1):
            monkeypatch.setattr(prefetch, "MIN_NUMBERS", min_numbers)
            model = ToyModel(ToyModelConfig(12, 2, 1), data=LAWS["HierarchicalPairs"](12), seed=3, device="cpu")
            lrs = torch.full((40,), 1e-2)
            histories.append(trainer.train_fast(model, 40, 64, lrs, 1e-4, 10, progress=False))
            weights.append(model.W.detach().clone())
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(histories[0], histories[1])
    assert torch.equal(weights[0], weights[1])
