"""The HDF5 ROI feature cache: layout, writer helpers and the reader API.

One file, ``roi.h5``, with one group per video (the group name is the AG
video id, e.g. ``0A8CF.mp4``). Rows of all frames of a video are
concatenated; ``*_offsets`` arrays (length frames + 1) give each frame's
slice, CSR style. The full layout is in docs/schemas.md; in short:

========================  =========================  ==========================================
dataset                   shape / dtype              meaning
========================  =========================  ==========================================
frame                     (F,) str                   AG frame key ``VIDEO.mp4/NNNNNN.png``
frame_number              (F,) int32
width, height             (F,) int32                 image size
gt_offsets                (F+1,) int64               frame f owns gt rows ``[o[f], o[f+1])``
gt_boxes                  (N, 4) float64             xyxy pixels; row 0 of a frame is the person
gt_labels                 (N,) int16                 AG object index (person = 1)
gt_small                  (N,) bool                  short side <= dataset.small_box_side
gt_features               (N, D) float16             box-head shared FC output
gt_class_scores           (N, 37) float32            detector softmax of the gt box (SGCls input)
gt_pair_offsets           (F+1,) int64
gt_pairs                  (P, 2) int32               (person row, object row), video-wide gt rows
gt_union_boxes            (P, 4) float64
gt_union_features         (P, D) float16
det_offsets               (F+1,) int64
det_boxes                 (M, 4) float64             SGDet detections, persons first
det_labels                (M,) int16
det_scores                (M,) float32
det_class_scores          (M, 37) float32            softmax over AG classes, column 0 background
det_features              (M, D) float16
det_pair_offsets          (F+1,) int64
det_pairs                 (Q, 2) int32               video-wide det rows
det_union_boxes           (Q, 4) float64
det_union_features        (Q, D) float16
========================  =========================  ==========================================

Root attributes identify the extractor (``config_sha256``,
``checkpoint_sha256``, ``feature_dim``, ...) so that caches from different
detectors are never mixed silently: :func:`require_same_extractor`.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import polars as pl

from pipeline.constants import NUM_OBJECT_CLASSES, PERSON_INDEX
from pipeline.io import DataError

FORMAT_VERSION = 2  # 2: gt_class_scores
CACHE_FILE = "roi.h5"
# Rows per HDF5 chunk: large enough for gzip to work on, small enough that
# reading one video does not decompress much of its neighbours.
CHUNK_ROWS = 512
COMPRESSION = dict(compression="gzip", compression_opts=4, shuffle=True)

# Attributes that must agree for two caches (or shards) to be combined.
IDENTITY_KEYS = ("format_version", "config_sha256", "checkpoint_sha256", "feature_dim")


@dataclass(frozen=True)
class Column:
    dtype: Any
    width: int | str | None = None  # None: 1-D; int: fixed width; "D": feature dim


# Every dataset of a video group, in writing order.
SCHEMA: dict[str, Column] = {
    "frame": Column(h5py.string_dtype()),
    "frame_number": Column(np.int32),
    "width": Column(np.int32),
    "height": Column(np.int32),
    "gt_offsets": Column(np.int64),
    "gt_boxes": Column(np.float64, 4),
    "gt_labels": Column(np.int16),
    "gt_small": Column(np.bool_),
    "gt_features": Column(np.float16, "D"),
    "gt_class_scores": Column(np.float32, NUM_OBJECT_CLASSES),
    "gt_pair_offsets": Column(np.int64),
    "gt_pairs": Column(np.int32, 2),
    "gt_union_boxes": Column(np.float64, 4),
    "gt_union_features": Column(np.float16, "D"),
    "det_offsets": Column(np.int64),
    "det_boxes": Column(np.float64, 4),
    "det_labels": Column(np.int16),
    "det_scores": Column(np.float32),
    "det_class_scores": Column(np.float32, NUM_OBJECT_CLASSES),
    "det_features": Column(np.float16, "D"),
    "det_pair_offsets": Column(np.int64),
    "det_pairs": Column(np.int32, 2),
    "det_union_boxes": Column(np.float64, 4),
    "det_union_features": Column(np.float16, "D"),
}


def write_video(
    parent: h5py.Group, video: str, arrays: Mapping[str, np.ndarray], feature_dim: int
) -> None:
    """Write one video group; ``arrays`` must hold every :data:`SCHEMA` dataset."""
    group = parent.create_group(video)
    for name, column in SCHEMA.items():
        data = np.asarray(arrays[name])
        width = feature_dim if column.width == "D" else column.width
        expected_shape = (data.shape[0],) if width is None else (data.shape[0], width)
        if data.shape != expected_shape:
            raise ValueError(f"{video}/{name}: shape {data.shape}, expected {expected_shape}")
        if name == "frame":
            group.create_dataset(name, data=data.astype(object), dtype=column.dtype)
            continue
        chunks = (max(1, min(len(data), CHUNK_ROWS)),) + data.shape[1:]
        # An unlimited first axis lets an empty dataset still have a (1, ...) chunk.
        maxshape = (None,) + data.shape[1:]
        group.create_dataset(
            name, data=data.astype(column.dtype), chunks=chunks, maxshape=maxshape, **COMPRESSION
        )


# deflate cannot expand data by more than about 1032:1, so a dataset whose
# header claims far more bytes than are stored is damaged (a flipped bit in a
# shape); reading it would first allocate the claimed size.
MAX_EXPANSION = 1100


def _read_dataset(dataset: h5py.Dataset) -> np.ndarray:
    claimed = dataset.size * dataset.dtype.itemsize
    stored = dataset.id.get_storage_size()
    if claimed > MAX_EXPANSION * stored + (1 << 20):
        raise DataError(
            f"{dataset.file.filename}: {dataset.name} claims shape {dataset.shape} "
            f"({claimed} bytes) but stores {stored} bytes; the file is damaged, rerun the extract stage"
        )
    return dataset[()]


def read_group(group: h5py.Group, names: Iterable[str] = SCHEMA) -> dict[str, np.ndarray]:
    """The datasets ``names`` (default: all) of one video group."""
    out = {name: _read_dataset(group[name]) for name in names}
    if "frame" in out:
        out["frame"] = np.array(
            [key.decode() if isinstance(key, bytes) else key for key in out["frame"]], dtype=object
        )
    return out


def identity_of(attrs: Mapping[str, Any]) -> dict[str, Any]:
    return {
        key: (attrs[key].item() if hasattr(attrs.get(key), "item") else attrs.get(key))
        for key in IDENTITY_KEYS
    }


class RoiCache:
    """Read access to ``roi.h5`` (pass the file or the folder holding it).

    ``read_video(video)`` returns a dict of numpy arrays keyed as in
    :data:`SCHEMA` (``frame`` is an object array of ``str``); features stay
    float16. ``identity`` is the extractor identity; ``attrs`` all root
    attributes (``skipped_frames`` and ``postprocess`` decoded from JSON).
    """

    def __init__(self, path: str | Path):
        path = Path(path)
        self.path = path / CACHE_FILE if path.is_dir() else path
        if not self.path.is_file():
            raise DataError(f"{self.path}: ROI cache not found (run the extract stage)")
        try:
            self._file = h5py.File(self.path, "r")
        except OSError as err:
            raise DataError(
                f"{self.path}: not a readable HDF5 file ({err}); rerun the extract stage"
            ) from None
        with self._damage_as_error("header"):
            attrs = dict(self._file.attrs)
            version = attrs.get("format_version", -1)
            if not isinstance(version, (int, np.integer)) or int(version) != FORMAT_VERSION:
                raise DataError(
                    f"{self.path}: cache format {version} is not {FORMAT_VERSION}; "
                    "rerun the extract stage"
                )
            for key in ("skipped_frames", "postprocess"):
                if key in attrs:
                    attrs[key] = json.loads(attrs[key])
            self.attrs = attrs
            self.identity = identity_of(self._file.attrs)
            self.feature_dim = int(attrs["feature_dim"])

    @contextlib.contextmanager
    def _damage_as_error(self, what: str) -> Iterator[None]:
        # h5py raises KeyError/OSError for a missing or damaged object, and
        # the JSON attributes may not parse: all mean "rerun the extract stage".
        try:
            yield
        except (KeyError, OSError, ValueError, TypeError) as err:
            if isinstance(err, DataError):
                raise
            message = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise DataError(f"{self.path}: {what} is unreadable ({message}); rerun the extract stage") from None

    def videos(self) -> list[str]:
        with self._damage_as_error("the video list"):
            return sorted(self._file.keys())

    def __contains__(self, video: str) -> bool:
        return video in self._file

    def read_video(self, video: str, names: Iterable[str] = SCHEMA) -> dict[str, np.ndarray]:
        """The datasets ``names`` (default: all of :data:`SCHEMA`) of one video."""
        with self._damage_as_error(f"video {video!r}"):
            if video not in self._file:
                raise DataError(f"{self.path}: video {video!r} is not in the ROI cache")
            return read_group(self._file[video], names)

    def iter_videos(self, names: Iterable[str] = SCHEMA) -> Iterator[tuple[str, dict[str, np.ndarray]]]:
        for video in self.videos():
            yield video, self.read_video(video, names)

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> RoiCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def require_same_extractor(first: Mapping[str, Any], second: Mapping[str, Any], what: str) -> None:
    """Raise :class:`DataError` unless two identities (see :data:`IDENTITY_KEYS`) agree."""
    for key in IDENTITY_KEYS:
        if first.get(key) != second.get(key):
            raise DataError(
                f"{what}: {key} differs ({first.get(key)!r} vs {second.get(key)!r}); features "
                "from different detectors cannot be mixed, re-extract with one detector"
            )


def top_person_rows(labels: np.ndarray, scores: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Per frame, the row of its highest-scoring person detection (lowest row on ties), -1 if none.

    ``offsets`` are the frame boundaries of ``labels``/``scores`` (as
    ``det_offsets``). This is the one rule that picks a frame's SGDet subject:
    the motion stage and the training data both use it, so their det pairs
    join row for row.
    """
    top = np.full(len(offsets) - 1, -1, dtype=np.int64)
    frame_of_row = np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))
    person = np.flatnonzero(labels == PERSON_INDEX)
    if person.size:
        chosen = person[np.lexsort((person, -scores[person].astype(np.float64), frame_of_row[person]))]
        frames = frame_of_row[chosen]
        first = np.concatenate([[True], frames[1:] != frames[:-1]])
        top[frames[first]] = chosen[first]
    return top


