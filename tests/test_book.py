"""The built book in a real headless browser: every page of `_toc.yml`, offline.

Serves `_build/html` on localhost from a thread, drives Debian's `chromium` with Playwright, and
aborts (and records) every request that would leave localhost. Each page is visited once; the
tests below check what the visit recorded: no console errors, nothing fetched from elsewhere,
every plotly figure drawn, maths typeset, solution toggles open, chapters linked to their exercise
notebooks. A screenshot of each chapter lands in `_build/screenshots/`. Whether the figures' text
is readable at several window widths is checked in tests/test_book_figures.py.

Run `make book` first. Without chromium the tests are skipped, unless CI_REQUIRE_BROWSER is set
(as `.ci/run` does), in which case they fail. The browser helpers are in tests/browser.py.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sphinx_external_toc.parsing import parse_toc_yaml

from tests.browser import CHROMIUM_ARGS, chromium_or_skip, keep_local, serve

ROOT = Path(__file__).resolve().parent.parent
HTML = ROOT / "_build" / "html"
SCREENSHOTS = ROOT / "_build" / "screenshots"
CHAPTER = re.compile(r"^solutions/(?P<name>\d\d_[\w-]+)$")
TOC_PAGES = list(parse_toc_yaml(ROOT / "_toc.yml").keys())
PAGES = [*TOC_PAGES, "genindex", "search"]
CHAPTERS = [page for page in TOC_PAGES if CHAPTER.match(page)]

pytestmark = pytest.mark.browser


@dataclass
class PageVisit:
    """What a page did in the browser."""

    console_errors: list[str] = field(default_factory=list)
    left_localhost: list[str] = field(default_factory=list)
    http_errors: list[str] = field(default_factory=list)
    figures_in_html: int = 0
    figures: list[dict] = field(default_factory=list)
    maths: list[dict] = field(default_factory=list)
    toggles: list[dict] = field(default_factory=list)
    exercise_links: list[str] = field(default_factory=list)
    launch_links: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def chromium() -> str:
    return chromium_or_skip()


@pytest.fixture(scope="module")
def base_url(chromium):
    missing = [page for page in TOC_PAGES if not (HTML / f"{page}.html").is_file()]
    if missing:
        pytest.fail(f"the built book is missing {missing} in {HTML}: run `make book` first")
    with serve(HTML) as url:
        yield url


@pytest.fixture(scope="module")
def visit(chromium, base_url):
    """`visit(page)`: open the page once (later calls reuse the record) and return a `PageVisit`."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 900})

        @functools.cache
        def record(page_name: str) -> PageVisit:
            return _visit(context, base_url, page_name)

        yield record
        context.close()
        browser.close()


