"""Execute the book's notebooks in parallel, into the cache the book build reads.

    python -m utils.execute_book [--jobs N]

`make book` runs this first, then `jupyter-book build`, which (with `execute_notebooks: cache` in
`_config.yml`) takes every chapter's outputs from `_build/.jupyter_cache` instead of executing the
chapters one after another. Each notebook runs once, in its own kernel, with `N` kernels at a time
(default: the number of CPU cores), from its own folder, as nbval and the book build run it. Each
kernel gets cores / N threads (OMP_NUM_THREADS): two kernels with two threads each on two cores
wait on each other (chapter 1 measured 141 s of CPU instead of 23 s). The cache is emptied first,
so a changed `utils/` is always picked up.

Exits with status 1, printing the failing cell's traceback, if any notebook raises or its kernel
dies (every chapter's claims are assertions, so this is the grading run).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml
from jupyter_cache import get_cache
from jupyter_cache.executors.utils import create_cache_bundle
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

from utils.plots.renderer import BOOK_BUILD_ENV

REPO_ROOT = Path(__file__).resolve().parent.parent
CACHE = Path("_build") / ".jupyter_cache"
"""Where myst-nb looks for the cache by default (`<build folder>/.jupyter_cache`)."""


def toc_notebooks(root: Path) -> list[Path]:
    """The notebooks listed in `root/_toc.yml`, in the book's order."""
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    files = [entry["file"] for part in toc.get("parts", []) for entry in part.get("chapters", [])]
    return [root / f"{name}.ipynb" for name in files if (root / f"{name}.ipynb").is_file()]


def execute_into_cache(root: Path, jobs: int, timeout: int = 900) -> dict[Path, float | str]:
    """Execute every notebook of the book into a fresh cache at `root/_build/.jupyter_cache`.

    Returns each notebook's wall time in seconds, or the traceback of the cell that raised.
    """
    cache_path = root / CACHE
    shutil.rmtree(cache_path, ignore_errors=True)
    cache = get_cache(str(cache_path))
    records = [cache.add_nb_to_project(str(path)) for path in toc_notebooks(root)]

    threads = str(max(1, (os.cpu_count() or 1) // jobs))
    # figures render for the book (utils.plots.renderer), as in the kernels the build itself would start
    env = {**os.environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads, BOOK_BUILD_ENV: "1"}

    def run(record) -> tuple[Path, float | str]:
        project_nb = cache.get_project_notebook(record.pk)
        cwd = str(Path(record.uri).parent)
        client = NotebookClient(
            project_nb.nb, timeout=timeout, record_timing=False, resources={"metadata": {"path": cwd}}
        )
        start = time.perf_counter()
        try:
            client.execute(env=env)
        except (CellExecutionError, CellTimeoutError) as error:
            return Path(record.uri), str(error)
        except DeadKernelError as error:  # the kernel died (out of memory, a crash): the other chapters go on
            return Path(record.uri), f"the kernel died: {error}"
        bundle = create_cache_bundle(project_nb, cwd, None, time.perf_counter() - start, None)
        cache.cache_notebook_bundle(bundle, check_validity=False, overwrite=True)
        return Path(record.uri), time.perf_counter() - start

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        return dict(pool.map(run, records))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="kernels at a time")
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error(f"--jobs must be at least 1, got {args.jobs}")
    start = time.perf_counter()
    results = execute_into_cache(REPO_ROOT, args.jobs)
    failed = {path: trace for path, trace in results.items() if isinstance(trace, str)}
    for path, outcome in results.items():
        status = "FAILED" if path in failed else f"{outcome:6.1f} s"
        print(f"{status:>9}  {path.relative_to(REPO_ROOT)}")
    elapsed = time.perf_counter() - start
    print(f"executed {len(results)} notebooks with {args.jobs} kernels at a time in {elapsed:.0f} s")
    for path, trace in failed.items():
        print(f"\n{path.relative_to(REPO_ROOT)} raised:\n{trace}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
