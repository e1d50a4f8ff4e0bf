"""AG-scale dry run: the real motion, training and evaluation code on a cache of Action Genome's size.

Synthesises an index and ROI cache in the real layout (no images) with AG's
sizes, scaled by ``--scale``:

* train: 7,584 videos, 177,330 frames; test: 1,750 videos, 56,923 frames;
* a person and 1 to 4 objects per frame, boxes drifting along each video;
* 2048-d float16 ROI and union features (random), as an R101 detector gives.

Then runs, each step in its own process so that peak RSS is per step:

1. motion: the motion stage (``write_motion_table``) on the index and detections,
   and, for comparison, the attribute computation alone on the same pairs;
2. pack: the PredCls training pack (``pack_mode``);
3. train: one PredCls epoch of the default MOSA head from the pack (``train_epoch``);
4. predict: the trained head on the test split (``predict``);
5. evaluate: R@K / mR@K for the with, semi and no constraints (``evaluate``).

and prints wall time, throughput, peak RSS and the size on disk of what each
step reads and writes, against the targets (one epoch <= 10 min, any step
<= 6 GB RSS, evaluation <= 1 min). The full-size cache takes tens of GB;
it is deleted at the end unless ``--keep``.

    python benchmarks/ag_scale.py [--scale 1.0] [--out DIR] [--keep] [--profile STEP]
    python benchmarks/ag_scale.py --out DIR --reuse --keep --steps train --train-videos 500
"""

from __future__ import annotations

import argparse
import cProfile
import multiprocessing
import os
import pstats
import resource
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import torch
from timing import timed

from pipeline.ag.reader import FRAME_SCHEMA, OBJECT_SCHEMA, conform
from pipeline.constants import CONTACTING, NUM_OBJECT_CLASSES, PERSON_INDEX, SPATIAL
from pipeline.params import Params

AG_SIZES = {"train": (7_584, 177_330), "test": (1_750, 56_923)}  # split: (videos, frames)
FEATURE_DIM = 2048  # ResNet-101 C5, as the detector stage gives
TEXT_DIM = 384  # all-MiniLM-L6-v2
IMAGE_SIZE = (480, 270)  # most AG videos
TARGETS = {"train": 600.0, "evaluate": 60.0}  # seconds
RSS_TARGET_GB = 6.0
MOTION_RATIO_TARGET = 3.0  # whole motion stage / attribute computation alone
TRAIN_VIDEOS_ENV = "AG_SCALE_TRAIN_VIDEOS"  # how --train-videos reaches the spawned train step
OBJECT_CLASSES = np.arange(PERSON_INDEX + 1, NUM_OBJECT_CLASSES)


@dataclass
class StepResult:
    seconds: float
    items: int
    unit: str
    peak_rss_gb: float
    note: str = ""
    whole: int = 0  # items of the whole step when only a part ran (--train-videos), else items

    @property
    def whole_seconds(self) -> float:
        """The step's time, extrapolated linearly to the whole step when only a part ran."""
        return self.seconds * self.whole / self.items if self.whole else self.seconds


def _video_lengths(videos: int, frames: int, rng: np.random.Generator) -> np.ndarray:
    """``videos`` lengths of at least 1 that sum to ``frames``."""
    return 1 + rng.multinomial(frames - videos, np.full(videos, 1 / videos))


