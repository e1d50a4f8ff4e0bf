"""Invariances of the motion attributes on random trajectories (hypothesis)."""

from __future__ import annotations

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.motion import motion_attributes
from pipeline.motion.attributes import BASE_ATTRIBUTES, EXTRA_ATTRIBUTES, _arg_sort

EXTRAS = {
    "relative_displacement": True,
    "log_area_ratio": True,
    "scale_change": True,
    "track_speed": True,
}
ATTRIBUTES = (*BASE_ATTRIBUTES, *(name for names in EXTRA_ATTRIBUTES.values() for name in names))

# Half-pixel grid coordinates keep boxes non-degenerate and displacements
# either exactly zero or clearly non-zero.
coordinate = st.integers(0, 1200).map(lambda v: v / 2)
side = st.integers(2, 400).map(lambda v: v / 2)
box = st.tuples(coordinate, coordinate, side, side).map(
    lambda b: (b[0], b[1], b[0] + b[2], b[1] + b[3])
)


@st.composite
def trajectories(draw) -> pl.DataFrame:
    """A pair table of 1-3 tracks in one video over increasing, sparse frame numbers."""
    n_frames = draw(st.integers(1, 8))
    steps = draw(st.lists(st.integers(1, 30), min_size=n_frames, max_size=n_frames))
    frame_numbers = [sum(steps[: i + 1]) for i in range(n_frames)]
    persons = draw(st.lists(box, min_size=n_frames, max_size=n_frames))
    rows = []
    for track_id in range(draw(st.integers(1, 3))):
        present = draw(st.lists(st.booleans(), min_size=n_frames, max_size=n_frames))
        for i, (frame_number, person) in enumerate(zip(frame_numbers, persons, strict=True)):
            if present[i] or i == 0:
                obj = draw(box)
                rows.append(
                    (
                        "v.mp4",
                        f"v.mp4/{frame_number:06d}.png",
                        frame_number,
                        "gt",
                        track_id,
                        track_id,
                        track_id,
                        640,
                        480,
                        *person,
                        *obj,
                    )
                )
    return pl.DataFrame(
        rows,
        schema=["video", "frame", "frame_number", "source", "object_index", "object_class", "track_id", "width", "height",
                "px1", "py1", "px2", "py2", "ox1", "oy1", "ox2", "oy2"],
        orient="row",
    )  # fmt: skip


def attributes(pairs: pl.DataFrame) -> pl.DataFrame:
    return motion_attributes(pairs, window_k=3, extras=EXTRAS).sort("track_id", "frame_number")


@settings(max_examples=60, deadline=None)
@given(pairs=trajectories(), shift=st.tuples(st.floats(-5000, 5000), st.floats(-5000, 5000)))
def test_translating_both_boxes_changes_nothing(pairs, shift):
    moved = pairs.with_columns(
        *(pl.col(c) + shift[0] for c in ("px1", "px2", "ox1", "ox2")),
        *(pl.col(c) + shift[1] for c in ("py1", "py2", "oy1", "oy2")),
    )
    before, after = attributes(pairs), attributes(moved)
    for name in ATTRIBUTES:
        assert after[name].to_list() == pytest.approx(before[name].to_list(), abs=1e-5), name


@settings(max_examples=60, deadline=None)
@given(pairs=trajectories())
def test_reversing_time_flips_velocity(pairs):
    last = int(pairs["frame_number"].max())
    forward = attributes(pairs)
    backward = attributes(pairs.with_columns(frame_number=last + 1 - pl.col("frame_number")))
    for track_id in forward["track_id"].unique().to_list():
        fwd = forward.filter(pl.col("track_id") == track_id)
        bwd = backward.filter(
            pl.col("track_id") == track_id
        ).reverse()  # back in forward frame order
        # Backwards, row i's previous row is forward row i + 1: v'_i = -v_{i+1}, and the
        # forward-last row is the backward-first one, where velocity is 0.
        expected = [-v for v in fwd["velocity"].to_list()[1:]] + [0.0]
        assert bwd["velocity"].to_list() == pytest.approx(expected, abs=1e-6)
        # both displacements flip sign, so their cosine moves one row but keeps its value
        cosines = fwd["direction_consistency"].to_list()[1:] + [0.0]
        assert bwd["direction_consistency"].to_list() == pytest.approx(cosines, abs=1e-5)
        assert bwd["distance"].to_list() == fwd["distance"].to_list()


@settings(max_examples=40, deadline=None)
@given(
    rows=st.lists(
        st.tuples(st.integers(0, 3), st.integers(-2, 2**40), st.integers(0, 2**31 - 1)),
        max_size=30,
    )
)
def test_packed_sort_orders_like_a_multi_column_sort(rows):
    # wide or negative values take the multi-column fallback, small ones the packed key
    keys = pl.DataFrame(rows, schema={"a": pl.Int64, "b": pl.Int64, "c": pl.Int64}, orient="row")
    for table in (keys, keys.with_columns(pl.col("b").clip(0, 1000), pl.col("c") % 7)):
        got = table[_arg_sort(table, ["a", "b", "c"])].rows()
        assert got == table.sort("a", "b", "c").rows()
