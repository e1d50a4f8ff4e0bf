"""Motion stage speed on an AG-size synthetic box table, against a plain Python loop.

Builds an index with about 234k frames and 3 objects per frame (AG's size),
then measures in one run:

* the whole stage (``write_motion_parquet``: scan the index Parquet, compute
  in video chunks, write the motion Parquet);
* the attribute computation alone (``motion_attributes`` on the in-memory pair table);
* a plain per-pair Python loop computing the same values from Python lists
  (the conversion to lists is not timed, in the loop's favour),

checks that the loop and the stage agree, and prints rows/s and the ratio.

    .venv/bin/python benchmarks/bench_motion.py [--videos 9800] [--seed 0]
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import polars as pl

from pipeline.motion import gt_pairs, motion_attributes, write_motion_parquet
from pipeline.motion.attributes import BASE_ATTRIBUTES, EXTRA_ATTRIBUTES, MIN_AREA, STILL_FRACTION
from pipeline.params import MotionParams

LOOP_COLUMNS = (
    "video",
    "track_id",
    "frame_number",
    "width",
    "height",
    "px1",
    "py1",
    "px2",
    "py2",
    "ox1",
    "oy1",
    "ox2",
    "oy2",
)
ATTRIBUTES = (*BASE_ATTRIBUTES, *(name for names in EXTRA_ATTRIBUTES.values() for name in names))


def synthetic_index(videos: int, seed: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Random-walk person and 3 object boxes per frame; ~24 sparse frames per video on average."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(4, 45, size=videos)
    n = int(lengths.sum())
    video_of = np.repeat(np.arange(videos), lengths)
    starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
    frame_number = np.cumsum(rng.integers(1, 40, size=n))  # sparse samples, like AG's
    frame_number = (frame_number - frame_number[starts] + 1).astype(
        np.int32
    )  # restart at 1 per video

    def walk(scale: float) -> np.ndarray:
        steps = rng.normal(0, scale, size=(n, 2))
        pos = np.cumsum(steps, axis=0)
        return pos - pos[starts] + rng.uniform(50, 400, size=(videos, 2))[video_of]

    def boxes(centre: np.ndarray, size_lo: float, size_hi: float) -> np.ndarray:
        half = rng.uniform(size_lo, size_hi, size=(n, 2)) / 2
        return np.concatenate([centre - half, centre + half], axis=1)

    video = np.char.add(np.char.add("v", np.arange(videos).astype(str)), ".mp4")[video_of]
    frame = np.char.add(np.char.add(video, "/"), np.char.zfill(frame_number.astype(str), 6))
    frame = np.char.add(frame, ".png")
    person = boxes(walk(3.0), 80, 200)
    frames = pl.DataFrame(
        {
            "frame": frame,
            "video": video,
            "frame_number": frame_number,
            "width": np.full(n, 480, np.int32),
            "height": np.full(n, 270, np.int32),
            "person_x1": person[:, 0],
            "person_y1": person[:, 1],
            "person_x2": person[:, 2],
            "person_y2": person[:, 3],
        }  # fmt: skip
    )
    classes = rng.permutation(np.arange(2, 37))[:3].astype(np.int16)
    objects = []
    for object_class in classes:
        box = boxes(walk(4.0), 10, 120)
        objects.append(
            pl.DataFrame({"frame": frame, "video": video, "object_class": np.full(n, object_class, np.int16),
                          "x1": box[:, 0], "y1": box[:, 1], "x2": box[:, 2], "y2": box[:, 3]})
        )  # fmt: skip
    return frames, pl.concat(objects).sort("frame", "object_class")


def synthetic_detections(frames: pl.DataFrame, objects: pl.DataFrame, seed: int) -> pl.DataFrame:
    """A detection table like the ROI cache's: the index boxes jittered by 2 px, the person first."""
    rng = np.random.default_rng(seed + 1)
    persons = frames.select(
        "video", "frame", "frame_number", label=pl.lit(1, pl.Int16), score=pl.lit(0.9, pl.Float32),
        x1="person_x1", y1="person_y1", x2="person_x2", y2="person_y2", width="width", height="height",
    )  # fmt: skip
    boxes = objects.join(frames.select("frame", "frame_number", "width", "height"), on="frame")
    noise = rng.normal(0.0, 2.0, size=(boxes.height, 4))
    boxes = boxes.select(
        "video", "frame", "frame_number", pl.col("object_class").alias("label"),
        pl.lit(0.5, pl.Float32).alias("score"),
        *(pl.col(c) + noise[:, i] for i, c in enumerate(("x1", "y1", "x2", "y2"))), "width", "height",
    )  # fmt: skip
    table = pl.concat([persons, boxes], how="vertical_relaxed").sort(
        "video", "frame_number", "label"
    )
    return table.with_columns(
        det_index=pl.int_range(pl.len(), dtype=pl.Int32).over("video", "frame_number")
    )