def _visit(context, base_url: str, page_name: str) -> PageVisit:
    result = PageVisit()
    page = context.new_page()
    keep_local(page, base_url, result.left_localhost)
    page.on("console", lambda message: message.type == "error" and result.console_errors.append(message.text))
    page.on("pageerror", lambda error: result.console_errors.append(f"uncaught: {error}"))
    page.on("response", lambda reply: reply.status >= 400 and result.http_errors.append(f"{reply.status} {reply.url}"))
    # Figures draw while the page parses; a chapter takes 5-10 s here on a quiet 2-core machine,
    # several times that on a loaded one, so allow 90 s rather than Playwright's 30.
    page.goto(base_url + f"{page_name}.html", wait_until="load", timeout=90_000)
    # MathJax typesets after load; widget managers render on load.
    page.evaluate("() => window.MathJax && MathJax.startup && MathJax.startup.promise")
    page.wait_for_timeout(300)

    result.figures_in_html = (HTML / f"{page_name}.html").read_text().count('class="plotly-graph-div"')
    result.figures = page.evaluate(
        """() => [...document.querySelectorAll('.plotly-graph-div')].map((div) => ({
            id: div.id,
            drawn: div.classList.contains('js-plotly-plot'),
            svgs: div.querySelectorAll('svg.main-svg').length,
            traces: (div._fullData || []).length,
            trace_groups: div.querySelectorAll('g.trace, g.hm, g.im, g.contour, .gl-container canvas').length,
        }))"""
    )
    result.maths = page.evaluate(
        """() => [...document.querySelectorAll('.math')].map((node) => ({
            source: node.textContent.slice(0, 80),
            typeset: node.querySelector('mjx-container') !== null,
            error: node.querySelector('mjx-merror') !== null,
        }))"""
    )
    for details in page.locator("details").all():  # folded cells, and hints folded in the prose
        summary = details.locator("xpath=./summary")
        label = summary.inner_text().strip()
        summary.click()
        opened = details.evaluate(
            """(node) => ({open: node.open, height: node.getBoundingClientRect().height
                - node.querySelector(':scope > summary').getBoundingClientRect().height})"""
        )
        result.toggles.append({"label": label, **opened})
    result.exercise_links = page.eval_on_selector_all(".exercise-notebook a", "(links) => links.map((a) => a.href)")
    result.launch_links = page.eval_on_selector_all(".dropdown-launch-buttons a", "(links) => links.map((a) => a.href)")

    if CHAPTER.match(page_name):
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.evaluate("() => window.scrollTo(0, 0)")
        page.screenshot(path=SCREENSHOTS / f"{page_name.split('/')[-1]}.png", full_page=True)
    page.close()
    return result


@pytest.mark.parametrize("page_name", PAGES)
def test_page_loads_without_console_errors(visit, page_name):
    assert visit(page_name).console_errors == []


@pytest.mark.parametrize("page_name", PAGES)
def test_nothing_is_fetched_from_another_machine(visit, page_name):
    record = visit(page_name)
    assert record.left_localhost == [], "requests that would leave the machine (aborted)"
    assert record.http_errors == [], "files the page asked for that the build does not have"


@pytest.mark.parametrize("page_name", PAGES)
def test_every_plotly_figure_draws(visit, page_name):
    record = visit(page_name)
    assert len(record.figures) >= record.figures_in_html, "figures in the page's HTML are missing from the document"
    undrawn = [f for f in record.figures if not (f["drawn"] and f["svgs"] and f["traces"] and f["trace_groups"])]
    assert undrawn == [], f"{len(undrawn)} of {len(record.figures)} figures did not draw"


@pytest.mark.parametrize("page_name", PAGES)
def test_maths_is_typeset(visit, page_name):
    maths = visit(page_name).maths
    assert [node["source"] for node in maths if not node["typeset"]] == [], "maths left as TeX source"
    assert [node["source"] for node in maths if node["error"]] == [], "maths MathJax could not parse"


@pytest.mark.parametrize("page_name", PAGES)
def test_folded_cells_open(visit, page_name):
    toggles = visit(page_name).toggles
    shut = [toggle for toggle in toggles if not (toggle["open"] and toggle["height"] > 5)]
    assert shut == [], "toggles that show nothing when clicked"


@pytest.mark.parametrize("page_name", CHAPTERS)
def test_chapter_folds_its_solutions_and_set_up(visit, page_name):
    labels = [toggle["label"] for toggle in visit(page_name).toggles]
    assert labels.count("Show set-up code") == 1, labels
    assert labels.count("Show solution") >= 1, "a chapter has exercises, each with a folded solution"


@pytest.mark.parametrize("page_name", CHAPTERS)
def test_chapter_links_its_exercise_notebook(visit, page_name):
    record = visit(page_name)
    exercise = f"exercises/{CHAPTER.match(page_name)['name']}.ipynb"
    assert (ROOT / exercise).is_file()
    links = record.exercise_links
    assert links and all(link.endswith(exercise) for link in links), links
    assert any("colab.research.google.com" in link for link in links)
    assert record.launch_links and all(exercise in link for link in record.launch_links), record.launch_links
    assert (SCREENSHOTS / f"{CHAPTER.match(page_name)['name']}.png").is_file()
