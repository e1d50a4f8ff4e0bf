"""Linking detections into tracks, and motion rows from detections."""

from __future__ import annotations

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.io import DataError
from pipeline.motion import det_pairs, link_tracks, motion_table
from pipeline.params import MotionParams

DET_SCHEMA = {
    "video": pl.String, "frame": pl.String, "frame_number": pl.Int32, "det_index": pl.Int32,
    "label": pl.Int16, "score": pl.Float32,
    "x1": pl.Float64, "y1": pl.Float64, "x2": pl.Float64, "y2": pl.Float64,
    "width": pl.Int32, "height": pl.Int32,
}  # fmt: skip


def detections(rows: list[tuple]) -> pl.DataFrame:
    """Rows of (video, frame_number, det_index, label, score, box)."""
    return pl.DataFrame(
        [
            (v, f"{v}/{n:06d}.png", n, i, label, score, *b, 300, 400)
            for v, n, i, label, score, b in rows
        ],
        schema=DET_SCHEMA,
        orient="row",
    )


def tracks_by_det(linked: pl.DataFrame) -> dict[tuple[int, int], int]:
    return {
        (r["frame_number"], r["det_index"]): r["track_id"] for r in linked.iter_rows(named=True)
    }


def test_tracks_follow_boxes_not_detection_order():
    left, right = (0.0, 0.0, 10.0, 10.0), (100.0, 0.0, 110.0, 10.0)
    shift = (1.0, 0.0, 1.0, 0.0)
    left2 = tuple(a + b for a, b in zip(left, shift, strict=True))
    rows = [
        ("v.mp4", 1, 0, 5, 0.9, left), ("v.mp4", 1, 1, 5, 0.9, right),
        ("v.mp4", 2, 0, 5, 0.9, right), ("v.mp4", 2, 1, 5, 0.9, left2),  # order swapped
        ("v.mp4", 3, 0, 5, 0.9, (500.0, 500.0, 510.0, 510.0)),  # far away: a new track
        ("v.mp4", 3, 1, 7, 0.9, right),  # same box, other class: a new track
        ("v.mp4", 4, 0, 5, 0.9, left2),  # left returns after missing frame 3
    ]  # fmt: skip
    linked = tracks_by_det(link_tracks(detections(rows), iou_threshold=0.5))
    assert linked == {(1, 0): 0, (1, 1): 1, (2, 0): 1, (2, 1): 0, (3, 0): 2, (3, 1): 3, (4, 0): 0}


def test_overlap_below_threshold_starts_a_new_track():
    rows = [
        ("v.mp4", 1, 0, 5, 0.9, (0.0, 0.0, 10.0, 10.0)),
        ("v.mp4", 2, 0, 5, 0.9, (5.0, 0.0, 15.0, 10.0)),
    ]
    # IoU = 50 / 150
    assert tracks_by_det(link_tracks(detections(rows), 0.3)) == {(1, 0): 0, (2, 0): 0}
    assert tracks_by_det(link_tracks(detections(rows), 0.4)) == {(1, 0): 0, (2, 0): 1}


def _iou(a, b) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def reference_link(rows: list[tuple], threshold: float) -> dict[tuple[int, int], tuple]:
    """Plain greedy linker: per frame, sort all (det, track) pairs by IoU and take them greedily.

    Returns {(frame_number, det_index): (first frame_number, first det_index) of its track}.
    """
    last_box: dict[tuple, tuple] = {}  # track (its first detection) -> last box
    label_of: dict[tuple, int] = {}
    result = {}
    for frame_number in sorted({r[1] for r in rows}):
        dets = sorted((r for r in rows if r[1] == frame_number), key=lambda r: r[2])
        pairs = [
            (-_iou(d[5], last_box[t]), i, t)
            for i, d in enumerate(dets)
            for t in sorted(last_box)
            if label_of[t] == d[3] and _iou(d[5], last_box[t]) >= threshold
        ]
        taken_dets, taken_tracks = set(), set()
        for _, i, t in sorted(pairs):
            if i not in taken_dets and t not in taken_tracks:
                taken_dets.add(i)
                taken_tracks.add(t)
                result[(frame_number, dets[i][2])] = t
        for d in dets:
            track = result.setdefault((frame_number, d[2]), (frame_number, d[2]))
            last_box[track] = d[5]
            label_of[track] = d[3]
    return result


grid_box = st.tuples(
    st.integers(0, 8), st.integers(0, 8), st.integers(1, 6), st.integers(1, 6)
).map(lambda b: (float(b[0]), float(b[1]), float(b[0] + b[2]), float(b[1] + b[3])))


