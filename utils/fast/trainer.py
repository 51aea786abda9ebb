"""Training and evaluating the tied ReLU model `ToyModel`, x' = ReLU(WᵀWx + b), on a CPU, fast.

`utils.train.optimize` asks `route` how a covered model trains, then calls `train_fast`, which trains
- on the C kernel (`native`, `kernel.c`) runs of at least `KERNEL_WORK` sample-steps (chapter 4's
  sweep), with per-instance generators keyed by one number drawn from the caller's generator: the law
  of `model.generate_batch`, another stream;
- eagerly (`planes`) shorter runs of small models, and long runs without a kernel, on uniforms from
  `torch.rand` on the caller's generator drawn ahead on a second thread (`prefetch`), in chunks of
  instances each trained for all steps before the next (one chunk draws `model.generate_batch`'s numbers).
Both train the model, law, Adam and steps of the autograd loop (tests compare them). When the kernel is
wanted but cannot be had, one line on stderr says why, once per process; UTILS_FAST_KERNEL=0 turns it off.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
from collections.abc import Callable

import torch

from utils.fast import native
from utils.fast.laws import LawSpec, law_spec
from utils.fast.planes import SMALL, PlaneChunk
from utils.fast.prefetch import prefetched, worth_prefetching
from utils.progress import progress_bar

KERNEL_WORK = 10**9
"""By default only runs of at least this many sample-steps (instances x batch x steps) use the kernel:
its stream differs from the autograd loop's, so short runs keep `model.generate_batch`'s numbers."""
MAX_CHUNK = 4096
"""Most instances the eager path trains together."""
CHUNK_ELEMENTS = 1 << 22
"""Most uniforms (batch x instances x uniforms per sample) the eager path draws for one step of a chunk."""
LOG_BLOCK = 50
"""Steps per kernel call (between progress updates and divergence checks)."""
SWITCH = "UTILS_FAST_KERNEL"
"""Environment variable: 0 turns the kernel off (the eager path and autograd train everything)."""

_noticed: set[str] = set()


def _notice(message: str) -> None:
    if message not in _noticed:  # once per process
        _noticed.add(message)
        print(f"utils.fast: {message}", file=sys.stderr)


def unsupported_reason(model) -> str | None:
    """None if this module trains `model`, else a sentence saying why not: it trains exactly
    `utils.models.ToyModel` (matched by name: no import circle; a subclass may change the model), in
    float32 on the CPU (on a GPU the autograd loop is fast), with a law of `utils.fast.laws`."""
    cls = type(model)
    if (cls.__module__, cls.__qualname__) != ("utils.models", "ToyModel"):
        return f"the fast path trains the tied ReLU model ToyModel (x' = ReLU(WᵀWx + b)) exactly, not {cls.__name__}"
    if model.W.device.type != "cpu":
        return f"the fast path runs on the CPU; on {model.W.device.type} the autograd loop is the fast one"
    if model.W.dtype != torch.float32:
        return f"the fast path trains float32 weights, got {model.W.dtype}"
    spec = law_spec(model.data)
    return spec if isinstance(spec, str) else None


def eager_reason(model, batch_size: int) -> str | None:
    """None if the eager step takes a covered `model` at this batch size, else why not."""
    weights = model.cfg.d_hidden * model.cfg.n_features
    if weights > SMALL:
        return f"the eager fast step takes at most {SMALL} weights per instance, got {weights}"
    if batch_size * law_spec(model.data).n_uniforms > CHUNK_ELEMENTS:
        return f"a batch of {batch_size} is more than the eager fast step holds in memory"
    return None


def kernel_for(model) -> native.Kernel | None:
    """kernel.c for a covered `model`, or None after a notice (once per process) saying why there is none."""
    off = os.environ.get(SWITCH) == "0"
    kernel = f"{SWITCH}=0" if off else native.load(model.cfg.n_features, model.cfg.d_hidden, law_spec(model.data).name)
    if isinstance(kernel, native.Kernel):
        return kernel
    _notice(f"C kernel unavailable ({kernel}); training and evaluating without it")
    return None


def route(model, batch_size: int, steps: int, required: bool = False) -> native.Kernel | str | None:
    """How `train_fast` trains a covered `model`: its kernel, "eager", or None (neither: use autograd).
    Long runs (`KERNEL_WORK`) and, with `required`, runs the eager step does not take go to the kernel
    where it builds; other runs of small models train eagerly."""
    eager = eager_reason(model, batch_size) is None
    if model.cfg.n_inst * batch_size * steps >= KERNEL_WORK or (required and not eager):
        kernel = kernel_for(model)
        if kernel is not None:
            return kernel
    return "eager" if eager else None


def _key(generator: torch.Generator | None) -> int:
    """A 64-bit kernel key drawn from `generator` (torch's global one if None)."""
    device = "cpu" if generator is None else generator.device
    k0, k1 = torch.randint(0, 1 << 32, (2,), generator=generator, dtype=torch.int64, device=device).tolist()
    return k0 | k1 << 32


def train_fast(model, steps: int, batch_size: int, lr_per_step: torch.Tensor, weight_decay: float, log_every: int,
               generator: torch.Generator | None = None, kernel: native.Kernel | None = None, progress: bool = True,
               on_log: Callable[[torch.Tensor, int, slice], None] | None = None) -> torch.Tensor:  # fmt: skip
    """Train a covered `ToyModel` in place, on `kernel` if given, else eagerly; returns the per-instance loss
    history `(ceil(steps / log_every), inst)`, row k at step (k+1)·log_every - 1 (the last row: the last step).

    Args:
        lr_per_step: `(steps,)` learning rate of every step (schedule applied).
        generator: the eager path draws from it, the kernel only its key (default: the model's own).
        on_log: called as `on_log(losses, step, rows)` with the losses `(rows,)` of the instances `rows`
            (a slice) at their first step and at each logged step (the divergence check).
    """
    spec = law_spec(model.data)
    generator = generator if generator is not None else model.generator
    history = torch.zeros(math.ceil(steps / log_every), model.cfg.n_inst, dtype=torch.float32)
    on_log = on_log or (lambda losses, step, rows: None)
    lrs = lr_per_step.to(torch.float32).contiguous()
    args = (model, spec, steps, batch_size, lrs, float(weight_decay), log_every, generator, history)
    with torch.no_grad():
        W, b = _train_kernel(*args, on_log, kernel, progress) if kernel else _train_eager(*args, on_log, progress)
        model.W.copy_(W)
        model.b_final.copy_(b)
    return history


def _logged(step: int, steps: int, log_every: int) -> bool:  # every log_every-th step, and the last
    return (step + 1) % log_every == 0 or step == steps - 1


def _train_kernel(model, spec: LawSpec, steps, batch_size, lrs, weight_decay, log_every, generator, history, on_log,
                  kernel: native.Kernel, progress: bool) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """All instances at once on kernel.c, `LOG_BLOCK` steps per call; returns the trained W and b."""
    state = _adam_state(model)
    importance, params = model.importance.contiguous(), spec.params.contiguous()
    rng = kernel.seed(model.cfg.n_inst, _key(generator))
    everyone, first = slice(0, model.cfg.n_inst), torch.zeros(1, model.cfg.n_inst, dtype=torch.float32)
    # Step 0 alone, its loss logged apart (the divergence check's start), then blocks of steps.
    kernel.train(state, importance, params, spec.value_range, rng, lrs, weight_decay, range(0, 1), batch_size, 1, first)
    on_log(first[0], 0, everyone)
    if _logged(0, steps, log_every):
        history[0] = first[0]
    with progress_bar(total=steps, disable=not progress, desc=f"{type(model).__name__} (fast, C)") as bar:
        for start in range(0, steps, LOG_BLOCK):
            stop = min(steps, start + LOG_BLOCK)
            kernel.train(state, importance, params, spec.value_range, rng, lrs, weight_decay,
                         range(max(1, start), stop), batch_size, log_every, history)  # fmt: skip
            for s in filter(lambda s: s > 0 and _logged(s, steps, log_every), range(start, stop)):
                on_log(history[s // log_every], s, everyone)
            bar.update(stop - start)
            bar.set_postfix(mean_loss=f"{history[(stop - 1) // log_every].mean().item():.3g}", refresh=False)
    return state[:2]


def _adam_state(model) -> tuple[torch.Tensor, ...]:
    """Contiguous copies of the model's W and b, and zero Adam moments: `(W, b, m_W, v_W, m_b, v_b)`."""
    W, b = (t.detach().clone(memory_format=torch.contiguous_format) for t in (model.W, model.b_final))
    return W, b, *(torch.zeros_like(t) for t in (W, W, b, b))


def _padded(t: torch.Tensor, n: int) -> torch.Tensor:
    """`t: (inst, ...)` extended to `n` rows by repeating its last row."""
    return t[torch.arange(n).clamp(max=t.shape[0] - 1)].contiguous()


def _train_eager(model, spec: LawSpec, steps, batch_size, lrs, weight_decay, log_every, generator, history, on_log,
                 progress: bool) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """Equal chunks of instances (the last padded with copies) on `PlaneChunk`, each for all steps."""
    n_inst = model.cfg.n_inst
    n_chunks = math.ceil(n_inst / max(1, min(MAX_CHUNK, CHUNK_ELEMENTS // (batch_size * spec.n_uniforms))))
    chunk = math.ceil(n_inst / n_chunks)
    W, b = _padded(model.W.detach(), chunk * n_chunks), _padded(model.b_final.detach(), chunk * n_chunks)
    importance, params = _padded(model.importance, chunk * n_chunks), _padded(spec.params, chunk * n_chunks)
    step_numbers, decay = torch.arange(1, steps + 1), torch.tensor(weight_decay)
    draw = (batch_size, chunk, spec.n_uniforms)
    plain = contextlib.nullcontext(iter(lambda: torch.rand(draw, generator=generator), None))
    uniforms = prefetched(draw, steps * n_chunks, generator) if worth_prefetching(draw, W.device) else plain
    bar = progress_bar(total=steps * n_chunks, disable=not progress, desc=f"{type(model).__name__} (fast)")
    with bar, uniforms as batches:
        for c in range(n_chunks):
            rows = slice(c * chunk, (c + 1) * chunk)
            trained = slice(rows.start, min(rows.stop, n_inst))  # without the padding
            plane = PlaneChunk(W[rows], b[rows], importance[rows], params[rows], spec.transform, spec.n_uniforms,
                               batch_size)  # fmt: skip
            for s, u in zip(range(steps), batches):
                logged = _logged(s, steps, log_every)
                losses = plane.step(u, lrs[s], step_numbers[s], decay, with_loss=logged or s == 0)
                if logged:
                    history[s // log_every, trained] = losses[: trained.stop - trained.start]
                if logged or s == 0:
                    on_log(losses[: trained.stop - trained.start], s, trained)
                if (s + 1) % LOG_BLOCK == 0 or s == steps - 1:
                    bar.update((s + 1) - LOG_BLOCK * (s // LOG_BLOCK))
            plane.write_to(W[rows], b[rows])
            bar.set_postfix(mean_loss=f"{history[-1, : trained.stop].mean().item():.3g}", refresh=False)
    return W[:n_inst], b[:n_inst]


@torch.no_grad()
def evaluate_fast(model, n_samples: int, kernel: native.Kernel, generator: torch.Generator | None = None):
    """The per-instance loss `(inst,)` of a covered model on `n_samples` fresh samples per instance, on
    `kernel` with its key drawn from `generator` (default: the model's own): the loss of one step at
    learning rate 0 of a copy of the model, on a batch of `n_samples`."""
    spec, loss = law_spec(model.data), torch.empty(1, model.cfg.n_inst, dtype=torch.float32)
    rng = kernel.seed(model.cfg.n_inst, _key(generator if generator is not None else model.generator))
    kernel.train(_adam_state(model), model.importance.contiguous(), spec.params.contiguous(), spec.value_range, rng,
                 torch.zeros(1, dtype=torch.float32), 0.0, range(1), n_samples, 1, loss)  # fmt: skip
    return loss[0]
