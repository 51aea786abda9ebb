"""Chapter 1's exercise notebook in the client learners use: JupyterLab, in headless Chromium.

Starts JupyterLab on 127.0.0.1 (a free port, a token, its own settings and runtime folders, no
news, update check or PyPI extension manager, so it reaches no network), opens
`exercises/01_linear_mapping.ipynb`, runs all cells as a learner would on the untouched notebook,
and waits for the kernel to go idle. The tests below read what that one run left: no cell raised,
each check cell said "not done yet", every plotly figure drew, every progress bar rendered as a
widget, and no request left the machine. Screenshots land in `_build/screenshots/`. The server is
shut down (and its process ended) also when a step fails.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import pytest
from browser import CHROMIUM_ARGS, SCREENSHOTS, chromium_or_skip

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = "exercises/01_linear_mapping.ipynb"
SHOT = "jupyterlab-01_linear_mapping"
RUN_ALL_TIMEOUT_S = 1200  # chapter 1 takes about 2.5 CPU minutes; a loaded machine stretches that
PLOTLY = "application/vnd.plotly.v1+json"
WIDGET = "application/vnd.jupyter.widget-view+json"

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def lab_config(tmp: Path, port: int, token: str) -> dict:
    """JupyterLab's configuration: local only, nothing fetched from elsewhere, the app exposed to the test."""
    return {
        "ServerApp": {
            "ip": "127.0.0.1",
            "port": port,
            "port_retries": 0,
            "open_browser": False,
            "root_dir": str(ROOT),
            "allow_root": True,  # CI runs as root
            "terminals_enabled": False,
        },
        "IdentityProvider": {"token": token},
        "LabApp": {
            "news_url": None,
            "check_for_updates_class": "jupyterlab.handlers.announcements.NeverCheckForUpdate",
            "extension_manager": "readonly",
            "expose_app_in_browser": True,
            "user_settings_dir": str(tmp / "user-settings"),
            "workspaces_dir": str(tmp / "workspaces"),
        },
    }


