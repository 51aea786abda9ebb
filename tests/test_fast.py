"""The fast trainer (utils.fast): gradients, Adam, Philox, the C kernel, dispatch, fallback, agreement in law."""

import pytest
import torch

from utils.data import AnticorrelatedPairs, CorrelatedPairs, FixedDataset, HierarchicalPairs, SparseUniform
from utils.fast import gradients, native, philox, trainer, unsupported_reason
from utils.fast.adam import adam_update_
from utils.fast.laws import law_spec
from utils.models import LinearToyModel, NeuronModel, ToyModel, ToyModelConfig
from utils.train import TrainingDivergedError, cosine_decay_lr, evaluate, optimize


def test_manual_adam_equals_torch_adam_step_for_step():
    torch.manual_seed(0)
    start = torch.randn(6, 3, 4)
    reference = start.clone().requires_grad_()
    optimizer = torch.optim.Adam([reference], lr=0.05, weight_decay=1e-2)
    mine, m, v = start.clone(), torch.zeros_like(start), torch.zeros_like(start)
    for step in range(1, 31):
        grad = torch.randn_like(start) * step**0.5
        lr = 0.05 * cosine_decay_lr(step - 1, 30)
        for group in optimizer.param_groups:
            group["lr"] = lr
        reference.grad = grad.clone()
        optimizer.step()
        adam_update_(mine, grad, m, v, torch.tensor(lr), torch.tensor(step), torch.tensor(1e-2))
        torch.testing.assert_close(mine, reference.detach(), rtol=1e-6, atol=1e-6, msg=f"step {step}")


@pytest.mark.parametrize("planes", [True, False], ids=["planes", "einsum"])
@pytest.mark.parametrize("n_inst, batch, feats, hidden", [(3, 7, 2, 1), (4, 9, 5, 2), (2, 6, 20, 5), (2, 5, 40, 10)])
def test_hand_written_gradients_equal_autograd(n_inst, batch, feats, hidden, planes):
    generator = torch.Generator().manual_seed(feats)
    W = torch.randn(n_inst, hidden, feats, generator=generator, dtype=torch.float64, requires_grad=True)
    b = (0.3 * torch.randn(n_inst, feats, generator=generator, dtype=torch.float64)).requires_grad_()
    importance = torch.rand(n_inst, feats, generator=generator, dtype=torch.float64)
    x = torch.rand(batch, n_inst, feats, generator=generator, dtype=torch.float64)
    x = torch.where(x < 0.5, 0.0, x)  # sparse, so some ReLUs are off
    expected = gradients.loss(W, b, importance, x, planes=False)
    expected.sum().backward()
    per_instance, grad_W, grad_b = gradients.loss_and_gradients(W.detach(), b.detach(), importance, x, planes)
    torch.testing.assert_close(per_instance, expected.detach())
    torch.testing.assert_close(grad_W, W.grad)
    torch.testing.assert_close(grad_b, b.grad)


def test_philox_known_answers():
    # Random123's known-answer vectors for Philox4x32-10 (counter, key -> output).
    cases = [
        ([0, 0, 0, 0], [0, 0], [0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8]),
        ([0xFFFFFFFF] * 4, [0xFFFFFFFF] * 2, [0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD]),
        (
            [0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344],
            [0xA4093822, 0x299F31D0],
            [0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1],
        ),
    ]
    for counter, key, expected in cases:
        words = philox.philox4x32(*(torch.tensor(v) for v in counter + key))
        assert [int(w) for w in words] == expected


def test_philox_uniforms_are_uniform_and_distinct_across_counters():
    key = torch.tensor([12345, 678])
    (u,) = philox.uniform_batches(key, torch.arange(500), 100, 4, torch.tensor(3))
    assert u.shape == (100, 500, 4) and u.dtype == torch.float32
    assert u.min() >= 0 and u.max() < 1
    # 200,000 uniforms: mean 1/2 and variance 1/12 within 5 standard errors; deciles near 1/10 each.
    assert abs(u.mean().item() - 0.5) < 5 * (1 / 12 / u.numel()) ** 0.5
    assert abs(u.var().item() - 1 / 12) < 5 * 0.0745 / u.numel() ** 0.5
    counts = torch.histc(u, bins=10, min=0, max=1) / u.numel()
    assert (counts - 0.1).abs().max() < 0.003
    # Neighbouring uniforms of one sample are uncorrelated.
    assert abs(torch.corrcoef(u.reshape(-1, 4).T)[0, 1]) < 0.01
    (other_step,) = philox.uniform_batches(key, torch.arange(500), 100, 4, torch.tensor(4))
    (other_stream,) = philox.uniform_batches(key, torch.arange(500), 100, 4, torch.tensor(3), stream=1)
    assert (u != other_step).float().mean() > 0.99 and (u != other_stream).float().mean() > 0.99
    (part,) = philox.uniform_batches(key, torch.arange(7, 9), 100, 4, torch.tensor(3))
    assert torch.equal(u[:, 7:9], part)  # a chunk of instances draws what the whole would


