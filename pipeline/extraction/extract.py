"""Run the detector once over every indexed frame and write the ROI cache.

Work is split into shards of ``extract.videos_per_shard`` consecutive videos
(sorted by id). Each shard is written to a temporary HDF5 file, renamed, and
then confirmed by a JSON marker holding its SHA-256 and a key of everything
that determines its content (detector identity, post-processing, the frames
and boxes). A restart skips shards whose marker, key and checksum agree, and
redoes any other shard, so a SIGKILL at any moment followed by a rerun gives
the same cache as an uninterrupted run. Under ``torchrun`` rank ``r`` takes
shards ``r, r + N, ...``; rank 0 waits for the others and merges the shards
into ``roi.h5``. A shard is always computed as the same sequence of batches,
so the result does not depend on the number of ranks.

Frames are decoded (with the config's ``test_pipeline``) in DataLoader
worker processes while the main process runs the detector.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np
import torch
from tqdm import tqdm

from pipeline.ag.layout import frame_path
from pipeline.ag.reader import read_index
from pipeline.constants import PERSON_INDEX
from pipeline.detector.model import Detector, file_sha256
from pipeline.detector.postprocess import postprocess_detections
from pipeline.distributed import process_group
from pipeline.extraction import cache
from pipeline.extraction.roi_features import person_object_pairs, roi_embeddings, union_boxes
from pipeline.io import DataError, atomic_path, atomic_write_json
from pipeline.params import DetectionPostprocessParams, ExtractParams

FEATURE_LAYER = (
    "roi_head.bbox_head shared FC output (after ReLU), pooled by roi_head.bbox_roi_extractor"
)


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


def plan_shards(videos: Sequence[str], videos_per_shard: int) -> list[list[str]]:
    videos = sorted(videos)
    return [
        videos[start : start + videos_per_shard]
        for start in range(0, len(videos), videos_per_shard)
    ]


def frame_batches(shard_frames: Sequence[int], batch_frames: int) -> list[list[int]]:
    """Consecutive batches within one shard: a shard is always computed the same way."""
    return [
        list(shard_frames[start : start + batch_frames])
        for start in range(0, len(shard_frames), batch_frames)
    ]


class FrameDataset(torch.utils.data.Dataset):
    """Decodes frames with the detector config's ``test_pipeline``; errors are returned, not raised.

    Returning the error lets the main process stop with a one-line message
    (or skip the frame) instead of a worker traceback.
    """

    def __init__(self, records: Sequence[FrameRecord], test_pipeline):
        from mmengine.dataset import Compose

        from pipeline.detector.model import register_mmdet

        register_mmdet()
        self.records = list(records)
        self.pipeline = Compose(test_pipeline)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict:
        record = self.records[index]
        if not record.path.is_file():
            return {"index": index, "error": f"{record.path}: frame {record.frame} is missing"}
        try:
            packed = self.pipeline({"img_path": str(record.path), "img_id": index})
        except Exception as err:  # any decoder failure means the same thing to the user
            return {
                "index": index,
                "error": f"{record.path}: frame {record.frame} cannot be decoded ({err})",
            }
        return {
            "index": index,
            "inputs": packed["inputs"],
            "data_samples": packed["data_samples"],
            "error": None,
        }


def _collate(items: list[dict]) -> list[dict]:
    return items


@dataclass
class FrameResult:
    gt_features: np.ndarray
    gt_pairs: np.ndarray
    gt_union_boxes: np.ndarray
    gt_union_features: np.ndarray
    det_boxes: np.ndarray
    det_labels: np.ndarray
    det_scores: np.ndarray
    det_class_scores: np.ndarray
    det_features: np.ndarray
    det_pairs: np.ndarray
    det_union_boxes: np.ndarray
    det_union_features: np.ndarray


class FrameExtractor:
    """Detector forward + AG post-processing + ROI pooling for a batch of decoded frames."""

    def __init__(
        self, detector: Detector, postprocess: DetectionPostprocessParams, device: torch.device
    ):
        self.detector = detector
        self.postprocess = postprocess
        self.device = device

    @torch.no_grad()
    def __call__(self, items: Sequence[dict], records: Sequence[FrameRecord]) -> list[FrameResult]:
        model = self.detector.model
        samples = [item["data_samples"] for item in items]
        for sample in samples:
            if "scale_factor" not in sample.metainfo:  # a test_pipeline without Resize
                sample.set_metainfo({"scale_factor": (1.0, 1.0)})
        data = model.data_preprocessor(
            {"inputs": [item["inputs"] for item in items], "data_samples": samples}, False
        )
        samples = data["data_samples"]
        feats = model.extract_feat(data["inputs"])
        proposals = model.rpn_head.predict(feats, samples, rescale=False)
        metas = [sample.metainfo for sample in samples]
        # rcnn_test_cfg=None: per-class boxes (in original pixels) and the full softmax.
        raw = model.roi_head.predict_bbox(feats, metas, proposals, rcnn_test_cfg=None, rescale=True)

        per_image_boxes, per_image_parts = [], []
        for image, (record, raw_image) in enumerate(zip(records, raw, strict=True)):
            dets = postprocess_detections(
                raw_image.bboxes, raw_image.scores, self.detector.ag_labels, self.postprocess
            )
            gt_boxes = torch.as_tensor(record.gt_boxes, dtype=torch.float32, device=self.device)
            gt_pairs = person_object_pairs(torch.as_tensor(record.gt_labels.astype(np.int64)))
            det_pairs = person_object_pairs(dets.labels.cpu())
            parts = {
                "gt": gt_boxes,
                "gt_union": union_boxes(gt_boxes, gt_pairs),
                "det": dets.boxes,
                "det_union": union_boxes(dets.boxes, det_pairs),
            }
            scale = dets.boxes.new_tensor(metas[image]["scale_factor"]).repeat(2)
            boxes = torch.cat(list(parts.values())) * scale
            per_image_boxes.append(
                torch.cat([boxes.new_full((len(boxes), 1), image), boxes], dim=1)
            )
            per_image_parts.append((parts, dets, gt_pairs, det_pairs))

        embeddings = roi_embeddings(model, feats, torch.cat(per_image_boxes)).float().cpu()
        results, start = [], 0
        for parts, dets, gt_pairs, det_pairs in per_image_parts:
            sizes = [len(boxes) for boxes in parts.values()]
            gt_f, gt_union_f, det_f, det_union_f = embeddings[start : start + sum(sizes)].split(
                sizes
            )
            start += sum(sizes)
            results.append(
                FrameResult(
                    gt_features=gt_f.numpy(),
                    gt_pairs=gt_pairs.numpy(),
                    gt_union_boxes=parts["gt_union"].cpu().numpy(),
                    gt_union_features=gt_union_f.numpy(),
                    det_boxes=dets.boxes.cpu().numpy(),
                    det_labels=dets.labels.cpu().numpy(),
                    det_scores=dets.scores.cpu().numpy(),
                    det_class_scores=dets.class_scores.cpu().numpy(),
                    det_features=det_f.numpy(),
                    det_pairs=det_pairs.numpy(),
                    det_union_boxes=parts["det_union"].cpu().numpy(),
                    det_union_features=det_union_f.numpy(),
                )
            )
        return results


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
    return {
        "frame": np.array([r.frame for r in records], dtype=object),
        "frame_number": np.array([r.frame_number for r in records], dtype=np.int32),
        "width": np.array([r.width for r in records], dtype=np.int32),
        "height": np.array([r.height for r in records], dtype=np.int32),
        "gt_offsets": _offsets(gt_counts),
        "gt_boxes": _stack([r.gt_boxes for r in records], 4, np.float64),
        "gt_labels": _stack([r.gt_labels for r in records], None, np.int16),
        "gt_small": _stack([r.gt_small for r in records], None, np.bool_),
        "gt_features": _stack([r.gt_features for r in results], feature_dim, np.float16),
        "gt_pair_offsets": _offsets([len(p) for p in gt_pairs]),
        "gt_pairs": _stack(gt_pairs, 2, np.int32),
        "gt_union_boxes": _stack([r.gt_union_boxes for r in results], 4, np.float64),
        "gt_union_features": _stack(
            [r.gt_union_features for r in results], feature_dim, np.float16
        ),
        "det_offsets": _offsets(det_counts),
        "det_boxes": _stack([r.det_boxes for r in results], 4, np.float64),
        "det_labels": _stack([r.det_labels for r in results], None, np.int16),
        "det_scores": _stack([r.det_scores for r in results], None, np.float32),
        "det_class_scores": _stack([r.det_class_scores for r in results], 37, np.float32),
        "det_features": _stack([r.det_features for r in results], feature_dim, np.float16),
        "det_pair_offsets": _offsets([len(p) for p in det_pairs]),
        "det_pairs": _stack(det_pairs, 2, np.int32),
        "det_union_boxes": _stack([r.det_union_boxes for r in results], 4, np.float64),
        "det_union_features": _stack(
            [r.det_union_features for r in results], feature_dim, np.float16
        ),
    }


# ---------------------------------------------------------------- shards


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
        "feature_layer": FEATURE_LAYER,
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
    return file_sha256(path) == info.get("sha256")


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
            "sha256": file_sha256(path),
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


# ---------------------------------------------------------------- driver


@dataclass
class ExtractReport:
    frames: int
    videos: int
    extracted_frames: int  # frames computed in this run (fewer after a resume)
    skipped_frames: list[str] = field(default_factory=list)
    seconds: float = 0.0
    cache_bytes: int = 0

    def as_metrics(self, world_size: int) -> dict:
        megabytes = self.cache_bytes / 1e6
        return {
            "frames": self.frames,
            "videos": self.videos,
            "extracted_frames": self.extracted_frames,
            "skipped_frames": len(self.skipped_frames),
            "seconds": round(self.seconds, 2),
            "frames_per_s": round(self.extracted_frames / self.seconds, 2)
            if self.seconds
            else None,
            "cache_mb": round(megabytes, 3),
            "mb_per_1000_frames": round(1000 * megabytes / max(self.frames, 1), 3),
            "world_size": world_size,
        }


def _sum_over_ranks(value: int, device: torch.device) -> int:
    total = torch.tensor([value], dtype=torch.int64, device=device)
    torch.distributed.all_reduce(total)
    return int(total.item())


def _iterate_batches(
    shards: Sequence[Shard], extract: ExtractParams, test_pipeline
) -> Iterator[tuple[Shard, list[dict], list[FrameRecord]]]:
    """Decoded batches, shard by shard, decoded ahead in worker processes."""
    records = [record for shard in shards for record in shard.records]
    batches, owner, start = [], [], 0
    for shard in shards:
        for batch in frame_batches(range(start, start + len(shard.records)), extract.batch_frames):
            batches.append(batch)
            owner.append(shard)
        start += len(shard.records)
    if not batches:
        return
    loader = torch.utils.data.DataLoader(
        FrameDataset(records, test_pipeline),
        batch_sampler=batches,
        num_workers=extract.decode_workers,
        collate_fn=_collate,
    )
    for shard, items in zip(owner, loader, strict=True):
        yield shard, items, [records[item["index"]] for item in items]


def extract_cache(
    detector: Detector,
    records_by_video: dict[str, list[FrameRecord]],
    extract: ExtractParams,
    postprocess: DetectionPostprocessParams,
    rank: int = 0,
    world_size: int = 1,
    device: torch.device | str = "cpu",
) -> ExtractReport | None:
    """Extract (or resume) the cache into ``extract.out_dir``; rank 0 returns the report."""
    device = torch.device(device)
    out_dir = Path(extract.out_dir)
    parts_dir = out_dir.parent / f"{out_dir.name}.parts"
    parts_dir.mkdir(parents=True, exist_ok=True)
    attrs = cache_attrs(detector, postprocess)
    feature_dim = detector.feature_dim
    shards = [
        Shard(index, videos, [record for video in videos for record in records_by_video[video]])
        for index, videos in enumerate(
            plan_shards(list(records_by_video), extract.videos_per_shard)
        )
    ]
    for shard in shards:
        shard.key = shard_key(shard, attrs, extract)
    mine = [shard for shard in shards if shard.index % world_size == rank]
    todo = [shard for shard in mine if not shard_is_complete(parts_dir, shard)]
    for shard in todo:  # temporary files of a killed run
        for leftover in parts_dir.glob(f".{shard.name}.*.tmp"):
            leftover.unlink()

    extractor = FrameExtractor(detector, postprocess, device)
    started = time.perf_counter()
    pending = {shard.index: ([], [], []) for shard in todo}  # records, results, skipped
    total = sum(len(shard.records) for shard in todo)
    with tqdm(
        total=total, unit="frame", desc=f"extract[{rank}]", disable=rank != 0, dynamic_ncols=True
    ) as bar:
        for shard, items, records in _iterate_batches(todo, extract, detector.cfg.test_pipeline):
            done_records, done_results, skipped = pending[shard.index]
            good = []
            for item, record in zip(items, records, strict=True):
                if item["error"] is None:
                    good.append((item, record))
                elif extract.skip_missing_frames:
                    skipped.append(record.frame)
                else:
                    raise DataError(
                        f"{item['error']} (set extract.skip_missing_frames: true to skip and list such frames)"
                    )
            if good:
                done_results += extractor(
                    [item for item, _ in good], [record for _, record in good]
                )
                done_records += [record for _, record in good]
            bar.update(len(items))
            if len(done_records) + len(skipped) == len(shard.records):
                videos = {
                    video: assemble_video(
                        [r for r in done_records if r.video == video],
                        [
                            res
                            for r, res in zip(done_records, done_results, strict=True)
                            if r.video == video
                        ],
                        feature_dim,
                    )
                    for video in shard.videos
                }
                write_shard(parts_dir, shard, attrs, videos, skipped, feature_dim)
                del pending[shard.index]
    extracted = sum(len(shard.records) for shard in todo)
    if world_size > 1:
        # all_reduce doubles as the barrier before rank 0 merges.
        extracted = _sum_over_ranks(extracted, device)
    seconds = time.perf_counter() - started
    if rank != 0:
        return None
    out_path = out_dir / cache.CACHE_FILE
    for leftover in out_dir.glob(f".{cache.CACHE_FILE}.*.tmp"):
        leftover.unlink()
    skipped = merge_shards(parts_dir, shards, out_path, attrs)
    for path in parts_dir.iterdir():
        path.unlink()
    parts_dir.rmdir()
    return ExtractReport(
        frames=sum(len(records) for records in records_by_video.values()) - len(skipped),
        videos=len(records_by_video),
        extracted_frames=extracted,
        skipped_frames=skipped,
        seconds=seconds,
        cache_bytes=out_path.stat().st_size,
    )


def run_extract_stage(
    config_path: str,
    checkpoint_path: str,
    index_dir: str,
    dataset_root: str,
    extract: ExtractParams,
    postprocess: DetectionPostprocessParams,
) -> dict | None:
    """The ``extract`` stage: set up ranks/devices, load the detector, extract, write metrics."""
    from pipeline.detector.model import load_detector

    with process_group(extract.device, "extract.device") as ranks:
        detector = load_detector(config_path, checkpoint_path, ranks.device)
        records = load_frame_records(index_dir, dataset_root)
        report = extract_cache(
            detector, records, extract, postprocess, ranks.rank, ranks.world_size, ranks.device
        )
        if report is None:
            return None
        metrics = report.as_metrics(ranks.world_size)
        atomic_write_json(extract.metrics_path, metrics)
        return metrics
