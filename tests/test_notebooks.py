"""Notebook conventions, and the exercise notebooks as a learner meets them in Jupyter.

The slow tests run every untouched exercise notebook top to bottom once (Run All, with nbclient),
two at a time, and then, in the same kernel, fill in its first exercise as a learner would: first
with the solution (the control), then with a planted mistake. Each test reads what that one run
recorded.
"""

from __future__ import annotations

import asyncio
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from utils.exercises import BEGIN, END, SOLUTION_TAG
from utils.notebook import SETUP_CELL

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS = sorted((ROOT / "solutions").glob("*.ipynb"))
EXERCISES = sorted((ROOT / "exercises").glob("*.ipynb"))

# MyST markup, written here independently of the generator (`utils.myst`): a role ({name}`text`),
# a directive (```{name}, ~~~{name}, or any ::: fence), a target ((label)=).
MYST_ROLE = re.compile(r"\{[A-Za-z][\w:.+-]*\}`")
MYST_DIRECTIVE = re.compile(r"^\s*(```+|~~~+)\s*\{|^\s*:::", re.MULTILINE)
MYST_TARGET = re.compile(r"^\s*\([^()\s]+\)=\s*$", re.MULTILINE)
CITATION = re.compile(r"\{cite:(?P<kind>[pt])\}`(?P<keys>[^`]+)`")
LINK = re.compile(r"\[(?P<text>[^\]]+)\]\((?P<url>[^)\s]+)\)")

STUB = "raise NotImplementedError("
NOT_DONE = "not done yet"
PASSED = "all checks passed"
PLOTLY = "application/vnd.plotly.v1+json"
WIDGET = "application/vnd.jupyter.widget-view+json"
PLOTS_CALL = re.compile(r"\bplots\.\w+\(")
# Two kernels at once, each on one thread, keep both of CI's 2 cores busy without oversubscribing them.
# Measured on the shared 2-core development machine: Run All of the seven chapters took 305 s CPU
# one notebook at a time, 291 s CPU in 720 s wall two at a time; with torch's default two threads
# per kernel, chapter 1 alone took 141 s CPU instead of 23 s (threads waiting on a busy core).
WORKERS = 2
ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def code_cells(path: Path) -> list:
    return [cell for cell in nbformat.read(path, as_version=4).cells if cell.cell_type == "code"]


@pytest.mark.parametrize("path", SOLUTIONS + EXERCISES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_first_code_cell_is_the_shared_setup(path):
    assert code_cells(path)[0].source == SETUP_CELL


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.name)
def test_solution_cells_are_folded_in_the_book_and_followed_by_a_check(path):
    cells = code_cells(path)
    for index, cell in enumerate(cells):
        if any(BEGIN.match(line) for line in cell.source.split("\n")):
            assert "hide-input" in cell.metadata.get("tags", []), (
                f"code cell {index} holds a solution but is not tagged hide-input"
            )
            following = cells[index + 1].source if index + 1 < len(cells) else ""
            assert "checks.check_" in following, (
                f"code cell {index} holds an exercise but the next code cell runs no check"
            )


# --- the exercises' markdown, as Jupyter shows it --------------------------------------------------


