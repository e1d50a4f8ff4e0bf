"""Extraction benchmarks, measured in one run on the same frames:

1. pipeline overhead: the extract stage (background decoding, detection with
   AG post-processing, ROI pooling of ground-truth, detected and union boxes,
   HDF5 shards + merge) versus the bare detector (``model.predict``) on the
   same frames already decoded in memory. Target: at most 25 % overhead.
2. "extract once" payoff: one epoch of features obtained the way the
   reference codebases do it (decode every frame and run the detector, every
   epoch) versus reading the same features back from the cache.

Uses the index and frames named by params.yaml and the trained detector
checkpoint when they exist; otherwise a small generated dataset and random
weights (the printout says which).

    python benchmarks/bench_extract.py [--params params.yaml] [--frames 160] [--repeats 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import support_path  # noqa: F401  (tests/ on sys.path)
import torch
from support.tiny_detector import write_random_checkpoint, write_tiny_dataset

from pipeline.detector.model import load_detector
from pipeline.extraction.cache import RoiCache
from pipeline.extraction.driver import extract_cache
from pipeline.extraction.forward import FrameExtractor
from pipeline.extraction.frame_loading import FrameDataset
from pipeline.extraction.frame_records import load_frame_records
from pipeline.outputs import detector_checkpoint
from pipeline.params import Params, load_params

# Frames kept by the standard AG filters (train + test), see the AG spec notes.
AG_FRAMES = 177_330 + 56_923


def first_frames(records_by_video: dict, count: int) -> dict:
    """Whole videos, in order, until ``count`` frames are reached."""
    chosen, total = {}, 0
    for video, records in records_by_video.items():
        if total >= count:
            break
        chosen[video] = records
        total += len(records)
    return chosen


def decode_all(records: list, detector) -> list[dict]:
    dataset = FrameDataset(records, detector.cfg.test_pipeline)
    return [dataset[i] for i in range(len(dataset))]


def batches(items: list, size: int):
    for start in range(0, len(items), size):
        yield items[start : start + size]


@torch.no_grad()
def bare_forward_seconds(detector, decoded: list[dict], batch_frames: int) -> float:
    model = detector.model
    started = time.perf_counter()
    for batch in batches(decoded, batch_frames):
        data = model.data_preprocessor(
            {
                "inputs": [b["inputs"] for b in batch],
                "data_samples": [b["data_samples"] for b in batch],
            },
            False,
        )
        model.predict(data["inputs"], data["data_samples"])
    return time.perf_counter() - started


def live_epoch_seconds(detector, records: list, params: Params) -> float:
    """Decode + detect + pool every frame, as a live-detector training epoch would."""
    extractor = FrameExtractor(detector, params.detector.postprocess, torch.device("cpu"))
    dataset = FrameDataset(records, detector.cfg.test_pipeline)
    started = time.perf_counter()
    for batch in batches(list(range(len(records))), params.extract.batch_frames):
        extractor([dataset[i] for i in batch], [records[i] for i in batch])
    return time.perf_counter() - started


def cache_epoch_seconds(roi_dir: Path) -> float:
    started = time.perf_counter()
    with RoiCache(roi_dir) as roi:
        for video in roi.videos():
            roi.read_video(video)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--frames", type=int, default=160, help="frames to time (whole videos)")
    parser.add_argument(
        "--repeats", type=int, default=3, help="runs of each measurement (best is kept)"
    )
    args = parser.parse_args()
    params = load_params(args.params) if Path(args.params).is_file() else Params()
    work = Path(tempfile.mkdtemp(prefix="bench_extract_"))

    index_dir, root = Path(params.dataset.index_dir), Path(params.dataset.root)
    if not (index_dir / "frames.parquet").is_file():
        index_dir, root = work / "index", work / "ag"
        write_tiny_dataset(root, index_dir, videos=20, frames_per_video=8, size=(256, 192))
        print(
            f"data: generated {20 * 8} frames of 256x192 (no index at {params.dataset.index_dir})"
        )
    else:
        print(f"data: {index_dir} / {root}")
    checkpoint = detector_checkpoint(params.detector)
    if not checkpoint.is_file():
        checkpoint = write_random_checkpoint(params.detector.config, work / "random.pth")
        print(
            "weights: random (no trained checkpoint found; detection counts are not representative)"
        )
    else:
        print(f"weights: {checkpoint}")
    detector = load_detector(params.detector.config, checkpoint)
    records_by_video = first_frames(load_frame_records(index_dir, root), args.frames)
    records = [r for frames in records_by_video.values() for r in frames]
    frames = len(records)
    print(
        f"frames: {frames} in {len(records_by_video)} videos, torch threads: {torch.get_num_threads()}, "
        f"decode workers: {params.extract.decode_workers}, batch: {params.extract.batch_frames}"
    )

    decoded = decode_all(records, detector)
    batch = params.extract.batch_frames
    bare_forward_seconds(detector, decoded[:batch], batch)  # warm-up
    # Best of N, alternating the two sides: the machine may be shared, and
    # the minimum is the least disturbed measurement of each.
    bare_runs, stage_runs, live_runs, cache_runs = [], [], [], []
    for repeat in range(args.repeats):
        bare_runs.append(bare_forward_seconds(detector, decoded, batch))
        out = work / f"run{repeat}"
        extract_params = params.extract.model_copy(
            update={"out_dir": str(out / "roi"), "metrics_path": str(out / "m.json")}
        )
        started = time.perf_counter()
        report = extract_cache(
            detector, records_by_video, extract_params, params.detector.postprocess
        )
        stage_runs.append(time.perf_counter() - started)
        live_runs.append(live_epoch_seconds(detector, records, params))
        cache_runs.append(cache_epoch_seconds(out / "roi"))
    bare, stage, live, cached = min(bare_runs), min(stage_runs), min(live_runs), min(cache_runs)
    print(f"\n(best of {args.repeats} runs each)")
    print("1. pipeline overhead")
    print(f"   bare detector forward (frames in memory): {frames / bare:7.2f} frames/s")
    print(f"   extract stage (decode+detect+pool+write): {frames / stage:7.2f} frames/s")
    print(f"   overhead: {100 * (stage / bare - 1):+.1f} %  (target <= +25 %)")
    print("\n2. 'extract once' payoff (one epoch of features)")
    print(
        f"   live detector: {live:8.3f} s   cache read: {cached:8.3f} s   ratio: {live / cached:,.0f}x"
    )

    per_frame = stage / frames
    mb_per_1000 = 1000 * report.cache_bytes / 1e6 / frames
    print("\n3. cost at Action Genome scale (this detector, this machine)")
    print(
        f"   per frame: {1000 * per_frame:.1f} ms -> {AG_FRAMES:,} frames: {AG_FRAMES * per_frame / 3600:.1f} h"
    )
    print(
        f"   cache: {mb_per_1000:.2f} MB / 1000 frames -> {AG_FRAMES * mb_per_1000 / 1e6:.2f} GB "
        f"(feature dim {detector.feature_dim}; scales linearly with it, e.g. x4 for a 1024-d R101 box head)"
    )


if __name__ == "__main__":
    main()
