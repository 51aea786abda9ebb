"""The fast trainer for the tied ReLU model: hand-written gradients, in-place Adam, chunked instances.

One training step of a chunk of instances is a pure tensor function (`_step`): draw the batch from
uniforms, run the model, form the loss and its gradient by hand (`utils.fast.gradients`), update
with Adam (`utils.fast.adam`). Three ways to run it:

- compiled, on the CPU: the same step written in C (`kernel.c`, built by `utils.fast.native` with
  the system C compiler in under a second), all steps of one instance back to back in registers,
  SIMD over samples, instances split over `torch.get_num_threads()` threads. Its random numbers
  come from per-instance xoshiro128+ generators seeded from a key drawn from the caller's
  generator. Set UTILS_FAST_NATIVE=0 to use torch.compile on the CPU instead.
- compiled, elsewhere (CUDA), or on the CPU without a C compiler for kernel.c:
  `torch.compile(dynamic=False)` of `_step`, with the uniforms from Philox4x32-10 inside the graph
  (`utils.fast.philox`, counter = (instance, draw, step, stream), key drawn from the caller's
  generator), so inductor fuses sampling, forward, backward and Adam into a few loops that never
  write the batch to memory (`FUSE_ALL`; set UTILS_FAST_FUSE_ALL=0 for inductor's defaults, which
  compile faster and run slower); the learning rate and step are tensor inputs, so schedules do
  not recompile. One compile per (chunk size, batch, sizes, law) and process: tens of seconds
  with an empty inductor cache, a few seconds once cached. Compiled paths are for long runs, so
  by default runs below `COMPILE_WORK` sample-steps stay eager.
- eager: the same step with uniforms from `torch.rand` on the caller's generator; also used
  automatically, after a one-line notice, where torch.compile or its C++ compiler is missing. Small
  models (at most `SMALL` weights per instance) run it as feature planes in buffers allocated once,
  with the uniforms drawn ahead on a background thread (`utils.fast.planes`, `utils.fast.prefetch`);
  bigger ones as batched matrix products (`utils.fast.gradients`).

Both give the same law as `utils.train`'s autograd loop, not the same numbers: the random streams
differ. Instances are processed in chunks of equal, power-of-two size (the last padded with copies
that are thrown away), training one chunk for all steps before the next, which bounds memory and
keeps the working set in cache. Evaluation (`evaluate_fast`) is chunked the same way.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys

import torch

from utils.fast import native, philox
from utils.fast.adam import adam_update_
from utils.fast.gradients import SMALL, loss, loss_and_gradients
from utils.fast.laws import LawSpec, law_spec
from utils.fast.planes import PlaneChunk
from utils.fast.prefetch import UniformPrefetch, worth_prefetching
from utils.progress import progress_bar

MAX_CHUNK = {"cpu": 4096}
"""Largest chunk of instances trained together, per device type (others: `DEFAULT_MAX_CHUNK`)."""
DEFAULT_MAX_CHUNK = 1 << 16
EVAL_BLOCK = 256
"""Evaluation samples drawn per compiled call."""
LOG_BLOCK = 50
"""Steps per call of kernel.c (between progress updates)."""

COMPILE_WORK = 10**9
"""With `compiled=None`, compile only runs of at least this many sample-steps (instances x batch x
steps): a cold compile costs tens of seconds, which only long runs such as chapter 4's sweep repay."""

_compile_failure: str | None = None
"""Why torch.compile failed in this process (then every run uses the eager path)."""

NATIVE = os.environ.get("UTILS_FAST_NATIVE", "1") == "1"
"""Compiled runs on the CPU use kernel.c (False: torch.compile, as on other devices)."""
_native_failure: str | None = None
"""Why kernel.c could not be built in this process (then compiled CPU runs use torch.compile)."""


