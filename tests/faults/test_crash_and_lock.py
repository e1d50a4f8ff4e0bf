"""Crashes mid-stage and concurrent runs: nothing half-written, nothing damaged."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline.ag.reader import build_ag_index, write_index
from pipeline.ag.synth import write_synthetic_ag
from pipeline.params import SynthParams

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def _digest(root: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        h.update(str(path.relative_to(root)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def _kill_when(proc: subprocess.Popen, ready, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        if ready():
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return
        time.sleep(0.05)
    pytest.fail("the process finished before it could be killed; make the workload larger")


def test_sigkill_during_synthesis_leaves_no_dataset_and_rerun_is_identical(tmp_path):
    params = SynthParams(videos=40, seed=3, min_frames=3, max_frames=6)
    out = tmp_path / "ag"
    code = (
        "import sys; from pipeline.ag.synth import write_synthetic_ag; from pipeline.params import SynthParams; "
        "write_synthetic_ag(sys.argv[1], SynthParams(videos=40, seed=3, min_frames=3, max_frames=6), progress=False)"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, str(out)], cwd=REPO)
    staging = tmp_path / ".ag.partial" / "frames"
    _kill_when(proc, lambda: staging.is_dir() and sum(1 for _ in staging.iterdir()) >= 5)
    assert not out.exists(), "a killed synthesis must not leave a dataset where the index stage reads"
    write_synthetic_ag(out, params, progress=False)
    reference = tmp_path / "reference"
    write_synthetic_ag(reference, params, progress=False)
    assert _digest(out) == _digest(reference)
    assert not (tmp_path / ".ag.partial").exists()


def test_failed_index_rewrite_keeps_the_previous_good_index(tmp_path, monkeypatch):
    root = tmp_path / "ag"
    write_synthetic_ag(root, SynthParams(videos=10, seed=1, min_frames=3, max_frames=5), progress=False)
    index = build_ag_index(root, 0.2, 0, 16.0)
    write_index(index, tmp_path / "index")
    before = (tmp_path / "index/objects.parquet").read_bytes()

    import polars as pl

    def crash(self, *args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(pl.DataFrame, "write_parquet", crash)
    with pytest.raises(OSError):
        write_index(index, tmp_path / "index")
    assert (tmp_path / "index/objects.parquet").read_bytes() == before
    assert not [p for p in (tmp_path / "index").iterdir() if p.name.endswith(".tmp")]


@pytest.mark.slow
def test_second_dvc_repro_fails_fast_with_the_lock_message(tmp_path):
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "PYTHONPATH": str(REPO)}
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True, env=env)
    params = (clone / "params.yaml").read_text().replace("videos: 150", "videos: 40", 1)
    (clone / "params.yaml").write_text(params)
    first = subprocess.Popen(["dvc", "repro", "index"], cwd=clone, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.time() + 120
        while not (clone / ".dvc/tmp/rwlock").exists() and time.time() < deadline:
            time.sleep(0.1)
        time.sleep(1.0)
        started = time.time()
        second = subprocess.run(["dvc", "repro", "index"], cwd=clone, env=env, capture_output=True, text=True, timeout=120)
        assert second.returncode != 0
        assert "lock" in (second.stdout + second.stderr).lower()
        assert time.time() - started < 60
    finally:
        out, _ = first.communicate(timeout=600)
    assert first.returncode == 0, out
    status = subprocess.run(["dvc", "status", "index"], cwd=clone, env=env, capture_output=True, text=True)
    assert "up to date" in status.stdout.lower(), status.stdout
