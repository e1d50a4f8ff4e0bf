"""Helpers of the fault suite: kill a stage at a chosen point, compare folders byte for byte."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TESTS = REPO / "tests"

# Prepended to every child: the child calls pause_here() at the point where
# the test wants it dead, which makes the kill land in the same place on a
# slow or a fast machine (polling for files would race the child).
_PAUSE = """
import os as _os, time as _time
def pause_here():
    open(_os.environ["FAULT_PAUSED"], "w").close()
    _time.sleep(600)
"""


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (hidden temporaries included) by relative path."""
    if not root.exists():
        return {}
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def kill_when_paused(code: str, workdir: Path, timeout: float = 240) -> None:
    """Run ``code`` in a fresh interpreter and SIGKILL it once it calls ``pause_here()``.

    Fails when the child exits or times out before pausing, showing its output.
    """
    paused = workdir / "paused"
    paused.unlink(missing_ok=True)
    env = {
        **os.environ,
        "FAULT_PAUSED": str(paused),
        "PYTHONPATH": os.pathsep.join([str(REPO), str(TESTS), os.environ.get("PYTHONPATH", "")]),
    }
    log = workdir / "child.log"
    with open(log, "wb") as output:
        child = subprocess.Popen([sys.executable, "-c", _PAUSE + code], cwd=workdir, env=env, stdout=output, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while not paused.exists() and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        if not paused.exists():
            child.kill()
            child.wait()
            pytest.fail(f"the child never reached pause_here():\n{log.read_text()[-3000:]}")
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert child.returncode == -signal.SIGKILL


def touch(path: str) -> None:
    Path(path).touch()


class TouchOnUnpickle:
    """A pickle payload: unpickling it calls :func:`touch`, so a file appearing means code ran."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return (touch, (str(self.path),))
