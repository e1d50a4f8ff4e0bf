"""Broken annotations and damaged caches: a one-line error naming the file or frame, nothing written.

Every case checks the three promises of the fault suite: the error (or the
recovery), no partial output where a later stage reads, and earlier good
outputs untouched. Faults the validator and the individual readers already
cover are listed in docs/failures.md.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from ag_fixtures import video, write_root
from support.tiny_detector import write_random_checkpoint, write_tiny_config
from support.training_caches import write_synthetic_caches
from trained_world import override

from faults.crash import TouchOnUnpickle, snapshot
from pipeline.ag.reader import build_ag_index, read_index, write_index
from pipeline.detector.model import load_detector
from pipeline.io import DataError
from pipeline.motion import write_motion_table
from pipeline.outputs import output_paths
from pipeline.params import Params
from pipeline.training.evaluate_stage import evaluate_mode
from pipeline.training.mode_data import open_mode
from pipeline.training.train_stage import train_mode

KEY = "BOXES.mp4/000002.png"


def index_stage(root: Path, index_dir: Path) -> None:
    """What the index stage does with a root: read, filter, split, write."""
    write_index(build_ag_index(root, 0.0, 0, 16.0), index_dir)


def truncate(path: Path) -> None:
    """Keep the first half of a file: what a full disk or a killed copy leaves."""
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def one_line(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert "\n" not in message
    return message


# ----------------------------------------------------------------- annotations


def _object_box(box):
    return lambda person_bbox, object_bbox: object_bbox[KEY][0].update({"bbox": box})


def _person_box(box):
    return lambda person_bbox, object_bbox: person_bbox[KEY].update({"bbox": np.array([box], np.float32)})


@pytest.mark.parametrize(
    "mutate, message",
    [
        (_object_box((math.nan, 50.0, 30.0, 40.0)), "'cup/glass/bottle' box .* has NaN or infinite values"),
        (_object_box((100.0, 50.0, math.inf, 40.0)), "'cup/glass/bottle' box .* has NaN or infinite values"),
        (_object_box((-40.0, 50.0, 30.0, 40.0)), "'cup/glass/bottle' box .* has negative coordinates"),
        (_person_box((10.0, math.nan, 60.0, 200.0)), "person box .* has NaN or infinite values"),
        (_person_box((10.0, -30.0, 60.0, 200.0)), "person box .* has negative coordinates"),
    ],
    ids=["object-nan", "object-inf", "object-negative", "person-nan", "person-negative"],
)
def test_nan_or_negative_box_stops_the_index_stage_naming_the_frame(tmp_path, mutate, message):
    index_dir = tmp_path / "index"
    index_stage(write_root(tmp_path / "good", *video("BOXES", [1, 2, 3]), frames=False), index_dir)
    before = snapshot(index_dir)

    person_bbox, object_bbox = video("BOXES", [1, 2, 3])
    mutate(person_bbox, object_bbox)
    bad = write_root(tmp_path / "bad", person_bbox, object_bbox, frames=False)
    with pytest.raises(DataError, match=message) as error:
        index_stage(bad, index_dir)
    message = one_line(error)
    assert message.startswith(str(bad / "annotations")) and f"frame {KEY}:" in message  # the file, then the frame
    assert "mosa validate" in str(error.value)
    assert snapshot(index_dir) == before


# ----------------------------------------------------------------- damaged caches


@pytest.fixture
def caches(tmp_path):
    """Index, ROI cache, motion table and text cache of a tiny world, and the params naming them."""
    return write_synthetic_caches(tmp_path / "caches")


def test_truncated_index_table_is_named_not_read(caches):
    frames = Path(caches.dataset.index_dir) / "frames.parquet"
    truncate(frames)
    with pytest.raises(DataError, match="not a readable Parquet file") as error:
        read_index(caches.dataset.index_dir)
    assert str(frames) in one_line(error)


def test_motion_stage_refuses_a_truncated_index_and_writes_nothing(caches):
    objects = Path(caches.dataset.index_dir) / "objects.parquet"
    truncate(objects)
    out = Path(caches.motion.out_path)
    out.unlink()
    before = snapshot(out.parent)
    with pytest.raises(DataError) as error:
        write_motion_table(caches.dataset.index_dir, caches.extract.out_dir, caches.motion)
    assert str(objects) in one_line(error)
    assert snapshot(out.parent) == before, "no motion table (or temporary file) may appear"


@pytest.mark.parametrize(
    "cache",
    ["motion", "text", "roi"],
)
def test_train_stage_refuses_a_truncated_cache_naming_it(caches, cache):
    path = {
        "motion": Path(caches.motion.out_path),
        "text": Path(caches.text.out_path),
        "roi": Path(caches.extract.out_dir) / "roi.h5",
    }[cache]
    truncate(path)
    others = snapshot(Path(caches.dataset.index_dir))
    with pytest.raises(DataError) as error:
        open_mode(caches, "predcls")
    assert str(path) in one_line(error)
    assert not Path(caches.train.out_dir).exists(), "the train stage must stop before writing anything"
    assert snapshot(Path(caches.dataset.index_dir)) == others


def test_truncated_detector_checkpoint_is_named_not_loaded(tmp_path):
    config = write_tiny_config(tmp_path / "tiny.py")
    checkpoint = write_random_checkpoint(config, tmp_path / "detector.pth")
    truncate(checkpoint)
    with pytest.raises(DataError, match="not a readable") as error:
        load_detector(config, checkpoint)
    assert str(checkpoint) in one_line(error)


# ----------------------------------------------------------------- relation-head checkpoints


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Params:
    """A relation head trained for one epoch on the tiny world (the tests copy its folder)."""
    params = write_synthetic_caches(tmp_path_factory.mktemp("trained"))
    params = override(params, "model", d_model=16, heads=2, mim_heads=2, temporal_layers=1)
    params = override(params, "train", epochs=1, batch_videos=2)
    train_mode(params, "predcls")
    return params


@pytest.fixture
def models(trained, tmp_path) -> Params:
    shutil.copytree(trained.train.out_dir, tmp_path / "models")
    return override(trained, "train", out_dir=str(tmp_path / "models"))


def evaluate(params: Params, out: Path) -> None:
    evaluate_mode(params, "predcls", output_paths("predcls", out))


def test_truncated_last_checkpoint_stops_the_rerun_naming_it(models):
    run = Path(models.train.out_dir) / "predcls"
    truncate(run / "checkpoint" / "last.pt")
    model_before = (run / "model.pt").read_bytes()
    with pytest.raises(DataError, match="unreadable checkpoint") as error:
        train_mode(override(models, "train", epochs=2), "predcls")
    assert str(run / "checkpoint" / "last.pt") in one_line(error)
    assert (run / "model.pt").read_bytes() == model_before


def test_truncated_model_stops_evaluation_and_writes_nothing(models, tmp_path):
    model = Path(models.train.out_dir) / "predcls" / "model.pt"
    truncate(model)
    with pytest.raises(DataError, match="unreadable checkpoint") as error:
        evaluate(models, tmp_path / "evaluation")
    assert str(model) in one_line(error)
    assert not (tmp_path / "evaluation").exists()


@pytest.mark.parametrize("name", ["model.pt", "checkpoint/last.pt"])
def test_relation_head_checkpoint_with_a_pickle_payload_is_refused_and_never_runs(models, tmp_path, name):
    run = Path(models.train.out_dir) / "predcls"
    marker = tmp_path / "payload-ran"
    torch.save({**torch.load(run / name, weights_only=True), "epoch": TouchOnUnpickle(marker)}, run / name)
    with pytest.raises(DataError, match="unreadable checkpoint") as error:
        if name == "model.pt":
            evaluate(models, tmp_path / "evaluation")
        else:
            train_mode(override(models, "train", epochs=2), "predcls")
    assert str(run / name) in one_line(error)
    assert not marker.exists(), "the payload ran"
    assert not (tmp_path / "evaluation").exists()
