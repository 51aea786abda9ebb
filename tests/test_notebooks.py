"""Notebook conventions, and the exercise notebooks run with errors only at their stubs."""

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from utils.exercises import BEGIN
from utils.notebook import SETUP_CELL

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS = sorted((ROOT / "solutions").glob("*.ipynb"))
EXERCISES = sorted((ROOT / "exercises").glob("*.ipynb"))


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
            assert "hide-input" in cell.metadata.get("tags", []), f"code cell {index} holds a solution but is not tagged hide-input"
            following = cells[index + 1].source if index + 1 < len(cells) else ""
            assert "checks.check_" in following, f"code cell {index} holds an exercise but the next code cell runs no check"


@pytest.mark.slow
@pytest.mark.parametrize("path", EXERCISES, ids=lambda p: p.name)
def test_exercise_notebook_fails_only_at_its_stubs(path):
    """Run the untouched exercise notebook: every error must be a NotImplementedError from a stub."""
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=900, allow_errors=True, resources={"metadata": {"path": str(path.parent)}}).execute()
    errors = [
        (index, output.ename, output.evalue)
        for index, cell in enumerate(nb.cells)
        if cell.cell_type == "code"
        for output in cell.outputs
        if output.output_type == "error"
    ]
    assert errors, "an exercise notebook with stubs should raise NotImplementedError somewhere"
    unexpected = [error for error in errors if error[1] != "NotImplementedError"]
    assert not unexpected, f"errors other than NotImplementedError: {unexpected}"
