"""Build the motion table: pair tables from the index and the detections, then attributes.

The stage works on chunks of whole videos (every attribute looks only
within one track, and a track never leaves its video), so the working memory
is bounded by the chunk, and the chunks are appended to one Parquet file in
video order. Detections arrive as one in-memory table from the ROI cache
reader and are linked into tracks once, before chunking.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from pipeline.constants import PERSON_INDEX
from pipeline.extraction.cache import CACHE_FILE, load_detection_table, top_person_rows
from pipeline.io import DataError, atomic_path
from pipeline.motion.attributes import OBJECT_BOX, PERSON_BOX, motion_attributes, output_columns
from pipeline.motion.linking import link_tracks
from pipeline.params import MotionParams, Params

BOX = ("x1", "y1", "x2", "y2")
OUTPUT_DTYPES: dict[str, pl.DataType] = {
    "video": pl.String(),
    "frame": pl.String(),
    "frame_number": pl.Int32(),
    "source": pl.String(),
    "object_index": pl.Int32(),
    "object_class": pl.Int16(),
    "track_id": pl.Int32(),
}
# Dictionary encoding pays off for the repetitive key columns only; on the
# float attributes it measured slower and larger.
DICTIONARY_COLUMNS = ["video", "frame", "source", "object_class", "object_index", "track_id"]
FRAME_COLUMNS = (
    "video",
    "frame",
    "frame_number",
    "width",
    "height",
    "person_x1",
    "person_y1",
    "person_x2",
    "person_y2",
)
OBJECT_COLUMNS = ("frame", "object_class", *BOX)
DETECTION_COLUMNS = (
    "video",
    "frame",
    "frame_number",
    "det_index",
    "label",
    "score",
    *BOX,
    "width",
    "height",
)


def _require(df: pl.DataFrame, columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise DataError(f"{what}: missing column(s) {', '.join(missing)} (see docs/schemas.md)")


def _renamed_box(names: Sequence[str], new: Sequence[str]) -> list[pl.Expr]:
    return [pl.col(a).cast(pl.Float64).alias(b) for a, b in zip(names, new, strict=True)]


def _pair_table(
    df: pl.DataFrame,
    source: str,
    object_index: pl.Expr,
    object_class: pl.Expr,
    track_id: pl.Expr,
    person_box: Sequence[str],
) -> pl.DataFrame:
    """Select the pair-table columns (see :mod:`pipeline.motion.attributes`) from a joined table."""
    return df.select(
        pl.col("video"),
        pl.col("frame"),
        pl.col("frame_number").cast(pl.Int32),
        pl.lit(source).alias("source"),
        object_index.cast(pl.Int32).alias("object_index"),
        object_class.cast(pl.Int16).alias("object_class"),
        track_id.cast(pl.Int32).alias("track_id"),
        pl.col("width").cast(pl.Int32),
        pl.col("height").cast(pl.Int32),
        *_renamed_box(person_box, PERSON_BOX),
        *_renamed_box(BOX, OBJECT_BOX),
    )


def gt_pairs(frames: pl.DataFrame, objects: pl.DataFrame) -> pl.DataFrame:
    """Pair table of ground-truth tracks: each object with its frame's person box.

    A ground-truth track is (video, object_class); ``object_index`` is the class.
    """
    _require(frames, FRAME_COLUMNS, "frames table")
    _require(objects, OBJECT_COLUMNS, "objects table")
    joined = objects.select(OBJECT_COLUMNS).join(
        frames.select(FRAME_COLUMNS), on="frame", how="left"
    )
    orphan = joined.filter(pl.col("video").is_null())
    if orphan.height:
        raise DataError(
            f"objects table: frame {orphan['frame'][0]} has objects but no row in the frames table; rebuild the index"
        )
    return _pair_table(
        joined,
        source="gt",
        object_index=pl.col("object_class"),
        object_class=pl.col("object_class"),
        track_id=pl.col("object_class"),
        person_box=("person_x1", "person_y1", "person_x2", "person_y2"),
    )


def det_pairs(detections: pl.DataFrame, link_iou: float) -> pl.DataFrame:
    """Pair table of detected tracks.

    The frame's person is its highest-scoring person detection (lowest
    det_index on ties); frames without one give no pairs. Every other
    non-background detection is an object, linked into tracks per class.
    """
    _require(detections, DETECTION_COLUMNS, "detection table")
    detections = detections.sort(["video", "frame_number", "det_index"])
    frame_sizes = detections.group_by(["video", "frame_number"], maintain_order=True).len()["len"]
    offsets = np.concatenate([[0], np.cumsum(frame_sizes.to_numpy())]).astype(np.int64)
    top = top_person_rows(detections["label"].to_numpy(), detections["score"].to_numpy(), offsets)
    persons = detections[top[top >= 0]].select(
        "video", "frame_number", *_renamed_box(BOX, PERSON_BOX)
    )
    objects = link_tracks(detections.filter(pl.col("label") > PERSON_INDEX), link_iou)
    return _pair_table(
        objects.join(persons, on=["video", "frame_number"]),
        source="det",
        object_index=pl.col("det_index"),
        object_class=pl.col("label"),
        track_id=pl.col("track_id"),
        person_box=PERSON_BOX,
    )


def _attributes_of(pairs: list[pl.DataFrame], params: MotionParams) -> pl.DataFrame:
    table = motion_attributes(
        pl.concat(pairs, how="vertical_relaxed"),
        params.window_k,
        params.extras.model_dump(),
        params.still_fraction,
    )
    return table.cast(OUTPUT_DTYPES)


def motion_table(
    frames: pl.DataFrame,
    objects: pl.DataFrame,
    params: MotionParams,
    detections: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """The motion table (see docs/schemas.md) of in-memory index tables and optional detections."""
    pairs = [gt_pairs(frames, objects)]
    if detections is not None:
        pairs.append(det_pairs(detections, params.det_link_iou))
    return _attributes_of(pairs, params)


def video_chunks(videos: Sequence[str], videos_per_chunk: int) -> Iterator[list[str]]:
    ordered = sorted(set(videos))
    for start in range(0, len(ordered), videos_per_chunk):
        yield ordered[start : start + videos_per_chunk]


def output_schema(params: MotionParams) -> pa.Schema:
    """Arrow schema of the motion Parquet for these params (also used for an empty file)."""
    columns = output_columns(params.extras.model_dump())
    empty = pl.DataFrame(schema={c: OUTPUT_DTYPES.get(c, pl.Float32()) for c in columns})
    return empty.to_arrow().schema


def write_motion_parquet(
    frames_path: str | Path,
    objects_path: str | Path,
    out_path: str | Path,
    params: MotionParams,
    detections: pl.DataFrame | None = None,
) -> int:
    """Compute the motion table video chunk by video chunk into one Parquet file; return its row count.

    A chunk is a run of consecutive video names, read from the index with a
    range filter, which lets the Parquet reader skip row groups of other
    videos (the index is sorted by video), so only one chunk of videos is in
    memory at a time. The file is written atomically and is byte-identical
    for identical inputs and params.
    """
    for path in (frames_path, objects_path):
        if not Path(path).is_file():
            raise DataError(f"{path}: not found (run the index stage first: dvc repro index)")
    frames_scan = pl.scan_parquet(frames_path)
    objects_scan = pl.scan_parquet(objects_path)
    for scan, columns, path in (
        (frames_scan, FRAME_COLUMNS, frames_path),
        (objects_scan, ("video", *OBJECT_COLUMNS), objects_path),
    ):
        try:
            names = scan.collect_schema().names()
        except pl.exceptions.PolarsError as err:
            raise DataError(
                f"{path}: not a readable Parquet file ({type(err).__name__}); rerun the index stage (dvc repro index)"
            ) from None
        missing = [c for c in columns if c not in names]
        if missing:
            raise DataError(
                f"{path}: missing column(s) {', '.join(missing)}; rebuild it with the index stage (see docs/schemas.md)"
            )
    videos = frames_scan.select(pl.col("video").unique()).collect()["video"].to_list()
    if detections is not None:
        videos += detections["video"].unique().to_list()
    # Detections are already in memory (the ROI cache reader returns one
    # table); linking them all at once is faster than per chunk because the
    # linker steps over frame positions, which every chunk would repeat.
    linked = None if detections is None else det_pairs(detections, params.det_link_iou)
    schema = output_schema(params)
    chunks = list(video_chunks(videos, params.videos_per_chunk))
    rows = 0
    with (
        atomic_path(out_path, suffix=".parquet") as tmp,
        pq.ParquetWriter(
            tmp, schema, compression="zstd", use_dictionary=DICTIONARY_COLUMNS
        ) as writer,
    ):
        for chunk in tqdm(chunks, desc="motion", unit="chunk", disable=len(chunks) < 2):
            keep = pl.col("video").is_between(pl.lit(chunk[0]), pl.lit(chunk[-1]))
            frames = frames_scan.filter(keep).select(FRAME_COLUMNS).collect()
            objects = objects_scan.filter(keep).select(OBJECT_COLUMNS).collect()
            pairs = [gt_pairs(frames, objects)]
            if linked is not None:
                pairs.append(linked.filter(keep))
            table = _attributes_of(pairs, params)
            writer.write_table(table.to_arrow().cast(schema))
            rows += table.height
        if not chunks:
            writer.write_table(schema.empty_table())
    return rows


def run_motion_stage(params: Params) -> dict[str, float]:
    """The ``motion`` stage."""
    return write_motion_table(params.dataset.index_dir, params.extract.out_dir, params.motion)


def write_motion_table(index_dir: str | Path, roi_dir: str | Path, params: MotionParams) -> dict[str, float]:
    """Index (+ SGDet detections when the ROI cache exists) -> motion Parquet (``params.out_path``).

    Returns (and prints) a summary for the log: rows, seconds and output size.
    """
    start = time.perf_counter()
    index_dir = Path(index_dir)
    detections = None
    if (Path(roi_dir) / CACHE_FILE).is_file():
        detections = load_detection_table(roi_dir)
    rows = write_motion_parquet(
        index_dir / "frames.parquet",
        index_dir / "objects.parquet",
        params.out_path,
        params,
        detections,
    )
    summary = {
        "rows": rows,
        "detection_rows": 0 if detections is None else detections.height,
        "seconds": round(time.perf_counter() - start, 2),
        "megabytes": round(Path(params.out_path).stat().st_size / 1e6, 2),
    }
    print(f"{params.out_path}: " + ", ".join(f"{k}={v}" for k, v in summary.items()))
    return summary
