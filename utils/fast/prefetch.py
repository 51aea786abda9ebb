"""Uniform random batches drawn ahead on a background thread, for the eager fast path on a CPU.

Torch's CPU generator fills a tensor one number at a time on one core: for a small model that takes
as long as the rest of a training step (`PERFORMANCE.md`). `UniformPrefetch` draws on a second
thread, a few batches ahead, the same numbers in the same order as `torch.rand(shape,
generator=generator)` called `count` times, so a run draws the same numbers with or without it.
"""

from __future__ import annotations

import queue
import threading

import torch

MIN_NUMBERS = 1 << 16
"""Prefetch only batches of at least this many numbers: smaller ones save too little to give up a
compute thread for."""


def worth_prefetching(shape: tuple[int, ...], device: torch.device) -> bool:
    """Whether to draw batches of `shape` on a background thread: big batches on a CPU."""
    return device.type == "cpu" and torch.Size(shape).numel() >= MIN_NUMBERS


class UniformPrefetch:
    """`count` batches `torch.rand(shape, generator=generator)`, drawn in order `ahead` batches ahead.

    Use as a context manager and call `next()` for each batch; a batch is valid until the following
    call. While the context is open, torch's intra-op threads are one fewer (at least one), leaving a
    core to the drawing thread. If the context closes before all batches were taken, the generator
    has advanced by up to `ahead` batches more than were taken.
    """

    def __init__(self, shape: tuple[int, ...], count: int, generator: torch.Generator | None, ahead: int = 2):
        if ahead < 1:
            raise ValueError(f"ahead must be at least 1 batch, got {ahead}")
        self.shape, self.count, self.generator = tuple(shape), count, generator
        self._free: queue.Queue = queue.Queue()
        self._ready: queue.Queue = queue.Queue()
        for _ in range(ahead + 1):
            self._free.put(torch.empty(self.shape))
        self._taken: torch.Tensor | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._draw, name="UniformPrefetch", daemon=True)

    def _draw(self) -> None:
        try:
            for _ in range(self.count):
                buffer = self._free.get()
                if self._stop.is_set():
                    return
                self._ready.put(torch.rand(self.shape, generator=self.generator, out=buffer))
        except BaseException as error:  # noqa: BLE001 (handed to the consumer, which raises it)
            self._ready.put(error)

    def next(self) -> torch.Tensor:
        """The next batch `shape` (it stays valid until the next call)."""
        if self._taken is not None:
            self._free.put(self._taken)
        batch = self._ready.get()
        if isinstance(batch, BaseException):
            raise RuntimeError("drawing uniforms on the background thread failed") from batch
        self._taken = batch
        return batch

    def __enter__(self) -> UniformPrefetch:
        self._threads = torch.get_num_threads()
        torch.set_num_threads(max(1, self._threads - 1))
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._free.put(None)  # wakes the drawing thread if it waits for a buffer
        self._thread.join()
        torch.set_num_threads(self._threads)
