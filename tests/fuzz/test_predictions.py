"""Fuzzing the predictions Parquet that ``mosa evaluate`` reads.

Starting from a valid file for a small test split: any number of rows
(zero included), duplicated rows, frames of another split or of no split,
missing, renamed, extra or retyped columns, nulls, NaN/inf, lists of the
wrong length, out-of-range labels and probabilities, and the file's bytes
truncated or bit-flipped. Evaluation returns recalls in [0, 1] or a
one-line error naming the file.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from ag_fixtures import video, write_root
from hypothesis import example, given
from hypothesis import strategies as st
from typer.testing import CliRunner

from fuzz.contract import flip_bit, one_line_error_or_result
from pipeline.cli import app
from pipeline.constants import GROUP_SIZES, OBJECT_INDEX, PERSON_INDEX
from pipeline.evaluation.from_files import evaluate_predictions_file, load_ground_truth
from pipeline.evaluation.predictions import PREDICTION_SCHEMA, predictions_table
from pipeline.params import DatasetParams, EvaluateParams

TEST_KEYS = [f"TEST.mp4/{n:06d}.png" for n in (1, 2, 3)]
TRAIN_KEYS = [f"TRAIN.mp4/{n:06d}.png" for n in (1, 2, 3)]
COLUMNS = list(PREDICTION_SCHEMA)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """An AG root with a test and a train video, and the test split's ground truth."""
    test_person, test_objects = video("TEST", [1, 2, 3], split="test")
    train_person, train_objects = video("TRAIN", [1, 2, 3], split="train")
    root = write_root(
        tmp_path_factory.mktemp("ag"),
        {**test_person, **train_person},
        {**test_objects, **train_objects},
        frames=False,
    )
    truth = load_ground_truth(root, "test", "predcls", DatasetParams(val_fraction=0.0))
    return root, truth


def good_rows(seed: int, rows_per_frame: int) -> dict[str, list]:
    rng = np.random.default_rng(seed)
    n = len(TEST_KEYS) * rows_per_frame
    attention = rng.dirichlet(np.ones(GROUP_SIZES["attention"]), size=n)
    table = predictions_table(
        frame=[k for k in TEST_KEYS for _ in range(rows_per_frame)],
        subject_box=np.tile([10.0, 20.0, 60.0, 200.0], (n, 1)),
        object_box=np.tile([100.0, 50.0, 130.0, 90.0], (n, 1)),
        subject_label=np.full(n, PERSON_INDEX),
        object_label=np.full(n, OBJECT_INDEX["cup/glass/bottle"]),
        subject_score=np.ones(n),
        object_score=rng.uniform(size=n),
        attention=attention,
        spatial=rng.uniform(size=(n, GROUP_SIZES["spatial"])),
        contacting=rng.uniform(size=(n, GROUP_SIZES["contacting"])),
    )
    return table.to_dict(as_series=False)


odd_values = st.one_of(
    st.none(),
    st.sampled_from(
        [float("nan"), float("inf"), -float("inf"), -1.0, 1.5, 1e300, 0.0, 36.0, 37.0, -1]
    ),
    st.text(max_size=6),
    st.lists(st.floats(allow_nan=True, allow_infinity=True), max_size=30),
    st.lists(st.none(), max_size=4),
)
edits = st.one_of(
    st.tuples(st.just("cell"), st.sampled_from(COLUMNS), st.integers(0, 50), odd_values),
    st.tuples(
        st.just("list_item"),
        st.sampled_from(["subject_box", "object_box", "attention", "spatial", "contacting"]),
        st.integers(0, 50),
        st.tuples(st.integers(0, 20), odd_values),
    ),
    st.tuples(
        st.just("frame"),
        st.just("frame"),
        st.integers(0, 50),
        st.one_of(st.sampled_from(TRAIN_KEYS), st.text(max_size=20)),
    ),
    st.tuples(st.just("duplicate_row"), st.none(), st.integers(0, 50), st.none()),
    st.tuples(st.just("drop_column"), st.sampled_from(COLUMNS), st.none(), st.none()),
    st.tuples(
        st.just("rename_column"),
        st.sampled_from(COLUMNS),
        st.none(),
        st.text(min_size=1, max_size=8),
    ),
    st.tuples(st.just("extra_column"), st.text(min_size=1, max_size=8), st.none(), st.integers()),
    st.tuples(
        st.just("retype_column"),
        st.sampled_from(COLUMNS),
        st.none(),
        st.sampled_from([pl.String, pl.Int8, pl.Float32, pl.Boolean, pl.List(pl.String), pl.Null]),
    ),
)


