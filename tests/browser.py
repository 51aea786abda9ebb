"""Helpers shared by the tests that drive a real headless Chromium (Debian's `chromium`, through
Playwright): finding the browser, serving a folder on localhost, keeping every request on the
machine, and reading the text of plotly figures (which strings collide, which are cut off).

Screenshots go to `SCREENSHOTS`. `figure_text_problems(page)` is the layout check of the book's
figures: for every plotly figure on a page, the pairs of visible SVG text elements whose boxes
overlap by more than `OVERLAP_PX` in both directions, and the text that reaches outside the
figure's own box (SVG clips it there).
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCREENSHOTS = ROOT / "_build" / "screenshots"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
OVERLAP_PX = 2
"""Two strings collide when their boxes overlap by more than this many pixels both across and down."""


def chromium_or_skip() -> str:
    """The path of `chromium`; skips the test without it, unless CI_REQUIRE_BROWSER is set (then fails)."""
    path = shutil.which("chromium")
    if path is None:
        if os.environ.get("CI_REQUIRE_BROWSER"):
            pytest.fail("CI_REQUIRE_BROWSER is set but there is no `chromium` on PATH (apt-get install chromium)")
        pytest.skip("no `chromium` on PATH (apt-get install chromium); set CI_REQUIRE_BROWSER=1 to make this an error")
    try:
        import playwright  # noqa: F401
    except ImportError:
        pytest.fail("the browser tests need the `playwright` package (in requirements.txt)")
    return path


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 (the base class's name)
        pass


@contextlib.contextmanager
def serve(directory) -> Iterator[str]:
    """Serve `directory` on 127.0.0.1 from a thread; yields the base URL (ending in "/")."""
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        thread.join()


def keep_local(page, base_url: str, left: list[str]) -> None:
    """Abort every request of `page` that would leave `base_url` (recording its URL in `left`)."""

    def route(route):
        url = route.request.url
        if url.startswith(base_url) or url.startswith("data:") or url.startswith("blob:"):
            route.continue_()
        else:
            left.append(url)
            route.abort()

    page.route("**/*", route)


FIGURE_TEXT_JS = """
([overlapPx, selector]) => {
  const shown = (node) => {
    for (let n = node; n && n.nodeType === 1; n = n.parentNode) {
      const style = getComputedStyle(n);
      if (style.display === 'none' || style.visibility === 'hidden' || parseFloat(style.opacity) === 0) return false;
    }
    return true;
  };
  return [...document.querySelectorAll(selector)].map((div, index) => {
    const svg = div.querySelector('svg.main-svg');
    const box = (svg || div).getBoundingClientRect();
    const meta = (div.layout && div.layout.meta) || {};
    const title = meta.title || (div.querySelector('.gtitle') || {textContent: ''}).textContent;
    const texts = [...div.querySelectorAll('svg text')]
      .filter((node) => node.textContent.trim() !== '' && !node.closest('.hoverlayer') && shown(node))
      .map((node) => ({text: node.textContent.trim(), rect: node.getBoundingClientRect()}))
      .filter(({rect}) => rect.width > 0 && rect.height > 0);
    const overlaps = [];
    for (let i = 0; i < texts.length; i++) {
      for (let j = i + 1; j < texts.length; j++) {
        const a = texts[i].rect, b = texts[j].rect;
        const across = Math.min(a.right, b.right) - Math.max(a.left, b.left);
        const down = Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top);
        if (across > overlapPx && down > overlapPx) {
          overlaps.push([texts[i].text, texts[j].text, Math.round(across), Math.round(down)]);
        }
      }
    }
    const clipped = texts
      .filter(({rect}) => rect.left < box.left - 1 || rect.right > box.right + 1
                       || rect.top < box.top - 1 || rect.bottom > box.bottom + 1)
      .map(({text, rect}) => [text, Math.round(rect.left - box.left), Math.round(box.right - rect.right),
                                    Math.round(rect.top - box.top), Math.round(box.bottom - rect.bottom)]);
    return {
      index: index,
      id: div.id,
      title: String(title).trim(),
      width: Math.round(box.width),
      texts: texts.length,
      overlaps: overlaps,
      clipped: clipped,
    };
  });
}
"""


def figure_text_problems(page, selector: str = ".plotly-graph-div") -> list[dict]:
    """One record per drawn plotly figure on `page` (matching `selector`), in document order:

    `index`, `id`, `title`, `width` (px), `texts` (how many visible strings), `overlaps` (pairs of
    strings whose boxes overlap by more than `OVERLAP_PX` both ways, with the overlap in px across and
    down) and `clipped` (strings reaching outside the figure's box, with their margins to its left,
    right, top and bottom edges; negative means outside).
    """
    return page.evaluate(FIGURE_TEXT_JS, [OVERLAP_PX, selector])


def describe(figure: dict) -> str:
    """A figure's problems in words, for an assertion message."""
    name = f'figure {figure["index"] + 1} "{figure["title"][:70]}" ({figure["width"]} px wide)'
    lines = [f"  {a!r} overlaps {b!r} by {x} x {y} px" for a, b, x, y in figure["overlaps"]]
    lines += [
        f"  {text!r} is cut off (left {left}, right {right}, top {top}, bottom {bottom} px inside)"
        for text, left, right, top, bottom in figure["clipped"]
    ]
    return "\n".join([name, *lines])