@pytest.mark.parametrize("path", EXERCISES, ids=lambda p: p.name)
def test_no_myst_markup_reaches_an_exercise_notebook(path):
    """JupyterLab and Colab show MyST roles, directives and targets as raw text."""
    found = [
        (index, match.group(0))
        for index, cell in enumerate(nbformat.read(path, as_version=4).cells)
        if cell.cell_type == "markdown"
        for pattern in (MYST_ROLE, MYST_DIRECTIVE, MYST_TARGET)
        for match in pattern.finditer(cell.source)
    ]
    assert found == [], f"MyST markup left in exercises/{path.name} (cell, markup)"


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.name)
def test_citations_read_as_author_and_year_linked_to_the_work(path):
    """Each citation of the solution's cell is, in the exercise's cell, a link to the cited work's
    address whose text holds the first author's last name and the year ("n.d." for none)."""
    from pybtex.database import parse_file
    from pybtex.richtext import Text

    entries = parse_file(str(ROOT / "book" / "references.bib")).entries
    exercise = {cell.get("id"): cell for cell in nbformat.read(ROOT / "exercises" / path.name, as_version=4).cells}
    cited = 0
    for cell in nbformat.read(path, as_version=4).cells:
        if cell.cell_type != "markdown" or SOLUTION_TAG in cell.metadata.get("tags", []):
            continue
        links = [(link["text"], link["url"]) for link in LINK.finditer(exercise[cell.get("id")].source)]
        for citation in CITATION.finditer(cell.source):
            for key in citation["keys"].split(","):
                entry = entries[key.strip()]
                url = entry.fields.get("url") or f"https://arxiv.org/abs/{entry.fields['eprint']}"
                first_author = Text.from_latex(" ".join(entry.persons["author"][0].last_names)).render_as("text")
                year = entry.fields.get("year", "n.d.")
                assert any(
                    link_url == url and text.startswith(first_author) and year in text for text, link_url in links
                ), f"cell {cell.get('id')}: no link to {url} reading '{first_author} ... {year}' for {citation[0]}"
                cited += 1
    if not cited:
        pytest.skip("this chapter cites nothing")


# --- Run All on the untouched exercise notebooks -------------------------------------------------


@dataclass(frozen=True)
class Plant:
    """A wrong answer to a chapter's first exercise: solution block number `block` of the exercise
    that `name = checks.check_...(name)` checks, replaced by `body` (other blocks keep the solution)."""

    name: str
    block: int
    body: str
    mistake: str


PLANTED = {
    "01_linear_mapping": Plant(
        "generate_data",
        0,
        "keep = torch.rand(n_points, 1) >= sparsity\nreturn torch.rand(n_points, n_features) * keep",
        "zeroes whole points instead of each entry independently",
    ),
    "02_relu_two_features": Plant(
        "MyToyModel",
        0,
        'h = torch.einsum("...if,ihf->...ih", x, self.W)\nreturn torch.einsum("...ih,ihf->...if", h, self.W) + '
        "self.b_final",
        "forgets the ReLU",
    ),
    "03_feature_geometry": Plant(
        "dimensionality", 0, "return W.norm(dim=1) ** 2", "returns ‖W_i‖² without the denominator"
    ),
    "04_hierarchical_phase_diagrams": Plant(
        "generate_hierarchical_batch",
        0,
        "n_inst = p_feature1.numel()\n"
        "parent = torch.rand(batch_size, n_inst) < p_feature1\n"
        "child = torch.rand(batch_size, n_inst) < p_feature2_given_1\n"
        "return torch.rand(batch_size, n_inst, 2) * torch.stack([parent, child], dim=-1)",
        "draws feature 2 independently of feature 1",
    ),
    "05_privileged_basis": Plant(
        "MyNeuronModel", 0, 'return torch.einsum("...if,ihf->...ih", x, self.W)', "forgets the hidden ReLU"
    ),
    "06_computation_in_superposition": Plant(
        "gains_and_leaks",
        0,
        'gain = torch.einsum("kih,khi->ki", W_out, torch.relu(W_in))\n'
        'leak = torch.einsum("kih,khi->ki", W_out, torch.relu(-W_in))\n'
        "return leak, gain",
        "returns leak and gain swapped",
    ),
    "07_asymmetric_motif": Plant(
        "leak_and_inhibition",
        0,
        "out = W2.transpose(1, 2)\n"
        "leak = W1[..., :, None] * out[..., None, :]\n"
        'pull_down = {s: torch.einsum("kmi,kmj->kij", torch.relu(s * W1), torch.relu(-out)) for s in (1, -1)}\n'
        "inhibition = torch.where((W1 > 0)[..., :, None], pull_down[1][:, None], pull_down[-1][:, None])\n"
        "return leak, inhibition",
        "drops the absolute value in the leak",
    ),
    "08_dynamics_and_robustness": Plant(
        "learning_times",
        0,
        "above = norms > threshold\nreturn torch.where(above.any(dim=0), above.long().argmax(dim=0), -1)",
        "returns the index of the record instead of the step",
    ),
    "09_sparse_autoencoders": Plant(
        "unit_columns",
        0,
        "return W_dec / W_dec.norm(dim=2, keepdim=True).clamp_min(1e-8)",
        "normalises the decoder's rows instead of its columns",
    ),
}


