"""Benchmark: the fast trainer against the plain autograd loop, on a slice of chapter 4's sweep.

    python -m utils.benchmark [--grid 20] [--seeds 10] [--steps 200]

Runs in one process, on the same workload (tied ReLU models, 2 features in 1 dimension, hierarchical
data, Adam lr 1e-2 with weight decay 1e-4, batch 256; a grid of p1 x importance x conditional
probability with several seeds per configuration):

1. the reference: the loop written the straightforward way, as in seed 000 (autograd through the
   model, `torch.optim.Adam`, data from separate `torch.rand` calls, loss summed over models);
2. the fast trainer's C kernel (`utils/fast/kernel.c`, what `optimize` uses for long runs on a
   CPU), warm, the median of `KERNEL_REPEATS` runs; its build time from an empty cache is reported apart;
3. the fast trainer's eager fallback (`utils/fast/planes.py`: the same step in torch ops, what runs
   without a C compiler).

It evaluates every trained model on the same 4096 samples, checks that each fast path agrees in law
with the reference (per configuration, the mean loss over seeds within a few standard errors), and
prints times, peak memory (resident set growth during each run) and ratios. The last line is
`speedup: <ratio>x`, the C kernel's ratio. Ratios measured on the machines the book is tested on
are in `utils/fast/PERFORMANCE.md`.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
from unittest import mock

import torch

from utils.data import HierarchicalPairs
from utils.fast import native, trainer
from utils.hierarchy import sweep_grid
from utils.models import ToyModel, ToyModelConfig
from utils.train import evaluate

P_FEATURE1 = [0.1, 0.4, 0.8, 0.95]
LR, WEIGHT_DECAY, BATCH = 1e-2, 1e-4, 256
KERNEL_REPEATS = 5
"""The kernel's run takes under a second, where one pause of the machine moves the ratio by 10%: its
time is the median of this many runs (the plain loop's 30 s, run once, averages such pauses out)."""


class PeakMemory:
    """Peak growth of this process's resident set (MB) while the `with` block runs, sampled every 2 ms."""

    def __enter__(self):
        self.base = self.peak = self._rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._rss())

    @property
    def mb(self) -> float:
        return (self.peak - self.base) / 2**20

    def _watch(self):
        while not self._stop.wait(0.002):
            self.peak = max(self.peak, self._rss())

    @staticmethod
    def _rss() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def make_models(grid: int, n_seeds: int, seed: int) -> ToyModel:
    """The benchmark grid: len(P_FEATURE1) x `grid` importances x `grid` conditionals x `n_seeds` seeds, on the CPU."""
    axes = torch.logspace(-1, 1, grid), torch.logspace(-2, 0, grid)
    p1, q, importance = sweep_grid(P_FEATURE1, *axes, n_seeds)
    cfg = ToyModelConfig(p1.numel(), 2, 1)
    return ToyModel(cfg, importance=importance, data=HierarchicalPairs(p1, q), seed=seed, device="cpu")


def reference_loop(model: ToyModel, steps: int) -> None:
    """Seed 000's loop, written plainly: autograd, torch.optim.Adam, separate torch.rand calls."""
    W = model.W.detach().clone()[:, 0].requires_grad_()  # (inst, 2)
    b = model.b_final.detach().clone().requires_grad_()  # (inst, 2)
    p1, q = model.data.p_feature1, model.data.p_feature2_given_1
    optimizer = torch.optim.Adam([W, b], lr=LR, weight_decay=WEIGHT_DECAY)
    for _ in range(steps):
        parent = torch.rand(BATCH, p1.numel()) < p1
        child = parent & (torch.rand(BATCH, p1.numel()) < q)
        x = torch.rand(BATCH, p1.numel(), 2)
        x = x * torch.stack([parent, child], dim=-1)
        z = (x * W).sum(-1, keepdim=True)
        out = torch.relu(z * W + b)
        per_model = (model.importance * (out - x) ** 2).mean(dim=(0, 2))
        optimizer.zero_grad(set_to_none=True)
        per_model.sum().backward()
        optimizer.step()
    with torch.no_grad():
        model.W.copy_(W[:, None, :])
        model.b_final.copy_(b)


