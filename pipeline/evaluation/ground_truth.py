"""Ground-truth triplets for evaluation, built from the index tables.

Per frame the reference evaluator's ground truth is the person box followed
by the visible objects, and for each object ``o``:

* ``(person, attention, o)`` - exactly one;
* ``(o, spatial, person)`` for each spatial label - note the reversed direction;
* ``(person, contacting, o)`` for each contacting label.

Triplets are kept as given (a label listed twice would count twice, as in the
reference); recall counts the *distinct* triplets hit, so that is harmless.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from pipeline.constants import PERSON_INDEX, check_mode
from pipeline.io import DataError

PERSON_BOX = ["person_x1", "person_y1", "person_x2", "person_y2"]
OBJECT_BOX = ["x1", "y1", "x2", "y2"]


@dataclass(frozen=True)
class GroundTruth:
    """Ground-truth triplets of a set of frames, sorted by frame.

    ``frames[k]`` is the key of frame ``k``; triplet arrays are indexed by
    triplet and ``frame_index`` points into ``frames``. Every frame has at least
    one triplet (an object always has an attention label).
    """

    frames: np.ndarray  # (F,) object array of frame keys
    frame_index: np.ndarray  # (T,) int64
    subject_class: np.ndarray  # (T,) int64
    predicate: np.ndarray  # (T,) int64, global 0..25
    object_class: np.ndarray  # (T,) int64
    subject_box: np.ndarray  # (T, 4) float64 xyxy
    object_box: np.ndarray  # (T, 4) float64 xyxy

    @property
    def num_frames(self) -> int:
        return len(self.frames)

    @property
    def num_triplets(self) -> int:
        return len(self.frame_index)


def drop_small_objects(frames: pl.DataFrame, objects: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The SGCls/SGDet view of an unfiltered index: the reference's ``filtersmall`` file.

    Objects flagged ``small`` are removed, then the reader's frame and video
    rules are re-applied: a frame left with no object is dropped, and a video
    keeps its frames only if more than 2 remain. This gives the same tables as
    reading the root with ``filter_small=True``.
    """
    objects = objects.filter(~pl.col("small"))
    frames = frames.filter(pl.col("frame").is_in(objects["frame"].unique().implode()))
    long_videos = frames.group_by("video").len().filter(pl.col("len") > 2)["video"]
    frames = frames.filter(pl.col("video").is_in(long_videos.implode()))
    objects = objects.filter(pl.col("frame").is_in(frames["frame"].implode()))
    return frames, objects


def build_ground_truth(frames: pl.DataFrame, objects: pl.DataFrame, split: str | None = None) -> GroundTruth:
    """Triplets of every frame in ``frames`` (restricted to ``split`` if given).

    ``frames``/``objects`` follow the index schema (docs/schemas.md). For SGCls
    and SGDet pass tables without small objects (:func:`drop_small_objects`).
    """
    if split is not None:
        frames = frames.filter(pl.col("split") == split)
        objects = objects.filter(pl.col("split") == split)
    if frames.height == 0:
        raise DataError(f"no ground-truth frames{f' in split {split!r}' if split else ''}; check the split name and the dataset root")
    frames = frames.sort("frame")
    keys = frames["frame"].to_numpy().astype(object)
    missing = objects.filter(~pl.col("frame").is_in(frames["frame"].implode()))
    if missing.height:
        raise DataError(f"objects table has frame {missing['frame'][0]} which is not in the frames table; rebuild the index")
    objects = objects.with_row_index("object_row")
    person_boxes = frames.select(PERSON_BOX).to_numpy().astype(np.float64)

    parts = []
    for group in ("attention", "spatial", "contacting"):
        exploded = (
            objects.select("object_row", "frame", "object_class", *OBJECT_BOX, pl.col(group).alias("predicate"))
            .explode("predicate")
            .drop_nulls("predicate")
        )
        parts.append((group, exploded))

    frame_of = {key: k for k, key in enumerate(keys)}
    frame_index, subject_class, predicate, object_class, subject_box, object_box = [], [], [], [], [], []
    for group, table in parts:
        if table.height == 0:
            continue
        f_idx = np.fromiter((frame_of[k] for k in table["frame"].to_list()), dtype=np.int64, count=table.height)
        obj_cls = table["object_class"].to_numpy().astype(np.int64)
        obj_box = table.select(OBJECT_BOX).to_numpy().astype(np.float64)
        per_box = person_boxes[f_idx]
        person_cls = np.full(table.height, PERSON_INDEX, dtype=np.int64)
        frame_index.append(f_idx)
        predicate.append(table["predicate"].to_numpy().astype(np.int64))
        if group == "spatial":  # object -> person
            subject_class.append(obj_cls)
            object_class.append(person_cls)
            subject_box.append(obj_box)
            object_box.append(per_box)
        else:  # person -> object
            subject_class.append(person_cls)
            object_class.append(obj_cls)
            subject_box.append(per_box)
            object_box.append(obj_box)

    frame_index = np.concatenate(frame_index) if frame_index else np.zeros(0, np.int64)
    order = np.argsort(frame_index, kind="stable")
    has_triplets = np.zeros(len(keys), dtype=bool)
    has_triplets[frame_index] = True
    if not has_triplets.all():
        empty = keys[~has_triplets][0]
        raise DataError(f"frame {empty} has no ground-truth triplet (no visible object); rebuild the index with the standard filters")

    def cat(chunks: list[np.ndarray]) -> np.ndarray:
        return np.concatenate(chunks)[order]

    return GroundTruth(
        frames=keys,
        frame_index=frame_index[order],
        subject_class=cat(subject_class),
        predicate=cat(predicate),
        object_class=cat(object_class),
        subject_box=cat(subject_box),
        object_box=cat(object_box),
    )


def ground_truth_for_mode(frames: pl.DataFrame, objects: pl.DataFrame, split: str, mode: str) -> GroundTruth:
    """Ground truth of ``split`` as ``mode`` is evaluated, from an unfiltered index.

    SGCls and SGDet use the small-box filter. Filtering after the split is
    assigned keeps the validation videos the same in every mode.
    """
    if check_mode(mode) != "predcls":
        frames, objects = drop_small_objects(frames, objects)
    return build_ground_truth(frames, objects, split)