@dataclass
class RunAll:
    """One exercise notebook after Run All, then its planted exercise filled in, in the same kernel."""

    notebook: nbformat.NotebookNode
    filled: list = field(default_factory=list)  # [solution cell, check cell], executed
    planted: list = field(default_factory=list)  # [cell with the planted mistake, check cell], executed
    no_plant: str = ""  # why nothing was planted


def exercise_cells(nb: nbformat.NotebookNode) -> list[tuple[int, int]]:
    """(stub cell, check cell) indices: each code cell with a stub, and the code cell after it."""
    code = [index for index, cell in enumerate(nb.cells) if cell.cell_type == "code"]
    return [(index, code[code.index(index) + 1]) for index in code if STUB in nb.cells[index].source]


def with_block(solution_source: str, block: int, body: str) -> str:
    """`solution_source` with the body of its solution block number `block` replaced by `body`."""
    out, number, inside = [], -1, False
    for line in solution_source.split("\n"):
        begin = BEGIN.match(line)
        if begin:
            number += 1
            inside = number == block
            if inside:
                out.extend(begin["indent"] + body_line for body_line in body.split("\n"))
                continue
        if END.match(line) and inside:
            inside = False
            continue
        if not inside:
            out.append(line)
    assert number >= block, f"the solution cell has no block {block}"
    return "\n".join(out)


def planted_exercise(stem: str, nb: nbformat.NotebookNode) -> tuple[str, str, str] | str:
    """(solution cell, cell with the planted mistake, check cell) sources for the chapter's entry in
    PLANTED, or why there are none."""
    plant = PLANTED.get(stem)
    if plant is None:
        return f"plant a wrong answer to one exercise of {stem} in PLANTED"
    assignment = re.compile(rf"^{re.escape(plant.name)} = checks\.check_\w+\({re.escape(plant.name)}\)", re.MULTILINE)
    checked = [(stub, check) for stub, check in exercise_cells(nb) if assignment.search(nb.cells[check].source)]
    if not checked:
        return f"no check cell assigns {plant.name} in exercises/{stem}.ipynb: update PLANTED"
    stub, check = checked[0]
    solution = {
        cell.get("id"): cell for cell in nbformat.read(ROOT / "solutions" / f"{stem}.ipynb", as_version=4).cells
    }
    source = solution[nb.cells[stub].get("id")].source
    return source, with_block(source, plant.block, plant.body), nb.cells[check].source


async def run_notebook(path: Path) -> RunAll:
    """Run All on the untouched notebook; then, in the same kernel, what a learner does next: fill in
    the planted exercise with the solution and run its check cell, then with the mistake, and again."""
    nb = nbformat.read(path, as_version=4)
    plant = planted_exercise(path.stem, nb)
    client = NotebookClient(nb, timeout=900, allow_errors=True, resources={"metadata": {"path": str(path.parent)}})
    record = RunAll(nb, no_plant=plant if isinstance(plant, str) else "")
    async with client.async_setup_kernel(env={**os.environ, **ONE_THREAD}):
        for index, cell in enumerate(nb.cells):
            await client.async_execute_cell(cell, index)
        if not record.no_plant:
            solution, planted, check = plant
            client.nb = nbformat.v4.new_notebook(
                cells=[nbformat.v4.new_code_cell(s) for s in (solution, check, planted, check)]
            )
            for index, cell in enumerate(client.nb.cells):
                await client.async_execute_cell(cell, index)
            record.filled, record.planted = client.nb.cells[:2], client.nb.cells[2:]
    return record


async def run_notebooks(paths: list[Path]) -> dict[Path, RunAll | BaseException]:
    """Each notebook's record (or what stopped its run), `WORKERS` notebooks at a time."""
    slots = asyncio.Semaphore(WORKERS)

    async def run(path: Path) -> RunAll:
        async with slots:
            return await run_notebook(path)

    return dict(zip(paths, await asyncio.gather(*(run(path) for path in paths), return_exceptions=True)))


