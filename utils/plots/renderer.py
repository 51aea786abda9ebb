"""How plotly figures are shown: in Jupyter, in Colab, and in the built book with no network.

The book build sets `BOOK_BUILD_ENV` (see `book/_ext/plotly_offline.py`). There each figure becomes
a `text/html` output holding only the figure's div and data; the extension loads one local copy of
plotly.js on pages that have figures. A figure never gets narrower than the minimum width its
function laid it out for (`utils.plots.layout`): on a narrower screen it scrolls sideways inside its
own box. A figure that no function laid out gets `layout.fallback` first. Elsewhere plotly's own
choice for the environment stands, except Colab, which gets its renderer.
"""

from __future__ import annotations

import os
import re
import sys

import plotly.graph_objects as go
import plotly.io as pio
from plotly.io.base_renderers import MimetypeRenderer

from utils.plots.layout import fallback, min_width

BOOK_BUILD_ENV = "SUPERPOSITION_BOOK_BUILD"
FIGURE_CONFIG = {"displaylogo": False, "responsive": True}


class BookRenderer(MimetypeRenderer):
    """Figure HTML without the plotly.js library (the page provides it); animations wait for Play.

    The figure sits in a box that scrolls sideways when the page is narrower than the figure's
    minimum width.
    """

    def to_mimebundle(self, fig_dict: dict) -> dict:
        if min_width(fig_dict) is None and not fig_dict.get("frames"):  # a figure its function did not lay out
            fig_dict = fallback(go.Figure(fig_dict)).to_dict()
        html = pio.to_html(
            fig_dict, include_plotlyjs=False, full_html=False, config=FIGURE_CONFIG, validate=False, auto_play=False
        )
        width = min_width(fig_dict)
        if width:
            box = rf'<div style="height:\1px; width:100%; min-width:{width}px;">'
            html = re.sub(r'^<div style="height:(\d+)px; width:100%;">', box, html)
        return {"text/html": f'<div class="plotly-figure" style="overflow-x:auto; overflow-y:hidden;">{html}</div>'}


def configure_plotly_renderer() -> str:
    """Choose the renderer for where this code runs; returns its name."""
    if os.environ.get(BOOK_BUILD_ENV):
        pio.renderers["book"] = BookRenderer()
        pio.renderers.default = "book"
    elif "google.colab" in sys.modules:
        pio.renderers.default = "colab"
    return pio.renderers.default