def python_loop(rows: list[tuple], window_k: int) -> dict[tuple, tuple]:
    """The same attributes, one pair at a time: {(video, frame_number, track_id): attributes}."""
    by_track: dict[tuple, list[tuple]] = defaultdict(list)
    for row in rows:
        by_track[(row[0], row[1])].append(row)
    out = {}
    for (video, track_id), track in by_track.items():
        track.sort(key=lambda r: r[2])
        previous = None
        ious: list[float] = []
        for _, _, frame_number, width, height, px1, py1, px2, py2, ox1, oy1, ox2, oy2 in track:
            diag = math.hypot(width, height)
            pcx, pcy, ocx, ocy = (px1 + px2) / 2, (py1 + py2) / 2, (ox1 + ox2) / 2, (oy1 + oy2) / 2
            rel_x, rel_y = (ocx - pcx) / diag, (ocy - pcy) / diag
            distance = math.hypot(rel_x, rel_y)
            iw = max(0.0, min(px2, ox2) - max(px1, ox1))
            ih = max(0.0, min(py2, oy2) - max(py1, oy1))
            p_area = max(0.0, px2 - px1) * max(0.0, py2 - py1)
            o_area = max(0.0, ox2 - ox1) * max(0.0, oy2 - oy1)
            union = p_area + o_area - iw * ih
            ious.append(iw * ih / union if union > 0 else 0.0)
            persistence = sum(ious[-window_k:]) / len(ious[-window_k:])
            log_ratio = math.log(max(o_area, MIN_AREA) / max(p_area, MIN_AREA))
            velocity = cosine = dx = dy = scale = 0.0
            if previous is not None:
                step = frame_number - previous[0]
                velocity = (distance - previous[1]) / step
                dx, dy = (rel_x - previous[2]) / step, (rel_y - previous[3]) / step
                scale = (log_ratio - previous[4]) / step
                pdx, pdy, odx, ody = (
                    pcx - previous[5],
                    pcy - previous[6],
                    ocx - previous[7],
                    ocy - previous[8],
                )
                p_move, o_move = math.hypot(pdx, pdy), math.hypot(odx, ody)
                if p_move > STILL_FRACTION * diag and o_move > STILL_FRACTION * diag:
                    cosine = max(-1.0, min(1.0, (pdx * odx + pdy * ody) / (p_move * o_move)))
            previous = (frame_number, distance, rel_x, rel_y, log_ratio, pcx, pcy, ocx, ocy)
            out[(video, frame_number, track_id)] = (
                distance,
                velocity,
                persistence,
                cosine,
                dx,
                dy,
                log_ratio,
                scale,
            )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--videos", type=int, default=9800, help="synthetic videos (9800 gives ~234k frames)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--detections",
        action="store_true",
        help="also time the stage with an SGDet-like detection table (linking included)",
    )
    args = parser.parse_args()

    frames, objects = synthetic_index(args.videos, args.seed)
    params = MotionParams()
    print(
        f"synthetic index: {args.videos} videos, {frames.height} frames, {objects.height} object rows"
    )

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        frames.write_parquet(tmp / "frames.parquet")
        objects.write_parquet(tmp / "objects.parquet")
        start = time.perf_counter()
        rows = write_motion_parquet(
            tmp / "frames.parquet", tmp / "objects.parquet", tmp / "motion.parquet", params
        )
        stage_s = time.perf_counter() - start
        size_mb = (tmp / "motion.parquet").stat().st_size / 1e6
        table = pl.read_parquet(tmp / "motion.parquet")

    pairs = gt_pairs(frames, objects)
    start = time.perf_counter()
    motion_attributes(pairs, params.window_k, params.extras.model_dump())
    compute_s = time.perf_counter() - start

    # The loop starts from the same pair table; turning it into Python rows
    # is part of its cost, but is also reported apart.
    start = time.perf_counter()
    loop_input = pairs.select(LOOP_COLUMNS).rows()
    convert_s = time.perf_counter() - start
    start = time.perf_counter()
    reference = python_loop(loop_input, params.window_k)
    loop_s = time.perf_counter() - start
    baseline_s = convert_s + loop_s

    keys = table.select("video", "frame_number", "track_id").rows()
    expected = np.array([reference[key] for key in keys], dtype=np.float64)
    got = table.select(ATTRIBUTES).to_numpy().astype(np.float64)
    # the stage stores float32: compare to float32 precision
    max_error = float(np.max(np.abs(got - expected) / np.maximum(1.0, np.abs(expected))))
    agree = len(reference) == rows and max_error < 1e-5

    def line(name: str, seconds: float) -> str:
        return f"{name:<36}{seconds:7.2f} s {rows / seconds:12,.0f} rows/s"

    print(line("stage (index Parquet -> Parquet)", stage_s) + f"  ({size_mb:.1f} MB)")
    print(line("attributes only (polars)", compute_s))
    print(line("Python loop incl. .rows()", baseline_s))
    print(line("Python loop alone", loop_s))
    print(
        f"speed-up of the attributes: {baseline_s / compute_s:.1f}x vs loop incl. .rows(), "
        f"{loop_s / compute_s:.1f}x vs the loop alone; whole stage: {baseline_s / stage_s:.1f}x"
    )
    print(
        f"agreement: {'OK' if agree else 'MISMATCH'} ({rows} rows, max relative error {max_error:.2e})"
    )
    if not agree:
        raise SystemExit(1)

    if args.detections:
        detections = synthetic_detections(frames, objects, args.seed)
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            frames.write_parquet(tmp / "frames.parquet")
            objects.write_parquet(tmp / "objects.parquet")
            start = time.perf_counter()
            both = write_motion_parquet(
                tmp / "frames.parquet",
                tmp / "objects.parquet",
                tmp / "m.parquet",
                params,
                detections,
            )
            seconds = time.perf_counter() - start
            size_mb = (tmp / "m.parquet").stat().st_size / 1e6
        print(
            f"stage with {detections.height} detections (linking included): {seconds:.2f} s, "
            f"{both} rows (gt + det), {size_mb:.1f} MB"
        )


if __name__ == "__main__":
    main()
