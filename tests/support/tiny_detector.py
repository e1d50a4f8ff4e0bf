"""Tiny detectors and datasets for tests and benchmarks (in the spirit of ``mmdet.testing``).

A handful of small frames with coloured boxes, written as an index (the
``frames.parquet`` / ``objects.parquet`` schemas of docs/schemas.md) plus PNGs
in the AG layout, and a very narrow Faster R-CNN config derived from the
default one, so extraction and training run in seconds on a CPU.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import torch
from PIL import Image

from pipeline.ag.reader import (
    FRAME_SCHEMA,
    OBJECT_SCHEMA,
    AGIndex,
    conform,
    relations_from_objects,
    write_index,
)
from pipeline.constants import PERSON_INDEX

DEFAULT_CONFIG = (
    Path(__file__).resolve().parents[2] / "configs" / "detector" / "faster_rcnn_r18_synth.py"
)

TINY_CONFIG = """\
_base_ = {base!r}

# Narrow everything: this detector is for tests, not accuracy.
image_size = {image_size!r}
model = dict(
    backbone=dict(base_channels=8),
    neck=dict(in_channels=[8, 16, 32, 64], out_channels=16),
    rpn_head=dict(in_channels=16, feat_channels=16),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=16),
        bbox_head=dict(in_channels=16, fc_out_channels=32{num_classes})),
    test_cfg=dict(rpn=dict(nms_pre=200, max_per_img=50)))
{metainfo}
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=image_size, keep_ratio=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=image_size, keep_ratio=True),
    dict(type='PackDetInputs'),
]
eval_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=image_size, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
# the default wraps its training CocoDataset in ClassBalancedDataset
train_dataloader = dict(batch_size=2, dataset=dict(dataset=dict(pipeline=train_pipeline{dataset_metainfo})))
test_dataloader = dict(batch_size=2, dataset=dict(pipeline=eval_pipeline{dataset_metainfo}))
param_scheduler = [dict(type='MultiStepLR', by_epoch=False, milestones=[1], gamma=0.1)]
"""


def write_tiny_config(
    path: str | Path,
    image_size: tuple[int, int] = (96, 96),
    class_names: tuple[str, ...] | None = None,
) -> Path:
    """A narrow Faster R-CNN config inheriting the default one; frames are resized to ``image_size``.

    ``class_names`` (a subset or reordering of AG classes) overrides the
    default 36 AG classes.
    """
    path = Path(path)
    num_classes = metainfo = dataset_metainfo = ""
    if class_names is not None:
        num_classes = f", num_classes={len(class_names)}"
        metainfo = f"metainfo = dict(classes={tuple(class_names)!r})"
        dataset_metainfo = ", metainfo=metainfo"
    path.write_text(
        TINY_CONFIG.format(
            base=str(DEFAULT_CONFIG),
            image_size=tuple(image_size),
            num_classes=num_classes,
            metainfo=metainfo,
            dataset_metainfo=dataset_metainfo,
        )
    )
    return path


def write_random_checkpoint(
    config_path: str | Path, checkpoint_path: str | Path, seed: int = 0
) -> Path:
    """Save randomly initialised weights of ``config_path``'s model (weights-only format)."""
    from pipeline.detector.model import build_model, load_config
    from pipeline.detector.weights import save_checkpoint

    torch.manual_seed(seed)
    model = build_model(load_config(config_path))
    model.init_weights()
    save_checkpoint(model, checkpoint_path, meta={"seed": seed})
    return Path(checkpoint_path)


def write_tiny_dataset(
    root: str | Path,
    index_dir: str | Path,
    videos: int = 4,
    frames_per_video: int = 3,
    size: tuple[int, int] = (64, 48),
    object_classes: tuple[int, ...] = (2, 8, 32),
    seed: int = 0,
) -> dict[str, pl.DataFrame]:
    """PNG frames (AG layout under ``root/frames``) and a matching index in ``index_dir``.

    Each frame has a person and 1-2 objects drawn as filled rectangles with
    one colour per class; the last video is in the test split.
    """
    rng = np.random.default_rng(seed)
    width, height = size
    palette = {cls: rng.integers(40, 255, size=3) for cls in (PERSON_INDEX, *object_classes)}
    frame_rows, object_rows = [], []
    for v in range(videos):
        video = f"TINY{v:02d}.mp4"
        split = "test" if v == videos - 1 else "train"
        for f in range(frames_per_video):
            number = 1 + 7 * f
            key = f"{video}/{number:06d}.png"
            image = rng.integers(0, 40, size=(height, width, 3), dtype=np.uint8)
            boxes = {PERSON_INDEX: _random_box(rng, width, height)}
            for cls in rng.choice(object_classes, size=int(rng.integers(1, 3)), replace=False):
                boxes[int(cls)] = _random_box(rng, width, height)
            for cls, (x1, y1, x2, y2) in boxes.items():
                image[int(y1) : int(y2), int(x1) : int(x2)] = palette[cls]
            path = Path(root) / "frames" / key
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(path)
            person = boxes.pop(PERSON_INDEX)
            frame_rows.append(
                dict(
                    frame=key,
                    video=video,
                    frame_number=number,
                    split=split,
                    width=width,
                    height=height,
                    person_x1=person[0],
                    person_y1=person[1],
                    person_x2=person[2],
                    person_y2=person[3],
                )
            )
            for cls, (x1, y1, x2, y2) in sorted(boxes.items()):
                object_rows.append(
                    dict(
                        frame=key,
                        video=video,
                        split=split,
                        frame_number=number,
                        object_class=cls,
                        x1=x1,
                        y1=y1,
                        x2=x2,
                        y2=y2,
                        attention=[0],
                        spatial=[3],
                        contacting=[9],
                        small=min(x2 - x1, y2 - y1) <= 16,
                    )
                )
    frames = conform(pl.DataFrame(frame_rows), FRAME_SCHEMA)
    objects = conform(pl.DataFrame(object_rows), OBJECT_SCHEMA)
    write_index(AGIndex(frames, objects, relations_from_objects(objects)), index_dir)
    return {"frames": frames, "objects": objects}


def _random_box(
    rng: np.random.Generator, width: int, height: int
) -> tuple[float, float, float, float]:
    box_w = float(rng.uniform(0.25, 0.6) * width)
    box_h = float(rng.uniform(0.25, 0.6) * height)
    x1 = float(rng.uniform(0, width - box_w))
    y1 = float(rng.uniform(0, height - box_h))
    return (round(x1, 2), round(y1, 2), round(x1 + box_w, 2), round(y1 + box_h, 2))
