"""The browser's text check (`tests.browser.figure_text_problems`) finds what it must: strings that
collide and strings cut off at a figure's edge, naming them, and passes a figure with neither.

Figures built to fail are drawn with the installed plotly.js on a small page; no book build needed.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import plotly
import plotly.graph_objects as go
import plotly.io as pio
import pytest
import torch
from plotly.subplots import make_subplots

from tests.browser import CHROMIUM_ARGS, chromium_or_skip, describe, figure_text_problems, keep_local, serve
from utils.plots import plot_curves
from utils.plots.renderer import BookRenderer

pytestmark = pytest.mark.browser


def colliding() -> go.Figure:
    """Two labels on one spot, and a label running off the right edge."""
    fig = go.Figure(go.Scatter(x=[0, 1], y=[0, 1]))
    fig.add_annotation(x=0.5, y=0.5, text="alpha label", showarrow=False)
    fig.add_annotation(x=0.5, y=0.5, text="beta label", showarrow=False, yshift=4)
    fig.add_annotation(
        x=1, y=1, xref="paper", yref="paper", xanchor="left", text="a label that runs off the edge", showarrow=False
    )
    fig.update_layout(height=300, margin=dict(r=20), meta=dict(title="built to collide"))
    return fig


def crowded_panels() -> go.Figure:
    """The issue's case: long subplot titles over narrow panels run into each other."""
    fig = make_subplots(rows=1, cols=3, subplot_titles=[f"hierarchical, p1 = 0.{k}" for k in range(3)])
    for col in range(1, 4):
        fig.add_trace(go.Scatter(x=[0, 1], y=[1, 0]), 1, col)
    fig.update_layout(height=300, showlegend=False)
    return fig


@pytest.fixture(scope="module")
def problems(tmp_path_factory):
    """The check's records, 420 px wide, for: a clean library figure, `colliding()` and `crowded_panels()`
    drawn as plotly draws them (not through the book's renderer, which would lay them out), and
    `crowded_panels()` through the book's renderer (`layout.fallback`)."""
    path = chromium_or_skip()
    from playwright.sync_api import sync_playwright

    root = tmp_path_factory.mktemp("page")
    shutil.copy(Path(plotly.__file__).parent / "package_data" / "plotly.min.js", root / "plotly.min.js")
    x = torch.arange(1.0, 6.0)
    book = BookRenderer()
    body = "".join([
        book.to_mimebundle(plot_curves(x, {"squares": x**2}, title="A clean figure").to_dict())["text/html"],
        *(pio.to_html(fig, include_plotlyjs=False, full_html=False) for fig in (colliding(), crowded_panels())),
        book.to_mimebundle(crowded_panels().to_dict())["text/html"],
    ])
    (root / "index.html").write_text(
        f'<!doctype html><html><head><meta charset="utf-8"><script src="plotly.min.js"></script></head>'
        f'<body><div style="width:420px">{body}</div></body></html>'
    )
    with serve(root) as base_url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 480, "height": 900})
        left: list[str] = []
        keep_local(page, base_url, left)
        page.goto(base_url + "index.html", wait_until="load")
        page.wait_for_timeout(300)
        records = figure_text_problems(page)
        browser.close()
    assert left == []
    return records


def test_a_clean_figure_passes(problems):
    clean = problems[0]
    assert clean["texts"] > 5 and clean["title"] == "A clean figure"
    assert clean["overlaps"] == [] and clean["clipped"] == []


def test_colliding_labels_and_a_label_off_the_edge_are_named(problems):
    record = problems[1]
    assert [pair[:2] for pair in record["overlaps"]] == [["alpha label", "beta label"]]
    assert [clip[0] for clip in record["clipped"]] == ["a label that runs off the edge"]
    assert record["clipped"][0][2] < 0  # its right edge is outside the figure
    message = describe(record)
    assert "built to collide" in message and "'alpha label' overlaps 'beta label'" in message
    assert "'a label that runs off the edge' is cut off" in message


def test_subplot_titles_running_into_each_other_are_found(problems):
    pairs = {tuple(pair[:2]) for pair in problems[2]["overlaps"]}
    assert ("hierarchical, p1 = 0.0", "hierarchical, p1 = 0.1") in pairs
    assert ("hierarchical, p1 = 0.1", "hierarchical, p1 = 0.2") in pairs


def test_the_book_renderer_lays_out_a_crowded_figure_no_function_laid_out(problems):
    laid_out = problems[3]
    assert laid_out["texts"] >= 3 + 3 * 4  # the three titles and the ticks of three panels
    assert laid_out["overlaps"] == [] and laid_out["clipped"] == []
