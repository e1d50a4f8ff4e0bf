"""The predictions Parquet format (docs/predictions_format.md): read, validate, write.

One row per predicted (subject, object) pair. Nothing is dropped silently:
the first malformed row, or a few frames unknown to the ground truth, make a
one-line :class:`~pipeline.io.DataError`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from pipeline.constants import GROUP_SIZES, NUM_OBJECT_CLASSES, NUM_PREDICATES
from pipeline.evaluation.ground_truth import GroundTruth
from pipeline.io import DataError, ParquetError, atomic_path, parquet_table

BOX_COLUMNS = ("subject_box", "object_box")
LABEL_COLUMNS = ("subject_label", "object_label")
SCORE_COLUMNS = ("subject_score", "object_score")
DISTRIBUTION_COLUMNS = tuple(GROUP_SIZES)  # attention, spatial, contacting, in predicate order
LIST_LENGTHS = {"subject_box": 4, "object_box": 4, **GROUP_SIZES}

PREDICTION_SCHEMA: dict[str, pl.DataType] = {
    "frame": pl.String,
    "subject_box": pl.List(pl.Float64),
    "object_box": pl.List(pl.Float64),
    "subject_label": pl.Int64,
    "object_label": pl.Int64,
    "subject_score": pl.Float64,
    "object_score": pl.Float64,
    "attention": pl.List(pl.Float64),
    "spatial": pl.List(pl.Float64),
    "contacting": pl.List(pl.Float64),
}


@dataclass(frozen=True)
class Predictions:
    """Validated predictions as arrays, one entry per pair, in file row order."""

    frame: np.ndarray  # (N,) object array of frame keys
    subject_box: np.ndarray  # (N, 4) float64
    object_box: np.ndarray  # (N, 4) float64
    subject_label: np.ndarray  # (N,) int64
    object_label: np.ndarray  # (N,) int64
    subject_score: np.ndarray  # (N,) float64
    object_score: np.ndarray  # (N,) float64
    distribution: np.ndarray  # (N, 26) float64: attention | spatial | contacting

    def __len__(self) -> int:
        return len(self.frame)


@dataclass(frozen=True)
class AlignedPredictions:
    """Predictions sorted by ground-truth frame (file order kept within a frame).

    The order of pairs inside a frame only matters to break exact score ties,
    the way the reference's candidate order does.
    """

    frame_index: np.ndarray  # (N,) int64 into GroundTruth.frames, non-decreasing
    subject_box: np.ndarray
    object_box: np.ndarray
    subject_label: np.ndarray
    object_label: np.ndarray
    subject_score: np.ndarray
    object_score: np.ndarray
    distribution: np.ndarray

    def __len__(self) -> int:
        return len(self.frame_index)


def _type_name(dtype: pl.DataType) -> str:
    return str(dtype)


def _check_type(column: str, dtype: pl.DataType, source: str) -> None:
    """Refuse a column whose type cannot hold what the format says."""
    if column == "frame":
        ok = dtype in (pl.String, pl.Categorical) or isinstance(dtype, (pl.Categorical, pl.Enum))
        expected = "string"
    elif column in LABEL_COLUMNS:
        ok = dtype.is_integer()
        expected = "integer"
    elif column in SCORE_COLUMNS:
        ok = dtype.is_float() or dtype.is_integer()
        expected = "float"
    else:
        inner = dtype.inner if isinstance(dtype, (pl.List, pl.Array)) else None
        ok = inner is not None and (inner.is_float() or inner.is_integer())
        expected = f"list of {LIST_LENGTHS[column]} floats"
    if not ok:
        raise DataError(f"{source}: column '{column}' has type {_type_name(dtype)}, expected {expected}")


def _each_row(mask: np.ndarray) -> np.ndarray:
    """Per row, whether all of it holds (``mask`` is (N,) or (N, L); N may be 0)."""
    return mask if mask.ndim == 1 else mask.all(axis=1)


def _shown(frame) -> str:
    """A frame key as it can stand in a one-line error (quoted when it holds odd characters)."""
    return frame if isinstance(frame, str) and frame.isprintable() else repr(frame)


def _fail_row(source: str, frames: np.ndarray, row: int, problem: str) -> DataError:
    return DataError(f"{source}: row {row} (frame {_shown(frames[row])}): {problem}")


def validate_predictions(table: pl.DataFrame, source: str = "predictions") -> Predictions:
    """Check a predictions table against the format and return its arrays.

    Extra columns are ignored. Errors name the column or the first offending
    row (0-based, in file order).
    """
    missing = [c for c in PREDICTION_SCHEMA if c not in table.columns]
    if missing:
        raise DataError(f"{source}: missing column(s) {', '.join(missing)}; see docs/predictions_format.md")
    for column in PREDICTION_SCHEMA:
        _check_type(column, table.schema[column], source)

    frames = table["frame"].cast(pl.String).to_numpy().astype(object)
    for column in PREDICTION_SCHEMA:
        nulls = table[column].is_null().to_numpy()
        if nulls.any():
            raise _fail_row(source, frames, int(np.argmax(nulls)), f"'{column}' is null")

    lists: dict[str, np.ndarray] = {}
    for column, length in LIST_LENGTHS.items():
        series = table[column]
        if isinstance(series.dtype, pl.Array):
            series = series.cast(pl.List(series.dtype.inner))
        lengths = series.list.len().to_numpy()
        bad = lengths != length
        if bad.any():
            row = int(np.argmax(bad))
            raise _fail_row(source, frames, row, f"'{column}' has {lengths[row]} values, expected {length}")
        flat = series.explode()
        if flat.null_count():
            row = int(np.argmax(flat.is_null().to_numpy()) // length)
            raise _fail_row(source, frames, row, f"'{column}' holds a null value")
        lists[column] = flat.cast(pl.Float64).to_numpy().reshape(-1, length)

    labels = {c: table[c].cast(pl.Int64).to_numpy() for c in LABEL_COLUMNS}
    scores = {c: table[c].cast(pl.Float64).to_numpy() for c in SCORE_COLUMNS}

    for column, values in {**lists, **scores}.items():
        finite = _each_row(np.isfinite(values))
        if not finite.all():
            raise _fail_row(source, frames, int(np.argmin(finite)), f"'{column}' is NaN or infinite")
    for column, values in {**scores, **{c: lists[c] for c in DISTRIBUTION_COLUMNS}}.items():
        inside = _each_row((values >= 0.0) & (values <= 1.0))
        if not inside.all():
            row = int(np.argmin(inside))
            raise _fail_row(source, frames, row, f"'{column}' has a probability outside [0, 1]: {values[row].tolist()}")
    for column in BOX_COLUMNS:
        box = lists[column]
        ordered = (box[:, 2] >= box[:, 0]) & (box[:, 3] >= box[:, 1])
        if not ordered.all():
            row = int(np.argmin(ordered))
            raise _fail_row(source, frames, row, f"'{column}' {box[row].tolist()} has x2<x1 or y2<y1 (boxes are xyxy)")
    for column, values in labels.items():
        valid = (values >= 0) & (values < NUM_OBJECT_CLASSES)
        if not valid.all():
            row = int(np.argmin(valid))
            raise _fail_row(source, frames, row, f"'{column}' = {values[row]} is outside 0..{NUM_OBJECT_CLASSES - 1}")

    distribution = np.concatenate([lists[c] for c in DISTRIBUTION_COLUMNS], axis=1)
    assert distribution.shape[1] == NUM_PREDICATES
    return Predictions(
        frame=frames,
        subject_box=lists["subject_box"],
        object_box=lists["object_box"],
        subject_label=labels["subject_label"],
        object_label=labels["object_label"],
        subject_score=scores["subject_score"],
        object_score=scores["object_score"],
        distribution=distribution,
    )


def read_predictions(path: str | Path) -> Predictions:
    """Read and validate a predictions Parquet file."""
    return load_predictions(path)[1]


def load_predictions(path: str | Path) -> tuple[pl.DataFrame, Predictions]:
    """Read a predictions Parquet file once: the table itself and its validated arrays."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: predictions file not found")
    try:
        table = parquet_table(path)
    except ParquetError as err:
        raise DataError(f"{path}: not a readable Parquet file ({err})") from None
    return table, validate_predictions(table, str(path))


