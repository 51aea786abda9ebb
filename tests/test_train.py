"""The batched trainer: schedules, history layout, reaching known optima, ensembles, bad input."""

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from utils import train
from utils.data import generate_data
from utils.models import LinearToyModel, NeuronModel, ReluComputationModel, ToyModel, ToyModelConfig
from utils.optima import linear_optimum, population_optimum
from utils.train import (
    TrainingDivergedError,
    best_instances,
    constant_lr,
    cosine_decay_lr,
    drop_worst_mean,
    evaluate,
    linear_lr,
    optimize,
    train_on_dataset,
    warmup_cosine_lr,
)


def test_schedules():
    assert constant_lr(7, 10) == 1.0
    assert linear_lr(0, 10) == 1.0 and linear_lr(5, 10) == 0.5
    assert cosine_decay_lr(0, 10) == 1.0 and math.isclose(cosine_decay_lr(5, 10), 0.5)
    assert cosine_decay_lr(10, 10) < 1e-12
    schedule = warmup_cosine_lr(0.1)
    assert [schedule(s, 100) for s in (0, 4, 9)] == [0.1, 0.5, 1.0]
    assert math.isclose(schedule(10 + 45, 100), 0.5)
    with pytest.raises(ValueError, match="warmup_fraction"):
        warmup_cosine_lr(1.5)


def test_history_rows_are_logged_steps_and_the_last_step():
    model = LinearToyModel(ToyModelConfig(3, 2, 1), seed=0, device="cpu")
    history = optimize(model, steps=35, batch_size=16, log_every=10, progress=False)
    assert history.shape == (4, 3)
    assert torch.isfinite(history).all()


def test_optimize_reaches_the_linear_models_population_optimum():
    # Importances (1, 0.1): keep feature 1, put feature 2 on its mean; optimum 0.1 * (1/12) / 2.
    importance = torch.tensor([1.0, 0.1])
    model = LinearToyModel(ToyModelConfig(4, 2, 1), importance=importance, seed=0, device="cpu")
    optimize(model, steps=1500, batch_size=1024, lr=1e-2, lr_scale=cosine_decay_lr, progress=False)
    loss = evaluate(model, n_samples=400_000, generator=torch.Generator().manual_seed(1))
    expected = population_optimum(1.0, importance)
    # Evaluation noise on 400k samples is ~0.3%; the trained models were within 0.5% over 5 seeds.
    assert torch.allclose(loss, torch.full((4,), expected), rtol=0.02), (loss, expected)
    W = model.W.detach()[:, 0]
    assert torch.allclose(W[:, 0].abs(), torch.ones(4), atol=0.02) and W[:, 1].abs().max() < 0.02


def test_train_on_dataset_reaches_the_exact_optimum_and_snapshots():
    x = generate_data(500, sparsity=0.5, generator=torch.Generator().manual_seed(2))
    importance = torch.tensor([1.0, 0.3])
    model = LinearToyModel(ToyModelConfig(4, 2, 1), importance=importance, seed=0, device="cpu")
    run = train_on_dataset(model, x, steps=1500, lr=1e-2, snapshot_every=100, progress=False)
    optimum = linear_optimum(x, importance)
    assert run.losses.shape == (1500, 4)
    assert torch.allclose(run.losses[-1], torch.full((4,), optimum.loss), rtol=1e-4)
    assert run.snapshot_steps.tolist() == list(range(0, 1500, 100))
    assert run.snapshots["W"].shape == (15, 4, 1, 2) and run.snapshots["b_final"].shape == (15, 4, 2)
    assert torch.equal(run.parameters_at(0)["W"], run.snapshots["W"][0])


def test_best_instances_and_drop_worst_mean():
    losses = torch.tensor([3.0, 1.0, 2.0, 0.5, 9.0, 4.0])
    assert best_instances(losses, group_size=3).tolist() == [1, 3]
    values = torch.tensor([[10.0], [20.0], [30.0], [40.0], [50.0], [60.0]])
    # Group 0 drops instance 0 (loss 3); group 1 drops instance 4 (loss 9).
    assert drop_worst_mean(values, losses, group_size=3).tolist() == [[25.0], [50.0]]
    with pytest.raises(ValueError, match="multiple of group_size=4"):
        best_instances(losses, group_size=4)
    with pytest.raises(ValueError, match="group_size >= 2"):
        drop_worst_mean(values, losses, group_size=1)


