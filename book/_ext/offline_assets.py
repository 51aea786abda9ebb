"""Sphinx extension: the book's maths and widgets load from the built site, never from a CDN.

The browser libraries live in `book/_vendor/` (see its README: versions, sources, licences) and are
copied into `_static/vendor/` of the HTML build after each build. They are deliberately not in a
`_static/` source folder: Jupyter Book adds every .js and .css found there to every page.

- MathJax 3 (the single-file `tex-chtml-full` bundle, with every TeX extension, plus its woff
  fonts) replaces Sphinx's CDN default; Sphinx loads it only on pages with maths.
- The ipywidgets HTML manager (`embed.js`, standalone: no require.js, with the woff2 icon fonts its
  stylesheet asks for) renders saved widget state; myst-nb loads it only on pages whose notebook
  saved widget state. It typesets widget labels with the MathJax 2 API (`MathJax.Hub.Queue`), which
  MathJax 3 lacks, so those pages also get a small bridge to MathJax 3's `typesetPromise`.
- Thebe ("live code" via Binder) is switched off: sphinx-thebe would put an unpkg.com URL on every
  page. Readers who want to run the code use the exercise notebooks (see `chapter_pages`).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from myst_nb.sphinx_ import NbMetadataCollector

VENDOR_SOURCE = Path(__file__).resolve().parents[1] / "_vendor"
VENDOR_TARGET = "vendor"  # inside the build's _static/
MATHJAX_JS = "mathjax/tex-chtml-full.js"  # inside VENDOR_SOURCE and VENDOR_TARGET
WIDGETS_JS = "jupyter-widgets/embed.js"


def _use_local_copies(app, config) -> None:
    missing = [path for path in (MATHJAX_JS, WIDGETS_JS) if not (VENDOR_SOURCE / path).is_file()]
    if missing:
        raise FileNotFoundError(f"vendored browser files missing from {VENDOR_SOURCE}: {missing} (see its README)")
    # Paths without a scheme are relative to _static/ for both settings.
    config.mathjax_path = f"{VENDOR_TARGET}/{MATHJAX_JS}"
    config.nb_ipywidgets_js = {f"{VENDOR_TARGET}/{WIDGETS_JS}": {}}


# Installed after the deferred MathJax script has run and before embed.js renders (on "load").
MATHJAX2_BRIDGE = """document.addEventListener("DOMContentLoaded", () => {
  if (!window.MathJax || !window.MathJax.startup || window.MathJax.Hub) return;
  window.MathJax.Hub = {Queue: (...jobs) => jobs.forEach((job) => {
    if (job[0] === "Typeset") MathJax.startup.promise.then(() => MathJax.typesetPromise([job[2]]));
  })};
});"""


def _bridge_widgets_to_mathjax3(app, pagename, templatename, context, doctree) -> None:
    if "ipywidgets_state" in NbMetadataCollector.get_js_files(app.env, pagename):
        app.add_js_file(None, body=MATHJAX2_BRIDGE)


def _switch_off_thebe(app) -> None:
    """Drop sphinx-thebe's page scripts and config blocks (its stylesheet is local and stays)."""
    for listeners in app.events.listeners.values():
        for listener in list(listeners):
            handler = listener.handler
            if getattr(handler, "__module__", "") == "sphinx_thebe" and handler.__name__ in (
                "init_thebe_core",
                "update_thebe_context",
            ):
                app.disconnect(listener.id)


def _copy_vendored_files(app, exception) -> None:
    if exception is not None or app.builder.format != "html":
        return
    target = Path(app.outdir) / "_static" / VENDOR_TARGET
    shutil.copytree(VENDOR_SOURCE, target, dirs_exist_ok=True, ignore=shutil.ignore_patterns("README.md"))


def setup(app):
    app.connect("config-inited", _use_local_copies)
    app.connect("builder-inited", _switch_off_thebe)
    app.connect("html-page-context", _bridge_widgets_to_mathjax3)
    app.connect("build-finished", _copy_vendored_files)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
