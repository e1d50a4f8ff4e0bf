"""Fuzzing the cache files that later stages read: the Parquet index and the ROI cache.

Each file is written by the real writer, then truncated, bit-flipped, or
turned into an "older format" (a column or dataset missing, renamed or
retyped, an old format version). Reading gives tables and arrays of the
documented schema, or a one-line error naming the file and the stage to
rerun. (Parquet and HDF5 keep no checksum of their data pages, so a flipped
bit inside a number can go unnoticed; it still yields a well-formed table.)
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import h5py
import numpy as np
import polars as pl
import pytest
from ag_fixtures import video, write_root
from hypothesis import given
from hypothesis import strategies as st

from fuzz.contract import flip_bit, one_line_error_or_result
from pipeline.ag.reader import (
    FRAME_SCHEMA,
    INDEX_FILES,
    OBJECT_SCHEMA,
    RELATION_SCHEMA,
    build_ag_index,
    read_index,
    write_index,
)
from pipeline.extraction import cache
from pipeline.extraction.cache import RoiCache

INDEX_SCHEMAS = {"frames": FRAME_SCHEMA, "objects": OBJECT_SCHEMA, "relations": RELATION_SCHEMA}

byte_damage = st.tuples(st.sampled_from(["truncate", "flip"]), st.integers(0, 2**24))


def damage_bytes(path: Path, how) -> None:
    kind, position = how
    data = path.read_bytes()
    path.write_bytes(
        data[: position % len(data)] if kind == "truncate" else flip_bit(data, position)
    )


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("index")
    person_bbox, object_bbox = video("CACHE", [1, 2, 3, 4])
    root = write_root(base / "ag", person_bbox, object_bbox, frames=False)
    write_index(build_ag_index(root, 0.0, 0, 16.0), base / "index")
    return base / "index"


older_index = st.tuples(
    st.sampled_from(sorted(INDEX_FILES)),
    st.sampled_from(["drop", "rename", "retype"]),
    st.integers(0, 20),
    st.sampled_from([pl.String, pl.Float32, pl.Int8, pl.Boolean]),
)


@given(st.sampled_from(sorted(INDEX_FILES)), byte_damage)
def test_damaged_index_files(index_dir, table, how):
    with tempfile.TemporaryDirectory() as scratch:
        copy = Path(shutil.copytree(index_dir, Path(scratch) / "index"))
        damage_bytes(copy / INDEX_FILES[table], how)
        check_index(copy, copy / INDEX_FILES[table])


@given(older_index)
def test_index_files_in_an_older_format(index_dir, change):
    table, kind, at, dtype = change
    with tempfile.TemporaryDirectory() as scratch:
        copy = Path(shutil.copytree(index_dir, Path(scratch) / "index"))
        path = copy / INDEX_FILES[table]
        frame = pl.read_parquet(path)
        column = frame.columns[at % frame.width]
        if kind == "drop":
            frame = frame.drop(column)
        elif kind == "rename":
            frame = frame.rename({column: column + "_v0"})
        else:
            try:
                frame = frame.with_columns(pl.col(column).cast(dtype, strict=False))
            except pl.exceptions.InvalidOperationError:
                return  # polars has no such cast: nothing to write
        frame.write_parquet(path)
        check_index(copy, path)


def check_index(index_dir: Path, damaged: Path) -> None:
    with one_line_error_or_result(damaged) as failed:
        index = read_index(index_dir)
    if not failed:
        for name, schema in INDEX_SCHEMAS.items():
            assert getattr(index, name).schema == pl.Schema(schema)


# -------------------------------------------------------------------- ROI cache

FEATURE_DIM = 8


def video_arrays(rng: np.random.Generator, frames: int) -> dict[str, np.ndarray]:
    arrays = {}
    for name, column in cache.SCHEMA.items():
        width = FEATURE_DIM if column.width == "D" else column.width
        shape = (frames,) if width is None else (frames, width)
        if name == "frame":
            arrays[name] = np.array([f"V.mp4/{i + 1:06d}.png" for i in range(frames)], dtype=object)
        else:
            arrays[name] = rng.uniform(0, 50, size=shape).astype(np.dtype(column.dtype))
    return arrays


@pytest.fixture(scope="module")
def roi_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("roi") / cache.CACHE_FILE
    rng = np.random.default_rng(0)
    with h5py.File(path, "w", track_order=True) as handle:
        handle.attrs.update(
            {
                "format_version": cache.FORMAT_VERSION,
                "config_sha256": "c",
                "checkpoint_sha256": "k",
                "feature_dim": FEATURE_DIM,
            }
        )
        for video_name, frames in (("A.mp4", 3), ("B.mp4", 0)):
            cache.write_video(handle, video_name, video_arrays(rng, frames), FEATURE_DIM)
    return path


older_roi = st.one_of(
    st.tuples(
        st.just("attr"),
        st.sampled_from(["format_version", "feature_dim"]),
        st.sampled_from([None, 0, "1", -1, 99]),
    ),
    st.tuples(st.just("drop_dataset"), st.sampled_from(list(cache.SCHEMA)), st.none()),
)


def read_everything(path: Path) -> None:
    with RoiCache(path) as roi:
        for _video, arrays in roi.iter_videos():
            assert set(arrays) == set(cache.SCHEMA)


@given(byte_damage)
def test_damaged_roi_cache(roi_file, how):
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(shutil.copy(roi_file, Path(scratch) / cache.CACHE_FILE))
        damage_bytes(path, how)
        with one_line_error_or_result(path):
            read_everything(path)


@given(older_roi)
def test_roi_cache_in_an_older_format(roi_file, change):
    kind, name, value = change
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(shutil.copy(roi_file, Path(scratch) / cache.CACHE_FILE))
        with h5py.File(path, "r+") as handle:
            if kind == "attr" and value is None:
                del handle.attrs[name]
            elif kind == "attr":
                handle.attrs[name] = value
            else:
                del handle["A.mp4"][name]
        with one_line_error_or_result(path):
            read_everything(path)