def _native_kernel(device: torch.device, spec: LawSpec, hidden: int, feats: int) -> native.Kernel | None:
    """kernel.c for these sizes, if the CPU path may and can use it; on a build failure, say why once."""
    global _native_failure
    if not NATIVE or device.type != "cpu" or _native_failure is not None:
        return None
    kernel = native.kernel(feats, hidden, spec.code)
    if isinstance(kernel, str):
        _native_failure = kernel
        print(f"utils.fast: C kernel unavailable ({kernel}); using torch.compile", file=sys.stderr)
        return None
    return kernel


def _native_key(generator: torch.Generator | None) -> int:
    """A 64-bit kernel.c key drawn from `generator` (torch's global one if None)."""
    k0, k1 = philox.key_from_generator(generator, "cpu").tolist()
    return k0 | k1 << 32


def unsupported_reason(model) -> str | None:
    """None if `train_fast` covers `model`, else a sentence saying why not."""
    from utils.models import ToyModel

    if type(model) is not ToyModel:
        return (
            f"the fast path covers the tied ReLU model ToyModel (x' = ReLU(WᵀWx + b)) exactly, "
            f"not {type(model).__name__}"
        )
    if model.W.dtype != torch.float32:
        return f"the fast path trains float32 weights, got {model.W.dtype}"
    spec = law_spec(model.data)
    return spec if isinstance(spec, str) else None


def _chunking(n_inst: int, device: torch.device, compiled: bool) -> tuple[int, int]:
    """(chunk size, number of chunks), fewest possible equal chunks.

    Compiled, the size is a power of two, so that few shapes (compiles) serve all runs; eager, a
    single chunk is exactly `n_inst`, so the run draws the same numbers as `model.generate_batch`.
    """
    largest = MAX_CHUNK.get(device.type, DEFAULT_MAX_CHUNK)
    n_chunks = math.ceil(n_inst / largest)
    size = math.ceil(n_inst / n_chunks)
    return (1 << max(4, math.ceil(math.log2(size))) if compiled else size), n_chunks


def _padded(t: torch.Tensor, n: int) -> torch.Tensor:
    """`t: (inst, ...)` extended to `n` rows by repeating its last row."""
    return t[torch.arange(n, device=t.device).clamp(max=t.shape[0] - 1)].contiguous()


def _step(W, b, m_W, v_W, m_b, v_b, importance, params, transform, uniforms, lr, step, weight_decay):
    """One training step of a chunk, in place; returns the loss `(chunk,)` before the update.

    `W: (chunk, hidden, feats)`, `b, importance: (chunk, feats)` (moments alike), `params: (chunk, k)`,
    `uniforms`: the batch as equal sub-batches `(rows, chunk, n_uniforms)`, `lr, step, weight_decay`:
    0-d tensors. Loss and gradients are means over the batch, so they are means over sub-batches.
    """
    parts = [loss_and_gradients(W, b, importance, transform(u, params)) for u in uniforms]
    per_instance, grad_W, grad_b = (sum(values) / len(parts) for values in zip(*parts))
    adam_update_(W, grad_W, m_W, v_W, lr, step, weight_decay)
    adam_update_(b, grad_b, m_b, v_b, lr, step, weight_decay)
    return per_instance


def _philox_step(W, b, m_W, v_W, m_b, v_b, importance, params, transform, key, instance, batch, n_u, lr, step, wd):
    """`_step` with the batch drawn in-graph from Philox (stream 0, counter step = `step`)."""
    uniforms = philox.uniform_batches(key, instance, batch, n_u, step, stream=0)
    return _step(W, b, m_W, v_W, m_b, v_b, importance, params, transform, uniforms, lr, step, wd)


def _philox_eval(W, b, importance, params, transform, key, instance, batch, n_u, block):
    """Summed loss `(chunk,)` over `batch` evaluation samples from Philox (stream 1, counter step = `block`)."""
    uniforms = philox.uniform_batches(key, instance, batch, n_u, block, stream=1)
    return sum(loss(W, b, importance, transform(u, params)) * u.shape[0] for u in uniforms)


