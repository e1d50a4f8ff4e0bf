"""Run the detector once over every indexed frame and write the ROI cache: the ``extract`` stage.

The driver plans shards (:mod:`pipeline.extraction.shards`), skips those a
previous run finished, decodes frames ahead (:mod:`pipeline.extraction.frame_loading`),
runs the forward pass (:mod:`pipeline.extraction.forward`) and writes each
shard when its last frame is done, so a SIGKILL at any moment followed by a
rerun gives the same cache as an uninterrupted run. Under ``torchrun`` rank
``r`` takes shards ``r, r + N, ...``; rank 0 waits for the others and merges
the shards into ``roi.h5``. A shard is always computed as the same sequence
of batches, so the result does not depend on the number of ranks.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm

from pipeline.detector.model import Detector
from pipeline.distributed import process_group
from pipeline.extraction import cache
from pipeline.extraction.forward import FrameExtractor
from pipeline.extraction.frame_loading import iterate_batches
from pipeline.extraction.frame_records import FrameRecord, load_frame_records
from pipeline.extraction.shards import (
    Shard,
    assemble_video,
    cache_attrs,
    merge_shards,
    plan_shards,
    shard_is_complete,
    shard_key,
    write_shard,
)
from pipeline.io import DataError, atomic_write_json
from pipeline.outputs import run_log_dir
from pipeline.params import DetectionPostprocessParams, ExtractParams, Params


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
            "cache_mb": round(megabytes, 3),
            "mb_per_1000_frames": round(1000 * megabytes / max(self.frames, 1), 3),
            "world_size": world_size,
        }

    def timing(self) -> dict:
        """Seconds and throughput of this run: kept out of the metrics (see :func:`run_log_dir`)."""
        return {
            "seconds": round(self.seconds, 2),
            "frames_per_s": round(self.extracted_frames / self.seconds, 2) if self.seconds else None,
        }


def _sum_over_ranks(value: int, device: torch.device) -> int:
    total = torch.tensor([value], dtype=torch.int64, device=device)
    torch.distributed.all_reduce(total)
    return int(total.item())


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
        for shard, items, records in iterate_batches(todo, extract, detector.cfg.test_pipeline):
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


def extract_with_detector(
    config_path: str,
    checkpoint_path: str,
    index_dir: str,
    dataset_root: str,
    extract: ExtractParams,
    postprocess: DetectionPostprocessParams,
) -> dict | None:
    """Set up ranks/devices, load the detector, extract, write metrics (rank 0 returns them)."""
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
        timing_path = run_log_dir(extract.out_dir) / "timing.json"
        atomic_write_json(timing_path, report.timing())
        print(f"{timing_path}: {report.timing()}")
        return metrics


def run_extract_stage(params: Params) -> dict | None:
    """The ``extract`` stage: the configured detector over every indexed frame -> ``extract.out_dir``."""
    from pipeline.outputs import detector_checkpoint

    metrics = extract_with_detector(
        config_path=params.detector.config,
        checkpoint_path=str(detector_checkpoint(params.detector)),
        index_dir=params.dataset.index_dir,
        dataset_root=params.dataset.root,
        extract=params.extract,
        postprocess=params.detector.postprocess,
    )
    if metrics is not None:
        print(json.dumps(metrics, indent=2))
    return metrics
