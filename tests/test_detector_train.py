"""The train_detector stage on a tiny detector and dataset: Runner training, CocoMetric, checkpoint."""

from __future__ import annotations

import json

import polars as pl
import pytest
import torch
from pydantic import ValidationError
from support.tiny_detector import write_tiny_config, write_tiny_dataset

from pipeline.ag.reader import AGIndex, relations_from_objects, write_index
from pipeline.detector.model import load_config, load_detector
from pipeline.detector.train import (
    build_runner_config,
    coco_annotations,
    train_or_use_detector,
    write_coco_split,
)
from pipeline.io import DataError
from pipeline.params import DetectorParams, DetectorTrainParams


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    tables = write_tiny_dataset(root / "ag", root / "index", videos=3, frames_per_video=2)
    config = write_tiny_config(root / "tiny.py")
    return root, config, tables


def detector_params(root, config, **train) -> DetectorParams:
    return DetectorParams(
        config=str(config),
        work_dir=str(root / "models"),
        metrics_path=str(root / "metrics" / "detector.json"),
        train=DetectorTrainParams(iterations=2, batch_size=2, **train),
    )


def test_coco_annotations_hold_person_and_objects(tiny):
    _, config, tables = tiny
    frames = tables["frames"].filter(tables["frames"]["split"] == "train")
    coco = coco_annotations(frames, tables["objects"], load_config(config))
    assert len(coco["images"]) == frames.height
    objects = tables["objects"].filter(tables["objects"]["split"] == "train")
    assert len(coco["annotations"]) == frames.height + objects.height
    person = next(a for a in coco["annotations"] if a["category_id"] == 1 and a["image_id"] == 1)
    first = frames.sort("video", "frame_number").row(0, named=True)
    assert person["bbox"] == pytest.approx(
        [
            first["person_x1"],
            first["person_y1"],
            first["person_x2"] - first["person_x1"],
            first["person_y2"] - first["person_y1"],
        ]
    )
    # Categories in label order with AG ids: what CocoDataset needs to give label = AG index - 1.
    assert [c["id"] for c in coco["categories"]] == list(range(1, 37))


def test_schedule_scales_with_iterations(tiny, tmp_path):
    root, config, _ = tiny
    params = DetectorParams(
        config="configs/detector/faster_rcnn_r18_synth.py",
        work_dir=str(tmp_path),
        train=DetectorTrainParams(iterations=600, lr=0.01),
    )
    cfg = build_runner_config(params, root / "ag", tmp_path / "a.json", tmp_path / "b.json")
    assert cfg.train_cfg.max_iters == 600
    assert cfg.param_scheduler[1].milestones == [450]
    assert cfg.optim_wrapper.optimizer.lr == 0.01
    # the default config wraps its CocoDataset in ClassBalancedDataset: the files go to the inner one
    assert cfg.train_dataloader.dataset.type == "ClassBalancedDataset"
    assert cfg.train_dataloader.dataset.dataset.data_prefix.img == f"{root / 'ag' / 'frames'}/"
    assert cfg.train_dataloader.dataset.dataset.ann_file == str(tmp_path / "a.json")
    assert cfg.test_dataloader.dataset.ann_file == str(tmp_path / "b.json")


def test_training_writes_weights_only_checkpoint_and_coco_metrics(tiny):
    root, config, _ = tiny
    params = detector_params(root, config)
    metrics = train_or_use_detector(params, root / "ag", root / "index")
    on_disk = json.loads((root / "metrics" / "detector.json").read_text())
    assert on_disk == metrics and metrics["trained"] is True
    assert 0.0 <= metrics["bbox_mAP_50"] <= 1.0 and "bbox_mAP" in metrics
    assert metrics["train_images"] == 4 and metrics["eval_images"] == 2
    checkpoint = torch.load(root / "models" / "detector.pth", weights_only=True)
    assert checkpoint["meta"]["iterations"] == 2
    assert load_detector(config, root / "models" / "detector.pth").feature_dim == 32


def test_detector_trains_on_the_frames_of_its_train_splits(tiny, tmp_path):
    root, config, tables = tiny
    index = tmp_path / "index"
    # move the first video to val: the default (train + val) keeps all 4 frames, train alone 2
    frames, objects = (
        table.with_columns(
            pl.when(pl.col("video") == tables["frames"]["video"].min())
            .then(pl.lit("val"))
            .otherwise(pl.col("split"))
            .alias("split")
        )
        for table in (tables["frames"], tables["objects"])
    )
    write_index(AGIndex(frames, objects, relations_from_objects(objects), {}, {}), index)
    cfg = load_config(config)
    both = write_coco_split(index, DetectorTrainParams().train_splits, cfg, tmp_path / "both.json")
    train_only = write_coco_split(index, ["train"], cfg, tmp_path / "train.json")
    assert (both, train_only) == (4, 2)
    with pytest.raises(DataError, match="no frames in split val"):
        write_coco_split(root / "index", "val", cfg, tmp_path / "v.json")  # the tiny index has none


@pytest.mark.parametrize(
    "train, message",
    [
        (dict(train_splits=("train", "val"), eval_split="val"), "evaluated on its training frames"),
        (dict(train_splits=("train", "train")), "distinct splits"),
        (dict(train_splits=()), "distinct splits"),
    ],
)
def test_train_splits_must_leave_the_evaluation_split_unseen(train, message):
    with pytest.raises(ValidationError, match=message):
        DetectorTrainParams(**train)


def test_user_checkpoint_skips_training(tiny, tmp_path):
    root, config, _ = tiny
    params = detector_params(tmp_path, config).model_copy(
        update={"checkpoint": "somewhere/ag_r101.pth"}
    )
    metrics = train_or_use_detector(params, root / "ag", root / "index")
    assert metrics["trained"] is False and metrics["checkpoint"] == "somewhere/ag_r101.pth"
    assert not (tmp_path / "models" / "detector.pth").exists()
    assert json.loads((tmp_path / "metrics" / "detector.json").read_text()) == metrics