FUSE_ALL = {
    name: 10**6
    for name in (
        "realize_reads_threshold",
        "realize_opcount_threshold",
        "realize_cpu_opcount_threshold",
        "realize_acc_reads_threshold",
        "realize_cpu_acc_reads_threshold",
        "max_fusion_size",
    )
}
"""Inductor settings that stop it from writing intermediates to memory (each Philox round, the
batch): one loop per reduction group instead of many passes, at the price of a longer cold compile."""
FORCE_FUSION = os.environ.get("UTILS_FAST_FUSE_ALL", "1") == "1"


def _fused(function):
    """`torch.compile(function, dynamic=False)`, compiled under `FUSE_ALL` when `FORCE_FUSION`."""
    compiled = torch.compile(function, dynamic=False)

    def call(*args):
        if not FORCE_FUSION:
            return compiled(*args)
        import torch._inductor.config as inductor_config

        with inductor_config.patch(FUSE_ALL):
            return compiled(*args)

    return call


_compiled_step = _fused(_philox_step)
_compiled_eval = _fused(_philox_eval)


def _compiles(function, *args) -> bool:
    """Try `function(*args)` (a compiled function) on copies of the tensor arguments.

    This compiles it for these shapes (the real calls then reuse the graph). On failure, say why once
    (a one-line notice on stderr), remember it for the process, and return False.
    """
    global _compile_failure
    if _compile_failure is not None:
        return False
    try:
        function(*(a.clone() if isinstance(a, torch.Tensor) else a for a in args))
        return True
    except Exception as error:  # noqa: BLE001 (any backend failure means: use the eager path)
        lines = str(error).strip().splitlines()
        _compile_failure = f"{type(error).__name__}: {lines[0] if lines else ''}"[:200]
        print(f"utils.fast: torch.compile unavailable ({_compile_failure}); using the eager path", file=sys.stderr)
        return False


def compile_available() -> bool:
    """Whether this process can still use the compiled path (False after a compile failure)."""
    return _compile_failure is None


