"""Per-video pair groups, a bounded in-memory cache of them, and batching.

A :class:`VideoPairs` holds every (person, object) pair of one video for one
mode, with features, motion attributes and targets already joined, as numpy
arrays. A source (see :mod:`pipeline.training.sources`) builds it from the
caches; :class:`VideoBatches` groups several videos into one
:class:`~pipeline.model.batch.RelationBatch`.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields, is_dataclass, replace
from queue import Full, Queue
from typing import Protocol, runtime_checkable

import numpy as np
import torch

from pipeline.model.batch import RelationBatch


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


@runtime_checkable
class BatchSource(Protocol):
    """A source that assembles a whole batch itself (e.g. from a packed split), without :class:`VideoPairs`."""

    def videos(self, split: str) -> list[str]: ...

    def collate(
        self, videos: Sequence[str], window: int, with_object_dist: bool, pin_memory: bool = False
    ) -> tuple[RelationBatch, BatchMeta] | None: ...


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


# Per-pair arrays of a batch, in :class:`VideoPairs` order (``object_dist`` is optional).
PAIR_COLUMNS = (
    "subject_roi", "object_roi", "union", "subject_box", "object_box", "subject_score", "object_score",
    "object_label", "object_dist", "motion", "target_object", "target_attention", "target_spatial",
    "target_contacting", "has_relation",
)  # fmt: skip
FEATURE_COLUMNS = ("subject_roi", "object_roi", "union")


def index_tables(pair_frame: np.ndarray, frames_per_video: np.ndarray, window: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``frame_pairs``, ``window_pairs`` and ``window_position`` of a batch, in numpy without per-pair Python.

    ``pair_frame`` [N] (non-decreasing) is each pair's frame among all the
    batch's frames, ``frames_per_video`` [V] their count per video. Frames
    without pairs are dropped; the tables equal
    :func:`~pipeline.model.batch.pad_groups` and
    :func:`~pipeline.model.batch.window_tables` of the per-frame row lists.
    Because pairs are in frame order, the rows of a frame and of a window are
    contiguous ranges.
    """
    kept, pair_kept = np.unique(pair_frame, return_inverse=True)  # frames with pairs
    counts = np.bincount(pair_kept, minlength=len(kept))
    first_row = np.concatenate([[0], np.cumsum(counts)])
    rows = np.arange(len(pair_frame))
    frame_pairs = np.full((len(kept), max(int(counts.max(initial=0)), 1)), -1, dtype=np.int64)
    frame_pairs[pair_kept, rows - first_row[pair_kept]] = rows
    # Sliding windows of ``window`` kept frames (stride 1) within each video.
    video_of_kept = np.searchsorted(np.cumsum(frames_per_video), kept, side="right")
    kept_per_video = np.bincount(video_of_kept, minlength=len(frames_per_video))
    kept_per_video = kept_per_video[kept_per_video > 0]
    first_kept = np.concatenate([[0], np.cumsum(kept_per_video)])[:-1]
    windows_per_video = np.maximum(kept_per_video - window, 0) + 1
    window_start = np.repeat(first_kept, windows_per_video) + _ranges(windows_per_video)
    window_end = window_start + np.repeat(np.minimum(kept_per_video, window), windows_per_video)
    row_start, row_count = first_row[window_start], first_row[window_end] - first_row[window_start]
    slot = np.arange(max(int(row_count.max(initial=0)), 1))
    valid = slot[None, :] < row_count[:, None]
    window_rows = np.where(valid, row_start[:, None] + slot[None, :], -1)
    position = np.where(valid, pair_kept[np.maximum(window_rows, 0)] - window_start[:, None], 0)
    return torch.from_numpy(frame_pairs), torch.from_numpy(window_rows), torch.from_numpy(position)


def _ranges(lengths: np.ndarray) -> np.ndarray:
    """Concatenated ``arange(n)`` for each n of ``lengths``."""
    ends = np.cumsum(lengths)
    return np.arange(int(ends[-1]) if len(ends) else 0) - np.repeat(ends - lengths, lengths)


def assemble(
    columns: dict[str, np.ndarray],
    pair_frame: np.ndarray,
    frames: list[str],
    frames_per_video: np.ndarray,
    image_size: np.ndarray,
    window: int,
    with_object_dist: bool,
) -> tuple[RelationBatch, BatchMeta]:
    """One batch from its concatenated per-pair ``columns`` (see :data:`PAIR_COLUMNS`).

    ``pair_frame`` [N] indexes ``frames`` (all frames of the batch's videos,
    ``frames_per_video`` of each), ``image_size`` [F, 2] is theirs. Feature
    columns should already be float32: the tensors share their memory.
    """
    def tensor(name: str, dtype: torch.dtype) -> torch.Tensor:
        return torch.as_tensor(columns[name]).to(dtype)

    frame_pairs, window_pairs, window_position = index_tables(pair_frame, frames_per_video, window)
    pair_image_size = image_size[pair_frame]
    object_dist = columns.get("object_dist")
    batch = RelationBatch(
        subject_roi=tensor("subject_roi", torch.float32),
        object_roi=tensor("object_roi", torch.float32),
        union=tensor("union", torch.float32),
        subject_box=torch.as_tensor(_normalised(columns["subject_box"], pair_image_size)),
        object_box=torch.as_tensor(_normalised(columns["object_box"], pair_image_size)),
        motion=tensor("motion", torch.float32),
        frame_pairs=frame_pairs,
        window_pairs=window_pairs,
        window_position=window_position,
        object_label=tensor("object_label", torch.long),
        object_dist=tensor("object_dist", torch.float32) if with_object_dist and object_dist is not None else None,
        target_object=tensor("target_object", torch.long),
        target_attention=tensor("target_attention", torch.long),
        target_spatial=tensor("target_spatial", torch.float32),
        target_contacting=tensor("target_contacting", torch.float32),
        has_relation=tensor("has_relation", torch.bool),
    )
    meta = BatchMeta(
        frames=frames,
        pair_frame=pair_frame,
        subject_box=columns["subject_box"],
        object_box=columns["object_box"],
        subject_score=columns["subject_score"],
        object_score=columns["object_score"],
        object_label=columns["object_label"],
    )
    return batch, meta


