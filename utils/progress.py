"""Progress bars for the training loops: `tqdm.auto`, redrawn at most once a second.

In Jupyter every redraw is a message from the kernel. tqdm's default (ten a second) makes a long
cell send thousands while nothing reads them when a notebook runs under `pytest --nbval`, which
reads a cell's output only once the cell is done. Messages beyond the kernel's output queue can
be dropped, and when the cell's final status is among them, nbval gives up waiting ("Timeout of 5
seconds exceeded waiting for output": seen on chapter 7's 150-second training cell in two of
eight runs). Once a second keeps a three-minute cell to about 200 redraws.
"""

from __future__ import annotations

from tqdm.auto import tqdm

MIN_INTERVAL = 1.0
"""Seconds between redraws."""


def progress_bar(iterable=None, **kwargs) -> tqdm:
    """`tqdm(iterable, **kwargs)` redrawn at most every `MIN_INTERVAL` seconds."""
    return tqdm(iterable, mininterval=MIN_INTERVAL, **kwargs)