@pytest.mark.parametrize("n_uniforms, sub_batches", [(1, 4), (2, 2), (3, 1), (4, 1), (6, 1)])
def test_philox_batches_pack_samples_into_calls(n_uniforms, sub_batches):
    parts = philox.uniform_batches(torch.tensor([1, 2]), torch.arange(3), 8, n_uniforms, torch.tensor(0))
    assert len(parts) == sub_batches
    assert all(p.shape == (8 // sub_batches, 3, n_uniforms) for p in parts)
    together = torch.cat(parts)
    assert together.unique().numel() == together.numel()  # no word used twice


KERNEL_CASES = [  # (law, hidden): every law kernel.c draws, several shapes
    (SparseUniform(torch.rand(5, 6) * 0.8 + 0.1, low=-1.0, high=1.0), 3),
    (HierarchicalPairs(torch.rand(5) * 0.9 + 0.05, torch.rand(5) * 0.9 + 0.05), 1),
    (CorrelatedPairs(torch.rand(5, 2) * 0.8 + 0.1), 2),
    (AnticorrelatedPairs(torch.rand(5, 3) * 0.4 + 0.05), 2),
]


def _kernel_case(law, hidden: int, seed: int = 0):
    """The kernel for `law` with random weights, importances and Adam moments for its 5 instances."""
    spec = law_spec(law)
    kernel = native.kernel(law.n_features, hidden, spec.code)
    if isinstance(kernel, str):
        pytest.skip(kernel)
    torch.manual_seed(seed)
    W = torch.randn(5, hidden, law.n_features) * 0.5
    b = torch.randn(5, law.n_features) * 0.2
    importance = torch.rand(5, law.n_features) + 0.5
    return spec, kernel, W, b, importance


def _uniform_batches(kernel, rng: torch.Tensor, steps: int, batch: int) -> torch.Tensor:
    """The uniforms the kernel will use for `steps` batches: `(steps, batch, inst, n_uniforms)`."""
    blocks = -(-batch // native.LANES)
    u = kernel.draw(rng.clone(), steps * blocks)  # (inst, steps * blocks, n_uniforms, LANES)
    u = u.unflatten(1, (steps, blocks)).permute(1, 2, 4, 0, 3).flatten(1, 2)  # (steps, blocks * LANES, inst, n_u)
    return u[:, :batch]


@pytest.mark.parametrize("law, hidden", KERNEL_CASES, ids=lambda case: type(case).__name__ if not isinstance(case, int) else "")
def test_kernel_steps_equal_the_torch_step_on_the_same_uniforms(law, hidden):
    # A batch of 20 (two full blocks of 8 and a masked partial one), weight decay, a changing lr.
    spec, kernel, W, b, importance = _kernel_case(law, hidden)
    steps, batch = 4, 20
    rng = kernel.seed(5, key=123)
    uniforms = _uniform_batches(kernel, rng, steps, batch)
    lrs = torch.tensor([1e-2, 5e-3, 2e-2, 1e-3])
    state = (W.clone(), b.clone(), *(torch.zeros_like(t) for t in (W, W, b, b)))
    history = torch.zeros(steps, 5)
    kernel.train(state, importance, spec.params, spec.value_range, rng, lrs, 0.1, range(0, 2), batch, 1, history)
    kernel.train(state, importance, spec.params, spec.value_range, rng, lrs, 0.1, range(2, 4), batch, 1, history)

    expected = (W.clone(), b.clone(), *(torch.zeros_like(t) for t in (W, W, b, b)))
    for step in range(steps):
        loss = trainer._step(*expected, importance, spec.params, spec.transform, [uniforms[step]], lrs[step],
                             torch.tensor(step + 1), torch.tensor(0.1))  # fmt: skip
        torch.testing.assert_close(history[step], loss, rtol=1e-5, atol=1e-7)
    for got, want in zip(state, expected):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("law, hidden", KERNEL_CASES, ids=lambda case: type(case).__name__ if not isinstance(case, int) else "")
def test_kernel_evaluation_equals_the_torch_loss(law, hidden):
    spec, kernel, W, b, importance = _kernel_case(law, hidden)
    rng = kernel.seed(5, key=7)
    u = _uniform_batches(kernel, rng, 1, 100)[0]
    expected = gradients.loss(W, b, importance, spec.transform(u, spec.params))
    torch.testing.assert_close(kernel.evaluate(W, b, importance, spec.params, spec.value_range, rng, 100), expected)


def test_kernel_streams_depend_on_key_and_instance_only():
    law = HierarchicalPairs(torch.full((40,), 0.5), torch.full((40,), 0.5))
    kernel = native.kernel(2, 1, law_spec(law).code)
    if isinstance(kernel, str):
        pytest.skip(kernel)
    first = kernel.seed(40, key=99)
    torch.testing.assert_close(kernel.seed(3, key=99), first[:3], rtol=0, atol=0)
    assert not torch.equal(kernel.seed(3, key=100), first[:3])
    u = kernel.draw(first.clone(), 1000)  # (inst, 1000 blocks, 2, LANES)
    assert 0 <= u.min() and u.max() < 1 and abs(u.mean() - 0.5) < 0.01
    streams = u.permute(0, 3, 1, 2).flatten(2).flatten(0, 1)  # (inst * LANES, 2000): one row per generator
    correlation = torch.corrcoef(streams) - torch.eye(streams.shape[0])
    # 51,040 pairs of independent streams: |r| has standard deviation 1/sqrt(2000) = 0.022.
    assert correlation.abs().max() < 0.15

    def trained(threads: int) -> torch.Tensor:
        model = ToyModel(ToyModelConfig(40, 2, 1), data=law, seed=0, device="cpu")
        previous = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            trainer.train_fast(model, 30, 64, torch.full((30,), 1e-2), 1e-4, 30, torch.Generator().manual_seed(5),
                               compiled=True, progress=False)  # fmt: skip
        finally:
            torch.set_num_threads(previous)
        return model.W.detach().clone()

    torch.testing.assert_close(trained(1), trained(2), rtol=0, atol=0)


def test_unsupported_models_and_laws_say_why():
    cfg = ToyModelConfig(4, 3, 2)
    assert unsupported_reason(ToyModel(cfg, seed=0, device="cpu")) is None
    for law in (CorrelatedPairs(torch.full((4, 2), 0.3)), AnticorrelatedPairs(torch.full((4, 2), 0.3))):
        assert unsupported_reason(ToyModel(ToyModelConfig(4, 4, 2), data=law, seed=0, device="cpu")) is None
    for model_class in (LinearToyModel, NeuronModel):
        assert model_class.__name__ in unsupported_reason(model_class(cfg, seed=0, device="cpu"))
    message = "fast=True, but no fast path can train this model.*LinearToyModel.*no step_gradients"
    with pytest.raises(ValueError, match=message):
        optimize(LinearToyModel(cfg, seed=0, device="cpu"), steps=2, batch_size=4, fast=True, progress=False)
    optimize(NeuronModel(cfg, seed=0, device="cpu"), steps=2, batch_size=4, fast=True, progress=False)  # its step_gradients
    fixed = ToyModel(cfg, data=FixedDataset(torch.rand(10, 3), n_inst=4), seed=0, device="cpu")
    with pytest.raises(ValueError, match="data law FixedDataset"):
        optimize(fixed, steps=2, batch_size=4, fast=True, progress=False)
    optimize(fixed, steps=2, batch_size=4, progress=False)  # automatic: the autograd path


@pytest.mark.parametrize(
    "law",
    [
        SparseUniform(torch.full((6, 5), 0.3)),
        HierarchicalPairs(torch.full((6,), 0.5), torch.full((6,), 0.5)),
        CorrelatedPairs(torch.full((6, 2), 0.3)),
        AnticorrelatedPairs(torch.full((6, 2), 0.3)),
    ],
    ids=lambda law: type(law).__name__,
)
def test_eager_fast_path_follows_autograd_on_the_same_stream(law):
    # Eager and unpadded, the fast path draws exactly model.generate_batch's numbers: the two paths
    # then differ only by float rounding, with a schedule and weight decay.
    cfg = ToyModelConfig(6, law.n_features, 2)
    importance = 0.9 ** torch.arange(cfg.n_features)
    models = [ToyModel(cfg, data=law, importance=importance, seed=3, device="cpu") for _ in range(2)]
    kwargs = dict(steps=60, batch_size=64, lr=1e-2, lr_scale=cosine_decay_lr, weight_decay=1e-2, progress=False)
    histories = [optimize(model, fast=fast, log_every=20, **kwargs) for model, fast in zip(models, (True, False))]
    torch.testing.assert_close(histories[0], histories[1], rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(models[0].W, models[1].W, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(models[0].b_final, models[1].b_final, rtol=1e-4, atol=1e-5)


def test_divergence_on_the_fast_path_names_the_instances():
    model = ToyModel(ToyModelConfig(4, 2, 1), feature_probability=0.5, seed=0, device="cpu")
    with pytest.raises(TrainingDivergedError, match="the loss of 4 of 4 instances is NaN or infinite"):
        optimize(model, steps=20, batch_size=16, lr=1e30, log_every=1, fast=True, progress=False)


def test_eager_fallback_when_compile_fails(monkeypatch, capsys):
    def broken(*args, **kwargs):
        raise RuntimeError("no C++ compiler found")

    monkeypatch.setattr(native, "kernel", lambda *sizes: "no C compiler (cc, gcc or clang) on PATH")
    monkeypatch.setattr(trainer, "_native_failure", None)
    monkeypatch.setattr(trainer, "_compiled_step", broken)
    monkeypatch.setattr(trainer, "_compiled_eval", broken)
    monkeypatch.setattr(trainer, "_compile_failure", None)
    monkeypatch.setattr(trainer, "COMPILE_WORK", 1)  # compile even this small run
    model = ToyModel(ToyModelConfig(8, 2, 1), feature_probability=0.5, seed=0, device="cpu")
    history = optimize(model, steps=30, batch_size=32, lr=1e-2, log_every=10, progress=False)
    losses = evaluate(model, 512, generator=torch.Generator().manual_seed(0))
    notice = capsys.readouterr().err
    assert notice.count("C kernel unavailable (no C compiler (cc, gcc or clang) on PATH); using torch.compile") == 1
    assert notice.count("torch.compile unavailable (RuntimeError: no C++ compiler found); using the eager path") == 1
    assert history.shape == (3, 8) and torch.isfinite(history).all() and torch.isfinite(losses).all()
    assert history[-1].mean() < history[0].mean()


def _train_grid(fast: bool | None, compiled: bool = True, seed: int = 0):
    """A small grid of hierarchical configurations, 16 seeds each: per-configuration mean and sd of eval loss."""
    p1 = torch.tensor([0.1, 0.4]).repeat_interleave(3)
    q = torch.tensor([0.1, 0.5, 1.0]).repeat(2)
    n_seeds = 16
    importance = torch.stack([torch.ones(6), torch.tensor([0.5, 1.0, 2.0] * 2)], -1).repeat_interleave(n_seeds, 0)
    law = HierarchicalPairs(p1.repeat_interleave(n_seeds), q.repeat_interleave(n_seeds))
    model = ToyModel(ToyModelConfig(6 * n_seeds, 2, 1), importance=importance, data=law, seed=seed, device="cpu")
    kwargs = dict(steps=400, batch_size=128, lr=1e-2, weight_decay=1e-4, progress=False)
    if fast:
        lrs = torch.full((400,), 1e-2)
        trainer.train_fast(model, 400, 128, lrs, 1e-4, 400, compiled=compiled, progress=False)
    else:
        optimize(model, fast=fast, **kwargs)
    losses = evaluate(model, 8192, generator=torch.Generator().manual_seed(99), fast=False).reshape(6, n_seeds)
    return losses.mean(1), losses.std(1)


@pytest.mark.parametrize(
    "compiled, use_kernel",
    [(True, True), pytest.param(True, False, marks=pytest.mark.slow), (False, False)],
    ids=["C kernel", "torch.compile", "eager"],
)  # torch.compile: about 4 s with a warm inductor cache, a minute or two cold
def test_fast_path_agrees_in_law_with_autograd(compiled, use_kernel, monkeypatch):
    monkeypatch.setattr(trainer, "NATIVE", use_kernel)
    fast_mean, fast_sd = _train_grid(True, compiled, seed=1)
    ref_mean, ref_sd = _train_grid(False, seed=2)
    standard_error = ((fast_sd**2 + ref_sd**2) / 16).sqrt()
    # Different seeds of the autograd path itself (seeds 2-5 vs 6-9) differed by at most 2.3 standard
    # errors per configuration; 4 leaves room for bimodal configurations (antipodal or not).
    z = (fast_mean - ref_mean).abs() / (standard_error + 1e-6 * ref_mean)
    assert (z < 4).all(), (fast_mean, ref_mean, z)
    assert torch.allclose(fast_mean.mean(), ref_mean.mean(), rtol=0.05)


def test_benchmark_runs_every_path_and_ends_with_the_ratio(capsys):
    from utils import benchmark

    ratio = benchmark.main(["--grid", "4", "--seeds", "2", "--steps", "20"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1] == f"speedup: {ratio:.1f}x" and ratio > 0
    for row in ("reference (autograd, torch.optim.Adam):", "fast, C kernel:", "fast, eager fallback:",
                "agreement in law, fast, C kernel:", "eager fallback speedup:"):  # fmt: skip
        assert any(line.startswith(row) for line in lines), row
