"""The CPU kernel (`kernel.c`): built with the system C compiler, called on tensors through ctypes.

`kernel(n_features, n_hidden, law_code)` compiles `kernel.c` with those sizes as constants (well
under a second; the library is cached on disk under `CACHE`, keyed by a hash of source, flags and host)
and returns a `Kernel` whose methods run the C loops on torch tensors, in `torch.get_num_threads()`
threads, each on its own range of instances (ctypes releases the GIL during the call). Where
there is no C compiler or the build fails, `kernel` returns a sentence saying why instead.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

SOURCE = Path(__file__).with_name("kernel.c")
FLAGS = ["-O3", "-march=native", "-fno-math-errno", "-fno-trapping-math", "-shared", "-fPIC"]
"""No -ffast-math: sums keep their order, and NaN stays NaN for the divergence check."""
CACHE = Path(os.environ.get("UTILS_FAST_CACHE", Path.home() / ".cache" / "superposition-utils"))
LANES = 8
"""Samples per SIMD block, as in kernel.c."""
SLICES_PER_THREAD = 8
"""Instance ranges per thread and call: small enough that a busy core does not hold the others up."""

_f, _i64, _p = ctypes.c_float, ctypes.c_int64, ctypes.c_void_p
_SIGNATURES = {
    "seed": [_i64, _i64, ctypes.c_uint64, _p],
    "draw": [_i64, _i64, _p, _p],
    "train": [_i64, _i64, _i64, _i64, _i64, _p, _p, _p, _p, _p, _p, _p, _p, _f, _f, _p, _p, _f, _i64, _p, _i64],
    "evaluate": [_i64, _i64, _p, _p, _p, _p, _f, _f, _p, _p],
}


def _compiler() -> str | None:
    return os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")


@functools.cache
def kernel(n_features: int, n_hidden: int, law_code: int) -> Kernel | str:
    """The compiled kernel for these sizes and law (`utils.fast.laws.LawSpec.code`), or why there is none."""
    compiler = _compiler()
    if compiler is None:
        return "no C compiler (cc, gcc or clang) on PATH"
    defines = [f"-DNF={n_features}", f"-DNH={n_hidden}", f"-DLAW={law_code}"]
    # -march=native: a library is only good for the machine that built it, so the host is in the key
    built_for = " ".join([compiler, *FLAGS, *defines, platform.machine(), platform.node()])
    digest = hashlib.sha256(SOURCE.read_bytes() + built_for.encode()).hexdigest()[:16]
    library = CACHE / f"kernel-{n_features}x{n_hidden}-law{law_code}-{digest}.so"
    if not library.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=CACHE) as build:
            target = Path(build) / library.name
            done = subprocess.run([compiler, *FLAGS, *defines, str(SOURCE), "-o", str(target)], capture_output=True, text=True)
            if done.returncode != 0:
                return f"{compiler} failed on kernel.c: {(done.stderr.strip().splitlines() or [''])[0][:160]}"
            os.replace(target, library)  # atomic: a concurrent process sees all or nothing
    return Kernel(ctypes.CDLL(str(library)), n_features, n_hidden, law_code)


def _ptr(t: torch.Tensor) -> ctypes.c_void_p:
    return ctypes.c_void_p(t.data_ptr())


def _rows(t: torch.Tensor, start: int) -> ctypes.c_void_p:
    """Address of row `start` of the contiguous tensor `t` (instances first)."""
    return ctypes.c_void_p(t.data_ptr() + start * t.stride(0) * t.element_size())


class Kernel:
    """kernel.c's functions on contiguous CPU tensors, instances first: float32, and rng `(inst, 4, LANES)` int32."""

    def __init__(self, library: ctypes.CDLL, n_features: int, n_hidden: int, law_code: int):
        for name, argtypes in _SIGNATURES.items():
            getattr(library, name).argtypes = argtypes
            getattr(library, name).restype = None
        self.library = library
        self.n_uniforms = {0: n_features, 1: 2, 2: n_features, 3: n_features // 2}[law_code]

    @staticmethod
    def _split(n: int, call) -> None:
        """`call(start, stop)` over ranges of `n` instances, in torch.get_num_threads() threads."""
        threads = max(1, torch.get_num_threads())
        bounds = torch.linspace(0, n, min(n, threads * SLICES_PER_THREAD) + 1).round().long().tolist()
        ranges = [(a, b) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]
        if threads == 1 or len(ranges) == 1:
            for start, stop in ranges:
                call(start, stop)
            return
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(lambda bounds: call(*bounds), ranges))

    def seed(self, n_inst: int, key: int) -> torch.Tensor:
        """Random states `(n_inst, 4, LANES)` for instances 0 .. n_inst - 1 under the 64-bit `key`."""
        rng = torch.empty(n_inst, 4, LANES, dtype=torch.int32)
        self.library.seed(n_inst, 0, key, _ptr(rng))
        return rng

    def draw(self, rng: torch.Tensor, n_blocks: int) -> torch.Tensor:
        """The uniforms of the next `n_blocks` sample blocks `(inst, n_blocks, n_uniforms, LANES)`; advances `rng`."""
        out = torch.empty(rng.shape[0], n_blocks, self.n_uniforms, LANES)
        self.library.draw(rng.shape[0], n_blocks, _ptr(rng), _ptr(out))
        return out

    def train(self, state, importance, params, value_range, rng, lrs, weight_decay, steps, batch, log_every, history):
        """Run steps `steps = range(first, last)` of `len(lrs)` in place.

        Args:
            state: `(W (inst, hidden, feats), b (inst, feats), m_W, v_W, m_b, v_b)` (Adam moments alike).
            importance: `(inst, feats)`; params: `(inst, k)` the law's; value_range: `(low, high)`.
            history: `(n_logged, inst)`, receives the loss before the update at each logged step.
        """
        W, b, m_W, v_W, m_b, v_b = state
        n_steps = lrs.shape[0]

        def call(start: int, stop: int) -> None:
            self.library.train(
                stop - start, steps.start, steps.stop, n_steps, batch,
                *(_rows(t, start) for t in (W, b, m_W, v_W, m_b, v_b, importance, params)),
                *value_range, _rows(rng, start), _ptr(lrs), weight_decay, log_every,
                _rows(history.t(), start), history.shape[1],
            )  # fmt: skip

        self._split(W.shape[0], call)

    def evaluate(self, W, b, importance, params, value_range, rng, n_samples: int) -> torch.Tensor:
        """The loss `(inst,)` on `n_samples` fresh samples per instance (arguments as in `train`)."""
        out = torch.empty(W.shape[0])

        def call(start: int, stop: int) -> None:
            tensors = (W, b, importance, params)
            self.library.evaluate(
                stop - start, n_samples, *(_rows(t, start) for t in tensors), *value_range, _rows(rng, start),
                _rows(out, start),
            )

        self._split(W.shape[0], call)
        return out
