"""Relation-head training under torchrun: two gloo ranks against one process with the same global batch.

The tiny world has 3 training videos and ``batch_videos: 2``, so each epoch
has a full step (one video per rank) and a short one (rank 1 has no video
and joins with a zero-weight loss). Dropout is off because its masks depend
on how a batch is split over ranks.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
import yaml
from support.training_caches import write_synthetic_caches

from pipeline.params import Params
from pipeline.training import head_checkpoint as checkpoint
from pipeline.training.mode_data import build_model, open_mode

# Percentage points. The validation split has 64 ground-truth triplets, so
# R@20 moves by 1.56 points per triplet; float noise may flip a near-tie
# between two pair scores, nothing more (measured difference: 0).
METRIC_TOLERANCE = 4.0
# BatchNorm in the box-mask CNN normalises over each rank's part of a step on
# CPU (SyncBatchNorm needs CUDA), so the weights differ somewhat. Measured
# ||w_2ranks - w_1process|| / ||w_1process - w_initial|| after 2 epochs: 0.18;
# with DDP's gradient averaging switched off (each rank follows its own
# videos) the same ratio is 0.72.
WEIGHT_GAP_TOLERANCE = 0.4


def override(params: Params, section: str, **values) -> Params:
    return params.model_copy(update={section: getattr(params, section).model_copy(update=values)})


@pytest.fixture(scope="module")
def caches(tmp_path_factory) -> Params:
    params = write_synthetic_caches(tmp_path_factory.mktemp("ddp") / "caches")
    params = override(
        params, "model", d_model=16, heads=2, mim_heads=2, temporal_layers=1, dropout=0.0
    )
    return override(params, "train", epochs=2, batch_videos=2)


def train(params: Params, run_dir: Path, processes: int) -> Path:
    """``mosa train predcls`` in ``run_dir``: plainly (1) or under torchrun; returns the mode's output folder."""
    run_dir.mkdir()
    out_dir = run_dir / "models"
    params = override(params, "train", out_dir=str(out_dir))
    (run_dir / "params.yaml").write_text(yaml.safe_dump(params.model_dump(mode="json")))
    command = [sys.executable, "-m", "pipeline.cli", "train", "predcls", "--params", "params.yaml"]
    if processes > 1:
        launcher = [
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc_per_node={processes}",
            "-m",
        ]
        command = [sys.executable, *launcher, *command[2:]]
    # Two ranks on a 2-core machine: one thread each avoids oversubscription (and so does the reference).
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        command, cwd=run_dir, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return out_dir / "predcls"


def validation_history(run_dir: Path) -> pl.DataFrame:
    """Per-epoch validation metrics that rank 0 logged with DVCLive."""
    plots = run_dir / "dvclive" / "predcls" / "plots" / "metrics" / "val"
    tables = [
        pl.read_csv(path, separator="\t").select("step", path.stem)
        for path in sorted(plots.glob("*.tsv"))
    ]
    history = tables[0]
    for table in tables[1:]:
        history = history.join(table, on="step")
    return history.sort("step")


def test_two_ranks_train_like_one_process_with_the_same_global_batch(caches, tmp_path):
    one = train(caches, tmp_path / "one", processes=1)
    two = train(caches, tmp_path / "two", processes=2)

    for out in (one, two):
        assert (out / "model.pt").is_file() and (out / "checkpoint" / "last.pt").is_file()
    assert not list((tmp_path / "two").rglob(".*.tmp"))
    last_one, last_two = (checkpoint.load(out / "checkpoint" / "last.pt") for out in (one, two))
    assert last_two["epoch"] == 1
    # The DDP run saves the plain module's weights, under the same names.
    assert last_two["model"].keys() == last_one["model"].keys()
    with open_mode(caches, "predcls") as data:
        model = build_model(caches, data)
    names = [name for name, _ in model.named_parameters()]
    initial = model.state_dict()

    def distance(a: dict, b: dict) -> float:
        return sum(float(((a[name] - b[name]) ** 2).sum()) for name in names) ** 0.5

    moved = distance(last_one["model"], initial)
    assert moved > 0.1  # training moved the weights
    assert distance(last_two["model"], last_one["model"]) / moved < WEIGHT_GAP_TOLERANCE

    history_one, history_two = (
        validation_history(tmp_path / "one"),
        validation_history(tmp_path / "two"),
    )
    assert history_two["step"].to_list() == [0, 1]
    assert history_two.columns == history_one.columns == ["step", "R@20", "mR@20"]
    for metric in ("R@20", "mR@20"):
        gap = (history_two[metric] - history_one[metric]).abs().max()
        assert gap <= METRIC_TOLERANCE, (
            metric,
            history_one[metric].to_list(),
            history_two[metric].to_list(),
        )
    assert last_two["best_epoch"] == last_one["best_epoch"]