def ag_index(scale: float, seed: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Frames and objects tables (the columns :func:`write_synthetic_caches` writes) of AG's sizes times ``scale``.

    Each video has 4 object classes, each a box that drifts a few pixels per
    frame (so the motion stage links real tracks); a frame shows 1 to 4 of
    them. Each object has 1 attention, 1-2 spatial and 1-2 contacting predicates.
    """
    rng = np.random.default_rng(seed)
    frame_parts, object_parts = [], []
    for split, (videos, frames) in AG_SIZES.items():
        videos, frames = max(1, round(videos * scale)), max(1, round(frames * scale))
        lengths = _video_lengths(videos, frames, rng)
        video_of = np.repeat(np.arange(videos), lengths)
        position = np.arange(frames) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        names = np.char.add(np.char.add(f"{split}_", np.char.zfill(np.arange(videos).astype(str), 5)), ".mp4")
        video = names[video_of]
        frame_number = (1 + 15 * position).astype(np.int32)
        key = np.char.add(np.char.add(video, "/"), np.char.add(np.char.zfill(frame_number.astype(str), 6), ".png"))
        width, height = IMAGE_SIZE
        drift = position[:, None] * rng.normal(0, 2.0, size=(frames, 1))
        px = np.clip(100 + drift[:, 0], 0, width - 150)
        frame_parts.append(pl.DataFrame({
            "frame": key, "video": video, "frame_number": frame_number, "split": np.full(frames, split),
            "width": np.full(frames, width, np.int32), "height": np.full(frames, height, np.int32),
            "person_x1": px, "person_y1": np.full(frames, 20.0), "person_x2": px + 120, "person_y2": np.full(frames, 260.0),
        }))  # fmt: skip
        # 4 distinct classes per video; a frame shows its first 1..4 in a random order of slots.
        classes = np.argsort(rng.random((videos, len(OBJECT_CLASSES))), axis=1)[:, :4]
        shown = rng.integers(1, 5, size=frames)
        slot = np.argsort(rng.random((frames, 4)), axis=1)
        frame_row = np.repeat(np.arange(frames), shown)
        slot = slot[frame_row, np.concatenate([np.arange(k) for k in shown])]
        n = len(frame_row)
        base = rng.uniform([0, 0], [width - 80, height - 80], size=(videos, 4, 2))[video_of[frame_row], slot]
        x1 = np.clip(base[:, 0] + position[frame_row] * 1.5, 0, width - 40)
        side = 40 + 40 * rng.random(n)
        spatial = rng.integers(SPATIAL.start, SPATIAL.stop, size=(n, 2))
        contacting = rng.integers(CONTACTING.start, CONTACTING.stop, size=(n, 2))
        spatial_count, contacting_count = 1 + (rng.random(n) < 0.3), 1 + (rng.random(n) < 0.3)
        object_parts.append(pl.DataFrame({
            "frame": key[frame_row], "video": video[frame_row], "frame_number": frame_number[frame_row],
            "split": np.full(n, split), "object_class": OBJECT_CLASSES[classes[video_of[frame_row], slot]],
            "x1": x1, "y1": base[:, 1], "x2": x1 + side, "y2": base[:, 1] + side,
            "attention": rng.integers(0, 3, size=(n, 1)).tolist(),
            "spatial": [row[:c] for row, c in zip(spatial.tolist(), spatial_count, strict=True)],
            "contacting": [row[:c] for row, c in zip(contacting.tolist(), contacting_count, strict=True)],
            "small": np.zeros(n, bool),
        }).sort("frame", "object_class"))  # fmt: skip
    frames_df = conform(pl.concat(frame_parts), FRAME_SCHEMA)
    objects_df = conform(pl.concat(object_parts), OBJECT_SCHEMA)
    return frames_df, objects_df


# ---------------------------------------------------------------- the steps (each in a child process)


def step_motion(params: Params) -> tuple[int, str, str]:
    from pipeline.ag.reader import read_index
    from pipeline.extraction.cache import load_detection_table
    from pipeline.motion import det_pairs, gt_pairs, motion_attributes, write_motion_table

    summary = write_motion_table(params.dataset.index_dir, params.extract.out_dir, params.motion)
    # The attribute computation alone, on the same pair tables built in memory
    # (reading the detections and linking them are not timed).
    index = read_index(params.dataset.index_dir)
    detections, read_seconds = timed(lambda: load_detection_table(params.extract.out_dir))
    pairs = pl.concat(
        [gt_pairs(index.frames, index.objects), det_pairs(detections, params.motion.det_link_iou)],
        how="vertical_relaxed",
    )
    _, attribute_seconds = timed(
        lambda: motion_attributes(pairs, params.motion.window_k, params.motion.extras.model_dump())
    )
    ratio = summary["seconds"] / attribute_seconds
    note = (
        f"{summary['rows']} motion rows; detections read in {read_seconds:.1f} s; attributes alone "
        f"{attribute_seconds:.1f} s: whole stage {ratio:.2f}x that (target <= {MOTION_RATIO_TARGET:g}x "
        f"{'ok' if ratio <= MOTION_RATIO_TARGET else 'MISSED'})"
    )
    return int(summary["rows"] + summary["detection_rows"]), "pair rows", note


def step_pack(params: Params) -> tuple[int, str, str]:
    from pipeline.training.pack_stage import pack_mode

    summary = pack_mode(params, "predcls")
    frames = sum(part.get("frames", 0) for part in summary.values())
    return frames, "frames", f"predcls train/val packs: {summary}"


def step_train(params: Params) -> tuple[int, str, str]:
    from tqdm import tqdm

    from pipeline.training.mode_data import open_mode
    from pipeline.training.train_stage import build_training, set_threads
    from pipeline.training.trainer import train_epoch

    set_threads(params.train.threads)
    with open_mode(params, "predcls", packed=True) as data:
        model, loss_fn = build_training(params, data)
        videos = data.source.videos("train")
        optimizer = torch.optim.AdamW(model.parameters(), lr=params.train.lr)
        batches = data.batches(params, "train", shuffle=True)
        if TRAIN_VIDEOS_ENV in os.environ:  # a part of the epoch, for when a whole one takes too long
            batches.videos = batches.videos[: int(os.environ[TRAIN_VIDEOS_ENV])]
        batches.set_epoch(0)
        frames_total = sum(data.source.frames[v].height for v in batches.videos)
        with tqdm(total=frames_total, desc="train epoch", unit="frame", mininterval=10) as progress:
            losses, frames = train_epoch(model, loss_fn, optimizer, batches, params.train.grad_clip, progress)
    torch.save(model.state_dict(), Path(params.train.out_dir) / "model.pt")
    epoch_frames = sum(data.source.frames[v].height for v in videos)
    part = f"{len(batches.videos)} of {len(videos)} videos, " if len(batches.videos) < len(videos) else ""
    return frames, "frames", f"{part}loss {losses.get('total', float('nan')):.3f}", epoch_frames


def step_predict(params: Params) -> tuple[int, str, str]:
    from pipeline.evaluation import write_predictions
    from pipeline.training.inference import predict
    from pipeline.training.mode_data import build_model, open_mode

    with open_mode(params, "predcls") as data:
        model = build_model(params, data)
        model.load_state_dict(torch.load(Path(params.train.out_dir) / "model.pt"))
        table = predict(model, data.batches(params, "test"), "predcls")
    write_predictions(table, Path(params.train.out_dir) / "predictions.parquet")
    return table["frame"].n_unique(), "frames", f"{table.height} prediction rows"


def step_evaluate(params: Params) -> tuple[int, str, str]:
    from pipeline.ag.reader import read_index
    from pipeline.evaluation import (
        align_predictions,
        evaluate,
        ground_truth_for_mode,
        read_predictions,
    )

    index = read_index(params.dataset.index_dir)
    truth = ground_truth_for_mode(index.frames, index.objects, "test", "predcls")
    predictions = read_predictions(Path(params.train.out_dir) / "predictions.parquet")
    results = evaluate(truth, align_predictions(predictions, truth), params.evaluate)
    with_r20 = results["with"].metrics().get("R@20")
    frames = index.frames.filter(pl.col("split") == "test").height
    return frames, "frames", f"constraints {', '.join(results)}; with R@20 {with_r20:.2f}"


STEPS = {"motion": step_motion, "pack": step_pack, "train": step_train, "predict": step_predict, "evaluate": step_evaluate}


def _child(step: str, params: Params, profile: bool, queue) -> None:
    torch.set_num_threads(max(1, torch.get_num_threads()))
    profiler = cProfile.Profile() if profile else None
    started = time.perf_counter()
    if profiler:
        profiler.enable()
    items, unit, note, *whole = STEPS[step](params)
    if profiler:
        profiler.disable()
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux
    if profiler:
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)
    queue.put(StepResult(seconds, items, unit, peak, note, whole[0] if whole else 0))


def run_step(step: str, params: Params, profile: bool) -> StepResult:
    """Run one step in a fresh (spawned) process so its peak RSS is its own."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_child, args=(step, params, profile, queue))
    process.start()
    process.join()
    if process.exitcode != 0:
        raise SystemExit(f"step {step} failed (exit code {process.exitcode})")
    return queue.get()


def size_gb(*paths: Path) -> float:
    total = 0
    for path in paths:
        files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
        total += sum(p.stat().st_size for p in files)
    return total / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of AG's video and frame counts")
    parser.add_argument("--out", type=Path, help="where to write the caches (default: a new temporary folder)")
    parser.add_argument("--keep", action="store_true", help="keep the caches instead of deleting them")
    parser.add_argument("--profile", choices=list(STEPS), action="append", default=[], help="cProfile this step")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--reuse", action="store_true", help="reuse the caches under --out (written with the same --scale and --seed)")
    parser.add_argument("--steps", nargs="+", choices=list(STEPS), default=list(STEPS), help="steps to run (with --reuse, later steps read earlier outputs)")
    parser.add_argument("--train-videos", type=int, help="train on this many videos only; the epoch time is extrapolated")
    args = parser.parse_args()
    import support_path  # noqa: F401  (tests/ on sys.path)
    from support.training_caches import synthetic_params, write_synthetic_caches

    root = args.out or Path(tempfile.mkdtemp(prefix="ag_scale_"))
    root.mkdir(parents=True, exist_ok=True)
    try:
        started = time.perf_counter()
        if args.train_videos:
            os.environ[TRAIN_VIDEOS_ENV] = str(args.train_videos)
        frames, objects = ag_index(args.scale, args.seed)
        if args.reuse:
            params = synthetic_params(root)
        else:
            params = write_synthetic_caches(root, feature_dim=FEATURE_DIM, text_dim=TEXT_DIM, seed=args.seed,
                                            index=(frames, objects), with_motion=False)  # fmt: skip
        Path(params.train.out_dir).mkdir(parents=True, exist_ok=True)
        relations = sum(objects[g].list.len().sum() for g in ("attention", "spatial", "contacting"))
        print(f"\n{'reused' if args.reuse else 'synthesised in'} {time.perf_counter() - started:.0f} s under {root}: scale {args.scale}, "
              f"{frames['video'].n_unique()} videos, {frames.height} frames, {objects.height} objects, {relations} relations")  # fmt: skip
        print(f"  index {size_gb(Path(params.dataset.index_dir)):.3f} GB, ROI cache {size_gb(Path(params.extract.out_dir)):.2f} GB")
        print(f"  torch threads {torch.get_num_threads()}, batch {params.train.batch_videos} videos, "
              f"feature cache {params.train.feature_cache_mb} MB")  # fmt: skip

        outputs = {
            "motion": [Path(params.motion.out_path)],
            "pack": [Path(params.train.pack_dir)],
            "train": [Path(params.train.out_dir) / "model.pt"],
            "predict": [Path(params.train.out_dir) / "predictions.parquet"],
            "evaluate": [],
        }
        results = {}
        for step in args.steps:
            print(f"\n== {step}")
            results[step] = run_step(step, params, step in args.profile)
            r = results[step]
            print(f"   {r.seconds:.1f} s, {r.items / r.seconds:.0f} {r.unit}/s, peak RSS {r.peak_rss_gb:.2f} GB; {r.note}")

        print(f"\n{'step':<9} {'wall s':>8} {'throughput':>22} {'peak RSS GB':>12} {'output GB':>10}  targets")
        for step, r in results.items():
            checks = []
            if step in TARGETS:
                target = TARGETS[step] * (args.scale if args.scale < 1 else 1)
                estimated = f" (extrapolated {r.whole_seconds:.0f} s for the whole epoch)" if r.whole and r.whole != r.items else ""
                checks.append(f"time <= {target:.0f} s {'ok' if r.whole_seconds <= target else 'MISSED'}{estimated}")
            checks.append(f"RSS <= {RSS_TARGET_GB:g} GB {'ok' if r.peak_rss_gb <= RSS_TARGET_GB else 'MISSED'}")
            out = size_gb(*outputs[step]) if outputs[step] else 0.0
            throughput = f"{r.items / r.seconds:,.0f} {r.unit}/s"
            print(f"{step:<9} {r.seconds:8.1f} {throughput:>22} {r.peak_rss_gb:12.2f} {out:10.3f}  {'; '.join(checks)}")
        if args.scale < 1:
            print(f"(time targets scaled by {args.scale}: the steps are linear in frames)")
        print(f"cache on disk: {size_gb(root):.2f} GB")
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
