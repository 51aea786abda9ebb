"""Every figure of the built book is readable at the window widths readers use, in a real browser.

Each chapter page is opened in headless Chromium at 1920, 1280, 800 and 420 px wide windows (the
text column, and so a figure, is about 790, 690, 740 and 390 px wide). In every plotly figure no two
strings may overlap by more than 2 px in both directions, and no string may reach outside the
figure's box (a figure wider than the column scrolls sideways inside its own box: its text must fit
that box). At 1280 px each figure is saved as a screenshot in `_build/screenshots/`.

The training dashboard is played: its caption must change from frame to frame, and every frame of it
is checked like a figure.

Run `make book` first (see tests/test_book.py for what else the browser checks).
"""

from __future__ import annotations

import functools
import re

import pytest

from tests.browser import CHROMIUM_ARGS, chromium_or_skip, describe, figure_text_problems, keep_local, serve
from tests.test_book import CHAPTER, CHAPTERS, HTML, SCREENSHOTS, TOC_PAGES

pytestmark = pytest.mark.browser
WIDTHS = (1920, 1280, 800, 420)
SCREENSHOT_WIDTH = 1280
DASHBOARD_PAGE = "solutions/01_linear_mapping"


@pytest.fixture(scope="module")
def browser():
    path = chromium_or_skip()
    missing = [page for page in TOC_PAGES if not (HTML / f"{page}.html").is_file()]
    if missing:
        pytest.fail(f"the built book is missing {missing} in {HTML}: run `make book` first")
    from playwright.sync_api import sync_playwright

    with serve(HTML) as base_url, sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        yield chromium, base_url
        chromium.close()


def open_page(browser, page_name: str, width: int):
    """A new page `width` px wide showing `page_name` with its figures drawn; returns (context, page, left)."""
    chromium, base_url = browser
    context = chromium.new_context(viewport={"width": width, "height": 900})
    page = context.new_page()
    left: list[str] = []
    keep_local(page, base_url, left)
    # a chapter takes 5-20 s to draw its figures on a loaded 2-core machine
    page.goto(base_url + f"{page_name}.html", wait_until="load", timeout=120_000)
    # figures in the page body draw while it loads; those in saved widget state (counted too) after
    expected = (HTML / f"{page_name}.html").read_text().count("plotly-graph-div")
    page.wait_for_function(
        """(expected) => { const divs = [...document.querySelectorAll('.plotly-graph-div')];
                           return divs.length >= expected && divs.every((d) => d._fullLayout); }""",
        arg=expected, timeout=60_000,
    )
    page.wait_for_timeout(300)
    return context, page, left


@pytest.fixture(scope="module")
def layouts(browser):
    """`layouts(page, width)`: the figures' text problems on that page at that window width (cached)."""

    @functools.cache
    def record(page_name: str, width: int) -> list[dict]:
        context, page, _ = open_page(browser, page_name, width)
        try:
            figures = figure_text_problems(page)
            if width == SCREENSHOT_WIDTH:
                SCREENSHOTS.mkdir(parents=True, exist_ok=True)
                # the theme's sticky header would cover the top of a figure taller than the window
                hidden = ".bd-header, .bd-header-article, .skip-link { visibility: hidden !important; }"
                page.add_style_tag(content=hidden)
                stem = CHAPTER.match(page_name)["name"]
                for old in SCREENSHOTS.glob(f"{stem}-figure-*.png"):
                    old.unlink()
                for index, div in enumerate(page.locator(".plotly-graph-div").all()):
                    div.scroll_into_view_if_needed()
                    div.screenshot(path=SCREENSHOTS / f"{stem}-figure-{index + 1:02d}.png")
            return figures
        finally:
            context.close()

    return record


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("page_name", CHAPTERS)
def test_no_figure_text_overlaps_or_is_cut_off(layouts, page_name, width):
    figures = layouts(page_name, width)
    assert figures, f"{page_name} has no plotly figure"
    bad = [figure for figure in figures if figure["overlaps"] or figure["clipped"]]
    report = "\n".join(describe(figure) for figure in bad)
    summary = f"{page_name} at a {width} px window: {len(bad)} of {len(figures)} figures have colliding or cut-off text"
    assert not bad, f"{summary}\n{report}"


