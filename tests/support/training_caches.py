"""A small, fully consistent set of caches (index, ROI HDF5, motion, text) for tests and benchmarks."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import polars as pl
from tqdm import tqdm

from pipeline.ag.reader import (
    FRAME_SCHEMA,
    OBJECT_SCHEMA,
    AGIndex,
    conform,
    relations_from_objects,
    write_index,
)
from pipeline.constants import NUM_OBJECT_CLASSES, NUM_PREDICATES, PERSON_INDEX
from pipeline.extraction import cache as roi_cache
from pipeline.extraction.cache import load_detection_table
from pipeline.motion.table import motion_table
from pipeline.params import MotionParams, Params
from pipeline.training.pack_stage import pack_mode

DEFAULT_SPLITS = {"V0.mp4": "train", "V1.mp4": "train", "V2.mp4": "train", "V3.mp4": "val", "V4.mp4": "val", "V5.mp4": "test"}
SPURIOUS_LABEL = 20  # a detection that matches no ground-truth box


def _index_tables(splits: dict[str, str], frames_per_video: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    frames, objects = [], []
    for v, (video, split) in enumerate(splits.items()):
        classes = (2 + v % 3, 10)
        for t, number in enumerate(range(1, 4 * frames_per_video, 4)):
            key = f"{video}/{number:06d}.png"
            px = 4.0 + 2 * (t % 8)
            frames.append(dict(frame=key, video=video, frame_number=number, split=split, width=64, height=48,
                               person_x1=px, person_y1=4.0, person_x2=px + 20, person_y2=40.0))  # fmt: skip
            for c, cls in enumerate(classes):
                x1 = 30.0 + 10 * c - t % 8
                small = v == 0 and t == 0 and c == 1  # one small box, dropped by SGCls/SGDet
                side = 6.0 if small else 14.0
                objects.append(dict(
                    frame=key, video=video, frame_number=number, split=split, object_class=cls,
                    x1=x1, y1=10.0, x2=x1 + side, y2=10.0 + side,
                    attention=[cls % 3], spatial=[3 + (cls + t) % 6], contacting=[9 + cls % 17, 9 + (cls + 1) % 17],
                    small=small,
                ))  # fmt: skip
    frames_df = conform(pl.DataFrame(frames), FRAME_SCHEMA)
    objects_df = conform(pl.DataFrame(objects), OBJECT_SCHEMA)
    return frames_df, objects_df


def _union(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.concatenate([np.minimum(a[:, :2], b[:, :2]), np.maximum(a[:, 2:], b[:, 2:])], axis=1)


def _offsets(counts: list[int]) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)


def _video_arrays(video_frames: pl.DataFrame, video_objects: pl.DataFrame, rng: np.random.Generator, feature_dim: int) -> dict:
    """The ROI cache arrays of one video, from that video's rows of the index tables."""
    gt_boxes, gt_labels, gt_small, gt_counts, gt_pairs = [], [], [], [], []
    det_boxes, det_labels, det_scores, det_counts, det_pairs = [], [], [], [], []
    objects_of = video_objects.sort("object_class", maintain_order=True).partition_by("frame", as_dict=True, maintain_order=True)
    no_objects = video_objects.clear()
    for frame in video_frames.iter_rows(named=True):
        objs = objects_of.get((frame["frame"],), no_objects)
        person = [frame["person_x1"], frame["person_y1"], frame["person_x2"], frame["person_y2"]]
        boxes = [person, *objs.select("x1", "y1", "x2", "y2").rows()]
        first = sum(gt_counts)
        gt_pairs += [(first, first + i) for i in range(1, len(boxes))]
        gt_boxes += boxes
        gt_labels += [PERSON_INDEX, *objs["object_class"]]
        gt_small += [False, *objs["small"]]
        gt_counts.append(len(boxes))
        # Detections: the GT boxes slightly shifted, plus one spurious box far from everything.
        dets = [list(np.asarray(b) + 0.5) for b in boxes] + [[1.0, 44.0, 5.0, 47.0]]
        first = sum(det_counts)
        det_pairs += [(first, first + i) for i in range(1, len(dets))]
        det_boxes += dets
        det_labels += [PERSON_INDEX, *objs["object_class"], SPURIOUS_LABEL]
        det_scores += [0.9] + [0.8] * len(objs) + [0.4]
        det_counts.append(len(dets))
    gt_boxes, det_boxes = np.array(gt_boxes), np.array(det_boxes)
    gt_pairs, det_pairs = np.array(gt_pairs), np.array(det_pairs)
    class_scores = rng.random((len(det_boxes), NUM_OBJECT_CLASSES)).astype(np.float32)
    return {
        "frame": video_frames["frame"].to_numpy().astype(object),
        "frame_number": video_frames["frame_number"].to_numpy(),
        "width": video_frames["width"].to_numpy(),
        "height": video_frames["height"].to_numpy(),
        "gt_offsets": _offsets(gt_counts),
        "gt_boxes": gt_boxes,
        "gt_labels": np.array(gt_labels),
        "gt_small": np.array(gt_small),
        "gt_features": rng.standard_normal((len(gt_boxes), feature_dim)),
        "gt_class_scores": np.full((len(gt_boxes), 37), 1.0 / 37),
        "gt_pair_offsets": _offsets([c - 1 for c in gt_counts]),
        "gt_pairs": gt_pairs,
        "gt_union_boxes": _union(gt_boxes[gt_pairs[:, 0]], gt_boxes[gt_pairs[:, 1]]),
        "gt_union_features": rng.standard_normal((len(gt_pairs), feature_dim)),
        "det_offsets": _offsets(det_counts),
        "det_boxes": det_boxes,
        "det_labels": np.array(det_labels),
        "det_scores": np.array(det_scores),
        "det_class_scores": class_scores / class_scores.sum(axis=1, keepdims=True),
        "det_features": rng.standard_normal((len(det_boxes), feature_dim)),
        "det_pair_offsets": _offsets([c - 1 for c in det_counts]),
        "det_pairs": det_pairs,
        "det_union_boxes": _union(det_boxes[det_pairs[:, 0]], det_boxes[det_pairs[:, 1]]),
        "det_union_features": rng.standard_normal((len(det_pairs), feature_dim)),
    }


