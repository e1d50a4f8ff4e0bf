"""Training packs: one mode's train/val pairs laid out for reading at storage speed.

The ROI cache (:mod:`pipeline.extraction.cache`) is organised for writing:
one gzip-compressed HDF5 group per video holding every box of every mode,
which training must decompress, filter, join with the motion table and
targets, and convert, video by video, every epoch. A pack does that work
once. Per mode and split, ``<train.pack_dir>/<mode>/<split>.h5`` holds the
:class:`~pipeline.training.data.VideoPairs` of every video of the split,
concatenated in video order into one contiguous, uncompressed dataset per
column (features stay float16, so the values are bit-identical to what the
cache gives). A video is then one slice of each dataset, and a batch of
videos is a few slice copies into preallocated arrays
(:meth:`PackedSplit.collate`): features are memory-mapped straight from the
file (contiguous HDF5 datasets have a fixed byte offset), the small per-pair
columns are held in RAM.

=================  ============  ================================================
dataset            shape         meaning
=================  ============  ================================================
video              (V,) str      video ids, sorted
video_pairs        (V+1,) int64  video v owns pair rows ``[o[v], o[v+1])``
video_frames       (V+1,) int64  video v owns frame rows ``[o[v], o[v+1])``
frame              (F,) str      frame keys of the mode's view of the index
image_size         (F, 2) f64    width, height
pair_frame         (N,) int64    the pair's frame, as a row of its video's frames
subject_roi, ...   (N, ...)      :data:`~pipeline.training.data.PAIR_COLUMNS`
=================  ============  ================================================

Root attributes: ``pack_format``, ``mode``, ``split``, ``inputs`` (JSON: what
the pack was built from; a pack whose inputs differ from the current caches
and params is refused) and ``checksums`` (JSON: CRC-32 of each dataset's
bytes, checked before a pack is reused).
"""

from __future__ import annotations

import json
import os
import weakref
import zlib
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
from tqdm import tqdm

from pipeline.io import DataError, atomic_path
from pipeline.model.batch import RelationBatch
from pipeline.training.data import FEATURE_COLUMNS, PAIR_COLUMNS, BatchMeta, VideoSource, assemble

PACK_FORMAT = 1
PACK_SPLITS = (
    "train",
    "val",
)  # the test split is read once, by the evaluate stage, from the ROI cache
STRING = h5py.string_dtype()
BLOCK_BYTES = 64 * 2**20  # feature bytes copied per step while finishing a pack


def pack_path(pack_dir: str | Path, mode: str, split: str) -> Path:
    return Path(pack_dir) / mode / f"{split}.h5"


def rerun_hint(mode: str) -> str:
    return f"rerun the pack stage (dvc repro pack@{mode})"


def _crc(data: np.ndarray, crc: int = 0) -> int:
    return zlib.crc32(np.ascontiguousarray(data).view(np.uint8).reshape(-1), crc)


def _column_arrays(pairs: Any, names: Sequence[str]) -> dict[str, np.ndarray]:
    return {name: getattr(pairs, name) for name in names}


