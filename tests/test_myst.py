"""MyST citations rewritten as the author-year links that Jupyter shows; other MyST markup refused."""

import re
from pathlib import Path

import nbformat
import pytest

from utils.exercises import ExerciseFormatError, main, make_exercise
from utils.myst import MystError, Work, plain_markdown, read_bibliography

ROOT = Path(__file__).resolve().parent.parent

BIB = r"""
% a comment line, as in the book's file
@article{one2020,
  title  = {{One Author}},
  author = {H{\"a}nni, Kaarel},
  year   = {2020},
  url    = {https://example.org/one}
}
@misc{two2021,
  author = {Ada Lovelace and Babbage, Charles},
  year   = 2021,
  eprint = {2101.00001},
  archiveprefix = {arXiv}
}
@inproceedings{three2022,
  author = {Alpha, A. and Beta, B. and Gamma, C.},
  year   = {2022},
  doi    = {10.1000/xyz}
}
@misc{undated,
  author = {{OpenAI}},
  url    = {https://example.org/undated}
}
@misc{nolink2023,
  author = {Nobody, N.},
  year   = {2023}
}
"""


@pytest.fixture
def bibliography(tmp_path) -> dict[str, Work]:
    path = tmp_path / "references.bib"
    path.write_text(BIB, encoding="utf-8")
    return read_bibliography(path)


def test_bibliography_entries_read_with_decoded_names_years_and_links(bibliography):
    assert bibliography["one2020"] == Work("one2020", ("Hänni",), "2020", "https://example.org/one")
    assert bibliography["two2021"].last_names == ("Lovelace", "Babbage")
    assert bibliography["two2021"].url == "https://arxiv.org/abs/2101.00001"
    assert bibliography["three2022"].url == "https://doi.org/10.1000/xyz"
    assert bibliography["undated"].year == "n.d." and bibliography["undated"].last_names == ("OpenAI",)
    assert bibliography["nolink2023"].url is None


@pytest.mark.parametrize("source, expected", [
    ("as shown {cite:p}`one2020`.", "as shown ([Hänni, 2020](https://example.org/one))."),
    ("{cite:t}`two2021` show", "[Lovelace and Babbage (2021)](https://arxiv.org/abs/2101.00001) show"),
    ("{cite:t}`three2022`", "[Alpha et al. (2022)](https://doi.org/10.1000/xyz)"),
    ("{cite:p}`one2020, three2022`", "([Hänni, 2020](https://example.org/one); [Alpha et al., 2022](https://doi.org/10.1000/xyz))"),
    ("{cite:t}`one2020,two2021,undated`",
     "[Hänni (2020)](https://example.org/one), [Lovelace and Babbage (2021)](https://arxiv.org/abs/2101.00001)"
     " and [OpenAI (n.d.)](https://example.org/undated)"),
    ("two on a line: {cite:p}`one2020` and {cite:p}`undated`",
     "two on a line: ([Hänni, 2020](https://example.org/one)) and ([OpenAI, n.d.](https://example.org/undated))"),
])
def test_citations_become_author_year_links(bibliography, source, expected):
    assert plain_markdown(source, bibliography) == expected


def test_everything_else_is_left_alone(bibliography):
    source = "\n".join([
        r"Maths $\mathrm{ReLU}(x)$, $$W_\text{in}$$, a `code` span and a [link](https://example.org).",
        "Roles shown as code: ``{cite:p}`one2020` ``.",
        "```python",
        "{cite:p}`inside a code block`",
        "```",
        "<details><summary>Hint</summary>text</details>",
    ])
    assert plain_markdown(source, bibliography) == source


@pytest.mark.parametrize("source, message", [
    ("{cite:p}`missing2020`", "cites 'missing2020', which is not in the bibliography"),
    ("{cite:p}`one2020,missing2020`", "cites 'missing2020'"),
    ("{cite:t}`nolink2023`", "'nolink2023' in the bibliography needs an author and a url"),
    ("see {ref}`sec-intro`", "the MyST role '{ref}`sec-intro`'"),
    ("line\n{math}`x^2`", "line 2: the MyST role '{math}`x^2`'"),
    ("```{note}\nA note.\n```", "the MyST directive '```{note}'"),
    (":::{admonition} Title\ntext\n:::", "the MyST directive ':::{admonition} Title'"),
    ("(sec-intro)=\n# Intro", "the MyST target '(sec-intro)='"),
])
def test_other_myst_markup_is_an_error_naming_it(bibliography, source, message):
    with pytest.raises(MystError, match=re.escape(message)):
        plain_markdown(source, bibliography)


def test_exercise_markdown_cites_from_the_bibliography(bibliography, tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# 9. Title\n\nAs {cite:t}`one2020` found.")]
    exercise = make_exercise(nb, "09_demo.ipynb", bibliography)
    assert exercise.cells[0].source == "# 9. Title\n\nAs [Hänni (2020)](https://example.org/one) found."
    assert nb.cells[0].source.endswith("{cite:t}`one2020` found."), "the solution keeps its role for the book"
    nb.cells[0].source = "# 9. Title\n\n```{note}\nx\n```"
    with pytest.raises(ExerciseFormatError, match=r"09_demo.ipynb, cell 0, line 3: the MyST directive"):
        make_exercise(nb, "09_demo.ipynb", bibliography)


def test_generator_reads_the_bibliography_under_its_root(tmp_path, capsys):
    (tmp_path / "solutions").mkdir()
    (tmp_path / "book").mkdir()
    (tmp_path / "book" / "references.bib").write_text(BIB, encoding="utf-8")
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# 9. Title\n\nSee {cite:p}`two2021`.")]
    nbformat.write(nb, tmp_path / "solutions" / "09_demo.ipynb")
    assert main(["--root", str(tmp_path)]) == 0
    exercise = nbformat.read(tmp_path / "exercises" / "09_demo.ipynb", as_version=4)
    assert exercise.cells[0].source == "# 9. Title\n\nSee ([Lovelace and Babbage, 2021](https://arxiv.org/abs/2101.00001))."
    nb.cells[0].source = "See {cite:p}`nobody`."
    nbformat.write(nb, tmp_path / "solutions" / "09_demo.ipynb")
    assert main(["--root", str(tmp_path)]) == 2
    assert "09_demo.ipynb, cell 0, line 1: {cite:p}`nobody` cites 'nobody'" in capsys.readouterr().err


def test_every_work_in_the_book_can_be_cited_in_an_exercise():
    works = read_bibliography(ROOT / "book" / "references.bib")
    assert works
    for key, work in works.items():
        assert work.last_names and work.url and work.url.startswith("https://"), key
        assert work.year == "n.d." or (work.year.isdigit() and len(work.year) == 4), key