@pytest.mark.parametrize("page_name", CHAPTERS)
def test_each_figure_has_a_screenshot_at_1280_px(layouts, page_name):
    figures = layouts(page_name, SCREENSHOT_WIDTH)
    stem = CHAPTER.match(page_name)["name"]
    shots = sorted(SCREENSHOTS.glob(f"{stem}-figure-*.png"))
    assert len(shots) == len(figures) and all(shot.stat().st_size > 2_000 for shot in shots)


def _dashboard(page):
    """The index of the first animated figure on `page` and its frames' names."""
    return page.evaluate(
        """() => { const divs = [...document.querySelectorAll('.plotly-graph-div')];
                   const index = divs.findIndex((d) => d._transitionData && d._transitionData._frames.length > 1);
                   return [index, index < 0 ? [] : divs[index]._transitionData._frames.map((f) => f.name)]; }"""
    )


CAPTION_JS = """(index) => { const d = document.querySelectorAll('.plotly-graph-div')[index];
    const title = (d.layout.annotations || []).find((a) => a.name === 'title');
    const current = d.querySelector('.slider-group > text.slider-label');  // the "step N" above the rail
    return [title ? title.text : '', current ? current.textContent : ''];
}"""


def test_playing_the_dashboard_changes_its_caption(browser):
    context, page, _ = open_page(browser, DASHBOARD_PAGE, SCREENSHOT_WIDTH)
    try:
        index, frames = _dashboard(page)
        assert index >= 0 and len(frames) > 5, f"{DASHBOARD_PAGE} has no animated figure"
        before = page.evaluate(CAPTION_JS, index)
        figure = page.locator(".plotly-graph-div").nth(index)
        figure.scroll_into_view_if_needed()
        figure.locator(".updatemenu-button", has_text="Play").click()
        seen = {tuple(before)}
        for _ in range(40):  # sample the caption while it plays (150 ms per frame)
            page.wait_for_timeout(100)
            seen.add(tuple(page.evaluate(CAPTION_JS, index)))
        captions = {caption for caption, _ in seen}
        labels = {label for _, label in seen}
        assert len(captions) >= 3, f"the caption did not change while playing: {captions}"
        assert len(labels) >= 3, f"the slider label did not change while playing: {labels}"
        steps = {int(re.search(r"step (\d+),", caption)[1]) for caption in captions}
        assert steps <= {int(name) for name in frames}, f"captions name steps that are not frames: {steps}"
    finally:
        context.close()


@pytest.mark.parametrize("width", (SCREENSHOT_WIDTH, 420))
def test_every_frame_of_the_dashboard_is_readable(browser, width):
    context, page, _ = open_page(browser, DASHBOARD_PAGE, width)
    try:
        index, frames = _dashboard(page)
        assert index >= 0
        problems = []
        for name in frames:
            page.evaluate(
                """([index, name]) => Plotly.animate(document.querySelectorAll('.plotly-graph-div')[index], [name],
                       {frame: {duration: 0, redraw: true}, transition: {duration: 0}, mode: 'immediate'})""",
                [index, name],
            )
            figure = figure_text_problems(page)[index]
            caption, label = page.evaluate(CAPTION_JS, index)
            if f"step {name}," not in caption or label != f"step {name}":
                problems.append(f"frame {name}: caption {caption!r}, slider label {label!r}")
            if figure["overlaps"] or figure["clipped"]:
                problems.append(f"frame {name}: " + describe(figure))
        assert not problems, "\n".join(problems)
    finally:
        context.close()
