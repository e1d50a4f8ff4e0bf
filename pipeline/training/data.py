"""Per-video pair groups, a bounded in-memory cache of them, and batching.

A :class:`VideoPairs` holds every (person, object) pair of one video for one
mode, with features, motion attributes and targets already joined, as numpy
arrays. A source (see :mod:`pipeline.training.sources`) builds it from the
caches; :class:`VideoBatches` groups several videos into one
:class:`~pipeline.model.batch.RelationBatch`.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields, is_dataclass, replace
from typing import Protocol

import numpy as np
import torch

from pipeline.model.batch import RelationBatch, pad_groups, window_tables


@dataclass(frozen=True)
class VideoPairs:
    """All pairs of one video (N pairs over F frames)."""

    video: str
    frames: list[str]  # [F] frame keys, in frame-number order
    image_size: np.ndarray  # [F, 2] width, height
    pair_frame: np.ndarray  # [N] index into frames, non-decreasing
    subject_roi: np.ndarray  # [N, R] float32
    object_roi: np.ndarray  # [N, R] float32
    union: np.ndarray  # [N, U] float32
    subject_box: np.ndarray  # [N, 4] xyxy pixels
    object_box: np.ndarray  # [N, 4] xyxy pixels
    subject_score: np.ndarray  # [N] 1 for ground-truth boxes
    object_score: np.ndarray  # [N] 1 for ground-truth boxes
    object_label: np.ndarray  # [N] GT class (PredCls/SGCls) or detector label (SGDet)
    object_dist: np.ndarray | None  # [N, C] detector class distribution, if the cache has one
    motion: np.ndarray  # [N, A] float32
    target_object: np.ndarray  # [N] GT class, 0 = detection matched to nothing
    target_attention: np.ndarray  # [N] 0..2 (0 where has_relation is False)
    target_spatial: np.ndarray  # [N, 6] float32 multi-hot
    target_contacting: np.ndarray  # [N, 17] float32 multi-hot
    has_relation: np.ndarray  # [N] bool

    @property
    def num_pairs(self) -> int:
        return int(self.pair_frame.shape[0])

    @property
    def nbytes(self) -> int:
        return sum(getattr(self, f.name).nbytes for f in fields(self) if isinstance(getattr(self, f.name), np.ndarray))


class VideoSource(Protocol):
    """Anything that can list the videos of a split and build their pair groups."""

    def videos(self, split: str) -> list[str]: ...

    def load(self, video: str) -> VideoPairs: ...


class BoundedCache:
    """LRU cache of :class:`VideoPairs` with a byte budget (0 disables it).

    Reading a video group from HDF5 costs milliseconds; keeping the ones that
    fit avoids repeating it every epoch without ever holding more than the
    budget in memory.
    """

    def __init__(self, source: VideoSource, budget_bytes: int) -> None:
        self.source = source
        self.budget = budget_bytes
        self.used = 0
        self.entries: OrderedDict[str, VideoPairs] = OrderedDict()

    def videos(self, split: str) -> list[str]:
        return self.source.videos(split)

    def load(self, video: str) -> VideoPairs:
        if video in self.entries:
            self.entries.move_to_end(video)
            return self.entries[video]
        pairs = self.source.load(video)
        if pairs.nbytes <= self.budget:
            self.entries[video] = pairs
            self.used += pairs.nbytes
            while self.used > self.budget:
                _, evicted = self.entries.popitem(last=False)
                self.used -= evicted.nbytes
        return pairs


@dataclass(frozen=True)
class BatchMeta:
    """What predictions need besides the model outputs (numpy, aligned with the batch rows)."""

    frames: list[str]  # [F] frame keys
    pair_frame: np.ndarray  # [N]
    subject_box: np.ndarray  # [N, 4] pixels
    object_box: np.ndarray  # [N, 4] pixels
    subject_score: np.ndarray
    object_score: np.ndarray
    object_label: np.ndarray


def _normalised(boxes: np.ndarray, image_size: np.ndarray) -> np.ndarray:
    scale = np.concatenate([image_size, image_size], axis=1).astype(np.float64)
    return (boxes / np.maximum(scale, 1.0)).astype(np.float32)


def collate(groups: Sequence[VideoPairs], window: int, with_object_dist: bool) -> tuple[RelationBatch, BatchMeta]:
    """Concatenate videos into one batch; build the per-frame and per-window index tables."""
    frame_pairs: list[list[int]] = []
    video_frames: list[list[int]] = []
    row_offset = 0
    for group in groups:
        first_frame = len(frame_pairs)
        rows_of_frame = np.split(np.arange(group.num_pairs) + row_offset, np.cumsum(np.bincount(group.pair_frame, minlength=len(group.frames)))[:-1])
        # Frames without pairs (e.g. SGDet frames without a person detection) are dropped.
        kept = [rows.tolist() for rows in rows_of_frame if rows.size]
        frame_pairs.extend(kept)
        video_frames.append(list(range(first_frame, first_frame + len(kept))))
        row_offset += group.num_pairs

    def cat(name: str) -> np.ndarray:
        return np.concatenate([getattr(g, name) for g in groups], axis=0)

    def tensor(name: str, dtype: torch.dtype) -> torch.Tensor:
        return torch.as_tensor(cat(name)).to(dtype)

    image_size = np.concatenate([g.image_size[g.pair_frame] for g in groups], axis=0)
    window_pairs, window_position = window_tables(frame_pairs, video_frames, window)
    object_dist = None
    if with_object_dist and all(g.object_dist is not None for g in groups):
        object_dist = tensor("object_dist", torch.float32)
    batch = RelationBatch(
        subject_roi=tensor("subject_roi", torch.float32),
        object_roi=tensor("object_roi", torch.float32),
        union=tensor("union", torch.float32),
        subject_box=torch.as_tensor(_normalised(cat("subject_box"), image_size)),
        object_box=torch.as_tensor(_normalised(cat("object_box"), image_size)),
        motion=tensor("motion", torch.float32),
        frame_pairs=pad_groups(frame_pairs),
        window_pairs=window_pairs,
        window_position=window_position,
        object_label=tensor("object_label", torch.long),
        object_dist=object_dist,
        target_object=tensor("target_object", torch.long),
        target_attention=tensor("target_attention", torch.long),
        target_spatial=tensor("target_spatial", torch.float32),
        target_contacting=tensor("target_contacting", torch.float32),
        has_relation=tensor("has_relation", torch.bool),
    )
    frame_offsets = np.cumsum([0] + [len(g.frames) for g in groups])[:-1]
    meta = BatchMeta(
        frames=[frame for g in groups for frame in g.frames],
        pair_frame=np.concatenate([g.pair_frame + off for g, off in zip(groups, frame_offsets, strict=True)]),
        subject_box=cat("subject_box"),
        object_box=cat("object_box"),
        subject_score=cat("subject_score"),
        object_score=cat("object_score"),
        object_label=cat("object_label"),
    )
    return batch, meta


class VideoBatches:
    """Batches of ``batch_videos`` whole videos; reshuffled per epoch from (seed, epoch).

    Deriving the order from the epoch number (not from a running RNG) makes
    a resumed run see exactly the batches an uninterrupted one would.
    """

    def __init__(
        self,
        source: VideoSource,
        videos: Sequence[str],
        batch_videos: int,
        window: int,
        with_object_dist: bool,
        shuffle: bool = False,
        seed: int = 0,
    ) -> None:
        self.source = source
        self.videos = list(videos)
        self.batch_videos = batch_videos
        self.window = window
        self.with_object_dist = with_object_dist
        self.shuffle = shuffle
        self.seed = seed
        self.epoch = 0

    def __len__(self) -> int:
        return -(-len(self.videos) // self.batch_videos)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _steps(self) -> Iterator[list[str]]:
        """The videos of each step, in this epoch's order."""
        order = list(self.videos)
        if self.shuffle:
            np.random.default_rng([self.seed, self.epoch]).shuffle(order)
        for start in range(0, len(order), self.batch_videos):
            yield order[start : start + self.batch_videos]

    def _collated(self, videos: Sequence[str]) -> tuple[RelationBatch, BatchMeta] | None:
        groups = [self.source.load(video) for video in videos]
        groups = [g for g in groups if g.num_pairs]
        return collate(groups, self.window, self.with_object_dist) if groups else None

    def __iter__(self) -> Iterator[tuple[RelationBatch, BatchMeta]]:
        for videos in self._steps():
            collated = self._collated(videos)
            if collated is not None:
                yield collated

    def rank_steps(self, rank: int, world_size: int) -> Iterator[tuple[RelationBatch, BatchMeta, float]]:
        """Each step of the single-process order split over ``world_size`` ranks: this rank's part and loss weight.

        Rank ``r`` takes videos ``r, r + N, ...`` of the step's ``batch_videos``,
        so the global batch stays ``batch_videos`` whatever the number of ranks.
        DDP averages the ranks' gradients; weighting each rank's loss by
        ``N x (its videos) / (step videos)`` makes that average the step's
        per-video mean, as in one process (exactly so when the videos have equal
        numbers of pairs). Every rank must take part in every step, so a rank
        with no videos in a step (the last step of an epoch can be short) runs
        the step's videos with weight 0.
        """
        for videos in self._steps():
            mine = videos[rank::world_size]
            collated = self._collated(mine)
            if collated is not None:
                yield (*collated, world_size * len(mine) / len(videos))
                continue
            # The other ranks' videos stand in; a step with no pairs at all is skipped by every rank alike.
            stand_in = self._collated(videos)
            if stand_in is not None:
                yield (*stand_in, 0.0)


def rank_share(videos: Sequence[str], rank: int, world_size: int) -> list[str]:
    """Rank ``rank``'s contiguous block of ``videos`` (concatenated in rank order they give ``videos`` back)."""
    bounds = np.linspace(0, len(videos), world_size + 1).round().astype(int)
    return list(videos[bounds[rank] : bounds[rank + 1]])


def to_device(value, device: torch.device):
    """``value`` (a tensor, or a dataclass, dict or tuple holding tensors) with its tensors on ``device``."""
    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, dict):
        return {key: to_device(item, device) for key, item in value.items()}
    if isinstance(value, tuple):
        return tuple(to_device(item, device) for item in value)
    if is_dataclass(value):
        return replace(value, **{f.name: to_device(getattr(value, f.name), device) for f in fields(value) if f.init})
    return value