def agreement(losses: torch.Tensor, reference: torch.Tensor, n_seeds: int) -> tuple[bool, str]:
    """Same law? Per configuration, |mean difference| over seeds in standard errors; and the grid mean."""
    a, r = losses.reshape(-1, n_seeds), reference.reshape(-1, n_seeds)
    se = ((a.var(1) + r.var(1)) / n_seeds).sqrt() + 1e-4 * r.mean(1)
    z = (a.mean(1) - r.mean(1)).abs() / se
    grid_se = ((a.var(1) + r.var(1)).sum() / n_seeds).sqrt() / a.shape[0]
    grid_z = (a.mean() - r.mean()).abs() / grid_se
    ok = (z > 3).float().mean() <= 0.05 and grid_z < 3
    text = (
        f"mean loss {a.mean():.5f} vs reference {r.mean():.5f} ({grid_z:.1f} standard errors); "
        f"configurations beyond 3 standard errors: {(z > 3).sum()} of {z.numel()} (median |z| {z.median():.2f})"
    )
    return bool(ok), text


def main(argv: list[str] | None = None) -> float:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--grid", type=int, default=20, help="cells per axis of each of the 4 panels")
    parser.add_argument("--seeds", type=int, default=10, help="seeds per cell (default 10: 16,000 models, a panel)")
    parser.add_argument("--steps", type=int, default=200)
    args = parser.parse_args(argv)
    n_models = len(P_FEATURE1) * args.grid**2 * args.seeds
    print(f"workload: {n_models} models, {args.steps} steps, batch {BATCH}; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; load average {os.getloadavg()[0]:.1f}", flush=True)  # fmt: skip
    eval_generator = lambda: torch.Generator().manual_seed(1234)  # noqa: E731
    lrs = torch.full((args.steps,), LR)
    results = {}

    def run(name: str, train, repeats: int = 1) -> None:
        """Time `train` on fresh models `repeats` times; keep the median time and the last models' losses."""
        times = []
        with PeakMemory() as memory:
            for _ in range(repeats):
                model = make_models(args.grid, args.seeds, seed=0)
                start = time.perf_counter()
                train(model)
                times.append(time.perf_counter() - start)
        seconds = sorted(times)[len(times) // 2]
        losses = evaluate(model, 4096, generator=eval_generator(), fast=False)
        results[name] = (seconds, memory.mb, losses)
        spread = f" (median of {repeats} runs, {min(times):.2f}-{max(times):.2f} s)" if repeats > 1 else ""
        print(f"{name}: {seconds:.2f} s{spread}, peak +{memory.mb:.0f} MB", flush=True)

    def fast(kernel):
        return lambda m: trainer.train_fast(m, args.steps, BATCH, lrs, WEIGHT_DECAY, args.steps, kernel=kernel,
                                            progress=False)  # fmt: skip

    run("reference (autograd, torch.optim.Adam)", lambda m: reference_loop(m, args.steps))
    with tempfile.TemporaryDirectory() as empty, mock.patch.dict(os.environ, XDG_CACHE_HOME=empty):
        native.load.cache_clear()  # the kernel's build time on a first run
        start = time.perf_counter()
        native.load(2, 1, "HIERARCHICAL_PAIRS")
        build_seconds = time.perf_counter() - start
    native.load.cache_clear()
    kernel = native.load(2, 1, "HIERARCHICAL_PAIRS")  # from the usual cache, built there if need be
    if isinstance(kernel, str):
        print(f"C kernel unavailable ({kernel}): its rows below are the eager fallback's")
        kernel = None
    print(f"C kernel build (empty cache): {build_seconds:.1f} s", flush=True)
    run("fast, C kernel", fast(kernel), repeats=KERNEL_REPEATS)
    run("fast, eager fallback", fast(None))
    reference_seconds, _, reference_losses = results["reference (autograd, torch.optim.Adam)"]
    all_ok = True
    for name in results:
        if name.startswith("fast"):
            ok, text = agreement(results[name][2], reference_losses, args.seeds)
            all_ok &= ok
            print(f"agreement in law, {name}: {'PASS' if ok else 'FAIL'}: {text}")
    ratio = reference_seconds / results["fast, C kernel"][0]
    with_build = reference_seconds / (results["fast, C kernel"][0] + build_seconds)
    print(f"C kernel speedup counting its build time: {with_build:.1f}x")
    print(f"agreement: {'PASS' if all_ok else 'FAIL'}")
    print(f"eager fallback speedup: {reference_seconds / results['fast, eager fallback'][0]:.1f}x")
    print(f"speedup: {ratio:.1f}x")
    return ratio


if __name__ == "__main__":
    main()
