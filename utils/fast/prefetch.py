"""Uniform batches drawn on a second thread, ahead of the eager fast path that uses them.

Torch's CPU generator fills a tensor one number at a time on one core, which takes as long as the rest
of a small model's step (`PERFORMANCE.md`). `prefetched` draws the batches of `torch.rand(shape,
generator=generator)` called `count` times, in that order, a few batches ahead: a run draws the same
numbers with or without it.
"""

from __future__ import annotations

import collections
import contextlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import torch

MIN_NUMBERS = 1 << 16
"""Prefetch only batches of at least this many numbers: smaller ones save too little to give up a
compute thread for."""


def worth_prefetching(shape: tuple[int, ...], device: torch.device) -> bool:
    """Whether to draw batches of `shape` on a background thread: big batches on a CPU."""
    return device.type == "cpu" and torch.Size(shape).numel() >= MIN_NUMBERS


@contextlib.contextmanager
def prefetched(shape: tuple[int, ...], count: int, generator: torch.Generator | None,
               ahead: int = 2) -> Iterator[Iterator[torch.Tensor]]:  # fmt: skip
    """An iterator over the `count` batches; each batch is valid until the next is taken.

    While the context is open, torch's intra-op threads are one fewer (at least one), leaving a core
    to the drawing thread. Left early, the generator has advanced by up to `ahead` batches more than
    were taken. An error on the drawing thread is raised where its batch is taken.
    """
    if ahead < 1:
        raise ValueError(f"ahead must be at least 1 batch, got {ahead}")
    buffers = [torch.empty(shape) for _ in range(ahead + 1)]  # batch k goes to buffers[k % (ahead + 1)]
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, threads - 1))  # restored in the `finally` below
    pool = ThreadPoolExecutor(1, thread_name_prefix="UniformPrefetch")
    draw = lambda k: pool.submit(torch.rand, shape, generator=generator, out=buffers[k % (ahead + 1)])  # noqa: E731
    pending = collections.deque(draw(k) for k in range(min(ahead, count)))

    def batches() -> Iterator[torch.Tensor]:
        for k in range(count):
            if k + ahead < count:  # into the buffer of batch k - 1, which the caller is done with
                pending.append(draw(k + ahead))
            yield pending.popleft().result()

    try:
        yield batches()
    finally:
        for future in pending:
            future.cancel()
        pool.shutdown(wait=True)
        torch.set_num_threads(threads)