def test_divergence_names_the_instances():
    model = LinearToyModel(ToyModelConfig(4, 2, 1), seed=0, device="cpu")
    with torch.no_grad():
        model.W[1] = float("inf")
        model.W[3] = float("nan")
    message = r"by step 0: the loss of 2 of 4 instances is NaN or infinite \(instances 1, 3\)"
    with pytest.raises(TrainingDivergedError, match=message):
        optimize(model, steps=5, batch_size=8, log_every=1, progress=False)
    with pytest.raises(TrainingDivergedError, match=r"instances 1, 3"):
        train_on_dataset(model, torch.rand(10, 2), steps=3, progress=False)


def test_nan_stops_the_hand_written_gradients_path():
    model = NeuronModel(ToyModelConfig(3, 6, 2), feature_probability=0.5, seed=0, device="cpu")
    with torch.no_grad():
        model.W[0] = float("nan")
    with pytest.raises(TrainingDivergedError, match=r"1 of 3 instances is NaN or infinite \(instances 0\)"):
        optimize(model, steps=5, batch_size=8, progress=False)


EXPLODED = r"the loss of 4 of 4 instances grew over 1000-fold from its start \(instances 0, 1, 2, 3\)"


@pytest.mark.parametrize("lr", [1e3, 1e6])
def test_an_exploding_loss_is_divergence_on_the_autograd_paths(lr):
    # A learning rate of 1e3 takes the loss from about 0.1 to 1e11 and more within ten steps, finite
    # all the way (measured); NaN-only checks let it run.
    model = LinearToyModel(ToyModelConfig(4, 5, 2), feature_probability=0.3, seed=0, device="cpu")
    with pytest.raises(TrainingDivergedError, match=EXPLODED):
        optimize(model, steps=200, batch_size=64, lr=lr, log_every=10, progress=False)
    dataset_model = LinearToyModel(ToyModelConfig(4, 2, 1), seed=0, device="cpu")
    with pytest.raises(TrainingDivergedError, match=EXPLODED):
        train_on_dataset(dataset_model, torch.rand(100, 2), steps=200, lr=lr, progress=False)


def test_an_exploding_loss_is_divergence_on_the_hand_written_gradients_path():
    # No output ReLU: with lr = 1e3 the readout grows without bound.
    model = ReluComputationModel(ToyModelConfig(4, 5, 3), feature_probability=0.5, loss_power=2.0, seed=0, device="cpu")
    with pytest.raises(TrainingDivergedError, match=EXPLODED):
        optimize(model, steps=200, batch_size=64, lr=1e3, log_every=10, progress=False)


def test_explosion_is_measured_against_the_start_and_the_importances():
    importance = torch.tensor([[2.0], [1.0], [0.0]])
    check = train.DivergenceCheck(LinearToyModel(ToyModelConfig(3, 2, 1), importance=importance, device="cpu"), 1e-2)
    check(torch.tensor([0.0, 5.0, 0.0]), 0)  # the start; instance 2 has no importance and a zero loss
    check(torch.tensor([1999.0, 4999.0, 0.0]), 10)  # under 1000 x max(start, mean importance)
    message = r"by step 20: the loss of 1 of 3 instances grew .* \(instances 1\)"
    with pytest.raises(TrainingDivergedError, match=message):
        check(torch.tensor([1999.0, 5001.0, 0.0]), 20)
    chunked = train.DivergenceCheck(LinearToyModel(ToyModelConfig(4, 2, 1), device="cpu"), 1e-2)
    chunked(torch.tensor([0.1, 0.1]), 0, slice(2, 4))  # instances 2 and 3 start; 0 and 1 are not trained yet
    with pytest.raises(TrainingDivergedError, match=r"is NaN or infinite, or grew .* \(instances 2, 3\)"):
        chunked(torch.tensor([float("nan"), 2000.0]), 5, slice(2, 4))


def _bad_schedule(value):
    return lambda step, steps: value if step == 3 else 1.0


@pytest.mark.parametrize("model_class, fast", [(LinearToyModel, None), (ToyModel, True), (NeuronModel, None)],
                         ids=["autograd", "fast trainer", "hand-written gradients"])  # fmt: skip
@pytest.mark.parametrize(
    "schedule, error, message",
    [
        (_bad_schedule(-0.5), ValueError, r"lr_scale must return a finite multiplier >= 0, got -0.5 at step 3 of 10"),
        (_bad_schedule(float("nan")), ValueError, r"lr_scale must return a finite multiplier >= 0, got nan at step 3"),
        (_bad_schedule("0.5"), TypeError, r"lr_scale must return a number, got str '0.5' at step 3"),
        (_bad_schedule(None), TypeError, r"lr_scale must return a number, got NoneType None at step 3"),
    ],
    ids=["negative", "NaN", "string", "None"],
)
def test_bad_schedules_are_named_on_every_path(model_class, fast, schedule, error, message):
    model = model_class(ToyModelConfig(2, 2, 1), seed=0, device="cpu")
    with pytest.raises(error, match=message):
        optimize(model, steps=10, batch_size=4, lr_scale=schedule, fast=fast, progress=False)
    with pytest.raises(error, match=message):
        train_on_dataset(model, torch.rand(5, 2), steps=10, lr_scale=schedule, progress=False)


