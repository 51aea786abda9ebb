"""Generate the exercise notebooks from the solution notebooks.

    python -m utils.exercises          # normalise solutions/*.ipynb, write exercises/*.ipynb
    python -m utils.exercises --check  # exit 1 if anything is out of date (writes nothing)

Conventions in a solution notebook:

- Code between `### BEGIN SOLUTION: <what to implement>` and `### END SOLUTION` becomes
  `raise NotImplementedError("<what to implement>")` at the marker's indentation. The message is
  required: it is what the learner reads when they run the stub. A comment line that looks like a
  marker but is not exactly one (`## BEGIN SOLUTION`, `### begin solution`, `###BEGIN SOLUTION`) is
  an error naming the file, cell and line: it would copy the solution into the exercise.
- A cell tagged `solution` (an answer, a worked discussion) is left out of the exercises.
- In markdown cells, citations (``{cite:p}`key` ``, ``{cite:t}`key` ``) become author-year links to the
  cited work, from `book/references.bib` (`utils.myst`); other MyST markup is an error, since Jupyter
  would show it raw.
- Outputs, execution counts and editor metadata are stripped from both notebooks; only cell tags
  and a fixed kernelspec remain, so a notebook's text changes only when its content does.
"""

from __future__ import annotations

import argparse
import copy
import re
import sys
from pathlib import Path

import nbformat

from utils.myst import MystError, Work, plain_markdown, read_bibliography

BEGIN = re.compile(r"^(?P<indent>[ \t]*)### BEGIN SOLUTION(?::[ \t]*(?P<message>.*?))?[ \t]*$")
END = re.compile(r"^[ \t]*### END SOLUTION[ \t]*$")
# Any comment line that starts like a marker (any number of #s, any case or spacing): if it is not exactly
# BEGIN or END, it is a typo that would copy the solution into the exercise.
MARKER_LIKE = re.compile(r"^[ \t]*#+[ \t]*(?:BEGIN|END)[ \t_-]*SOLUTION", re.IGNORECASE)
SOLUTION_TAG = "solution"
KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
REPO_ROOT = Path(__file__).resolve().parent.parent
BIBLIOGRAPHY = Path("book/references.bib")


class ExerciseFormatError(ValueError):
    """A solution notebook breaks the marker conventions."""


def stub_source(source: str, where: str) -> str:
    """`source` with every solution block replaced by a `raise NotImplementedError(message)` stub."""
    out, inside = [], False
    for number, line in enumerate(source.split("\n"), start=1):
        begin = BEGIN.match(line)
        if begin:
            if inside:
                raise ExerciseFormatError(f"{where}, line {number}: BEGIN SOLUTION inside another solution block")
            if not begin["message"]:
                raise ExerciseFormatError(
                    f"{where}, line {number}: write what to implement after the marker, "
                    "as `### BEGIN SOLUTION: compute ...`"
                )
            out.append(f"{begin['indent']}raise NotImplementedError({begin['message']!r})")
            inside = True
        elif END.match(line):
            if not inside:
                raise ExerciseFormatError(f"{where}, line {number}: END SOLUTION without a BEGIN SOLUTION")
            inside = False
        elif MARKER_LIKE.match(line):
            raise ExerciseFormatError(
                f"{where}, line {number}: {line.strip()!r} looks like a solution marker but is not one; write exactly "
                "`### BEGIN SOLUTION: <what to implement>` or `### END SOLUTION`"
            )
        elif not inside:
            out.append(line)
    if inside:
        raise ExerciseFormatError(f"{where}: a BEGIN SOLUTION block is never closed with ### END SOLUTION")
    return "\n".join(out)


def markdown_for_learners(source: str, bibliography: dict[str, Work], where: str) -> str:
    """The markdown cell `source` as Jupyter should show it: citations as links, no MyST markup."""
    try:
        return plain_markdown(source, bibliography)
    except MystError as error:
        raise ExerciseFormatError(f"{where}, {error}") from None