USER_SETTINGS = {  # file (under the user settings folder): settings
    # Render every cell, not only those in view, so that every figure and bar can be checked.
    "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
    # Never ask to fetch news or check for updates (the server is configured not to either).
    "@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
    # Never write the executed notebook over the repository's.
    "@jupyterlab/docmanager-extension/plugin": {"autosave": False},
}
STUB = "raise NotImplementedError("


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def api(base: str, token: str, path: str, method: str = "GET") -> bytes:
    request = urllib.request.Request(f"{base}{path}", method=method, headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(request, timeout=10) as reply:
        return reply.read()


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A JupyterLab server of our own: yields (base url, token); shut down afterwards."""
    tmp = tmp_path_factory.mktemp("jupyterlab")
    port, token = free_port(), secrets.token_hex(16)
    (tmp / "config").mkdir()
    (tmp / "config" / "jupyter_server_config.json").write_text(json.dumps(lab_config(tmp, port, token)))
    for name, settings in USER_SETTINGS.items():
        path = tmp / "user-settings" / f"{name}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(settings))
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(tmp / "config"),  # ours only: no user configuration leaks in
        "JUPYTER_RUNTIME_DIR": str(tmp / "runtime"),
        "JUPYTER_DATA_DIR": str(tmp / "data"),
        # The kernel on one thread leaves the other core to the browser; as in tests/test_notebooks.py,
        # torch's default two threads cost chapter 1 several times the CPU time on a busy machine.
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }
    log = (tmp / "server.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 180
        while True:
            if server.poll() is not None:
                pytest.fail(f"JupyterLab exited with {server.returncode}:\n{(tmp / 'server.log').read_text()[-3000:]}")
            try:
                api(base, token, "api/status")
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"JupyterLab did not answer in 180 s:\n{(tmp / 'server.log').read_text()[-3000:]}")
                time.sleep(1)
        yield base, token, tmp / "server.log"
    finally:
        try:
            api(base, token, "api/shutdown", method="POST")  # also shuts its kernels down
            server.wait(timeout=60)
        except (OSError, subprocess.TimeoutExpired):
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait()
        log.close()


@dataclass
class LabRun:
    """What Run All on the untouched notebook left in JupyterLab."""

    cells: list[dict] = field(default_factory=list)  # code cells: execution count, outputs, what drew
    page_errors: list[str] = field(default_factory=list)
    saved_over: bool = False  # JupyterLab wrote to the repository's notebook (restored afterwards)
    left_localhost: list[str] = field(default_factory=list)
    server_log: str = ""


# A plotly output that JupyterLab's plotly renderer drew into, and an output the widget manager drew.
FIGURE = ".jp-OutputArea-output.jp-RenderedPlotly"
WIDGET_VIEW = ".jp-OutputArea-output:has(> .jupyter-widgets)"

CELLS = """() => {
    const FIGURE = 'FIGURE_SELECTOR', WIDGET_VIEW = 'WIDGET_SELECTOR';
    const panel = window.jupyterapp.shell.currentWidget;
    return panel.content.widgets.map((cell, index) => ({index, cell}))
        .filter(({cell}) => cell.model.type === 'code')
        .map(({index, cell}) => ({
            index,
            count: cell.model.executionCount,
            outputs: cell.model.outputs.toJSON().map((o) => ({
                type: o.output_type, mimes: Object.keys(o.data || {}), ename: o.ename || '', evalue: o.evalue || '',
                text: typeof o.text === 'string' ? o.text : (o.text || []).join(''),
            })),
            figures: [...cell.node.querySelectorAll(FIGURE)].map((div) => ({
                svgs: div.querySelectorAll('svg.main-svg').length,
                traces: (div._fullData || []).length,
                height: div.getBoundingClientRect().height,
            })),
            widgets: [...cell.node.querySelectorAll(WIDGET_VIEW)].map((node) => ({
                bars: [...node.querySelectorAll('.widget-hprogress .progress-bar')].map((bar) => ({
                    width: bar.style.width, success: bar.classList.contains('progress-bar-success'),
                })),
                text: node.innerText.slice(0, 200),
            })),
        }));
}""".replace("FIGURE_SELECTOR", FIGURE).replace("WIDGET_SELECTOR", WIDGET_VIEW)

FINISHED = """() => {
    const panel = window.jupyterapp.shell.currentWidget;
    const kernel = panel.sessionContext.session && panel.sessionContext.session.kernel;
    const code = panel.content.widgets.filter((cell) => cell.model.type === 'code');
    const prompts = [...panel.node.querySelectorAll('.jp-InputPrompt')].map((node) => node.textContent);
    return kernel && kernel.status === 'idle' && !prompts.some((text) => text.includes('*'))
        && code.every((cell) => cell.model.executionCount !== null);
}"""

KERNEL_READY = """() => {
    const panel = window.jupyterapp && window.jupyterapp.shell.currentWidget;
    const kernel = panel && panel.sessionContext && panel.sessionContext.session && panel.sessionContext.session.kernel;
    return Boolean(panel && panel.content && panel.content.widgets.length && kernel && kernel.status === 'idle');
}"""


@pytest.fixture(scope="module")
def run(lab) -> LabRun:
    """Open the notebook, run all cells, wait for the kernel to go idle, record what shows."""
    from playwright.sync_api import sync_playwright

    chromium = chromium_or_skip()
    base, token, server_log = lab
    record = LabRun()
    original = (ROOT / NOTEBOOK).read_bytes()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()

            def route(route):
                url = route.request.url
                if url.startswith(base) or url.startswith(("data:", "blob:")):
                    route.continue_()
                else:
                    record.left_localhost.append(url)
                    route.abort()

            page.route("**/*", route)
            page.on("pageerror", lambda error: record.page_errors.append(str(error)))
            page.goto(f"{base}lab/tree/{NOTEBOOK}?token={token}", wait_until="load", timeout=180_000)
            page.wait_for_function(KERNEL_READY, timeout=180_000, polling=500)
            page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
            page.wait_for_function(FINISHED, timeout=RUN_ALL_TIMEOUT_S * 1000, polling=2000)
            # Figures draw asynchronously after their output arrives: give them a moment.
            page.wait_for_function(
                f"() => [...document.querySelectorAll('{FIGURE}')].every((node) => node.querySelector('svg.main-svg'))",
                timeout=60_000,
                polling=500,
            )
            record.cells = page.evaluate(CELLS)
            save_screenshots(page)
        finally:
            browser.close()
            if (ROOT / NOTEBOOK).read_bytes() != original:
                (ROOT / NOTEBOOK).write_bytes(original)
                record.saved_over = True
    record.server_log = server_log.read_text()
    return record


def save_screenshots(page) -> None:
    """The notebook's first screen after Run All, then each figure and the first progress bar."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for old in SCREENSHOTS.glob(f"{SHOT}*.png"):
        old.unlink()
    page.evaluate("() => window.jupyterapp.shell.currentWidget.content.scrollToItem(0)")
    page.screenshot(path=SCREENSHOTS / f"{SHOT}.png")
    for number, figure in enumerate(page.locator(FIGURE).all(), start=1):
        figure.screenshot(path=SCREENSHOTS / f"{SHOT}-figure-{number}.png")
    bars = page.locator(WIDGET_VIEW)
    if bars.count():
        bars.first.screenshot(path=SCREENSHOTS / f"{SHOT}-progress.png")


def test_every_cell_ran_and_none_raised(run):
    assert run.cells, "the notebook showed no code cells"
    assert [cell["index"] for cell in run.cells if not cell["count"]] == [], "cells that never ran"
    raised = {
        cell["index"]: f"{o['ename']}: {o['evalue']}"
        for cell in run.cells
        for o in cell["outputs"]
        if o["type"] == "error"
    }
    assert raised == {}, "cells that raised"
    assert run.page_errors == [], "uncaught errors in JupyterLab's page"


def test_each_check_cell_says_not_done_yet(run):
    """The code cell after each stub cell shows the line; no other cell does."""
    code = [
        index
        for index, cell in enumerate(nbformat.read(ROOT / NOTEBOOK, as_version=4).cells)
        if cell.cell_type == "code"
    ]
    stubs = [
        index for index, cell in enumerate(nbformat.read(ROOT / NOTEBOOK, as_version=4).cells) if STUB in cell.source
    ]
    checks = [code[code.index(stub) + 1] for stub in stubs]
    said = [cell["index"] for cell in run.cells if any("not done yet" in o["text"] for o in cell["outputs"])]
    assert said == checks and checks


def count(cell: dict, mimetype: str) -> int:
    return sum(mimetype in output["mimes"] for output in cell["outputs"])


def test_every_plotly_figure_drew(run):
    """Each plotly output of each cell is drawn by JupyterLab's plotly renderer: axes, traces, a height."""
    assert sum(count(cell, PLOTLY) for cell in run.cells) >= 5, (
        "chapter 1 shows its data, maps and dashboards as plotly figures"
    )
    missing = {
        cell["index"]: (count(cell, PLOTLY), len(cell["figures"]))
        for cell in run.cells
        if len(cell["figures"]) != count(cell, PLOTLY)
    }
    assert missing == {}, "cells whose plotly outputs are not all plots in the page: (outputs, plots)"
    undrawn = {
        cell["index"]: figure
        for cell in run.cells
        for figure in cell["figures"]
        if not (figure["svgs"] and figure["traces"] and figure["height"] > 100)
    }
    assert undrawn == {}, "figures that did not draw"


def test_every_progress_bar_rendered_as_a_widget(run):
    """Each widget output (the training loops' tqdm bars) is drawn by the widget manager, not shown as text,
    and its bar ran to the end."""
    assert sum(count(cell, WIDGET) for cell in run.cells) >= 4, "chapter 1's four experiments train with progress bars"
    missing = {
        cell["index"]: (count(cell, WIDGET), len(cell["widgets"]))
        for cell in run.cells
        if len(cell["widgets"]) != count(cell, WIDGET)
    }
    assert missing == {}, "cells whose widget outputs are not all widgets in the page: (outputs, widgets)"
    unfinished = [
        (cell["index"], widget)
        for cell in run.cells
        for widget in cell["widgets"]
        if not (len(widget["bars"]) == 1 and widget["bars"][0]["success"] and widget["bars"][0]["width"] == "100%")
    ]
    assert unfinished == [], "widgets that are not one finished progress bar: (cell, widget)"


def test_the_repository_notebook_is_left_as_it_was(run):
    assert not run.saved_over, f"JupyterLab saved over {NOTEBOOK} (restored)"


def test_nothing_leaves_the_machine(run):
    assert run.left_localhost == [], "requests from the page to elsewhere (aborted)"
    # The server's own fetches (news feed, update check, PyPI) are off by configuration: check that
    # JupyterLab took every option we set (a misspelt one is only a warning in its log).
    assert "not recognized" not in run.server_log, run.server_log
    assert "Extension Manager is 'readonly'" in run.server_log, "the PyPI extension manager queries pypi.org"
