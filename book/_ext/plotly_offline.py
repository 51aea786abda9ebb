"""Sphinx extension: plotly figures in the built book without a network connection.

At start-up it tells the notebook kernels (through an environment variable they inherit) to emit
each figure as a bare `<div>` plus its data (see `utils.plots.renderer`) and to skip progress bars.
Pages whose HTML contains a figure get one `<script>` for a local copy of plotly.js, copied from the
installed plotly package into `_static/vendor/` after the build.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import plotly

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from utils.plots.renderer import BOOK_BUILD_ENV  # noqa: E402

PLOTLY_JS = "vendor/plotly.min.js"


def _add_plotly_to_pages_with_figures(app, pagename, templatename, context, doctree) -> None:
    if "plotly-graph-div" in context.get("body", ""):
        app.add_js_file(PLOTLY_JS)


def _copy_plotly_js(app, exception) -> None:
    if exception is not None or app.builder.format != "html":
        return
    source = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    target = Path(app.outdir) / "_static" / PLOTLY_JS
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)


def setup(app):
    os.environ[BOOK_BUILD_ENV] = "1"
    os.environ["TQDM_DISABLE"] = "1"
    app.connect("html-page-context", _add_plotly_to_pages_with_figures)
    app.connect("build-finished", _copy_plotly_js)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