def write_split(
    source: VideoSource,
    split: str,
    path: Path,
    inputs: Mapping[str, Any],
    mode: str,
    motion_columns: Sequence[str],
) -> dict[str, int]:
    """Pack every video of ``split`` from ``source`` into ``path`` (atomically); return its counts.

    Features go to raw temporary files as they come (a split can be larger
    than RAM), the per-pair columns are kept in memory; the HDF5 file is
    written at the end with contiguous datasets of the final sizes.
    """
    videos = source.videos(split)
    small = [n for n in PAIR_COLUMNS if n not in FEATURE_COLUMNS]
    columns: dict[str, list[np.ndarray]] = {name: [] for name in small}
    frames: list[str] = []
    image_size, pair_frame, pair_counts, frame_counts = [], [], [], []
    widths: dict[str, int] = {}
    crcs = dict.fromkeys(FEATURE_COLUMNS, 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    raw_paths = {name: path.parent / f".{path.name}.{name}.raw.tmp" for name in FEATURE_COLUMNS}
    try:
        with ExitStack() as stack:
            raw = {name: stack.enter_context(open(p, "wb")) for name, p in raw_paths.items()}
            for video in tqdm(
                videos, desc=f"pack {mode} {split}", unit="video", disable=len(videos) < 100
            ):
                pairs = source.load(video)
                for name in FEATURE_COLUMNS:
                    # Exact: the cache stores float16 and the source only widened it.
                    values = getattr(pairs, name).astype(np.float16)
                    widths[name] = values.shape[1]
                    raw[name].write(values.tobytes())
                    crcs[name] = _crc(values, crcs[name])
                with_dist = pairs.object_dist is not None
                for name in small:
                    if name != "object_dist" or with_dist:
                        columns[name].append(getattr(pairs, name))
                frames.extend(pairs.frames)
                image_size.append(pairs.image_size)
                pair_frame.append(pairs.pair_frame)
                pair_counts.append(pairs.num_pairs)
                frame_counts.append(len(pairs.frames))
        arrays = {
            "video_pairs": np.concatenate([[0], np.cumsum(pair_counts, dtype=np.int64)]).astype(
                np.int64
            ),
            "video_frames": np.concatenate([[0], np.cumsum(frame_counts, dtype=np.int64)]).astype(
                np.int64
            ),
            "image_size": _stacked(image_size, (0, 2), np.float64),
            "pair_frame": _stacked(pair_frame, (0,), np.int64),
        }
        for name, parts in columns.items():
            if parts:
                arrays[name] = np.concatenate(parts, axis=0)
        total = int(arrays["video_pairs"][-1])
        with atomic_path(path, suffix=".h5") as tmp, h5py.File(tmp, "w") as handle:
            handle.create_dataset("video", data=np.array(videos, dtype=object), dtype=STRING)
            handle.create_dataset("frame", data=np.array(frames, dtype=object), dtype=STRING)
            checksums = {}
            for name, values in arrays.items():
                handle.create_dataset(name, data=values)
                checksums[name] = _crc(values)
            for name in FEATURE_COLUMNS:
                width = widths.get(name, 0)
                dataset = handle.create_dataset(name, shape=(total, width), dtype=np.float16)
                _copy_raw(raw_paths[name], dataset, width)
                checksums[name] = crcs[name]
            handle.attrs.update({
                "pack_format": PACK_FORMAT, "mode": mode, "split": split,
                "inputs": json.dumps(dict(inputs), sort_keys=True), "checksums": json.dumps(checksums),
                "motion_columns": json.dumps(list(motion_columns)),
            })  # fmt: skip
    finally:
        for raw_path in raw_paths.values():
            raw_path.unlink(missing_ok=True)
    return {"videos": len(videos), "frames": len(frames), "pairs": total}


def _stacked(parts: list[np.ndarray], empty_shape: tuple[int, ...], dtype) -> np.ndarray:
    return np.concatenate(parts, axis=0).astype(dtype) if parts else np.zeros(empty_shape, dtype)


def _copy_raw(raw_path: Path, dataset: h5py.Dataset, width: int) -> None:
    if not width or not dataset.shape[0]:
        return
    rows = max(1, BLOCK_BYTES // (2 * width))
    with open(raw_path, "rb") as handle:
        for start in range(0, dataset.shape[0], rows):
            block = np.fromfile(handle, dtype=np.float16, count=rows * width).reshape(-1, width)
            dataset[start : start + len(block)] = block


def verify(path: Path) -> list[str]:
    """Names of the datasets of a pack whose bytes do not match their stored CRC-32."""
    with h5py.File(path, "r") as handle:
        checksums = json.loads(handle.attrs["checksums"])
        bad = []
        for name, expected in checksums.items():
            dataset = handle[name]
            crc, step = (
                0,
                max(
                    1,
                    BLOCK_BYTES // max(1, dataset.dtype.itemsize * int(np.prod(dataset.shape[1:]))),
                ),
            )
            for start in range(0, dataset.shape[0], step):
                crc = _crc(dataset[start : start + step], crc)
            if crc != expected:
                bad.append(name)
    return bad


def reusable(path: Path, inputs: Mapping[str, Any]) -> bool:
    """True when ``path`` is a complete pack of these inputs whose checksums hold (a restart skips it)."""
    if not path.is_file():
        return False
    try:
        with h5py.File(path, "r") as handle:
            attrs = dict(handle.attrs)
        same = int(attrs.get("pack_format", -1)) == PACK_FORMAT and json.loads(
            attrs["inputs"]
        ) == dict(inputs)
        return same and not verify(path)
    except (OSError, KeyError, ValueError):
        return False


class PackedSplit:
    """Read access to one split of a pack; :meth:`collate` assembles a batch from it."""

    def __init__(
        self,
        path: Path,
        mode: str,
        inputs: Mapping[str, Any] | None = None,
        motion_columns: Sequence[str] | None = None,
    ) -> None:
        self.path, self.mode = path, mode
        if not path.is_file():
            raise DataError(f"{path}: no training pack for {mode}; {rerun_hint(mode)}")
        try:
            handle = h5py.File(path, "r")
        except OSError as err:
            raise DataError(
                f"{path}: not a readable HDF5 file ({err}); {rerun_hint(mode)}"
            ) from None
        with handle:
            attrs = dict(handle.attrs)
            if int(attrs.get("pack_format", -1)) != PACK_FORMAT or attrs.get("mode") != mode:
                raise DataError(
                    f"{path}: not a {mode} training pack of format {PACK_FORMAT} "
                    f"(format {attrs.get('pack_format')}, mode {attrs.get('mode')}); {rerun_hint(mode)}"
                )
            if inputs is not None and json.loads(attrs["inputs"]) != dict(inputs):
                raise DataError(
                    f"{path}: built from other caches or settings than the current ones; {rerun_hint(mode)}"
                )
            self.videos = [v.decode() if isinstance(v, bytes) else v for v in handle["video"][()]]
            self.frames = [f.decode() if isinstance(f, bytes) else f for f in handle["frame"][()]]
            self.columns = {
                n: handle[n][()] for n in PAIR_COLUMNS if n in handle and n not in FEATURE_COLUMNS
            }
            self.video_pairs, self.video_frames = (
                handle["video_pairs"][()],
                handle["video_frames"][()],
            )
            self.image_size, self.pair_frame = handle["image_size"][()], handle["pair_frame"][()]
            self.features = {name: _mapped(path, handle[name]) for name in FEATURE_COLUMNS}
            self.feature_offsets = {name: handle[name].id.get_offset() for name in FEATURE_COLUMNS}
            packed_columns = json.loads(attrs["motion_columns"])
        if motion_columns is not None and "motion" in self.columns:
            # The pack keeps every motion attribute; the model reads the selected ones.
            absent = [c for c in motion_columns if c not in packed_columns]
            if absent:
                raise DataError(
                    f"{path}: no motion column {absent[0]}; {rerun_hint(mode)} after the motion stage"
                )
            selected = [packed_columns.index(c) for c in motion_columns]
            self.columns["motion"] = np.ascontiguousarray(self.columns["motion"][:, selected])
        self.position = {video: i for i, video in enumerate(self.videos)}
        # Off: asking the kernel for the next batch's ranges measured 10-30 % faster
        # from a cold cache in some runs, slower in others, and ~15 % slower warm.
        self.read_ahead = False
        self._fd = os.open(path, os.O_RDONLY)
        weakref.finalize(self, os.close, self._fd)

    def collate(
        self, videos: Sequence[str], window: int, with_object_dist: bool, pin_memory: bool = False
    ) -> tuple[RelationBatch, BatchMeta] | None:
        """The batch of ``videos`` (those without pairs left out), as :func:`~pipeline.training.data.collate` gives it."""
        try:
            index = np.array([self.position[v] for v in videos], dtype=np.int64)
        except KeyError as err:
            raise DataError(
                f"{self.path}: video {err.args[0]} is not in this pack; {rerun_hint(self.mode)}"
            ) from None
        pair_start, pair_end = self.video_pairs[index], self.video_pairs[index + 1]
        keep = pair_end > pair_start
        if not keep.any():
            return None
        pair_start, pair_end, index = pair_start[keep], pair_end[keep], index[keep]
        frame_start, frame_end = self.video_frames[index], self.video_frames[index + 1]
        pair_spans = list(zip(pair_start, pair_end, strict=True))
        frame_spans = list(zip(frame_start, frame_end, strict=True))
        total = int((pair_end - pair_start).sum())
        columns: dict[str, Any] = {}
        for name, mapped in self.features.items():
            # One pass from the page cache into the batch, widening to float32 on
            # the way (torch's cast is vectorised; numpy's float16 one is ~8x slower).
            out = torch.empty((total, mapped.shape[1]), dtype=torch.float32, pin_memory=pin_memory)
            row = 0
            for start, end in pair_spans:
                out[row : row + end - start].copy_(torch.from_numpy(mapped[start:end]))
                row += end - start
            columns[name] = out
        for name, values in self.columns.items():
            columns[name] = np.concatenate([values[a:b] for a, b in pair_spans], axis=0)
        frames_per_video = frame_end - frame_start
        frame_offset = np.repeat(
            np.cumsum(frames_per_video) - frames_per_video, pair_end - pair_start
        )
        pair_frame = np.concatenate([self.pair_frame[a:b] for a, b in pair_spans]) + frame_offset
        frames = [key for a, b in frame_spans for key in self.frames[a:b]]
        image_size = np.concatenate([self.image_size[a:b] for a, b in frame_spans], axis=0)
        return assemble(
            columns, pair_frame, frames, frames_per_video, image_size, window, with_object_dist
        )

    def will_need(self, videos: Sequence[str]) -> None:
        """Start reading these videos' features in the background (the batch after the current one)."""
        if not self.read_ahead:
            return
        index = np.array([self.position[v] for v in videos if v in self.position], dtype=np.int64)
        self._read_ahead(
            list(zip(self.video_pairs[index], self.video_pairs[index + 1], strict=True))
        )

    def _read_ahead(self, pair_spans: list[tuple[int, int]]) -> None:
        """Ask the kernel to start reading every range of a batch at once.

        Copying from the memory map alone faults the pages in one readahead
        window at a time; with a batch's ranges requested together (one batch
        ahead, by :class:`~pipeline.training.data.VideoBatches`) the disk serves them in
        parallel while the current batch is copied (``benchmarks/bench_loader.py``
        measures both ways).
        """
        if not (self.read_ahead and hasattr(os, "posix_fadvise")):
            return
        for name, mapped in self.features.items():
            offset = self.feature_offsets[name]
            if offset is None or not mapped.shape[0]:
                continue
            row_bytes = mapped.dtype.itemsize * mapped.shape[1]
            for start, end in pair_spans:
                os.posix_fadvise(
                    self._fd,
                    offset + start * row_bytes,
                    (end - start) * row_bytes,
                    os.POSIX_FADV_WILLNEED,
                )

    def files(self) -> list[Path]:
        return [self.path]


def _mapped(path: Path, dataset: h5py.Dataset) -> np.ndarray:
    """A read-only memory map of a contiguous, unfiltered dataset (an empty array if it has no rows)."""
    offset = dataset.id.get_offset()
    if offset is None or dataset.size == 0:
        return np.zeros(dataset.shape, dtype=dataset.dtype)
    # Copy-on-write ("c") only so that torch can wrap slices without a read-only warning; nothing writes.
    return np.memmap(path, dtype=dataset.dtype, mode="c", offset=offset, shape=dataset.shape)


class PackedSource:
    """A :class:`~pipeline.training.data.BatchSource` over the packed splits of one mode."""

    def __init__(
        self,
        pack_dir: str | Path,
        mode: str,
        inputs: Mapping[str, Any] | None = None,
        motion_columns: Sequence[str] | None = None,
    ) -> None:
        self.mode = mode
        self.splits = {
            split: PackedSplit(pack_path(pack_dir, mode, split), mode, inputs, motion_columns)
            for split in PACK_SPLITS
        }
        self._split_of = {
            video: split for split, packed in self.splits.items() for video in packed.videos
        }

    def videos(self, split: str) -> list[str]:
        return list(self.splits[split].videos)

    def will_need(self, videos: Sequence[str]) -> None:
        split = self._split_of.get(videos[0]) if videos else None
        if split is not None:
            self.splits[split].will_need(videos)

    def collate(
        self, videos: Sequence[str], window: int, with_object_dist: bool, pin_memory: bool = False
    ) -> tuple[RelationBatch, BatchMeta] | None:
        if not videos:
            return None
        split = self._split_of.get(videos[0])
        if split is None:
            raise DataError(
                f"video {videos[0]} is in no packed split of {self.mode}; {rerun_hint(self.mode)}"
            )
        return self.splits[split].collate(videos, window, with_object_dist, pin_memory)
