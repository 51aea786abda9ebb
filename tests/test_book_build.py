"""The book build fails loudly, and a good build loads nothing from a CDN.

Each test builds a throwaway book in `tmp_path` with the project's own `_config.yml` (and so its
local Sphinx extensions) and the build command of the Makefile, then plants one fault at a time: a
notebook that raises, a broken cross-reference or link, a missing figure, an unknown citation. A
build takes 5 to 30 seconds.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import yaml
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from utils.notebook import SETUP_CELL

ROOT = Path(__file__).resolve().parent.parent
BUILD_FLAGS = ["--warningiserror", "--nitpick", "--keep-going"]
JUPYTER_BOOK = Path(sys.executable).parent / "jupyter-book"
EXTERNAL_ASSET = re.compile(r"<(?:script|link|img|iframe)\b[^>]*\b(?:src|href)=\"(?:https?:)?//", re.IGNORECASE)

pytestmark = pytest.mark.slow


def write_book(path: Path, pages: dict[str, str | nbformat.NotebookNode]) -> None:
    """A book at `path` with the project's configuration and `pages` (docname -> markdown or notebook).

    The first page is the root; the project's extensions, bibliography and `utils` are used in place.
    """
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    sphinx = config["sphinx"]
    sphinx["local_extensions"] = {name: str(ROOT / folder) for name, folder in sphinx["local_extensions"].items()}
    config["bibtex_bibfiles"] = [str(ROOT / bib) for bib in config["bibtex_bibfiles"]]
    (path / "_config.yml").write_text(yaml.safe_dump(config))
    root, *chapters = pages
    toc = {"format": "jb-book", "root": root, "chapters": [{"file": name} for name in chapters]}
    (path / "_toc.yml").write_text(yaml.safe_dump(toc))
    (path / "utils").symlink_to(ROOT / "utils")  # what the set-up cell looks for
    for docname, content in pages.items():
        target = path / docname
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str):
            target.with_suffix(".md").write_text(content)
        else:
            nbformat.write(content, target.with_suffix(".ipynb"))


def build(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(JUPYTER_BOOK), "build", str(path), *BUILD_FLAGS], capture_output=True, text=True, timeout=600
    )


def notebook(*cells) -> nbformat.NotebookNode:
    kernel = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
    return new_notebook(cells=list(cells), metadata={"kernelspec": kernel})


INTRO = "# A tiny book\n\nMaths, $p = 1 - S$, and a citation: {cite:t}`elhage2022toy`.\n"
CHAPTER = notebook(
    new_markdown_cell("# 1. A chapter\n\nWith maths: $W^\\top W$."),
    new_code_cell(SETUP_CELL),
    new_markdown_cell("## Exercise 1.1: squares"),
    new_code_cell(
        "def square(x):\n    ### BEGIN SOLUTION: multiply\n    return x * x\n    ### END SOLUTION",
        metadata={"tags": ["hide-input"]},
    ),
    new_code_cell("import plotly.graph_objects as go\n\ngo.Figure(go.Scatter(y=[square(n) for n in range(3)]))"),
    new_code_cell(
        "import ipywidgets as widgets\nfrom IPython.display import display\n\noutput = widgets.Output()\n"
        "with output:\n    display(go.Figure(go.Bar(x=[1, 2], y=[2, 1])))\n"
        'widgets.VBox([widgets.IntSlider(description="$p$"), output])'
    ),
)


def test_makefile_builds_with_these_flags():
    book_rule = re.search(r"^book:.*\n\t(.*)$", (ROOT / "Makefile").read_text(), re.MULTILINE)
    assert book_rule and book_rule.group(1).split()[-len(BUILD_FLAGS) :] == BUILD_FLAGS


def test_a_good_book_builds_with_everything_local(tmp_path):
    references = "# References\n\n```{bibliography}\n```\n"
    write_book(tmp_path, {"book/intro": INTRO, "solutions/01_tiny": CHAPTER, "book/references": references})
    (tmp_path / "exercises").mkdir()
    nbformat.write(CHAPTER, tmp_path / "exercises" / "01_tiny.ipynb")
    result = build(tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    html = tmp_path / "_build" / "html"
    names = ("book/intro", "solutions/01_tiny", "book/references")
    pages = {name: (html / f"{name}.html").read_text() for name in names}
    for name, text in pages.items():
        assert not EXTERNAL_ASSET.findall(text), f"{name} loads from another site: {EXTERNAL_ASSET.findall(text)}"
        assert "THEBE_JS_URL" not in text and "unpkg.com" not in text, f"{name} still configures thebe"
    for vendored in ("plotly.min.js", "mathjax/tex-chtml-full.js", "jupyter-widgets/embed.js"):
        assert (html / "_static" / "vendor" / vendored).is_file(), f"{vendored} was not copied into the build"

    chapter = pages["solutions/01_tiny"]
    assert "_static/vendor/plotly.min.js" in chapter and "_static/vendor/plotly.min.js" not in pages["book/intro"]
    assert "_static/vendor/mathjax/tex-chtml-full.js" in pages["book/intro"]
    assert chapter.count('class="plotly-graph-div"') == 1  # the widget's figure is in its saved state
    # Saved widget state renders with the local widget manager, bridged to MathJax 3.
    assert "application/vnd.jupyter.widget-state+json" in chapter
    assert "_static/vendor/jupyter-widgets/embed.js" in chapter
    assert "MathJax.Hub = {Queue" in chapter and "jupyter-widgets" not in pages["book/intro"]
    # Folded cells: the set-up cell and the solution, each behind its own label.
    assert re.findall(r'class="collapsed admonition-title">([^<]*)<', chapter) == ["Show set-up code", "Show solution"]
    # The chapter leads to its exercise notebook, and so do the theme's launch buttons.
    repository = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]["url"]
    assert f'href="{repository}/blob/main/exercises/01_tiny.ipynb"' in chapter
    org_repo = repository.removeprefix("https://github.com/")
    assert f'href="https://colab.research.google.com/github/{org_repo}/blob/main/exercises/01_tiny.ipynb"' in chapter
    launch_links = re.findall(r'href="(https://(?:colab\.research\.google\.com|mybinder\.org)[^"]*)"', chapter)
    assert launch_links and all("exercises/01_tiny.ipynb" in link for link in launch_links), launch_links
    # The bibliography resolves the citation.
    assert "Elhage" in pages["book/intro"] and "Toy Models of Superposition" in pages["book/references"]


def test_a_notebook_error_fails_the_build(tmp_path):
    failing = notebook(new_markdown_cell("# 1. Broken"), new_code_cell("raise RuntimeError('planted failure')"))
    write_book(tmp_path, {"book/intro": INTRO, "solutions/01_broken": failing})
    result = build(tmp_path)
    assert result.returncode != 0
    assert "planted failure" in result.stdout + result.stderr


@pytest.mark.parametrize(
    "page, message",
    [
        ("# Intro\n\nSee {ref}`a-label-nobody-defined`.\n", "undefined label: 'a-label-nobody-defined'"),
        ("# Intro\n\nSee [the next page](no_such_page.md).\n", "cross-reference target not found: 'no_such_page.md'"),
        ("# Intro\n\n![A figure](figures/missing.png)\n", "image file not readable: book/figures/missing.png"),
        ("# Intro\n\nAs shown by {cite:p}`nobody2099`.\n", 'could not find bibtex key "nobody2099"'),
    ],
    ids=["broken-ref", "broken-link", "missing-figure", "unknown-citation"],
)
def test_a_broken_reference_missing_figure_or_unknown_citation_fails_the_build(tmp_path, page, message):
    write_book(tmp_path, {"book/intro": page, "book/more": "# Another page\n"})
    result = build(tmp_path)
    assert result.returncode != 0
    assert message in result.stdout + result.stderr