DETECTION_SCHEMA: dict[str, pl.DataType] = {
    "video": pl.String,
    "frame": pl.String,
    "frame_number": pl.Int32,
    "det_index": pl.Int32,
    "label": pl.Int16,
    "score": pl.Float32,
    "x1": pl.Float64,
    "y1": pl.Float64,
    "x2": pl.Float64,
    "y2": pl.Float64,
    "width": pl.Int32,
    "height": pl.Int32,
}


# What the detection table needs: boxes, labels and scores, never the features.
DETECTION_DATASETS = ("frame", "frame_number", "width", "height", "det_offsets", "det_boxes", "det_labels", "det_scores")


def _read_numeric(group: h5py.Group, name: str) -> np.ndarray:
    """One numeric dataset through h5py's low-level API.

    The high-level ``group[name][()]`` costs about 0.2 ms a call, which
    dominates when thousands of videos each give a few small arrays.
    """
    dataset = h5py.h5d.open(group.id, name.encode())
    out = np.empty(dataset.shape, dtype=dataset.dtype)
    if out.size:
        dataset.read(h5py.h5s.ALL, h5py.h5s.ALL, out)
    return out


def load_detection_table(roi_dir: str | Path) -> pl.DataFrame:
    """All SGDet detections of a cache, one row per detection, sorted by (video, frame_number, det_index).

    Columns and dtypes are :data:`DETECTION_SCHEMA`; ``det_index`` is the row
    within its frame (persons first), ``label`` the AG index (person = 1),
    ``x1..y2`` xyxy pixels, ``width``/``height`` the image size. Reads only
    :data:`DETECTION_DATASETS` of each video, and builds the table once.
    """
    numeric = [name for name in DETECTION_DATASETS if name != "frame"]
    parts: dict[str, list[np.ndarray]] = {name: [] for name in (*DETECTION_DATASETS, "video")}
    with RoiCache(roi_dir) as cache:
        for video in cache.videos():
            group = cache._file[video]
            for name in numeric:
                parts[name].append(_read_numeric(group, name))
            parts["frame"].append(read_group(group, ("frame",))["frame"])
            parts["video"].append(video)
    if not parts["video"]:
        return pl.DataFrame(schema=DETECTION_SCHEMA)
    # Video-wide rows -> one table: each detection's frame, as a row of all frames.
    per_frame = np.concatenate([np.diff(o) for o in parts["det_offsets"]])
    frame_of_row = np.repeat(np.arange(len(per_frame)), per_frame)
    first_row = np.repeat(np.cumsum(per_frame) - per_frame, per_frame)
    detections_per_video = np.array([len(labels) for labels in parts["det_labels"]])
    boxes = np.concatenate(parts["det_boxes"]).reshape(-1, 4)

    def per_detection(name: str) -> np.ndarray:
        return np.concatenate(parts[name])[frame_of_row]

    table = pl.DataFrame({
        "video": np.repeat(np.array(parts["video"], dtype=object), detections_per_video),
        "frame": per_detection("frame"),
        "frame_number": per_detection("frame_number"),
        "det_index": np.arange(len(frame_of_row)) - first_row,
        "label": np.concatenate(parts["det_labels"]),
        "score": np.concatenate(parts["det_scores"]),
        "x1": boxes[:, 0], "y1": boxes[:, 1], "x2": boxes[:, 2], "y2": boxes[:, 3],
        "width": per_detection("width"),
        "height": per_detection("height"),
    })  # fmt: skip
    return table.cast(DETECTION_SCHEMA).select(list(DETECTION_SCHEMA)).sort(["video", "frame_number", "det_index"])
