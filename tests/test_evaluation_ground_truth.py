"""Ground truth for evaluation: triplets from the index tables, the small-box view."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from ag_fixtures import obj, person, write_root
from evaluation_cases import CUP, CUP_BOX, PERSON_BOX, TABLE, TABLE_BOX, index_tables, key

from pipeline.ag.reader import load_action_genome
from pipeline.constants import PERSON_INDEX, PREDICATE_INDEX
from pipeline.evaluation import build_ground_truth, drop_small_objects, ground_truth_for_mode
from pipeline.io import DataError


def test_triplets_per_object_with_spatial_reversed():
    frames, objects = index_tables(
        {
            key(2): [{"cls": TABLE, "box": TABLE_BOX, "attention": ["unsure"]}],
            key(1): [{"cls": CUP, "box": CUP_BOX, "attention": ["looking_at"], "spatial": ["in", "above"], "contacting": ["holding"]}],
        }
    )
    gt = build_ground_truth(frames, objects)
    assert list(gt.frames) == [key(1), key(2)]  # sorted by key
    assert gt.num_triplets == 5
    rows = sorted(zip(gt.frame_index.tolist(), gt.subject_class.tolist(), gt.predicate.tolist(), gt.object_class.tolist(), strict=True))
    p = PREDICATE_INDEX
    assert rows == sorted([
        (0, PERSON_INDEX, p["looking_at"], CUP), (0, CUP, p["in"], PERSON_INDEX), (0, CUP, p["above"], PERSON_INDEX),
        (0, PERSON_INDEX, p["holding"], CUP), (1, PERSON_INDEX, p["unsure"], TABLE),
    ])  # fmt: skip
    spatial = gt.predicate == p["in"]
    np.testing.assert_array_equal(gt.subject_box[spatial][0], CUP_BOX)
    np.testing.assert_array_equal(gt.object_box[spatial][0], PERSON_BOX)
    assert np.all(np.diff(gt.frame_index) >= 0)


def test_split_selection_and_empty_split():
    frames, objects = index_tables({key(1): [{"cls": CUP, "box": CUP_BOX}]}, split="test")
    assert build_ground_truth(frames, objects, split="test").num_frames == 1
    with pytest.raises(DataError, match="no ground-truth frames in split 'val'"):
        build_ground_truth(frames, objects, split="val")


def test_small_box_view_drops_objects_frames_and_short_videos():
    small = {"cls": TABLE, "box": (0.0, 0.0, 10.0, 10.0), "small": True}
    cup = {"cls": CUP, "box": CUP_BOX}
    frames, objects = index_tables(
        {
            # video a: frame 3 keeps only its cup; frame 4 loses everything -> 3 frames remain
            key(1, "a"): [cup], key(2, "a"): [cup], key(3, "a"): [cup, small], key(4, "a"): [small],
            # video b: 3 frames, one of them only small -> 2 remain -> the video goes
            key(1, "b"): [cup], key(2, "b"): [cup], key(3, "b"): [small],
        }
    )  # fmt: skip
    kept_frames, kept_objects = drop_small_objects(frames, objects)
    assert kept_frames["frame"].to_list() == [key(1, "a"), key(2, "a"), key(3, "a")]
    assert kept_objects.height == 3 and not kept_objects["small"].any()
    assert ground_truth_for_mode(frames, objects, "test", "predcls").num_frames == 7
    assert ground_truth_for_mode(frames, objects, "test", "sgdet").num_frames == 3
    with pytest.raises(DataError, match="unknown mode"):
        ground_truth_for_mode(frames, objects, "test", "phrdet")


def test_small_box_view_equals_reading_with_the_small_filter(tmp_path):
    # Same root read both ways: filter while reading vs filter the unfiltered tables.
    person_bbox, object_bbox = {}, {}
    for video, sizes in {"aaa": [40, 40, 40, 8], "bbb": [40, 8, 8, 40], "ccc": [40, 40, 12, 40]}.items():
        for number, side in enumerate(sizes, start=1):
            frame = f"{video}.mp4/{number:06d}.png"
            person_bbox[frame] = person()
            object_bbox[frame] = [obj("cup/glass/bottle", (100.0, 50.0, side, 30.0), split="test"),
                                  obj("book", (5.0, 5.0, 10.0, 10.0), split="test")]  # fmt: skip
    root = write_root(tmp_path / "ag", person_bbox, object_bbox, frames=False)
    filtered = load_action_genome(root, filter_small=True)
    frames, objects = drop_small_objects(*(lambda i: (i.frames, i.objects))(load_action_genome(root)))
    assert frames["frame"].to_list() == filtered.frames["frame"].to_list()
    columns = ["frame", "object_class", "x1", "y1", "x2", "y2"]
    assert objects.select(columns).sort(columns).equals(filtered.objects.select(columns).sort(columns))


def test_objects_without_a_frame_row_are_refused():
    frames, objects = index_tables({key(1): [{"cls": CUP, "box": CUP_BOX}], key(2): [{"cls": CUP, "box": CUP_BOX}]})
    with pytest.raises(DataError, match=f"frame {key(2)} which is not in the frames table"):
        build_ground_truth(frames.filter(pl.col("frame") == key(1)), objects)
