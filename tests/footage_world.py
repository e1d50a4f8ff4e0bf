"""A tiny end-to-end world for `mosa predict`: random-weight tiny detector, its caches and an SGDet head."""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np
import polars as pl
from support.tiny_detector import write_random_checkpoint, write_tiny_config, write_tiny_dataset

from pipeline.ag.reader import relations_from_objects
from pipeline.constants import NUM_OBJECT_CLASSES, NUM_PREDICATES
from pipeline.extraction.driver import extract_cache
from pipeline.extraction.frame_records import load_frame_records
from pipeline.motion import write_motion_table
from pipeline.params import Params


def build_footage_world(root: Path, text_dim: int = 16) -> Params:
    """Caches from a random tiny detector and an SGDet head trained one epoch on them (``root`` becomes the cwd)."""
    from pipeline.detector.model import load_detector
    from pipeline.training.pack_stage import pack_mode
    from pipeline.training.train_stage import train_mode

    root.mkdir(parents=True, exist_ok=True)
    os.chdir(root)
    write_tiny_dataset(root / "ag", root / "index", videos=4, frames_per_video=3, size=(128, 96))
    # write_tiny_dataset makes train + test videos; model selection also needs a val video.
    for name in ("frames", "objects"):
        path = root / "index" / f"{name}.parquet"
        table = pl.read_parquet(path)
        table.with_columns(split=pl.when(pl.col("video") == "TINY02.mp4").then(pl.lit("val")).otherwise("split")).write_parquet(path)
    objects = pl.read_parquet(root / "index" / "objects.parquet")
    relations_from_objects(objects).write_parquet(root / "index" / "relations.parquet")
    config = write_tiny_config(root / "tiny.py")
    checkpoint = write_random_checkpoint(config, root / "tiny.pth")
    params = Params.model_validate({
        "dataset": {"root": str(root / "ag"), "index_dir": str(root / "index")},
        # Random weights score every class near 1/37: a low threshold keeps some detections.
        "detector": {"config": str(config), "checkpoint": str(checkpoint),
                     "postprocess": {"score_threshold": 0.026, "nms_iou": 0.5, "max_objects": 3}},
        "extract": {"out_dir": str(root / "roi"), "videos_per_shard": 4, "batch_frames": 4, "decode_workers": 0, "device": "cpu"},
        "motion": {"out_path": str(root / "motion.parquet")},
        "text": {"out_path": str(root / "text.h5")},
        "model": {"d_model": 16, "heads": 2, "mim_heads": 2, "temporal_layers": 1},
        "train": {"epochs": 1, "batch_videos": 2, "modes": ["sgdet"], "out_dir": str(root / "models"), "pack_dir": str(root / "pack")},
    })  # fmt: skip
    detector = load_detector(config, checkpoint)
    extract_cache(detector, load_frame_records(root / "index", root / "ag"), params.extract, params.detector.postprocess)
    write_motion_table(root / "index", root / "roi", params.motion)
    rng = np.random.default_rng(0)
    with h5py.File(root / "text.h5", "w") as handle:
        handle["class_embeddings"] = rng.standard_normal((NUM_OBJECT_CLASSES, text_dim)).astype(np.float32)
        handle["prompt_embeddings"] = rng.standard_normal((NUM_OBJECT_CLASSES, NUM_PREDICATES, text_dim)).astype(np.float32)
    pack_mode(params, "sgdet")
    train_mode(params, "sgdet")
    return params


def write_new_footage(root: Path) -> Path:
    """Frames of one video the world never saw (another seed), as `mosa synth` lays them out."""
    write_tiny_dataset(root / "new_ag", root / "new_index", videos=1, frames_per_video=4, size=(128, 96), seed=7)
    return root / "new_ag" / "frames" / "TINY00.mp4"
