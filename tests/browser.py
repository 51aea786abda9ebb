"""What the browser tests share: Debian's chromium (found, or skipped, or a failure under CI), its
flags, and where screenshots go."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCREENSHOTS = ROOT / "_build" / "screenshots"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


def chromium_or_skip() -> str:
    """The path of `chromium`; without it the test is skipped, or fails where CI_REQUIRE_BROWSER is set."""
    path = shutil.which("chromium")
    if path is None:
        if os.environ.get("CI_REQUIRE_BROWSER"):
            pytest.fail("CI_REQUIRE_BROWSER is set but there is no `chromium` on PATH (apt-get install chromium)")
        pytest.skip("no `chromium` on PATH (apt-get install chromium); set CI_REQUIRE_BROWSER=1 to make this an error")
    try:
        import playwright  # noqa: F401
    except ImportError:
        pytest.fail("the browser tests need the `playwright` package (in requirements.txt)")
    return path