def test_schedules_may_return_numpy_or_tensor_numbers():
    model = LinearToyModel(ToyModelConfig(2, 2, 1), seed=0, device="cpu")
    optimize(model, steps=4, batch_size=4, lr_scale=lambda step, steps: np.float32(0.5), progress=False)
    optimize(model, steps=4, batch_size=4, lr_scale=lambda step, steps: torch.tensor(0.5), progress=False)
    assert train.learning_rates(0.1, lambda step, steps: np.float64(step), 3) == [0.0, 0.1, 0.2]


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(steps=0), ValueError, "steps must be a positive integer"),
    (dict(lr=-1.0), ValueError, "lr must be a positive number"),
    (dict(lr=float("inf")), ValueError, "lr must be a positive number"),
    (dict(weight_decay=-0.1), ValueError, "weight_decay must be a non-negative number"),
    (dict(batch_size=0), ValueError, "batch_size must be a positive integer"),
    (dict(lr_scale=0.5), TypeError, "lr_scale must be a function"),
    (dict(lr="1e-3"), TypeError, r"lr must be a number, got str '1e-3'"),
    (dict(lr=True), TypeError, r"lr must be a number, got bool True"),
    (dict(weight_decay="0"), TypeError, r"weight_decay must be a number, got str '0'"),
    (dict(log_every=0), ValueError, "log_every must be a positive integer, got 0"),
    (dict(log_every=2.5), ValueError, "log_every must be a positive integer, got 2.5"),
])
def test_optimize_rejects_bad_hyperparameters(kwargs, error, message):
    model = LinearToyModel(ToyModelConfig(2, 2, 1), device="cpu")
    with pytest.raises(error, match=message):
        optimize(model, **{"steps": 5, "progress": False, **kwargs})


def test_train_on_dataset_rejects_wrong_data_shape():
    model = LinearToyModel(ToyModelConfig(2, 2, 1), device="cpu")
    message = r"x must have shape \(n_points, feats\) or \(n_points, inst, feats\) with feats = 2"
    with pytest.raises(ValueError, match=message):
        train_on_dataset(model, torch.rand(10, 3), steps=2, progress=False)
    with pytest.raises(TypeError, match=r"lr must be a number, got str '1e-3'"):
        train_on_dataset(model, torch.rand(10, 2), steps=2, lr="1e-3", progress=False)
    with pytest.raises(ValueError, match="snapshot_every must be a positive integer, got 0"):
        train_on_dataset(model, torch.rand(10, 2), steps=2, snapshot_every=0, progress=False)


class _Blocked(NeuronModel):
    """NeuronModel's hand-written gradients on batches from `generate_batch` (which blocks draw alike)."""

    def step_gradients(self, batch_size, generator=None, batch=None):
        return super().step_gradients(batch_size, batch=self.generate_batch(batch_size, generator))


