"""Motion attributes on analytic trajectories with exact expected values."""

from __future__ import annotations

import math

import polars as pl
import pyarrow.parquet as pq
import pytest

from pipeline.ag.reader import FRAME_SCHEMA
from pipeline.io import DataError
from pipeline.motion import motion_table, write_motion_parquet
from pipeline.params import MotionAttributes, MotionParams

# 300 x 400 images have a 500 px diagonal, so pixel offsets divide evenly.
WIDTH, HEIGHT, DIAG = 300, 400, 500.0
PERSON = (40.0, 40.0, 60.0, 60.0)  # centre (50, 50)


def box_at(cx: float, cy: float, half: float = 10.0) -> tuple[float, float, float, float]:
    return (cx - half, cy - half, cx + half, cy + half)


def index_tables(
    tracks: dict[int, list[tuple[int, tuple, tuple]]], video: str = "v1.mp4"
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """frames/objects tables from {object_class: [(frame_number, person_box, object_box), ...]}.

    The person box of a frame is taken from whichever track mentions it (they must agree).
    """
    person_of: dict[int, tuple] = {}
    object_rows = []
    for object_class, rows in tracks.items():
        for frame_number, person, obj in rows:
            assert person_of.setdefault(frame_number, person) == person
            object_rows.append((f"{video}/{frame_number:06d}.png", video, object_class, *obj))
    frames = pl.DataFrame(
        [
            (f"{video}/{n:06d}.png", video, n, "test", WIDTH, HEIGHT, *person_of[n])
            for n in sorted(person_of)
        ],
        schema=FRAME_SCHEMA,
        orient="row",
    )
    objects = pl.DataFrame(
        object_rows,
        schema={
            "frame": pl.String,
            "video": pl.String,
            "object_class": pl.Int16,
            "x1": pl.Float64,
            "y1": pl.Float64,
            "x2": pl.Float64,
            "y2": pl.Float64,
        },  # fmt: skip
        orient="row",
    )
    return frames, objects


def compute(tracks, window_k: int = 4, **extras) -> pl.DataFrame:
    params = MotionParams(window_k=window_k, extras=MotionAttributes(**extras))
    return motion_table(*index_tables(tracks), params)


def column(table: pl.DataFrame, name: str, object_class: int = 5) -> list[float]:
    return table.filter(pl.col("object_class") == object_class).sort("frame_number")[name].to_list()


def test_approach_at_constant_speed():
    # object centre 250, 225, 200, 175 px right of the person: d = 0.5, 0.45, 0.4, 0.35
    rows = [(n, PERSON, box_at(50 + 250 - 25 * (n - 1), 50)) for n in (1, 2, 3, 4)]
    table = compute({5: rows})
    assert column(table, "distance") == pytest.approx([0.5, 0.45, 0.4, 0.35])
    assert column(table, "velocity") == pytest.approx([0.0, -0.05, -0.05, -0.05])
    assert column(table, "dx") == pytest.approx([0.0, -0.05, -0.05, -0.05])
    assert column(table, "dy") == [0.0] * 4
    # boxes never overlap, the person is still, both boxes have the same size
    assert column(table, "persistence") == [0.0] * 4
    assert column(table, "direction_consistency") == [0.0] * 4
    assert column(table, "log_area_ratio") == [0.0] * 4
    assert column(table, "scale_change") == [0.0] * 4


def test_boxes_moving_together_and_apart():
    # Same displacement (10, 5) per frame: constant distance, cosine 1.
    # 100 x 100 boxes offset by (50, 50) overlap in 50 x 50: IoU = 2500 / 17500.
    together = [
        (
            n,
            (10.0 * n, 5.0 * n, 100 + 10.0 * n, 100 + 5.0 * n),
            (50 + 10.0 * n, 50 + 5.0 * n, 150 + 10.0 * n, 150 + 5.0 * n),
        )
        for n in (1, 2, 3)
    ]
    # Against the same person motion, an object moving the opposite way: cosine -1.
    apart = [
        (n, person, (200 - 10.0 * n, 50 - 5.0 * n, 220 - 10.0 * n, 70 - 5.0 * n))
        for n, person, _ in together
    ]
    table = compute({5: together, 7: apart})
    assert column(table, "distance") == pytest.approx([math.hypot(50, 50) / DIAG] * 3)
    assert column(table, "velocity") == pytest.approx([0.0] * 3, abs=1e-7)
    assert column(table, "direction_consistency") == pytest.approx([0.0, 1.0, 1.0])
    assert column(table, "persistence") == pytest.approx([1 / 7] * 3)
    assert column(table, "direction_consistency", 7) == pytest.approx([0.0, -1.0, -1.0])


def test_static_pair():
    person, obj = (0.0, 0.0, 100.0, 100.0), (50.0, 0.0, 150.0, 50.0)  # IoU 2500 / 12500
    table = compute({5: [(n, person, obj) for n in (3, 6, 9, 12, 15)]})
    assert column(table, "distance") == pytest.approx([math.hypot(50, 25) / DIAG] * 5)
    assert column(table, "persistence") == pytest.approx([0.2] * 5)
    assert column(table, "log_area_ratio") == pytest.approx([math.log(0.5)] * 5)
    for name in ("velocity", "direction_consistency", "dx", "dy", "scale_change"):
        assert column(table, name) == [0.0] * 5, name


def test_velocity_divides_by_frame_number_step():
    # offsets 250, 220, 100 px at frames 1, 4, 10: d = 0.5, 0.44, 0.2
    rows = [(n, PERSON, box_at(50 + off, 50)) for n, off in ((1, 250), (4, 220), (10, 100))]
    table = compute({5: rows})
    assert column(table, "velocity") == pytest.approx([0.0, -0.06 / 3, -0.24 / 6])
    assert column(table, "dx") == pytest.approx([0.0, -0.06 / 3, -0.24 / 6])


def test_scale_change_per_frame_step():
    # object side doubles from frame 2 to frame 4: area ratio x4 over 2 frame steps
    rows = [(2, PERSON, box_at(50, 50, half=5.0)), (4, PERSON, box_at(50, 50, half=10.0))]
    table = compute({5: rows})
    assert column(table, "log_area_ratio") == pytest.approx([math.log(0.25), 0.0])
    assert column(table, "scale_change") == pytest.approx([0.0, math.log(4.0) / 2])


def test_pair_that_disappears_and_returns():
    person = (0.0, 0.0, 100.0, 100.0)
    # IoU 1, 1/3, 0 at frames 1..3; gone at 4..6 (another object keeps those frames); IoU 1 at 7
    boxes = {
        1: (0.0, 0.0, 100.0, 100.0),
        2: (50.0, 0.0, 150.0, 100.0),
        3: (100.0, 0.0, 200.0, 100.0),
        7: (0.0, 0.0, 100.0, 100.0),
    }
    other = [(n, person, (300.0, 300.0, 310.0, 310.0)) for n in range(1, 8)]
    tracks = {5: [(n, person, b) for n, b in boxes.items()], 9: other}

    k2 = compute(tracks, window_k=2)
    assert column(k2, "frame_number") == [1, 2, 3, 7]
    assert column(k2, "persistence") == pytest.approx([1.0, 2 / 3, 1 / 6, 0.5])
    # centre offsets 0, 50, 100, 0 px: d = 0, 0.1, 0.2, 0; the return step spans 4 frames
    assert column(k2, "velocity") == pytest.approx([0.0, 0.1, 0.1, -0.05])
    k4 = compute(tracks, window_k=4)
    assert column(k4, "persistence") == pytest.approx([1.0, 2 / 3, 4 / 9, 7 / 12])
    # the other track is untouched by the gap in track 5
    assert column(k4, "velocity", 9) == [0.0] * 7


def test_extras_are_switchable_and_keys_are_typed():
    rows = [(n, PERSON, box_at(100, 50)) for n in (1, 2)]
    table = compute(
        {5: rows},
        relative_displacement=False,
        log_area_ratio=False,
        scale_change=False,
        track_speed=False,
    )
    assert table.columns == [
        "video", "frame", "frame_number", "source", "object_index", "object_class", "track_id",
        "distance", "velocity", "persistence", "direction_consistency",
    ]  # fmt: skip
    assert table.schema["object_class"] == pl.Int16 and table.schema["track_id"] == pl.Int32
    assert table.schema["distance"] == pl.Float32
    assert set(table["source"]) == {"gt"} and table["object_index"].to_list() == [5, 5]
    only_scale = compute(
        {5: rows}, relative_displacement=False, log_area_ratio=False, track_speed=False
    )
    assert only_scale.columns[-1] == "scale_change" and "dx" not in only_scale.columns


def test_track_speeds_say_who_moves_from_past_frames_only():
    # person still, object circles the person's side: only the object has a speed, read causally
    still_person = [(n, PERSON, box_at(100 + 3 * (n % 2), 50 + 4 * (n % 2))) for n in (1, 2, 5)]
    table = compute({5: still_person})
    assert column(table, "subject_speed") == [0.0] * 3
    # steps of 5 px in 1 frame and 5 px in 3 frames, diagonal 500: no step yet, 0.01, then the mean of both
    assert column(table, "object_speed") == pytest.approx([0.0, 0.01, 0.02 / 3])
    assert column(table, "direction_consistency") == [0.0] * 3
    lone = compute({5: still_person[:1]})
    assert column(lone, "subject_speed") == [0.0] and column(lone, "object_speed") == [0.0]


def test_a_later_frame_never_changes_an_earlier_rows_speed():
    moving = [(n, box_at(40 + 7 * n, 50), box_at(100 + 3 * n * n, 50)) for n in (1, 2, 4, 9)]
    full, cut = compute({5: moving}), compute({5: moving[:2]})
    for name in ("subject_speed", "object_speed"):
        assert column(full, name)[:2] == pytest.approx(column(cut, name))


def test_jitter_below_the_still_threshold_is_not_motion():
    jitter = [
        (n, (40.0 + 0.5 * (n % 2), 40.0, 60.0 + 0.5 * (n % 2), 60.0), box_at(100 + 20 * n, 50))
        for n in (1, 2, 3)
    ]
    table = compute({5: jitter})
    assert column(table, "direction_consistency") == [0.0] * 3
    moving = MotionParams(still_fraction=0.0)
    tight = motion_table(*index_tables({5: jitter}), moving)
    assert any(abs(v) > 0.5 for v in column(tight, "direction_consistency"))


def test_duplicate_track_row_is_a_one_line_error():
    frames, objects = index_tables({5: [(1, PERSON, box_at(100, 50))]})
    with pytest.raises(DataError, match=r"v1.mp4/000001.png: track 5 \(gt\) appears twice"):
        motion_table(frames, pl.concat([objects, objects]), MotionParams())


def test_object_without_frame_row_is_an_error():
    frames, objects = index_tables(
        {5: [(1, PERSON, box_at(100, 50)), (2, PERSON, box_at(100, 50))]}
    )
    with pytest.raises(DataError, match="000002.png has objects but no row in the frames table"):
        motion_table(frames.head(1), objects, MotionParams())


def _write_index(tmp_path, n_videos: int, speed: int = 7):
    frames, objects = [], []
    for v in range(n_videos):
        rows = [(n, PERSON, box_at(100 + speed * n * (v + 1), 50 + 3 * n)) for n in range(1, 6)]
        f, o = index_tables({5: rows, 8: rows[::2]}, video=f"vid{v}.mp4")
        frames.append(f)
        objects.append(o)
    frames_path, objects_path = tmp_path / "frames.parquet", tmp_path / "objects.parquet"
    pl.concat(frames).write_parquet(frames_path)
    pl.concat(objects).write_parquet(objects_path)
    return frames_path, objects_path


def test_parquet_is_byte_identical_and_independent_of_chunking(tmp_path):
    frames_path, objects_path = _write_index(tmp_path, n_videos=5)
    params = MotionParams(videos_per_chunk=2)
    outs = [tmp_path / "a.parquet", tmp_path / "b.parquet", tmp_path / "one_chunk.parquet"]
    assert write_motion_parquet(frames_path, objects_path, outs[0], params) == 5 * 8
    write_motion_parquet(frames_path, objects_path, outs[1], params)
    write_motion_parquet(frames_path, objects_path, outs[2], MotionParams(videos_per_chunk=100))
    assert outs[0].read_bytes() == outs[1].read_bytes()
    assert pq.read_metadata(outs[0]).num_row_groups == 3
    chunked, whole = pl.read_parquet(outs[0]), pl.read_parquet(outs[2])
    assert chunked.equals(whole)
    in_memory = motion_table(pl.read_parquet(frames_path), pl.read_parquet(objects_path), params)
    assert chunked.equals(in_memory)
    assert not list(tmp_path.glob("*.tmp"))


def test_missing_index_file_names_the_stage(tmp_path):
    with pytest.raises(DataError, match="frames.parquet: not found .*dvc repro index"):
        write_motion_parquet(
            tmp_path / "frames.parquet",
            tmp_path / "o.parquet",
            tmp_path / "m.parquet",
            MotionParams(),
        )


def test_index_file_missing_a_column_is_an_error(tmp_path):
    frames_path, objects_path = _write_index(tmp_path, n_videos=1)
    pl.read_parquet(objects_path).drop("video").write_parquet(objects_path)
    with pytest.raises(DataError, match="objects.parquet: missing column.s. video; rebuild it"):
        write_motion_parquet(frames_path, objects_path, tmp_path / "m.parquet", MotionParams())


def as_detections(frames: pl.DataFrame, objects: pl.DataFrame) -> pl.DataFrame:
    """A detection table holding exactly the index boxes: the person first, then objects by class."""
    persons = frames.select(
        "video", "frame", "frame_number", label=pl.lit(1, pl.Int16), score=pl.lit(0.9, pl.Float32),
        x1="person_x1", y1="person_y1", x2="person_x2", y2="person_y2", width="width", height="height",
    )  # fmt: skip
    boxes = objects.join(frames.select("frame", "frame_number", "width", "height"), on="frame").select(
        "video", "frame", "frame_number", label="object_class", score=pl.lit(0.5, pl.Float32),
        x1="x1", y1="y1", x2="x2", y2="y2", width="width", height="height",
    )  # fmt: skip
    table = pl.concat([persons, boxes], how="vertical_relaxed").sort(
        "video", "frame_number", "label"
    )
    return table.with_columns(
        det_index=pl.int_range(pl.len(), dtype=pl.Int32).over("video", "frame_number")
    )


def test_detections_are_chunked_like_ground_truth(tmp_path):
    frames, objects = _write_index(tmp_path, n_videos=5, speed=1)  # slow enough to link at IoU 0.1
    dets = as_detections(pl.read_parquet(frames), pl.read_parquet(objects))
    chunked, whole = tmp_path / "chunked.parquet", tmp_path / "whole.parquet"
    rows = write_motion_parquet(
        frames, objects, chunked, MotionParams(videos_per_chunk=2, det_link_iou=0.1), dets
    )
    write_motion_parquet(
        frames, objects, whole, MotionParams(videos_per_chunk=50, det_link_iou=0.1), dets
    )
    table = pl.read_parquet(chunked)
    assert rows == 2 * 5 * 8 and table.equals(pl.read_parquet(whole))
    # Detections equal to the ground truth, linked into one track per class: same attributes.
    gt, det = table.filter(source="gt"), table.filter(source="det")
    assert (
        det.group_by("video", "object_class")
        .agg(pl.col("track_id").n_unique())
        .get_column("track_id")
        .max()
        == 1
    )
    attributes = [
        "distance",
        "velocity",
        "persistence",
        "direction_consistency",
        "dx",
        "dy",
        "scale_change",
    ]
    assert det.select(attributes).equals(gt.select(attributes))
    assert det["object_index"].to_list() != gt["object_index"].to_list()  # det_index, not the class