def apply_edits(data: dict[str, list], edit_list) -> pl.DataFrame:
    schema = dict(PREDICTION_SCHEMA)
    retype = {}
    for kind, column, at, value in edit_list:
        n = len(next(iter(data.values()))) if data else 0
        if kind in ("cell", "frame") and n and column in data:
            data[column][at % n] = value
            schema[column] = None  # let the odd value decide the type
        elif (
            kind == "list_item" and n and column in data and isinstance(data[column][at % n], list)
        ):
            cell = list(data[column][at % n])
            position, item = value
            if cell:
                cell[position % len(cell)] = item
            data[column][at % n] = cell
            schema[column] = None
        elif kind == "duplicate_row" and n:
            for values in data.values():
                values.append(values[at % n])
        elif kind == "drop_column":
            data.pop(column, None)
        elif kind == "rename_column" and column in data and value not in data:
            data[value] = data.pop(column)
        elif kind == "extra_column" and column not in data:
            data[column] = [value] * n
        elif kind == "retype_column" and column in data:
            retype[column] = value
    series = []
    for name, values in data.items():
        try:
            column = pl.Series(name, values, dtype=schema.get(name), strict=False)
        except (TypeError, ValueError, OverflowError, pl.exceptions.PolarsError):
            column = None
        if column is None or column.dtype == pl.Object:  # Parquet cannot store Python objects
            column = pl.Series(name, [str(v) for v in values])
        series.append(column)
    table = pl.DataFrame(series)
    for name, dtype in retype.items():
        if name not in table.columns:  # renamed or dropped after it was retyped
            continue
        try:
            table = table.with_columns(pl.col(name).cast(dtype, strict=False))
        except pl.exceptions.InvalidOperationError:
            pass  # polars has no such cast: the column keeps its type
    return table


def check_evaluation(path: Path, truth) -> None:
    with one_line_error_or_result(path) as failed:
        results = evaluate_predictions_file(path, truth, EvaluateParams(), ("with", "semi", "no"))
    if not failed:
        for result in results.values():
            for value in result.metrics().values():
                assert 0.0 <= value <= 100.0


@given(st.integers(0, 3), st.integers(0, 2**16), st.lists(edits, max_size=3))
@example(0, 0, [])  # zero rows, right schema: the regression case
def test_edited_predictions_evaluate_or_fail_in_one_line(world, rows_per_frame, seed, edit_list):
    _, truth = world
    table = apply_edits(good_rows(seed, rows_per_frame), edit_list)
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "predictions.parquet"
        table.write_parquet(path)
        check_evaluation(path, truth)


@given(
    st.integers(1, 3),
    st.integers(0, 2**16),
    st.sampled_from(["truncate", "flip"]),
    st.integers(0, 2**20),
)
def test_damaged_predictions_bytes(world, rows_per_frame, seed, how, position):
    _, truth = world
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "predictions.parquet"
        pl.DataFrame(good_rows(seed, rows_per_frame), schema=PREDICTION_SCHEMA).write_parquet(path)
        data = path.read_bytes()
        path.write_bytes(
            data[: position % len(data)] if how == "truncate" else flip_bit(data, position)
        )
        check_evaluation(path, truth)


def test_zero_row_predictions_give_zero_recall_on_the_command_line(world, tmp_path):
    root, _ = world
    path = tmp_path / "empty.parquet"
    pl.DataFrame(schema=PREDICTION_SCHEMA).write_parquet(path)
    params = tmp_path / "params.yaml"
    params.write_text("dataset:\n  val_fraction: 0.0\n")
    result = CliRunner().invoke(
        app,
        [
            "evaluate",
            "--ag-root",
            str(root),
            "--predictions",
            str(path),
            "--mode",
            "predcls",
            "--params",
            str(params),
        ],
    )
    assert result.exit_code == 0, result.output
    rows = [
        line.split()
        for line in result.output.splitlines()
        if line.split()[:1] in (["with"], ["semi"], ["no"])
    ]
    assert len(rows) == 3 and all(float(v) == 0.0 for row in rows for v in row[1:])


@pytest.mark.parametrize("damage", ["empty file", "missing column", "null cell"])
def test_show_reads_predictions_through_the_same_checks(tmp_path, damage):
    """``mosa show --predictions`` draws from the table, so it must refuse what evaluate refuses."""
    pytest.importorskip("matplotlib")
    from pipeline.viz.show import read_mode_predictions

    path = tmp_path / "predictions.parquet"
    table = pl.DataFrame(good_rows(0, 1), schema=PREDICTION_SCHEMA)
    if damage == "empty file":
        path.write_bytes(b"")
    elif damage == "missing column":
        table.drop("spatial").write_parquet(path)
    else:
        table.with_columns(pl.lit(None, pl.Float64).alias("object_score")).write_parquet(path)
    with one_line_error_or_result(path) as failed:
        read_mode_predictions("predcls", path)
    assert failed
