"""The extract stage as a process: SIGKILL + rerun, and torchrun with 2 ranks, both equal a 1-process run.

Every run uses one intra-op thread per process (torchrun's default): float
reductions split over a different number of threads may differ in the last
bit, so bit-identity is defined for equal per-process thread counts.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from support.tiny_detector import write_random_checkpoint, write_tiny_config, write_tiny_dataset

from pipeline.extraction import cache
from pipeline.extraction.cache import RoiCache

REPO = Path(__file__).resolve().parents[1]
STAGE = REPO / "stages" / "extract.py"


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = tmp_path_factory.mktemp("stage")
    write_tiny_dataset(root / "ag", root / "index", videos=8, frames_per_video=3)
    config = write_tiny_config(root / "tiny.py")
    write_random_checkpoint(config, root / "tiny.pth")
    return root


def write_params(root: Path, out_name: str) -> Path:
    params = {
        "dataset": {"root": str(root / "ag"), "index_dir": str(root / "index")},
        "detector": {
            "config": str(root / "tiny.py"),
            "checkpoint": str(root / "tiny.pth"),
            "postprocess": {"score_threshold": 0.026, "max_objects": 3},
        },
        "extract": {
            "out_dir": str(root / out_name),
            "metrics_path": str(root / f"{out_name}.json"),
            "videos_per_shard": 1,
            "batch_frames": 2,
            "decode_workers": 1,
        },
    }
    path = root / f"{out_name}.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


ONE_THREAD = {**os.environ, "OMP_NUM_THREADS": "1"}


def run_stage(params: Path, *launcher: str) -> subprocess.CompletedProcess:
    command = [*(launcher or [sys.executable]), str(STAGE), "--params", str(params)]
    result = subprocess.run(
        command, cwd=REPO, capture_output=True, text=True, env=ONE_THREAD, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def reference(project):
    run_stage(write_params(project, "reference"))
    return project / "reference"


def assert_same_cache(first: Path, second: Path) -> None:
    with RoiCache(first) as a, RoiCache(second) as b:
        assert a.videos() == b.videos()
        assert a.attrs.keys() == b.attrs.keys()
        for key in a.attrs:
            assert (
                np.array_equal(a.attrs[key], b.attrs[key])
                if isinstance(a.attrs[key], np.ndarray)
                else a.attrs[key] == b.attrs[key]
            ), key
        for video in a.videos():
            left, right = a.read_video(video), b.read_video(video)
            for name in cache.SCHEMA:
                np.testing.assert_array_equal(left[name], right[name], err_msg=f"{video}/{name}")


@pytest.mark.slow
def test_sigkill_then_rerun_gives_identical_cache(project, reference):
    params = write_params(project, "killed")
    parts = project / "killed.parts"
    process = subprocess.Popen(
        [sys.executable, str(STAGE), "--params", str(params)],
        cwd=REPO,
        env=ONE_THREAD,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 240
    while (
        not list(parts.glob("shard-*.json"))
        and time.monotonic() < deadline
        and process.poll() is None
    ):
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    process.wait()
    finished = sorted(parts.glob("shard-*.json"))
    assert finished and len(finished) < 8, "the kill must land mid-run"
    assert not (project / "killed" / cache.CACHE_FILE).exists()

    result = run_stage(params)
    metrics = yaml.safe_load((project / "killed.json").read_text())
    assert metrics["extracted_frames"] <= 24 - 3 * len(finished), result.stdout
    assert_same_cache(reference, project / "killed")


@pytest.mark.slow
def test_torchrun_two_ranks_equal_one_process(project, reference):
    params = write_params(project, "ranks")
    torchrun = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
    ]
    run_stage(params, *torchrun)
    metrics = yaml.safe_load((project / "ranks.json").read_text())
    assert metrics["world_size"] == 2 and metrics["extracted_frames"] == 24
    assert_same_cache(reference, project / "ranks")