@settings(max_examples=60, deadline=None)
@given(
    frames=st.lists(
        st.lists(st.tuples(st.integers(5, 6), grid_box), max_size=5), min_size=1, max_size=6
    ),
    threshold=st.sampled_from([0.1, 0.3, 0.5]),
)
def test_linking_matches_a_plain_greedy_loop(frames, threshold):
    rows = [
        ("v.mp4", n + 1, i, label, 0.5, b)
        for n, dets in enumerate(frames)
        for i, (label, b) in enumerate(dets)
    ]
    if not rows:
        return
    linked = link_tracks(detections(rows), threshold)
    first_det_of_track = {}
    for r in linked.sort("frame_number", "det_index").iter_rows(named=True):
        first_det_of_track.setdefault(r["track_id"], (r["frame_number"], r["det_index"]))
    ours = {key: first_det_of_track[t] for key, t in tracks_by_det(linked).items()}
    assert ours == reference_link(rows, threshold)


def test_det_pairs_use_the_best_person_and_skip_frames_without_one():
    person_lo, person_hi, cup = (
        (0.0, 0.0, 50.0, 100.0),
        (10.0, 0.0, 60.0, 100.0),
        (40.0, 40.0, 60.0, 60.0),
    )
    rows = [
        ("v.mp4", 1, 0, 1, 0.6, person_lo), ("v.mp4", 1, 1, 11, 0.8, cup), ("v.mp4", 1, 2, 1, 0.9, person_hi),
        ("v.mp4", 2, 0, 11, 0.8, cup),  # no person in frame 2: no pair
    ]  # fmt: skip
    pairs = det_pairs(detections(rows), link_iou=0.3)
    assert pairs.height == 1
    row = pairs.row(0, named=True)
    assert (row["source"], row["object_index"], row["object_class"], row["track_id"]) == (
        "det",
        1,
        11,
        0,
    )
    assert (row["px1"], row["px2"]) == (10.0, 60.0)


def test_motion_table_holds_gt_and_det_rows():
    frames = pl.DataFrame(
        {
            "frame": ["v.mp4/000001.png", "v.mp4/000002.png"],
            "video": ["v.mp4"] * 2,
            "frame_number": [1, 2],
            "width": [300, 300],
            "height": [400, 400],
            "person_x1": [0.0, 0.0],
            "person_y1": [0.0, 0.0],
            "person_x2": [50.0, 50.0],
            "person_y2": [100.0, 100.0],
        },  # fmt: skip
        schema_overrides={"frame_number": pl.Int32, "width": pl.Int32, "height": pl.Int32},
    )
    objects = pl.DataFrame(
        {"frame": ["v.mp4/000001.png", "v.mp4/000002.png"], "object_class": [11, 11],
         "x1": [40.0, 50.0], "y1": [40.0, 40.0], "x2": [60.0, 70.0], "y2": [60.0, 60.0]},
        schema_overrides={"object_class": pl.Int16},
    )  # fmt: skip
    dets = detections(
        [("v.mp4", n, 0, 1, 0.9, (0.0, 0.0, 50.0, 100.0)) for n in (1, 2)]
        + [("v.mp4", n, 3, 11, 0.7, (30.0 + 10 * n, 40.0, 50.0 + 10 * n, 60.0)) for n in (1, 2)]
    )
    table = motion_table(frames, objects, MotionParams(), detections=dets)
    assert table.select("frame_number", "source", "object_index", "track_id").rows() == [
        (1, "det", 3, 0), (1, "gt", 11, 11), (2, "det", 3, 0), (2, "gt", 11, 11),
    ]  # fmt: skip
    # the detected box follows the ground truth exactly, so every attribute agrees
    gt, det = table.filter(source="gt"), table.filter(source="det")
    assert det["velocity"].to_list() == pytest.approx(gt["velocity"].to_list())
    assert det["velocity"][1] == pytest.approx(10 / 500)


def test_detection_table_missing_a_column_is_an_error():
    with pytest.raises(DataError, match="detection table: missing column.*score"):
        det_pairs(detections([("v.mp4", 1, 0, 1, 0.9, (0.0, 0.0, 1.0, 1.0))]).drop("score"), 0.3)


def test_frames_with_only_a_person_give_no_det_rows():
    dets = detections([("v.mp4", n, 0, 1, 0.9, (0.0, 0.0, 50.0, 100.0)) for n in (1, 2)])
    assert det_pairs(dets, link_iou=0.3).height == 0
    assert link_tracks(dets.clear(), 0.3).columns[-1] == "track_id"