def bibliography_of(root: Path) -> dict[str, Work]:
    """The works that the book under `root` can cite (none where it has no bibliography)."""
    path = root / BIBLIOGRAPHY
    return read_bibliography(path) if path.is_file() else {}


def normalise(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A copy of `nb` without outputs, execution counts or metadata other than cell tags."""
    nb = copy.deepcopy(nb)
    nb.metadata = nbformat.from_dict({"kernelspec": KERNELSPEC, "language_info": {"name": "python"}})
    nb.nbformat, nb.nbformat_minor = 4, 5
    for cell in nb.cells:
        tags = cell.metadata.get("tags", [])
        cell.metadata = nbformat.from_dict({"tags": tags} if tags else {})
        cell.pop("attachments", None)
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    return nb


def make_exercise(
    solution: nbformat.NotebookNode, name: str, bibliography: dict[str, Work] | None = None
) -> nbformat.NotebookNode:
    """The exercise notebook for the solution notebook `solution` (file name `name`), citing from `bibliography`."""
    exercise = normalise(solution)
    cells = []
    for index, cell in enumerate(exercise.cells):
        if SOLUTION_TAG in cell.metadata.get("tags", []):
            continue
        if cell.cell_type == "code":
            cell.source = stub_source(cell.source, f"{name}, cell {index}")
        elif cell.cell_type == "markdown":
            cell.source = markdown_for_learners(cell.source, bibliography or {}, f"{name}, cell {index}")
        cells.append(cell)
    note = nbformat.v4.new_markdown_cell(
        f"*Exercise version of `solutions/{name}`, generated by `python -m utils.exercises`. "
        "Fill in each stub that raises `NotImplementedError`, then run the check cell below it.*",
        id="exercise-note",
    )
    at = 1 if cells and cells[0].cell_type == "markdown" and cells[0].source.startswith("# ") else 0
    exercise.cells = [*cells[:at], note, *cells[at:]]
    return exercise


def render(nb: nbformat.NotebookNode) -> str:
    """The notebook's file text (validated, deterministic)."""
    nbformat.validate(nb)
    return nbformat.writes(nb) + "\n"


def expected_files(root: Path) -> dict[Path, str]:
    """Every notebook path under `root` that the generator owns, with the text it should hold."""
    files, bibliography = {}, bibliography_of(root)
    for path in sorted((root / "solutions").glob("*.ipynb")):
        solution = nbformat.read(path, as_version=4)
        files[path] = render(normalise(solution))
        files[root / "exercises" / path.name] = render(make_exercise(solution, path.name, bibliography))
    return files


def out_of_date(root: Path) -> list[str]:
    """Relative paths whose text differs from what the generator would write, plus stray exercises."""
    expected = expected_files(root)
    stale = [
        str(path.relative_to(root))
        for path, text in expected.items()
        if not path.exists() or path.read_text(encoding="utf-8") != text
    ]
    stale += [
        f"{path.relative_to(root)} (no solution notebook)"
        for path in sorted((root / "exercises").glob("*.ipynb"))
        if path not in expected
    ]
    return stale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="fail if any notebook is out of date; write nothing")
    parser.add_argument("--root", type=Path, default=REPO_ROOT, help="repository root (default: this checkout)")
    args = parser.parse_args(argv)
    if not any((args.root / "solutions").glob("*.ipynb")):
        print(
            f"error: no solution notebooks in {args.root / 'solutions'}: nothing to generate or check", file=sys.stderr
        )
        return 2
    try:
        if args.check:
            stale = out_of_date(args.root)
            for path in stale:
                print(f"out of date: {path}")
            if stale:
                print("run `python -m utils.exercises` to regenerate", file=sys.stderr)
            return 1 if stale else 0
        (args.root / "exercises").mkdir(exist_ok=True)
        for path, text in expected_files(args.root).items():
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                path.write_text(text, encoding="utf-8")
                print(f"wrote {path.relative_to(args.root)}")
        return 0
    except ExerciseFormatError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
