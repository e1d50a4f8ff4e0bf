"""The tensor contract between the data path and the model.

A batch holds every (person, object) pair of every frame of several videos,
flattened to N rows. Frames and temporal windows are expressed as padded
index tables into those rows, built once by the collate function so the
model never loops over frames in Python.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class RelationBatch:
    """N pairs, F frames, W temporal windows (shapes below)."""

    subject_roi: Tensor  # [N, R] ROI feature of the person box
    object_roi: Tensor  # [N, R] ROI feature of the object box
    union: Tensor  # [N, U] pooled feature of the union box
    subject_box: Tensor  # [N, 4] xyxy divided by image width/height
    object_box: Tensor  # [N, 4] xyxy divided by image width/height
    motion: Tensor  # [N, A] motion attributes, in ModelParams.mfe_attributes order
    frame_pairs: Tensor  # [F, P] row of each pair of a frame, -1 = padding
    window_pairs: Tensor  # [W, L] row of each pair of a temporal window, -1 = padding
    window_position: Tensor  # [W, L] position of the pair's frame inside its window
    object_label: Tensor | None = None  # [N] given object class (read by the model in PredCls only)
    object_dist: Tensor | None = None  # [N, C] detector class distribution (SGCls/SGDet)
    # Targets; absent at inference.
    target_object: Tensor | None = None  # [N] object class, 0 = unmatched detection
    target_attention: Tensor | None = None  # [N] 0..2
    target_spatial: Tensor | None = None  # [N, 6] multi-hot
    target_contacting: Tensor | None = None  # [N, 17] multi-hot
    has_relation: Tensor | None = None  # [N] bool: pair has ground-truth predicates

    @property
    def num_pairs(self) -> int:
        return self.subject_roi.shape[0]


def pad_groups(groups: list[list[int]] | list[Tensor]) -> Tensor:
    """Stack variable-length index lists into a [G, max_len] table padded with -1."""
    width = max((len(g) for g in groups), default=0)
    table = torch.full((len(groups), max(width, 1)), -1, dtype=torch.long)
    for row, group in enumerate(groups):
        table[row, : len(group)] = torch.as_tensor(group, dtype=torch.long)
    return table


def gather_padded(rows: Tensor, table: Tensor) -> tuple[Tensor, Tensor]:
    """[N, d] rows and a [G, L] index table -> ([G, L, d] padded, [G, L] padding mask)."""
    padding = table < 0
    gathered = rows[table.clamp(min=0)]
    return gathered.masked_fill(padding.unsqueeze(-1), 0.0), padding


def scatter_mean(values: Tensor, table: Tensor, num_rows: int) -> Tensor:
    """Inverse of :func:`gather_padded`: average the [G, L, d] values back onto N rows.

    A row that appears in several groups (a pair inside several overlapping
    temporal windows) receives the mean of its outputs.
    """
    valid = table >= 0
    index = table[valid]
    total = values.new_zeros(num_rows, values.shape[-1]).index_add_(0, index, values[valid])
    count = values.new_zeros(num_rows).index_add_(0, index, values.new_ones(index.shape[0]))
    return total / count.clamp(min=1.0).unsqueeze(-1)


def sliding_windows(video_frames: list[list[int]], window: int) -> list[list[int]]:
    """Windows of ``window`` consecutive frames (stride 1) within each video.

    A video shorter than the window forms one window of all its frames, so
    every frame belongs to at least one window.
    """
    windows: list[list[int]] = []
    for frames in video_frames:
        starts = range(max(len(frames) - window, 0) + 1)
        windows.extend(frames[start : start + window] for start in starts)
    return windows


def window_tables(frame_pairs: list[list[int]], video_frames: list[list[int]], window: int) -> tuple[Tensor, Tensor]:
    """[W, L] pair rows of each sliding window and the frame position of each slot."""
    pair_rows: list[list[int]] = []
    positions: list[list[int]] = []
    for frames in sliding_windows(video_frames, window):
        pair_rows.append([row for frame in frames for row in frame_pairs[frame]])
        positions.append([pos for pos, frame in enumerate(frames) for _ in frame_pairs[frame]])
    rows_table = pad_groups(pair_rows)
    position_table = pad_groups(positions).clamp(min=0)
    return rows_table, position_table
