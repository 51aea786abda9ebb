"""The chapters' set-up: training's freed memory is kept for reuse instead of being faulted in again every step."""

import subprocess
import sys

import pytest

PAGE_FAULTS_OF_50_STEPS = """
import resource, sys, torch
from utils.notebook import keep_freed_memory
from utils.models import ReluComputationModel, ToyModelConfig
from utils.train import optimize

torch.set_num_threads(1)
if sys.argv[1] == "keep":
    assert keep_freed_memory()
model = ReluComputationModel(ToyModelConfig(6, 100, 10), feature_probability=0.02, device="cpu", seed=0)
optimize(model, steps=5, batch_size=2048, progress=False)  # the allocations of a step, made once
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
optimize(model, steps=50, batch_size=2048, progress=False)
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mallopt is glibc's")
def test_training_reuses_kept_memory_without_page_faults():
    def page_faults(mode: str) -> int:
        done = subprocess.run([sys.executable, "-c", PAGE_FAULTS_OF_50_STEPS, mode], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        return int(done.stdout.split()[-1])

    # Measured: 160,000 to 240,000 minor faults by default (each step's multi-MB tensors handed back to
    # the system and faulted in again), 1 to 1,700 with the memory kept. The default's count depends on
    # glibc's dynamic mmap threshold and so on what the process did before (one run under heavy load
    # counted 8,362), so the kept count is bounded absolutely; without keep_freed_memory it is the default's.
    default, kept = page_faults("default"), page_faults("keep")
    assert kept < 5_000, f"{kept} page faults in 50 steps with the memory kept (default: {default})"