@pytest.fixture(scope="module")
def run_all(request):
    """`run_all(path)`: the notebook's `RunAll`. The first call runs every exercise notebook that a
    selected test asks about, once."""
    paths = sorted(
        {
            item.callspec.params["path"]
            for item in request.session.items
            if "run_all" in getattr(item, "fixturenames", ())
            and "path" in getattr(getattr(item, "callspec", None), "params", {})
        }
    )
    records = asyncio.run(run_notebooks(paths))

    def record(path: Path) -> RunAll:
        if isinstance(records[path], BaseException):
            raise records[path]
        return records[path]

    return record


def errors(cell) -> list[str]:
    return [f"{output.ename}: {output.evalue}" for output in cell.get("outputs", []) if output.output_type == "error"]


def text(cell) -> str:
    return "".join(output.get("text", "") for output in cell.get("outputs", []) if output.output_type == "stream")


def rich(cell, mimetype: str) -> int:
    return sum(mimetype in output.get("data", {}) for output in cell.get("outputs", []))


@pytest.mark.slow
@pytest.mark.parametrize("path", EXERCISES, ids=lambda p: p.name)
def test_run_all_reaches_the_end_and_says_not_done_yet_at_each_stub(run_all, path):
    nb = run_all(path).notebook
    raised = {index: errors(cell) for index, cell in enumerate(nb.cells) if errors(cell)}
    assert raised == {}, "cells that raised on Run All of the untouched notebook"
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert all(cell.execution_count for cell in code), "cells that did not run"
    exercises = exercise_cells(nb)
    assert exercises, "an exercise notebook has stubs"
    checked = {check: len(re.findall(r"\bchecks\.check_\w+\(", nb.cells[check].source)) for _, check in exercises}
    for stub, check in exercises:  # a check cell says it once for each function it checks
        said = text(nb.cells[check])
        assert said.count(NOT_DONE) == checked[check] and PASSED not in said, (
            f"check cell {check} (after stub cell {stub}) printed {said!r}"
        )
    assert sum(text(cell).count(NOT_DONE) for cell in code) == sum(checked.values()), (
        "a 'not done yet' line outside a check cell"
    )


@pytest.mark.slow
@pytest.mark.parametrize("path", EXERCISES, ids=lambda p: p.name)
def test_run_all_draws_every_figure(run_all, path):
    """Every cell that calls `utils.plots` shows a plotly figure (or a widget that holds one)."""
    nb = run_all(path).notebook
    figure_cells = [
        index for index, cell in enumerate(nb.cells) if cell.cell_type == "code" and PLOTS_CALL.search(cell.source)
    ]
    assert figure_cells, "every chapter draws figures"
    blank = [index for index in figure_cells if rich(nb.cells[index], PLOTLY) + rich(nb.cells[index], WIDGET) == 0]
    assert blank == [], "cells that call utils.plots but show no figure"
    drawn = sum(rich(cell, PLOTLY) for cell in nb.cells)
    shows = sum(cell.source.count(".show()") for cell in nb.cells if cell.cell_type == "code")
    assert drawn >= shows, f"{drawn} figures for {shows} calls of .show()"


@pytest.mark.slow
@pytest.mark.parametrize("path", EXERCISES, ids=lambda p: p.name)
def test_filled_exercise_passes_and_a_planted_mistake_raises_in_its_check_cell(run_all, path):
    record = run_all(path)
    assert not record.no_plant, record.no_plant
    solution, check = record.filled
    assert errors(solution) == [] and errors(check) == [], "the solution, filled in after Run All"
    assert PASSED in text(check) and NOT_DONE not in text(check), text(check)
    planted, check = record.planted
    assert errors(planted) == [], "the planted cell itself should define the learner's object"
    raised = errors(check)
    assert len(raised) == 1 and raised[0].startswith("AssertionError: "), (
        f"a first exercise that {PLANTED[path.stem].mistake} should fail its check with an AssertionError; got {raised}"
    )
    assert NOT_DONE not in text(check) and PASSED not in text(check)
