"""The book's notebooks run once each, in parallel, and the build takes their outputs from the cache;
the instructor's grading command (`pytest --nbval solutions`) still works with this configuration."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import yaml
from jupyter_cache import get_cache
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from utils.execute_book import CACHE, execute_into_cache, toc_notebooks

ROOT = Path(__file__).resolve().parent.parent
KERNEL = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}

pytestmark = pytest.mark.slow


def chapter(name: str, code: str) -> nbformat.NotebookNode:
    return new_notebook(cells=[new_markdown_cell(f"# {name}"), new_code_cell(code)], metadata={"kernelspec": KERNEL})


def waits_for(other: str) -> str:
    """Code that logs each run, then waits (up to a minute) until notebook `other` has started too."""
    return (
        "import time\nfrom pathlib import Path\n"
        "with open('runs.log', 'a') as log:\n    log.write(Path.cwd().name + '\\n')\n"
        "Path('started').touch()\n"
        "deadline = time.time() + 60\n"
        f"while not Path('../{other}/started').exists() and time.time() < deadline:\n"
        "    time.sleep(0.1)\n"
        f"assert Path('../{other}/started').exists(), 'the other notebook never ran at the same time'\n"
        "print('ran alongside the other')"
    )


def write_book(root: Path, chapters: dict[str, nbformat.NotebookNode]) -> None:
    """A book at `root` with the project's `_config.yml` minus its local extensions, one folder per chapter."""
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    config["sphinx"].pop("local_extensions")
    config.pop("bibtex_bibfiles")
    config["sphinx"]["config"] = {k: v for k, v in config["sphinx"]["config"].items() if not k.startswith("bibtex")}
    (root / "_config.yml").write_text(yaml.safe_dump(config))
    toc = {"format": "jb-book", "root": "intro", "parts": [{"chapters": [{"file": f"{n}/chapter"} for n in chapters]}]}
    (root / "_toc.yml").write_text(yaml.safe_dump(toc))
    (root / "intro.md").write_text("# A tiny book\n")
    for name, nb in chapters.items():
        (root / name).mkdir()
        nbformat.write(nb, root / name / "chapter.ipynb")


def test_chapters_run_at_the_same_time_once_each_and_the_build_reuses_them(tmp_path):
    write_book(tmp_path, {"a": chapter("A", waits_for("b")), "b": chapter("B", waits_for("a"))})
    assert [p.parent.name for p in toc_notebooks(tmp_path)] == ["a", "b"]

    results = execute_into_cache(tmp_path, jobs=2, timeout=120)
    assert all(isinstance(seconds, float) for seconds in results.values()), results

    build = subprocess.run(
        [str(Path(sys.executable).parent / "jupyter-book"), "build", str(tmp_path), "--warningiserror"],
        capture_output=True, text=True, timeout=600,
    )
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    assert build.stdout.count("Using cached notebook") == 2, build.stdout[-3000:]
    for name in "ab":  # executed once (by execute_into_cache), not again by the build
        assert (tmp_path / name / "runs.log").read_text().split() == [name]
        assert "ran alongside the other" in (tmp_path / "_build" / "html" / name / "chapter.html").read_text()


def test_each_kernel_gets_its_share_of_the_cores(tmp_path):
    code = (
        "import os, torch\nprint('threads', os.environ['OMP_NUM_THREADS'], torch.get_num_threads())\n"
        "print('book', os.environ.get('SUPERPOSITION_BOOK_BUILD'))"  # figures render for the book
    )
    write_book(tmp_path, {"a": chapter("A", code)})
    execute_into_cache(tmp_path, jobs=os.cpu_count(), timeout=120)
    cache = get_cache(str(tmp_path / CACHE))
    (record,) = cache.list_cache_records()
    (cell,) = [cell for cell in cache.get_cache_bundle(record.pk).nb.cells if cell.cell_type == "code"]
    # as many kernels at a time as cores: one thread each
    assert "".join(output["text"] for output in cell.outputs).split() == ["threads", "1", "1", "book", "1"]


def test_a_failing_chapter_is_reported_with_its_traceback(tmp_path):
    bad = chapter("Bad", "assert 1 + 1 == 3, 'planted claim'")
    write_book(tmp_path, {"good": chapter("Good", "x = 1"), "bad": bad})
    results = execute_into_cache(tmp_path, jobs=2, timeout=120)
    assert isinstance(results[tmp_path / "good" / "chapter.ipynb"], float)
    assert "planted claim" in results[tmp_path / "bad" / "chapter.ipynb"]


def test_a_chapter_whose_kernel_dies_is_named_and_the_others_still_run(tmp_path):
    dies = chapter("Dies", "import os\nos._exit(1)")
    write_book(tmp_path, {"dies": dies, "good": chapter("Good", "x = 1")})
    results = execute_into_cache(tmp_path, jobs=1, timeout=120)
    assert "the kernel died" in results[tmp_path / "dies" / "chapter.ipynb"]
    assert isinstance(results[tmp_path / "good" / "chapter.ipynb"], float)


@pytest.mark.parametrize("claim, passes", [("1 + 1 == 2", True), ("1 + 1 == 3", False)])
def test_the_grading_command_runs_a_notebook_and_fails_on_a_false_claim(tmp_path, claim, passes):
    solutions = tmp_path / "solutions"
    solutions.mkdir()
    nbformat.write(chapter("Graded", f"assert {claim}"), solutions / "01_graded.ipynb")
    graded = subprocess.run(
        [sys.executable, "-m", "pytest", "-c", str(ROOT / "pytest.ini"), "--rootdir", str(tmp_path)]
        + ["--nbval", "solutions"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    assert (graded.returncode == 0) == passes, graded.stdout[-3000:]
    assert ("1 passed" if passes else "1 failed") in graded.stdout
