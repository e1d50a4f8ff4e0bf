"""The shard store: per-video arrays in :data:`cache.SCHEMA` layout, written as checksummed shards.

Work is split into shards of ``extract.videos_per_shard`` consecutive videos
(sorted by id). Each shard is written to a temporary HDF5 file, renamed, and
then confirmed by a JSON marker holding its SHA-256 and a key of everything
that determines its content (detector identity, post-processing, the frames
and boxes). A shard whose marker, key and checksum agree is complete; any
other shard is redone. :func:`merge_shards` copies finished shards into the
one cache file the later stages read.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from pipeline.detector.model import Detector
from pipeline.extraction import cache
from pipeline.extraction.forward import FrameResult, feature_layer
from pipeline.extraction.frame_records import FrameRecord
from pipeline.io import DataError, atomic_path, atomic_write_json, sha256_file
from pipeline.params import DetectionPostprocessParams, ExtractParams


def plan_shards(videos: Sequence[str], videos_per_shard: int) -> list[list[str]]:
    videos = sorted(videos)
    return [
        videos[start : start + videos_per_shard]
        for start in range(0, len(videos), videos_per_shard)
    ]


def _offsets(counts: Sequence[int]) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(counts, dtype=np.int64)]).astype(np.int64)


def _stack(arrays: Sequence[np.ndarray], width: int | None, dtype) -> np.ndarray:
    shape = (0,) if width is None else (0, width)
    return (
        np.concatenate([np.asarray(a, dtype=dtype).reshape((-1,) + shape[1:]) for a in arrays])
        if arrays
        else np.zeros(shape, dtype)
    )


def assemble_video(
    records: Sequence[FrameRecord], results: Sequence[FrameResult], feature_dim: int
) -> dict[str, np.ndarray]:
    """Concatenate per-frame results into the :data:`cache.SCHEMA` arrays of one video."""
    gt_counts = [len(r.gt_labels) for r in records]
    det_counts = [len(r.det_labels) for r in results]
    # Pairs index rows within their frame; the cache stores video-wide rows.
    gt_pairs = [
        res.gt_pairs + start for res, start in zip(results, _offsets(gt_counts)[:-1], strict=True)
    ]
    det_pairs = [
        res.det_pairs + start for res, start in zip(results, _offsets(det_counts)[:-1], strict=True)
    ]
    arrays = {
        "frame": np.array([r.frame for r in records], dtype=object),
        "frame_number": np.array([r.frame_number for r in records], dtype=np.int32),
        "width": np.array([r.width for r in records], dtype=np.int32),
        "height": np.array([r.height for r in records], dtype=np.int32),
        "gt_offsets": _offsets(gt_counts),
        "gt_pair_offsets": _offsets([len(p) for p in gt_pairs]),
        "det_offsets": _offsets(det_counts),
        "det_pair_offsets": _offsets([len(p) for p in det_pairs]),
    }
    per_frame = {
        "gt_boxes": [r.gt_boxes for r in records],
        "gt_labels": [r.gt_labels for r in records],
        "gt_small": [r.gt_small for r in records],
        "gt_pairs": gt_pairs,
        "det_pairs": det_pairs,
    }
    for name, column in cache.SCHEMA.items():
        if name in arrays:
            continue
        parts = per_frame[name] if name in per_frame else [getattr(r, name) for r in results]
        width = feature_dim if column.width == "D" else column.width
        arrays[name] = _stack(parts, width, column.dtype)
    return {name: arrays[name] for name in cache.SCHEMA}


@dataclass
class Shard:
    index: int
    videos: list[str]
    records: list[FrameRecord]
    key: str = ""

    @property
    def name(self) -> str:
        return f"shard-{self.index:05d}"


def cache_attrs(detector: Detector, postprocess: DetectionPostprocessParams) -> dict:
    """Root attributes shared by every shard and the merged cache."""
    return {
        "format_version": cache.FORMAT_VERSION,
        **detector.identity(),
        "config_path": detector.config_path,
        "checkpoint_path": detector.checkpoint_path,
        "feature_layer": feature_layer(detector),
        "postprocess": json.dumps(postprocess.model_dump(), sort_keys=True),
    }


def shard_key(shard: Shard, attrs: dict, extract: ExtractParams) -> str:
    """Hash of everything the shard's content depends on."""
    digest = hashlib.sha256()
    settings = {
        "attrs": attrs,
        "batch_frames": extract.batch_frames,
        "skip_missing": extract.skip_missing_frames,
    }
    digest.update(json.dumps(settings, sort_keys=True).encode())
    for record in shard.records:
        digest.update(f"{record.frame}|{record.width}|{record.height}|{record.path}".encode())
        for array in (record.gt_boxes, record.gt_labels, record.gt_small):
            digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def _marker_path(parts_dir: Path, shard: Shard) -> Path:
    return parts_dir / f"{shard.name}.json"


def _shard_path(parts_dir: Path, shard: Shard) -> Path:
    return parts_dir / f"{shard.name}.h5"


def shard_is_complete(parts_dir: Path, shard: Shard) -> bool:
    """True when the shard file exists and matches its marker's key, size and checksum."""
    marker, path = _marker_path(parts_dir, shard), _shard_path(parts_dir, shard)
    try:
        info = json.loads(marker.read_text())
    except (OSError, ValueError):
        return False
    if (
        info.get("key") != shard.key
        or not path.is_file()
        or path.stat().st_size != info.get("bytes")
    ):
        return False
    return sha256_file(path) == info.get("sha256")


def write_shard(
    parts_dir: Path,
    shard: Shard,
    attrs: dict,
    videos: dict[str, dict],
    skipped: list[str],
    feature_dim: int,
) -> None:
    """Write the shard HDF5 atomically, then its marker (the marker is what makes it count)."""
    _marker_path(parts_dir, shard).unlink(missing_ok=True)
    path = _shard_path(parts_dir, shard)
    with atomic_path(path, suffix=".h5") as tmp:
        with h5py.File(tmp, "w", track_order=True) as handle:
            handle.attrs.update(attrs)
            handle.attrs["skipped_frames"] = json.dumps(skipped)
            for video in shard.videos:
                cache.write_video(handle, video, videos[video], feature_dim)
    atomic_write_json(
        _marker_path(parts_dir, shard),
        {
            "key": shard.key,
            "bytes": path.stat().st_size,
            "sha256": sha256_file(path),
            "videos": shard.videos,
        },
    )


def merge_shards(
    parts_dir: Path, shards: Sequence[Shard], out_path: Path, attrs: dict
) -> list[str]:
    """Copy every shard's video groups (in video order) into ``out_path``; return the skipped frames."""
    skipped: list[str] = []
    with atomic_path(out_path, suffix=".h5") as tmp:
        with h5py.File(tmp, "w", track_order=True) as out:
            out.attrs.update(attrs)
            for shard in shards:
                if not shard_is_complete(parts_dir, shard):
                    raise DataError(
                        f"{_shard_path(parts_dir, shard)}: shard incomplete or corrupt at merge time; rerun the extract stage"
                    )
                with h5py.File(_shard_path(parts_dir, shard), "r") as part:
                    cache.require_same_extractor(
                        cache.identity_of(part.attrs),
                        cache.identity_of(out.attrs),
                        str(_shard_path(parts_dir, shard)),
                    )
                    skipped += json.loads(part.attrs["skipped_frames"])
                    for video in shard.videos:
                        part.copy(part[video], out, name=video)
            out.attrs["skipped_frames"] = json.dumps(skipped)
    return skipped
