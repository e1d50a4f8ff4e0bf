"""Train the synthetic-default detector with mmengine's Runner and report its mAP.

The index tables are converted to COCO-format annotation files (category id
= AG object index, categories listed in the config's label order, which is
how mmdet's ``CocoDataset`` assigns labels), so training and evaluation are
plain mmdet: ``CocoDataset`` + the config's pipelines, ``Runner.train()``,
then ``Runner.test()`` with ``CocoMetric`` on the evaluation split.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path

import polars as pl
import torch
from tqdm import tqdm

from pipeline.ag.reader import read_index
from pipeline.detector.class_ap import per_class_ap
from pipeline.detector.model import (
    ag_label_map,
    config_class_names,
    config_sha256,
    load_config,
    register_mmdet,
)
from pipeline.detector.weights import save_checkpoint
from pipeline.io import DataError, atomic_write_json
from pipeline.outputs import TRAINED_DETECTOR_NAME, run_log_dir
from pipeline.params import DetectorParams, Params


def coco_annotations(frames: pl.DataFrame, objects: pl.DataFrame, cfg) -> dict:
    """COCO detection dict of the given frames: the person box plus every visible object."""
    ag_labels = ag_label_map(cfg)
    names = config_class_names(cfg)
    categories = [{"id": int(ag), "name": name} for ag, name in zip(ag_labels, names, strict=True)]
    known = set(ag_labels.tolist())
    frames = frames.sort(["video", "frame_number"]).with_row_index("image_id", offset=1)
    images = [
        {
            "id": row["image_id"],
            "file_name": row["frame"],
            "width": row["width"],
            "height": row["height"],
        }
        for row in frames.select(["image_id", "frame", "width", "height"]).iter_rows(named=True)
    ]
    persons = frames.select(
        "image_id",
        pl.lit(1, dtype=pl.Int16).alias("object_class"),
        pl.col("person_x1").alias("x1"),
        pl.col("person_y1").alias("y1"),
        pl.col("person_x2").alias("x2"),
        pl.col("person_y2").alias("y2"),
    )
    things = objects.join(frames.select("frame", "image_id"), on="frame", how="inner").select(
        "image_id", "object_class", "x1", "y1", "x2", "y2"
    )
    boxes = (
        pl.concat([persons, things])
        .filter(pl.col("object_class").is_in(list(known)))
        .sort(["image_id", "object_class"])
    )
    annotations = [
        {
            "id": index + 1,
            "image_id": row["image_id"],
            "category_id": int(row["object_class"]),
            "bbox": [row["x1"], row["y1"], row["x2"] - row["x1"], row["y2"] - row["y1"]],
            "area": (row["x2"] - row["x1"]) * (row["y2"] - row["y1"]),
            "iscrowd": 0,
        }
        for index, row in enumerate(boxes.iter_rows(named=True))
    ]
    return {"images": images, "annotations": annotations, "categories": categories}


def write_coco_split(index_dir: str | Path, splits: str | Sequence[str], cfg, out_path: Path) -> int:
    """Write the COCO file of one or more splits of the index; return its number of images."""
    index_dir = Path(index_dir)
    splits = [splits] if isinstance(splits, str) else list(splits)
    index = read_index(index_dir).split(*splits)
    if index.frames.height == 0:
        raise DataError(
            f"{index_dir / 'frames.parquet'}: no frames in split {' + '.join(splits)}; "
            "cannot train or evaluate the detector"
        )
    coco = coco_annotations(index.frames, index.objects, cfg)
    atomic_write_json(out_path, coco)
    return len(coco["images"])


def _scale_schedule(schedulers: list, old_iters: int, new_iters: int) -> None:
    """Move LR-step milestones proportionally when the iteration count changes (warm-up stays)."""
    for scheduler in schedulers:
        if "milestones" in scheduler:
            scheduler["milestones"] = [
                max(1, round(m * new_iters / old_iters)) for m in scheduler["milestones"]
            ]


def _progress_hook(total: int):
    from mmengine.hooks import Hook

    class TqdmHook(Hook):
        """A progress bar with iterations/s and the running loss (the Runner's logger stays quiet)."""

        priority = "VERY_LOW"

        def before_train(self, runner) -> None:
            self.bar = tqdm(total=total, unit="it", desc="train detector", dynamic_ncols=True)

        def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
            if outputs and "loss" in outputs:
                self.bar.set_postfix(loss=f"{outputs['loss'].item():.3f}")
            self.bar.update(1)

        def after_train(self, runner) -> None:
            self.bar.close()

    return TqdmHook()


def _annotated_dataset(dataset):
    """The dataset that reads the annotation file, inside any wrappers (e.g. ``ClassBalancedDataset``)."""
    while "dataset" in dataset:
        dataset = dataset.dataset
    return dataset


def build_runner_config(
    detector: DetectorParams, dataset_root: str | Path, train_json: Path, eval_json: Path
):
    """The detector config with data files, schedule and optimizer taken from params."""
    cfg = load_config(detector.config)
    train = detector.train
    frames_dir = str(Path(dataset_root) / "frames") + "/"
    for loader, ann_file in (("train_dataloader", train_json), ("test_dataloader", eval_json)):
        if loader not in cfg:
            raise DataError(
                f"{detector.config}: no `{loader}`; the train_detector stage needs the training part of the config"
            )
        _annotated_dataset(cfg[loader].dataset).update(
            data_root="", ann_file=str(ann_file), data_prefix=dict(img=frames_dir)
        )
    cfg.train_dataloader.batch_size = train.batch_size
    cfg.test_evaluator.ann_file = str(eval_json)
    # Keep the detections so per-class AP can be computed from them (pipeline.detector.class_ap).
    cfg.test_evaluator.outfile_prefix = str(Path(detector.work_dir) / "eval" / "results")
    old_iters = cfg.train_cfg.max_iters
    cfg.train_cfg.update(max_iters=train.iterations, val_interval=train.iterations + 1)
    _scale_schedule(cfg.get("param_scheduler", []), old_iters, train.iterations)
    cfg.optim_wrapper.optimizer.update(
        lr=train.lr, momentum=train.momentum, weight_decay=train.weight_decay
    )
    cfg.work_dir = str(run_log_dir(detector.work_dir) / "mmengine")
    cfg.randomness = dict(seed=train.seed, deterministic=False)
    cfg.launcher = "none"
    return cfg


def train_detector(
    detector: DetectorParams, dataset_root: str | Path, index_dir: str | Path
) -> tuple[dict, dict]:
    """Train on ``detector.train.train_splits``, save a weights-only checkpoint; return mmdet's bbox metrics and the timings."""
    from mmengine.runner import Runner

    register_mmdet()
    work_dir = Path(detector.work_dir)
    cfg = load_config(detector.config)
    train_json, eval_json = (
        work_dir / "coco_train.json",
        work_dir / f"coco_{detector.train.eval_split}.json",
    )
    train_images = write_coco_split(index_dir, detector.train.train_splits, cfg, train_json)
    eval_images = write_coco_split(index_dir, detector.train.eval_split, cfg, eval_json)

    runner_cfg = build_runner_config(detector, dataset_root, train_json, eval_json)
    runner = Runner.from_cfg(runner_cfg)
    runner.register_hook(_progress_hook(detector.train.iterations))
    started = time.perf_counter()
    runner.train()
    train_seconds = time.perf_counter() - started
    model = runner.model.module if hasattr(runner.model, "module") else runner.model
    save_checkpoint(
        model,
        work_dir / TRAINED_DETECTOR_NAME,
        meta={
            "config_sha256": config_sha256(cfg),
            "classes": list(config_class_names(cfg)),
            "iterations": detector.train.iterations,
            "seed": detector.train.seed,
            "torch": str(torch.__version__),  # TorchVersion is not a plain str
        },
    )
    started = time.perf_counter()
    coco_metrics = runner.test()
    eval_seconds = time.perf_counter() - started
    metrics = {
        key.removeprefix("coco/"): round(float(value), 4) for key, value in coco_metrics.items()
    }
    if not metrics:  # CocoMetric returns nothing when the detector finds no box at all
        metrics = {
            "bbox_mAP": 0.0,
            "bbox_mAP_50": 0.0,
            "note": "no detections on the evaluation frames",
        }
    classes = per_class_ap(eval_json, f"{runner_cfg.test_evaluator.outfile_prefix}.bbox.json")
    if classes:
        metrics["min_class_AP50"] = min(c["AP50"] for c in classes.values())
        metrics["per_class"] = classes
    return {
        "trained": True,
        **metrics,
        "eval_split": detector.train.eval_split,
        "train_splits": list(detector.train.train_splits),
        "train_images": train_images,
        "eval_images": eval_images,
        "iterations": detector.train.iterations,
    }, {
        "train_seconds": round(train_seconds, 1),
        "seconds_per_iteration": round(train_seconds / detector.train.iterations, 3),
        "eval_seconds": round(eval_seconds, 1),
    }


def run_train_detector_stage(params: Params) -> dict:
    """The ``train_detector`` stage."""
    return train_or_use_detector(params.detector, params.dataset.root, params.dataset.index_dir)


def train_or_use_detector(detector: DetectorParams, dataset_root: str | Path, index_dir: str | Path) -> dict:
    """Train the detector and write its metrics, or record that the user's checkpoint is used."""
    work_dir = Path(detector.work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    if detector.checkpoint:
        metrics = {
            "trained": False,
            "reason": "detector.checkpoint is set; extraction uses that checkpoint",
            "checkpoint": detector.checkpoint,
        }
        atomic_write_json(work_dir / "SKIPPED.json", metrics)
    else:
        metrics, timing = train_detector(detector, dataset_root, index_dir)
        atomic_write_json(run_log_dir(work_dir) / "timing.json", timing)
        print(f"{run_log_dir(work_dir) / 'timing.json'}: {timing}")
    atomic_write_json(detector.metrics_path, metrics)
    print(json.dumps(metrics, indent=2))
    return metrics
