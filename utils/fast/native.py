"""The C kernel (`kernel.c`): built with the system C compiler, called on tensors through ctypes.

`load(n_features, n_hidden, law)` compiles `kernel.c` with those sizes and the law as constants and
returns a `Kernel`, whose methods check their tensors, then run the C loops in
`torch.get_num_threads()` threads on ranges of instances (ctypes releases the GIL during a call).
Libraries are cached in `$XDG_CACHE_HOME/superposition-utils` (default `~/.cache/...`) beside a hash
of their bytes, so a damaged one is rebuilt. Whatever goes wrong (no compiler, a failed build, an
unwritable cache, a model too big), `load` returns a sentence saying why instead of raising.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shlex
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

SOURCE = Path(__file__).with_name("kernel.c")
FLAGS = ["-O3", "-march=native", "-fno-math-errno", "-fno-trapping-math", "-shared", "-fPIC"]
"""No -ffast-math: sums keep their order, and NaN stays NaN for the divergence check."""
LANES = 8
"""Samples per SIMD block, as in kernel.c."""
STACK_BYTES = 1 << 18
"""kernel.c keeps per-feature vectors on the thread's stack (about 160 bytes a feature, 32 a hidden
dimension); models needing more than this (half of macOS's 512 KiB thread stack) are refused."""
SLICES_PER_THREAD = 8
"""Instance ranges per thread and call: small enough that a busy core does not hold the others up."""

_i64, _p = ctypes.c_int64, ctypes.c_void_p
_SIGNATURES = {  # name: (argument types, return type)
    "seed": ([_i64, ctypes.c_uint64, _p], None),
    "train": ([*[_i64] * 5, *[_p] * 8, *[ctypes.c_float] * 2, _p, _p, ctypes.c_float, _i64, _p, _i64], ctypes.c_int),
}


def cache_dir() -> Path:
    """Where built libraries are kept: `$XDG_CACHE_HOME/superposition-utils`, else `~/.cache/...`."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "superposition-utils"


def _compiler() -> list[str] | None:
    """The C compiler command: `$CC` split into words (it may carry flags), else cc, gcc or clang."""
    if os.environ.get("CC", "").strip():
        return shlex.split(os.environ["CC"])
    found = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    return [found] if found else None


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _build(command: list[str], library: Path) -> None:
    """Compile into `library` and write its hash beside it (both atomically); raise OSError on failure."""
    library.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=library.parent) as build:
        target = Path(build) / library.name
        done = subprocess.run([*command, "-o", str(target)], capture_output=True, text=True)
        if done.returncode != 0:
            raise OSError(f"{command[0]} failed on kernel.c: {(done.stderr.strip().splitlines() or [''])[0][:160]}")
        if not target.is_file() or target.stat().st_size == 0:
            raise OSError(f"{command[0]} exited without error but wrote no library")
        Path(build, "sha256").write_text(_digest(target))
        os.replace(target, library)  # atomic: a concurrent process sees all or nothing
        os.replace(Path(build, "sha256"), library.with_suffix(".sha256"))


@functools.cache
def load(n_features: int, n_hidden: int, law: str) -> Kernel | str:
    """The kernel for these sizes and law (a `kernel.c` law name), or a sentence saying why there is none."""
    if 160 * n_features + 32 * n_hidden > STACK_BYTES:
        return f"{n_features} features and {n_hidden} hidden dimensions are more than the C kernel takes"
    compiler = _compiler()
    if compiler is None:
        return "no C compiler (cc, gcc or clang) on PATH"
    command = [*compiler, *FLAGS, f"-DNF={n_features}", f"-DNH={n_hidden}", f"-DLAW={law}", str(SOURCE)]
    # -march=native: a library is only good for the machine that built it, so the host is in the key
    key = hashlib.sha256(SOURCE.read_bytes() + " ".join([*command, platform.machine(), platform.node()]).encode())
    library = cache_dir() / f"kernel-{n_features}x{n_hidden}-{law.lower()}-{key.hexdigest()[:16]}.so"
    try:
        recorded = library.with_suffix(".sha256")
        if not (library.is_file() and recorded.is_file() and recorded.read_text() == _digest(library)):
            _build(command, library)  # missing, or damaged (truncated, overwritten): build afresh
        return Kernel(ctypes.CDLL(str(library)), n_features, n_hidden)
    except OSError as error:  # no compiler, a failed build, an unwritable cache, a library that does not load
        return f"{type(error).__name__}: {error}"[:240]


def _check(name: str, t, shape: tuple[int, ...], dtype: torch.dtype = torch.float32) -> None:
    """Raise ValueError unless `t` is a contiguous CPU tensor of this dtype and shape."""
    if not (isinstance(t, torch.Tensor) and t.dtype == dtype and t.device.type == "cpu" and t.is_contiguous()
            and tuple(t.shape) == tuple(shape)):  # fmt: skip
        got = f"{t.dtype} {tuple(t.shape)} on {t.device}" if isinstance(t, torch.Tensor) else type(t).__name__
        got += "" if not isinstance(t, torch.Tensor) or t.is_contiguous() else ", not contiguous"
        raise ValueError(f"kernel argument {name}: expected a contiguous CPU {dtype} tensor {shape}, got {got}")


class Kernel:
    """kernel.c's functions on CPU tensors, instances first: float32, except rng (int32 `(inst, 4, LANES)`).

    Every method checks its tensors' dtype, shape and layout and raises ValueError on a mismatch: a
    wrong argument is an exception, never a write to memory that is not the tensor's.
    """

    def __init__(self, library: ctypes.CDLL, n_features: int, n_hidden: int):
        for name, (argtypes, restype) in _SIGNATURES.items():
            getattr(library, name).argtypes, getattr(library, name).restype = argtypes, restype
        self.library, self.n_features, self.n_hidden = library, n_features, n_hidden
        self.n_params, self.n_uniforms = (_i64.in_dll(library, name).value for name in ("n_params", "n_uniforms"))

    def seed(self, n_inst: int, key: int) -> torch.Tensor:
        """Random states `(n_inst, 4, LANES)` for instances 0 .. n_inst - 1 under the 64-bit `key`."""
        rng = torch.empty(n_inst, 4, LANES, dtype=torch.int32)
        self.library.seed(n_inst, key, rng.data_ptr())
        return rng

    def train(self, state, importance, params, value_range, rng, lrs, weight_decay, steps: range, batch, log_every,
              history) -> None:  # fmt: skip
        """Run steps `steps = range(first, last)` of `len(lrs)` in place.

        Args:
            state: `(W (inst, hidden, feats), b (inst, feats), m_W, v_W, m_b, v_b)` (Adam moments alike).
            importance: `(inst, feats)`; params: `(inst, k)` the law's; value_range: `(low, high)`.
            lrs: `(n_steps,)`; history: `(n_logged, inst)`, receives the loss before the update at each
                logged step (every `log_every`-th and the last), in row step // log_every.
        """
        if not (isinstance(state, (tuple, list)) and len(state) == 6):
            raise ValueError(f"kernel.train: state must be the 6 tensors (W, b, m_W, v_W, m_b, v_b), got {state!r:.80}")
        n, (h, f), n_steps = len(state[0]), (self.n_hidden, self.n_features), len(lrs)
        shapes = [(n, h, f), (n, f), (n, h, f), (n, h, f), (n, f), (n, f), (n, f), (n, self.n_params)]
        tensors = (*state, importance, params)
        for name, t, shape in zip(("W", "b", "m_W", "v_W", "m_b", "v_b", "importance", "params"), tensors, shapes):
            _check(name, t, shape)
        _check("rng", rng, (n, 4, LANES), torch.int32)
        _check("lrs", lrs, (n_steps,))
        if not (0 <= steps.start < steps.stop <= n_steps and batch >= 1 and log_every >= 1):
            raise ValueError(f"kernel.train: steps {steps} of {n_steps}, batch {batch}, log_every {log_every}")
        rows = (steps.stop - 1) // log_every + 1  # at least; more are fine
        _check("history", history, (max(rows, len(history)) if isinstance(history, torch.Tensor) else rows, n))

        def call(start: int, stop: int) -> int:  # instances start .. stop - 1
            at = lambda t: t.data_ptr() + start * t.stride(0) * t.element_size()  # noqa: E731 (row `start`)
            return self.library.train(stop - start, steps.start, steps.stop, n_steps, batch, *map(at, tensors),
                                      *value_range, at(rng), lrs.data_ptr(), weight_decay, log_every,
                                      at(history.t()), n)  # fmt: skip

        threads = max(1, torch.get_num_threads())
        bounds = torch.linspace(0, n, min(n, threads * SLICES_PER_THREAD) + 1).round().long().tolist()
        with ThreadPoolExecutor(threads) as pool:
            codes = pool.map(lambda r: call(*r), [(a, b) for a, b in zip(bounds, bounds[1:]) if b > a])
            if any(list(codes)):
                raise MemoryError("kernel.c could not allocate its working memory")
