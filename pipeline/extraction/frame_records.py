"""The frames to extract: ``frames.parquet`` joined with ``objects.parquet``, grouped by video.

Each :class:`FrameRecord` carries the frame's file path and its ground-truth
boxes with the person first, the order every cached ``gt_*`` array uses.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.ag.layout import frame_path
from pipeline.ag.reader import read_index
from pipeline.constants import PERSON_INDEX


@dataclass(frozen=True)
class FrameRecord:
    """One indexed frame and its ground-truth boxes (person first)."""

    frame: str
    video: str
    frame_number: int
    width: int
    height: int
    path: Path
    gt_boxes: np.ndarray  # (n, 4) float64 xyxy
    gt_labels: np.ndarray  # (n,) int16
    gt_small: np.ndarray  # (n,) bool


def load_frame_records(
    index_dir: str | Path, dataset_root: str | Path
) -> dict[str, list[FrameRecord]]:
    """Frames of ``frames.parquet`` with their boxes from ``objects.parquet``, grouped by video (sorted)."""
    index = read_index(index_dir)
    frames = index.frames.sort(["video", "frame_number"]).with_row_index("row")
    # Objects in frame order, then class order; each frame owns one contiguous slice.
    objects = (
        index.objects
        .join(frames.select("frame", "row"), on="frame", how="inner")
        .sort(["row", "object_class"])
    )
    starts = np.searchsorted(objects["row"].to_numpy(), np.arange(frames.height + 1))
    object_boxes = objects.select(["x1", "y1", "x2", "y2"]).to_numpy().astype(np.float64)
    object_labels = objects["object_class"].to_numpy().astype(np.int16)
    object_small = objects["small"].to_numpy().astype(bool)
    person_boxes = frames.select(["person_x1", "person_y1", "person_x2", "person_y2"]).to_numpy()
    by_video: dict[str, list[FrameRecord]] = {}
    for row in frames.select(
        ["row", "frame", "video", "frame_number", "width", "height"]
    ).iter_rows(named=True):
        i = row["row"]
        rows = slice(starts[i], starts[i + 1])
        by_video.setdefault(row["video"], []).append(
            FrameRecord(
                frame=row["frame"],
                video=row["video"],
                frame_number=int(row["frame_number"]),
                width=int(row["width"]),
                height=int(row["height"]),
                path=frame_path(dataset_root, row["frame"]),
                gt_boxes=np.concatenate([person_boxes[i : i + 1], object_boxes[rows]]).astype(
                    np.float64
                ),
                gt_labels=np.concatenate([[PERSON_INDEX], object_labels[rows]]).astype(np.int16),
                gt_small=np.concatenate([[False], object_small[rows]]),
            )
        )
    return dict(sorted(by_video.items()))
