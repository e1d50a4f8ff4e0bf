"""What ``mosa show`` and ``mosa search --sheet`` draw, read from the pipeline's outputs."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import polars as pl
from PIL import Image

from pipeline.ag.reader import read_index
from pipeline.io import DataError
from pipeline.params import Params
from pipeline.viz.detections import MIN_OBJECT_SCORE, shown_pairs
from pipeline.viz.drawing import contact_sheet, draw_pairs, load_frame, render_frame
from pipeline.viz.timeline import render_timeline


def predictions_path(mode: str) -> Path:
    from pipeline.outputs import output_paths

    return output_paths(mode).predictions


def read_mode_predictions(mode: str, path: str | Path | None = None) -> pl.DataFrame:
    path = Path(path) if path else predictions_path(mode)
    if not path.is_file():
        raise DataError(f"{path}: predictions not found (run `dvc repro evaluate@{mode}` or pass --predictions)")
    from pipeline.evaluation.predictions import load_predictions

    return load_predictions(path)[0]


def is_video_key(key: str) -> bool:
    """``001YG.mp4`` names a video, ``001YG.mp4/000089.png`` a frame."""
    return "/" not in key.strip("/")


def show_frame(params: Params, frame: str, predictions: pl.DataFrame, min_score: float = MIN_OBJECT_SCORE) -> Image.Image:
    """The frame's boxes and its predicted triplets beside the annotation (detections filtered by :func:`shown_pairs`)."""
    objects = read_index(params.dataset.index_dir).objects.filter(pl.col("frame") == frame)
    pairs = shown_pairs(predictions.filter(pl.col("frame") == frame), min_score)
    if pairs.is_empty() and objects.is_empty():
        raise DataError(f"{frame}: neither predicted nor annotated (a test-split key looks like 001YG.mp4/000089.png)")
    return render_frame(load_frame(params.dataset.root, frame), pairs, objects, frame)


def show_video(params: Params, video: str, predictions: pl.DataFrame) -> Image.Image:
    """Timeline of each pair's predicates across the video's frames."""
    objects = read_index(params.dataset.index_dir).objects.filter(pl.col("video") == video)
    pairs = predictions.filter(pl.col("frame").str.starts_with(video + "/"))
    if pairs.is_empty() and objects.is_empty():
        raise DataError(f"{video}: no predictions or annotations for this video (is it in the test split?)")
    return render_timeline(video, pairs, objects)


def hits_sheet(dataset_root: str | Path, hits: Sequence, table: pl.DataFrame, columns: int = 5) -> Image.Image:
    """Contact sheet of search hits: each frame with the hit pair's boxes, captioned with its triplets."""
    tiles, captions = [], []
    for hit in hits:
        pair = table.slice(hit.row, 1)
        tile, _ = draw_pairs(load_frame(dataset_root, hit.frame), pair)
        tiles.append(tile)
        captions.append([f"#{hit.rank}  {hit.score:.3f}  {hit.frame}", *(t.text() for t in hit.triplets)])
    return contact_sheet(tiles, captions, columns=columns)