def align_predictions(predictions: Predictions, ground_truth: GroundTruth, source: str = "predictions") -> AlignedPredictions:
    """Map each row to its ground-truth frame; refuse rows for unknown frames."""
    frame_of = {key: k for k, key in enumerate(ground_truth.frames)}
    frame_index = np.fromiter((frame_of.get(key, -1) for key in predictions.frame), dtype=np.int64, count=len(predictions))
    unknown = frame_index < 0
    if unknown.any():
        names = list(dict.fromkeys(predictions.frame[unknown]))
        shown = ", ".join(_shown(name) for name in names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
        raise DataError(
            f"{source}: {len(names)} frame(s) are not in the ground truth: {shown} "
            "(wrong split or mode? SGCls/SGDet ground truth drops boxes with a short side <= small_box_side "
            "and the frames and videos this empties)"
        )
    order = np.argsort(frame_index, kind="stable")
    return AlignedPredictions(
        frame_index=frame_index[order],
        subject_box=predictions.subject_box[order],
        object_box=predictions.object_box[order],
        subject_label=predictions.subject_label[order],
        object_label=predictions.object_label[order],
        subject_score=predictions.subject_score[order],
        object_score=predictions.object_score[order],
        distribution=predictions.distribution[order],
    )


def predictions_table(
    frame,
    subject_box,
    object_box,
    subject_label,
    object_label,
    subject_score,
    object_score,
    attention,
    spatial,
    contacting,
) -> pl.DataFrame:
    """Build a table in the exact format from array-likes (one entry per pair)."""
    columns = {
        "frame": list(frame),
        "subject_box": np.asarray(subject_box, dtype=np.float64).reshape(-1, 4),
        "object_box": np.asarray(object_box, dtype=np.float64).reshape(-1, 4),
        "subject_label": np.asarray(subject_label, dtype=np.int64),
        "object_label": np.asarray(object_label, dtype=np.int64),
        "subject_score": np.asarray(subject_score, dtype=np.float64),
        "object_score": np.asarray(object_score, dtype=np.float64),
        "attention": np.asarray(attention, dtype=np.float64).reshape(-1, GROUP_SIZES["attention"]),
        "spatial": np.asarray(spatial, dtype=np.float64).reshape(-1, GROUP_SIZES["spatial"]),
        "contacting": np.asarray(contacting, dtype=np.float64).reshape(-1, GROUP_SIZES["contacting"]),
    }
    # 2-D arrays become fixed-size Array columns, then the format's List type.
    return pl.DataFrame([pl.Series(name, values).cast(PREDICTION_SCHEMA[name]) for name, values in columns.items()])


def write_predictions(table: pl.DataFrame, path: str | Path) -> None:
    """Validate ``table`` and write it atomically as Parquet."""
    validate_predictions(table, str(path))
    with atomic_path(path, suffix=".parquet") as tmp:
        table.select(list(PREDICTION_SCHEMA)).cast(PREDICTION_SCHEMA).write_parquet(tmp, compression="zstd")
