"""Relation-head training throughput from the caches, and the payoff against a live detector.

Measured in one run, on this machine:

1. training frames/s of one PredCls epoch read from the caches: the first
   epoch (HDF5 reads) and a later one (per-video groups kept in RAM by
   ``train.feature_cache_mb``), plus an epoch with that cache disabled;
2. the epoch-time ratio against the "live detector" way of the reference
   codebases: decode every frame and run the detector for its features,
   every epoch, then the same head step. The detector part is timed on a
   sample of whole videos and scaled by frame count (it is linear in frames).

Uses the caches named by params.yaml when they exist, otherwise a generated
set of random caches (the printout says which). Part 2 needs mmdet and the
frames; it is skipped with a note otherwise.

    python benchmarks/bench_train.py [--params params.yaml] [--detector-frames 48]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import support_path  # noqa: F401  (tests/ on sys.path)
import torch
from support.training_caches import write_synthetic_caches

from pipeline.io import DataError
from pipeline.params import Params, load_params
from pipeline.training.data import BoundedCache
from pipeline.training.mode_data import open_mode
from pipeline.training.train_stage import build_training
from pipeline.training.trainer import train_epoch


def caches_exist(params: Params) -> bool:
    return all(
        Path(p).exists()
        for p in (
            Path(params.dataset.index_dir) / "frames.parquet",
            Path(params.extract.out_dir),
            params.motion.out_path,
            params.text.out_path,
        )
    )


def timed_epoch(params: Params, data, cache_mb: int, epochs: int) -> list[tuple[int, float]]:
    """(frames, seconds) of each of ``epochs`` training epochs with a fresh model and feature cache."""
    data.cached = BoundedCache(data.source, cache_mb * 2**20)
    model, loss_fn = build_training(params, data)
    optimizer = torch.optim.AdamW(model.parameters(), lr=params.train.lr)
    batches = data.batches(params, "train", shuffle=True)
    timings = []
    for epoch in range(epochs):
        batches.set_epoch(epoch)
        started = time.perf_counter()
        _, frames = train_epoch(model, loss_fn, optimizer, batches, params.train.grad_clip)
        timings.append((frames, time.perf_counter() - started))
    return timings


def detector_seconds_per_frame(params: Params, max_frames: int) -> float | None:
    """Decode + detect + pool per frame (the live way), or None when the frames are missing."""
    sys.path.insert(0, str(Path(__file__).parent))
    from bench_extract import first_frames, live_epoch_seconds
    from support.tiny_detector import write_random_checkpoint

    from pipeline.detector.model import load_detector
    from pipeline.extraction.frame_records import load_frame_records
    from pipeline.outputs import detector_checkpoint

    index_dir, root = Path(params.dataset.index_dir), Path(params.dataset.root)
    if not (index_dir / "frames.parquet").is_file() or not (root / "frames").is_dir():
        print(f"   skipped: no frames under {root}")
        return None
    checkpoint = detector_checkpoint(params.detector)
    try:
        detector = load_detector(params.detector.config, checkpoint)
    except DataError as err:  # no trained checkpoint (or one of another config): time random weights
        print(f"   detector weights: random ({err})")
        random_weights = write_random_checkpoint(params.detector.config, Path(tempfile.mkdtemp()) / "random.pth")
        detector = load_detector(params.detector.config, random_weights)
    records = [r for frames in first_frames(load_frame_records(index_dir, root), max_frames).values() for r in frames]
    return live_epoch_seconds(detector, records, params) / len(records)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--detector-frames", type=int, default=48, help="frames to time the live detector on")
    args = parser.parse_args()
    params = load_params(args.params) if Path(args.params).is_file() else Params()
    if caches_exist(params):
        print(f"caches: {params.extract.out_dir}, {params.motion.out_path}, {params.text.out_path}")
        bench_params = params
    else:
        root = Path(tempfile.mkdtemp(prefix="bench_train_"))
        splits = {f"V{i:03d}.mp4": ("test" if i % 10 < 3 else "val" if i % 10 == 3 else "train") for i in range(120)}
        generated = write_synthetic_caches(root, splits, frames_per_video=7, feature_dim=256, text_dim=384)
        bench_params = generated.model_copy(update={"model": params.model, "train": params.train.model_copy(update={"out_dir": str(root / "models")})})
        print(f"caches: generated (120 videos x 7 frames, 256-d random features) under {root}")
    print(f"model: d_model {bench_params.model.d_model}, batch {bench_params.train.batch_videos} videos, torch threads {torch.get_num_threads()}")
    data = open_mode(bench_params, "predcls")

    print("\n1. training throughput from the caches (PredCls)")
    (cold_frames, cold), (warm_frames, warm) = timed_epoch(bench_params, data, bench_params.train.feature_cache_mb, 2)
    (_, uncached), = timed_epoch(bench_params, data, 0, 1)
    print(f"   epoch 1 (HDF5 reads):            {cold_frames / cold:7.1f} frames/s ({cold:.2f} s)")
    print(f"   epoch 2 (groups kept in RAM):    {warm_frames / warm:7.1f} frames/s ({warm:.2f} s)")
    print(f"   RAM cache off (HDF5 each epoch): {cold_frames / uncached:7.1f} frames/s ({uncached:.2f} s)")

    print("\n2. epoch time against a live detector")
    try:
        per_frame = detector_seconds_per_frame(bench_params, args.detector_frames)
    except ImportError as err:  # mmdet/mmcv not installed
        print(f"   skipped: {err}")
        per_frame = None
    if per_frame is not None:
        live = warm + per_frame * warm_frames
        print(f"   detector (decode+detect+pool): {1000 * per_frame:.1f} ms/frame")
        print(f"   live epoch {live:.1f} s vs cached epoch {warm:.2f} s: {live / warm:.1f}x faster from the cache")


if __name__ == "__main__":
    main()