def write_synthetic_caches(
    root: Path,
    splits: dict[str, str] | None = None,
    frames_per_video: int = 4,
    feature_dim: int = 8,
    text_dim: int = 16,
    seed: int = 0,
    index: tuple[pl.DataFrame, pl.DataFrame] | None = None,
    with_motion: bool = True,
) -> Params:
    """Index, ROI cache, motion table and text cache under ``root``; params pointing at them.

    Each frame has a person and two objects (classes ``2 + v % 3`` and 10)
    with fixed predicates; detections are the ground-truth boxes shifted by
    half a pixel plus one spurious box of class :data:`SPURIOUS_LABEL`.
    Features are random: this exercises the data path, it teaches nothing.

    ``index`` (frames, objects tables with the columns of the generated ones)
    replaces the generated index, and then ``splits`` is ignored;
    ``with_motion=False`` leaves the motion table and the training packs to
    the caller (e.g. to time the motion stage on them).
    """
    rng = np.random.default_rng(seed)
    frames, objects = index or _index_tables(splits or DEFAULT_SPLITS, frames_per_video)
    write_index(AGIndex(frames, objects, relations_from_objects(objects)), root / "index")
    (root / "roi").mkdir(parents=True, exist_ok=True)
    frames_of = frames.partition_by("video", as_dict=True, maintain_order=True)
    objects_of = objects.partition_by("video", as_dict=True, maintain_order=True)
    with h5py.File(root / "roi" / roi_cache.CACHE_FILE, "w") as handle:
        handle.attrs.update({"format_version": roi_cache.FORMAT_VERSION, "feature_dim": feature_dim,
                             "config_sha256": "synthetic", "checkpoint_sha256": "synthetic"})  # fmt: skip
        for key, video_frames in tqdm(frames_of.items(), desc="synthetic ROI cache", unit="video", disable=len(frames_of) < 100):
            arrays = _video_arrays(video_frames, objects_of.get(key, objects.clear()), rng, feature_dim)
            roi_cache.write_video(handle, key[0], arrays, feature_dim)
    if with_motion:
        motion = motion_table(frames, objects, MotionParams(), load_detection_table(root / "roi"))
        motion.write_parquet(root / "motion.parquet")
    with h5py.File(root / "text.h5", "w") as handle:
        handle["class_embeddings"] = rng.standard_normal((NUM_OBJECT_CLASSES, text_dim)).astype(np.float32)
        handle["prompt_embeddings"] = rng.standard_normal((NUM_OBJECT_CLASSES, NUM_PREDICATES, text_dim)).astype(np.float32)
    params = synthetic_params(root)
    if with_motion:
        for mode in params.train.modes:
            pack_mode(params, mode)
    return params


def synthetic_params(root: Path) -> Params:
    """Params pointing at the caches :func:`write_synthetic_caches` writes under ``root``."""
    return Params.model_validate({
        "dataset": {"index_dir": str(root / "index")},
        "extract": {"out_dir": str(root / "roi")},
        "motion": {"out_path": str(root / "motion.parquet")},
        "text": {"out_path": str(root / "text.h5")},
        "train": {"out_dir": str(root / "models"), "pack_dir": str(root / "pack")},
    })  # fmt: skip
