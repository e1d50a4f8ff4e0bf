"""Open a page in headless Chromium on a closed network: its rendered DOM, console messages, a screenshot.

Used by the report's render test and by ``mosa report --screenshot``. The
flags keep Chromium from any network traffic of its own (updates, sync,
QUIC) and from touching the user's profile.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from pipeline.io import DataError

CLOSED_NETWORK_FLAGS = (
    "--headless",
    "--no-sandbox",  # containers and CI runners have no user namespaces for the sandbox
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--enable-logging=stderr",
    "--v=0",
)
# Chromium logs each console message (console.*, uncaught exceptions, failed loads) as INFO:CONSOLE.
CONSOLE_LINE = re.compile(r":CONSOLE(?:\(\d+\))?(?::\d+)?\] (.*)")
BINARIES = ("chromium", "chromium-browser", "google-chrome")


@dataclass(frozen=True)
class PageRender:
    dom: str  # serialised DOM after the page loaded and ran
    console: list[str]  # console messages, in order
    screenshot: Path | None


def chromium_binary() -> str | None:
    return next((found for name in BINARIES if (found := shutil.which(name))), None)


def _run(binary: str, args: list[str], url: str, timeout: float) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        command = [binary, *CLOSED_NETWORK_FLAGS, f"--user-data-dir={profile}", *args, url]
        try:
            return subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            raise DataError(f"{url}: Chromium did not finish within {timeout:.0f} s") from None


def render_page(path: str | Path, screenshot: str | Path | None = None, window: tuple[int, int] = (1280, 2400), timeout: float = 120.0) -> PageRender:
    """Load a local HTML file; optionally save a PNG screenshot of the top ``window`` pixels."""
    binary = chromium_binary()
    if binary is None:
        raise DataError("Chromium not found; install it (Debian: apt-get install chromium)")
    url = Path(path).resolve().as_uri()
    dumped = _run(binary, ["--dump-dom"], url, timeout)
    if dumped.returncode != 0:
        raise DataError(f"{path}: Chromium exited with {dumped.returncode}: {dumped.stderr.strip().splitlines()[-1:]}")
    console = [m.group(1) for line in dumped.stderr.splitlines() if (m := CONSOLE_LINE.search(line))]
    shot = None
    if screenshot is not None:
        shot = Path(screenshot).resolve()
        shot.parent.mkdir(parents=True, exist_ok=True)
        taken = _run(binary, [f"--window-size={window[0]},{window[1]}", f"--screenshot={shot}"], url, timeout)
        if taken.returncode != 0 or not shot.is_file():
            raise DataError(f"{path}: Chromium wrote no screenshot (exit {taken.returncode})")
    return PageRender(dumped.stdout, console, shot)
