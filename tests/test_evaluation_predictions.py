"""The predictions Parquet format: round trip and one-line validation errors."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from evaluation_cases import CUP, CUP_BOX, dist, index_tables, key, pair, table_of

from pipeline.evaluation import (
    PREDICTION_SCHEMA,
    align_predictions,
    build_ground_truth,
    read_predictions,
    validate_predictions,
    write_predictions,
)
from pipeline.io import DataError

F1, F2 = key(1), key(2)


def good_table() -> pl.DataFrame:
    probs = dist(looking_at=0.8, not_looking_at=0.2, holding=0.9, above=0.4)
    return table_of([pair(F1, CUP, CUP_BOX, probs), pair(F2, CUP, (1.0, 2.0, 3.0, 4.0), probs, scores=(0.9, 0.5))])


def with_cell(table: pl.DataFrame, column: str, row: int, value) -> pl.DataFrame:
    values = table[column].to_list()
    values[row] = value
    return table.with_columns(pl.Series(column, values, dtype=table.schema[column] if value is not None else None))


def error_of(table: pl.DataFrame) -> str:
    with pytest.raises(DataError) as info:
        validate_predictions(table, "preds.parquet")
    message = str(info.value)
    assert "\n" not in message
    return message


def test_round_trip_through_parquet(tmp_path):
    path = tmp_path / "preds.parquet"
    write_predictions(good_table(), path)
    assert pl.read_parquet(path).schema == pl.Schema(PREDICTION_SCHEMA)
    read = read_predictions(path)
    assert list(read.frame) == [F1, F2]
    np.testing.assert_array_equal(read.object_box[1], [1.0, 2.0, 3.0, 4.0])
    np.testing.assert_array_equal(read.object_score, [1.0, 0.5])
    assert read.distribution.shape == (2, 26) and read.distribution[0, 14] == 0.9


def test_fixed_size_arrays_and_narrow_types_are_accepted():
    table = good_table().with_columns(
        pl.col("subject_box").cast(pl.Array(pl.Float32, 4)),
        pl.col("subject_label").cast(pl.Int16),
        pl.col("attention").cast(pl.List(pl.Float32)),
    )
    assert validate_predictions(table).subject_label.dtype == np.int64


def test_missing_column():
    assert "missing column(s) contacting" in error_of(good_table().drop("contacting"))


@pytest.mark.parametrize(
    ("column", "cast", "expected"),
    [
        ("frame", pl.Int64, "column 'frame' has type Int64, expected string"),
        ("subject_label", pl.Float64, "column 'subject_label' has type Float64, expected integer"),
        ("object_score", pl.String, "column 'object_score' has type String, expected float"),
    ],
)
def test_wrong_column_type_names_the_column(column, cast, expected):
    table = good_table()
    if column == "frame":
        table = table.with_columns(pl.Series("frame", [1, 2]))
    else:
        table = table.with_columns(pl.col(column).cast(cast))
    assert expected in error_of(table)


def test_scalar_where_a_list_belongs():
    table = good_table().with_columns(pl.lit(0.5).alias("spatial"))
    assert "column 'spatial' has type Float64, expected list of 6 floats" in error_of(table)


def test_wrong_list_length_names_the_row():
    table = with_cell(good_table(), "attention", 1, [0.5, 0.5])
    assert error_of(table) == f"preds.parquet: row 1 (frame {F2}): 'attention' has 2 values, expected 3"


def test_nan_and_infinity():
    assert "row 0" in error_of(with_cell(good_table(), "spatial", 0, [0.1, float("nan"), 0, 0, 0, 0]))
    assert "'subject_box' is NaN or infinite" in error_of(with_cell(good_table(), "subject_box", 1, [0, 0, float("inf"), 1]))


def test_probabilities_outside_unit_interval():
    message = error_of(with_cell(good_table(), "contacting", 1, [1.2] + [0.0] * 16))
    assert message.startswith(f"preds.parquet: row 1 (frame {F2}): 'contacting' has a probability outside [0, 1]")
    assert "'object_score' has a probability outside [0, 1]" in error_of(good_table().with_columns(pl.lit(-0.1).alias("object_score")))


def test_inverted_box():
    message = error_of(with_cell(good_table(), "object_box", 0, [10.0, 0.0, 5.0, 4.0]))
    assert message == f"preds.parquet: row 0 (frame {F1}): 'object_box' [10.0, 0.0, 5.0, 4.0] has x2<x1 or y2<y1 (boxes are xyxy)"


def test_null_and_out_of_range_labels():
    assert "'frame' is null" in error_of(with_cell(good_table(), "frame", 1, None))
    assert "'object_label' = 37 is outside 0..36" in error_of(good_table().with_columns(pl.lit(37).alias("object_label")))


def test_frames_missing_from_ground_truth_are_listed():
    gt = build_ground_truth(*index_tables({F1: [{"cls": CUP, "box": CUP_BOX}]}))
    extra = [key(n, "other") for n in range(1, 8)]
    table = table_of([pair(f, CUP, CUP_BOX, dist(looking_at=1.0)) for f in [F1, F2, *extra]])
    with pytest.raises(DataError) as info:
        align_predictions(validate_predictions(table), gt, "preds.parquet")
    message = str(info.value)
    assert message.startswith(f"preds.parquet: 8 frame(s) are not in the ground truth: {F2}, {extra[0]},")
    assert "and 3 more" in message and "\n" not in message


def test_unreadable_file(tmp_path):
    bad = tmp_path / "bad.parquet"
    bad.write_text("not parquet")
    with pytest.raises(DataError, match="not a readable Parquet file"):
        read_predictions(bad)
    with pytest.raises(DataError, match="not found"):
        read_predictions(tmp_path / "absent.parquet")