@pytest.mark.parametrize("model_class", [LinearToyModel, _Blocked], ids=["autograd", "hand-written gradients"])
def test_big_batches_train_in_blocks_of_samples_with_the_same_result(model_class, monkeypatch):
    # 6 instances x 5 features: 300 elements allow blocks of 10 samples, so a batch of 64 goes in 7
    # blocks that draw the batch's numbers; the loss and the gradient are the blocks' weighted means.
    runs = []
    for elements in (train.BATCH_ELEMENTS, 300):
        monkeypatch.setattr(train, "BATCH_ELEMENTS", elements)
        model = model_class(ToyModelConfig(6, 5, 2), feature_probability=0.5, seed=1, device="cpu")
        runs.append((optimize(model, steps=40, batch_size=64, lr=1e-2, log_every=10, progress=False), model.W.detach()))
        assert train.sample_blocks(model, 64) == ([64] if elements > 300 else [10] * 6 + [4])
    torch.testing.assert_close(runs[0][0], runs[1][0], rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(runs[0][1], runs[1][1], rtol=1e-4, atol=1e-6)
    monkeypatch.setattr(train, "BATCH_ELEMENTS", 300)
    model = model_class(ToyModelConfig(6, 5, 2), feature_probability=0.5, seed=1, device="cpu")
    whole = evaluate(model, 500, chunk=1000, generator=torch.Generator().manual_seed(3))
    monkeypatch.setattr(train, "BATCH_ELEMENTS", 1 << 22)
    torch.testing.assert_close(whole, evaluate(model, 500, chunk=1000, generator=torch.Generator().manual_seed(3)))


MEMORY_SCRIPT = """
import resource, sys, torch
from utils.models import NeuronModel, ToyModelConfig
from utils.train import evaluate, optimize
statm = lambda: int(open("/proc/self/statm").read().split()[1]) * resource.getpagesize()
model = NeuronModel(ToyModelConfig(3000, 20, 5), feature_probability=0.05, seed=0, device="cpu")
open("/proc/self/clear_refs", "w").write("5")  # the peak resident set starts again from here
base = statm()
{run}
peak = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:")) * 1024
print((peak - base) / 2**20)
"""
# The peak is read from VmHWM, not getrusage's ru_maxrss: Linux carries ru_maxrss across exec from the
# forked parent, so in a long pytest run it measured the parent's size (972 MB in all three cases of one
# full-suite run, 180-250 MB alone; a 1.6 GB parent gave 527 MB by ru_maxrss and 185 MB by VmHWM).


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="reads the resident set from /proc")
@pytest.mark.parametrize("run", [
    "optimize(model, steps=1, batch_size=2048, progress=False)",
    "optimize(model, steps=1, batch_size=2048, fast=False, progress=False)",
    "evaluate(model, 2048, chunk=2048, generator=torch.Generator().manual_seed(0))",
], ids=["hand-written gradients", "autograd", "evaluate"])  # fmt: skip
def test_memory_stays_within_budget_whatever_the_number_of_instances(run):
    # 3000 instances x 20 features x 2048 samples: one batch-sized tensor is 0.5 GiB and a step in one
    # piece holds seven or more of them (over 3.4 GiB; the issue measured 1.56 GiB for 2000 instances
    # at batch 1024). In blocks of BATCH_ELEMENTS, each run grew the resident set by 180-380 MB here.
    done = subprocess.run([sys.executable, "-c", MEMORY_SCRIPT.format(run=run)], capture_output=True, text=True,
                          cwd=Path(__file__).parents[1], timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    growth_mb = float(done.stdout.split()[-1])
    assert growth_mb < 768, f"peak resident memory grew by {growth_mb:.0f} MB"


def test_progress_bars_redraw_at_most_once_a_second():
    # A notebook cell sends one message per redraw; see utils/progress.py for why few matter.
    import io
    import time

    from utils.progress import MIN_INTERVAL, progress_bar

    out = io.StringIO()
    start = time.monotonic()
    for _ in progress_bar(range(200), file=out, miniters=1):
        time.sleep(0.01)  # two seconds: tqdm's default would redraw about 20 times
    seconds = time.monotonic() - start
    redraws = out.getvalue().count("\r")
    assert redraws <= seconds / MIN_INTERVAL + 3, (redraws, seconds)


def test_a_callback_sees_every_step_and_may_change_the_model():
    cfg = ToyModelConfig(n_inst=2, n_features=3, d_hidden=2)
    model = ToyModel(cfg, feature_probability=0.3, seed=0, device="cpu")
    seen = []

    def record_then_zero_bias(step, trained, optimizer):
        seen.append((step, trained.W.clone(), len(optimizer.state)))
        trained.b_final.zero_()

    optimize(model, steps=5, batch_size=16, lr=1e-2, progress=False, callback=record_then_zero_bias)
    assert [step for step, _, _ in seen] == [0, 1, 2, 3, 4]
    assert all(n_states == 2 for _, _, n_states in seen)  # Adam's state for W and b_final, after the update
    assert not torch.equal(seen[0][1], seen[-1][1])  # the weights it saw moved
    assert torch.equal(model.b_final, torch.zeros_like(model.b_final))  # its change stuck
    with pytest.raises(TypeError, match="callback must be a function"):
        optimize(model, steps=1, batch_size=4, progress=False, callback=3)


def test_a_callback_takes_the_autograd_path_with_the_same_numbers():
    cfg = ToyModelConfig(n_inst=3, n_features=4, d_hidden=2)
    models = [ToyModel(cfg, feature_probability=0.2, seed=1, device="cpu") for _ in range(2)]
    run = dict(steps=20, batch_size=32, lr=1e-2, progress=False)
    optimize(models[0], **run, fast=False, generator=torch.Generator().manual_seed(3))
    optimize(models[1], **run, generator=torch.Generator().manual_seed(3), callback=lambda step, model, optimizer: None)
    assert torch.equal(models[0].W, models[1].W)
    with pytest.raises(ValueError, match="a callback runs between steps"):
        optimize(models[1], steps=1, batch_size=4, progress=False, fast=True, callback=lambda *args: None)