def collate(groups: Sequence[VideoPairs], window: int, with_object_dist: bool) -> tuple[RelationBatch, BatchMeta]:
    """Concatenate videos into one batch; build the per-frame and per-window index tables."""
    names = [n for n in PAIR_COLUMNS if n != "object_dist" or all(g.object_dist is not None for g in groups)]
    columns = {name: np.concatenate([getattr(g, name) for g in groups], axis=0) for name in names}
    frames_per_video = np.array([len(g.frames) for g in groups], dtype=np.int64)
    frame_offsets = np.cumsum(frames_per_video) - frames_per_video
    pair_frame = np.concatenate([g.pair_frame + off for g, off in zip(groups, frame_offsets, strict=True)])
    frames = [frame for g in groups for frame in g.frames]
    image_size = np.concatenate([g.image_size for g in groups], axis=0)
    return assemble(columns, pair_frame, frames, frames_per_video, image_size, window, with_object_dist)


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
        prefetch: int = 0,
        pin_memory: bool = False,
    ) -> None:
        self.source = source
        self.prefetch = prefetch
        self.pin_memory = pin_memory  # features in page-locked memory, for asynchronous copies to a GPU
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
        if isinstance(self.source, BatchSource):
            return self.source.collate(videos, self.window, self.with_object_dist, self.pin_memory)
        groups = [self.source.load(video) for video in videos]
        groups = [g for g in groups if g.num_pairs]
        return collate(groups, self.window, self.with_object_dist) if groups else None

    def __iter__(self) -> Iterator[tuple[RelationBatch, BatchMeta]]:
        for item in prefetched(self._in_order(), self.prefetch):
            if item is not None:
                yield item

    def _in_order(self) -> Iterator[tuple[RelationBatch, BatchMeta] | None]:
        """Each step's batch; a source that can (a pack) starts reading the next step's data meanwhile."""
        steps = list(self._steps())
        will_need = getattr(self.source, "will_need", None)
        if will_need is not None and steps:
            will_need(steps[0])
        for step, videos in enumerate(steps):
            if will_need is not None and step + 1 < len(steps):
                will_need(steps[step + 1])
            yield self._collated(videos)

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


def prefetched(items: Iterator, depth: int) -> Iterator:
    """``items`` in order, produced up to ``depth`` ahead by a background thread (0: in this thread).

    Reading and assembling the next batch (numpy copies and casts release the
    GIL) then overlaps the model's step. An exception in the thread is raised
    here, at the item it stopped at.
    """
    if depth <= 0:
        yield from items
        return
    queue: Queue = Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def put(entry: tuple) -> bool:
        """Hand ``entry`` over unless the consumer has gone (then False)."""
        while not stop.is_set():
            try:
                queue.put(entry, timeout=0.1)
                return True
            except Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put((item, None)):
                    return
            put((done, None))
        except BaseException as err:  # handed to the consumer
            put((done, err))

    worker = threading.Thread(target=produce, name="batch-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            item, error = queue.get()
            if error is not None:
                raise error
            if item is done:
                return
            yield item
    finally:
        stop.set()
        worker.join()


def rank_share(videos: Sequence[str], rank: int, world_size: int) -> list[str]:
    """Rank ``rank``'s contiguous block of ``videos`` (concatenated in rank order they give ``videos`` back)."""
    bounds = np.linspace(0, len(videos), world_size + 1).round().astype(int)
    return list(videos[bounds[rank] : bounds[rank + 1]])


def to_device(value, device: torch.device):
    """``value`` (a tensor, or a dataclass, dict or tuple holding tensors) with its tensors on ``device``."""
    if isinstance(value, torch.Tensor):
        # Asynchronous only towards a GPU (from pinned memory it overlaps the copy).
        return value.to(device, non_blocking=device.type == "cuda")
    if isinstance(value, dict):
        return {key: to_device(item, device) for key, item in value.items()}
    if isinstance(value, tuple):
        return tuple(to_device(item, device) for item in value)
    if is_dataclass(value):
        return replace(value, **{f.name: to_device(getattr(value, f.name), device) for f in fields(value) if f.init})
    return value