def train_fast(
    model,
    steps: int,
    batch_size: int,
    lr_per_step: torch.Tensor,
    weight_decay: float,
    log_every: int,
    generator: torch.Generator | None = None,
    compiled: bool | None = None,
    progress: bool = True,
    on_log=None,
) -> torch.Tensor:
    """Train a `ToyModel` in place; `utils.train.optimize` calls this (use that).

    Args:
        lr_per_step: `(steps,)` learning rate of every step (schedule applied).
        generator: the random source: the eager path draws from it; the compiled paths draw only
            their key from it. Default: the model's own generator (torch's global one if None).
        compiled: True: a compiled path (kernel.c on the CPU, else torch.compile; eager where
            compiling fails, with a notice); None: the same for runs of at least `COMPILE_WORK`
            sample-steps, else eager; False: eager.
        on_log: called as `on_log(losses (inst,), step)` at each logged step, chunk by chunk with
            0 for instances not yet trained (the divergence check).

    Returns:
        The per-instance loss history `(ceil(steps / log_every), inst)` on the CPU.
    """
    reason = unsupported_reason(model)
    if reason is not None:
        raise ValueError(f"train_fast cannot train this model: {reason}")
    spec: LawSpec = law_spec(model.data)
    generator = generator if generator is not None else model.generator
    device = model.W.device
    n_inst, (_, hidden, feats) = model.cfg.n_inst, model.W.shape
    wants_compiled = compiled or (compiled is None and n_inst * batch_size * steps >= COMPILE_WORK)
    kernel = _native_kernel(device, spec, hidden, feats) if wants_compiled else None
    if kernel is not None:
        return _train_native(kernel, model, spec, steps, batch_size, lr_per_step, weight_decay, log_every, generator,
                             progress, on_log)  # fmt: skip
    use_compiled = compile_available() and wants_compiled
    chunk, n_chunks = _chunking(n_inst, device, use_compiled)
    total = chunk * n_chunks
    W_all, b_all = _padded(model.W.detach(), total), _padded(model.b_final.detach(), total)
    importance_all, params_all = _padded(model.importance, total), _padded(spec.params.to(device), total)
    key = philox.key_from_generator(generator, device) if use_compiled else None
    lrs = lr_per_step.to(device=device, dtype=torch.float32)
    step_numbers = torch.arange(1, steps + 1, device=device)
    decay = torch.tensor(float(weight_decay), device=device)

    def chunk_state(rows: slice) -> tuple:
        W, b = W_all[rows], b_all[rows]
        return W, b, *(torch.zeros_like(t) for t in (W, W, b, b)), importance_all[rows], params_all[rows], spec.transform

    def philox_args(rows: slice) -> tuple:
        return key, torch.arange(rows.start, rows.stop, device=device), batch_size, spec.n_uniforms

    if use_compiled:
        first = slice(0, chunk)
        use_compiled = _compiles(_compiled_step, *chunk_state(first), *philox_args(first), lrs[0], step_numbers[0], decay)
    planar = not use_compiled and hidden * feats <= SMALL
    draw = (batch_size, chunk, spec.n_uniforms)
    prefetch = UniformPrefetch(draw, steps * n_chunks, generator) if planar and worth_prefetching(draw, device) else None
    history = torch.zeros(math.ceil(steps / log_every), total, device=device)
    block = max(1, min(steps, 50))
    bar = progress_bar(total=steps * n_chunks, disable=not progress, desc=f"{type(model).__name__} (fast)")
    with prefetch or contextlib.nullcontext():
        for c in range(n_chunks):
            rows = slice(c * chunk, (c + 1) * chunk)
            if planar:  # holds its own copies of the chunk's weights and moments, as rows
                plane_chunk = PlaneChunk(W_all[rows], b_all[rows], importance_all[rows], params_all[rows],
                                         spec.transform, spec.n_uniforms, batch_size)  # fmt: skip
            else:
                state = chunk_state(rows)
                in_graph = philox_args(rows) if use_compiled else None
            for s in range(steps):
                step_args = (lrs[s], step_numbers[s], decay)
                logs = (s + 1) % log_every == 0 or s == steps - 1
                if use_compiled:
                    per_instance = _compiled_step(*state, *in_graph, *step_args)
                else:
                    u = prefetch.next() if prefetch else torch.rand(draw, generator=generator, device=device)
                    if planar:
                        per_instance = plane_chunk.step(u, *step_args, with_loss=logs)
                    else:
                        per_instance = _step(*state, [u], *step_args)
                if logs:
                    history[s // log_every, rows] = per_instance
                    if on_log is not None:
                        on_log(history[s // log_every, :n_inst], s)
                if (s + 1) % block == 0 or s == steps - 1:
                    bar.update(block if (s + 1) % block == 0 else (s + 1) % block)
            if planar:
                plane_chunk.write_to(W_all[rows], b_all[rows])
            bar.set_postfix(mean_loss=f"{history[-1, :rows.stop].mean().item():.3g}", refresh=False)
    bar.close()
    with torch.no_grad():
        model.W.copy_(W_all[:n_inst])
        model.b_final.copy_(b_all[:n_inst])
    return history[:, :n_inst].cpu()


def _train_native(kernel, model, spec, steps, batch_size, lr_per_step, weight_decay, log_every, generator, progress,
                  on_log):
    """`train_fast` on kernel.c: all instances at once, `LOG_BLOCK` steps per call (progress, `on_log`)."""
    n_inst = model.cfg.n_inst
    W = model.W.detach().clone().contiguous()
    b = model.b_final.detach().clone().contiguous()
    state = (W, b, *(torch.zeros_like(t) for t in (W, W, b, b)))
    importance, params = model.importance.contiguous(), spec.params.to(torch.float32).contiguous()
    rng = kernel.seed(n_inst, _native_key(generator))
    lrs = lr_per_step.to(dtype=torch.float32).contiguous()
    history = torch.zeros(math.ceil(steps / log_every), n_inst)
    with progress_bar(total=steps, disable=not progress, desc=f"{type(model).__name__} (fast, C)") as bar:
        for start in range(0, steps, LOG_BLOCK):
            stop = min(steps, start + LOG_BLOCK)
            kernel.train(state, importance, params, spec.value_range, rng, lrs, float(weight_decay), range(start, stop),
                         batch_size, log_every, history)  # fmt: skip
            if on_log is not None:
                for s in range(start, stop):
                    if (s + 1) % log_every == 0 or s == steps - 1:
                        on_log(history[s // log_every], s)
            bar.update(stop - start)
            last_row = len(history) - 1 if stop == steps else stop // log_every - 1  # the latest logged step's
            if last_row >= 0:
                bar.set_postfix(mean_loss=f"{history[last_row].mean().item():.3g}", refresh=False)
    with torch.no_grad():
        model.W.copy_(W)
        model.b_final.copy_(b)
    return history


@torch.no_grad()
def evaluate_fast(model, n_samples: int, generator: torch.Generator | None = None, compiled: bool | None = None):
    """The per-instance loss `(inst,)` of a covered model on `n_samples` fresh samples, chunked over instances.

    The compiled paths draw their key from `generator` (default: the model's own generator);
    torch.compile's evaluates `EVAL_BLOCK` samples per call; the eager path draws from `generator`.
    `compiled` as in `train_fast` (work = instances x samples).
    """
    spec: LawSpec = law_spec(model.data)
    generator = generator if generator is not None else model.generator
    device = model.W.device
    wants_compiled = compiled or (compiled is None and model.cfg.n_inst * n_samples >= COMPILE_WORK)
    kernel = _native_kernel(device, spec, *model.W.shape[1:]) if wants_compiled else None
    if kernel is not None:
        rng = kernel.seed(model.cfg.n_inst, _native_key(generator))
        W, b = model.W.detach().contiguous(), model.b_final.detach().contiguous()
        params = spec.params.to(torch.float32).contiguous()
        return kernel.evaluate(W, b, model.importance.contiguous(), params, spec.value_range, rng, n_samples)
    use_compiled = compile_available() and wants_compiled
    chunk, n_chunks = _chunking(model.cfg.n_inst, device, use_compiled)
    total = chunk * n_chunks
    W_all, b_all = _padded(model.W.detach(), total), _padded(model.b_final.detach(), total)
    importance_all, params_all = _padded(model.importance, total), _padded(spec.params.to(device), total)
    key = philox.key_from_generator(generator, device) if use_compiled else None
    sums = torch.zeros(total, device=device)
    for c in range(n_chunks):
        rows = slice(c * chunk, (c + 1) * chunk)
        instance = torch.arange(rows.start, rows.stop, device=device)
        parts = (W_all[rows], b_all[rows], importance_all[rows], params_all[rows], spec.transform)
        for k, start in enumerate(range(0, n_samples, EVAL_BLOCK)):
            size = min(EVAL_BLOCK, n_samples - start)
            if use_compiled:
                philox_args = (key, instance, size, spec.n_uniforms, torch.tensor(k, device=device))
                if c == 0 and k == 0:
                    use_compiled = _compiles(_compiled_eval, *parts, *philox_args)
                if use_compiled:
                    sums[rows] += _compiled_eval(*parts, *philox_args)
                    continue
            u = torch.rand(size, chunk, spec.n_uniforms, generator=generator, device=device)
            sums[rows] += loss(*parts[:3], spec.transform(u, parts[3])) * size
    return (sums[: model.cfg.n_inst] / n_samples).cpu()
