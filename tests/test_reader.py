import pickle

import numpy as np
import polars as pl
import pytest
from ag_fixtures import obj, person, video, write_root

from pipeline.ag.reader import (
    assign_val_split,
    build_ag_index,
    load_action_genome,
    read_index,
    summarize,
    write_index,
)
from pipeline.constants import OBJECT_INDEX, PREDICATE_INDEX
from pipeline.io import DataError


def _merge(*parts):
    person_bbox, object_bbox = {}, {}
    for p, o in parts:
        person_bbox.update(p)
        object_bbox.update(o)
    return person_bbox, object_bbox


@pytest.fixture
def filtered_root(tmp_path):
    """One video per filter rule, with exact expected outcomes."""
    keep = video("KEEP1", [5, 12, 40])  # 3 valid frames: kept
    short = video("SHORT", [3, 9])  # 2 frames: dropped (needs > 2)
    single = video("SINGL", [7])  # 1 frame: dropped
    test = video("TEST1", [1, 2, 3, 4], split="test")  # kept in test
    # 4 frames, one without a person and one with only invisible objects -> 2 left -> dropped
    noperson_p, noperson_o = video("NOPER", [10, 20, 30, 40])
    noperson_p["NOPER.mp4/000020.png"] = person(box=None)
    noperson_o["NOPER.mp4/000030.png"] = [obj(visible=False)]
    # 5 frames, one person-less -> 4 left -> kept
    mostly_p, mostly_o = video("MOSTL", [1, 5, 9, 13, 17])
    mostly_p["MOSTL.mp4/000009.png"] = person(box=None)
    # Split comes from the FIRST object's metadata set.
    mixed = video("MIXED", [2, 4, 6], objects_per_frame=lambda n: [obj(split="test"), obj(cls="book", split="train")])
    person_bbox, object_bbox = _merge(keep, short, single, test, (noperson_p, noperson_o), (mostly_p, mostly_o), mixed)
    return write_root(tmp_path / "ag", person_bbox, object_bbox, frames=False)


def test_standard_filters_exact_counts(filtered_root):
    index = load_action_genome(filtered_root)
    videos = set(index.frames["video"].unique())
    assert videos == {"KEEP1.mp4", "TEST1.mp4", "MOSTL.mp4", "MIXED.mp4"}
    assert index.frames.filter(pl.col("video") == "MOSTL.mp4").height == 4
    assert set(index.frames.filter(pl.col("split") == "test")["video"]) == {"TEST1.mp4", "MIXED.mp4"}
    assert index.dropped == {
        "frames_in_short_videos": 2 + 1 + 2,
        "frames_without_person": 2,
        "frames_without_visible_object": 1,
        "videos_with_1_frames": 1,
        "videos_with_2_frames": 2,
    }
    # frames are ordered by frame number within a video
    assert index.frames.filter(pl.col("video") == "KEEP1.mp4")["frame_number"].to_list() == [5, 12, 40]


def test_xywh_to_xyxy_and_person_box(filtered_root):
    index = load_action_genome(filtered_root)
    row = index.objects.filter(pl.col("frame") == "KEEP1.mp4/000005.png").row(0, named=True)
    assert (row["x1"], row["y1"], row["x2"], row["y2"]) == (100.0, 50.0, 130.0, 90.0)
    frame = index.frames.filter(pl.col("frame") == "KEEP1.mp4/000005.png").row(0, named=True)
    assert (frame["person_x1"], frame["person_y1"], frame["person_x2"], frame["person_y2"]) == (10.0, 20.0, 60.0, 200.0)
    assert (frame["width"], frame["height"]) == (320, 240)


def test_name_fixups_and_global_predicate_indices(tmp_path):
    p, o = video("FIXUP", [1, 2, 3], objects_per_frame=lambda n: [
        obj(cls="sofa/couch", attention=("not_looking_at",), spatial=("on_the_side_of", "beneath"),
            contacting=("sitting_on", "leaning_on"))])  # fmt: skip
    root = write_root(tmp_path / "ag", p, o, frames=False)
    # raw files really hold the slash-less / underscore-less names
    assert "sofacouch" in (root / "annotations/object_classes.txt").read_text().split()
    assert "sittingon" in (root / "annotations/relationship_classes.txt").read_text().split()
    index = load_action_genome(root)
    row = index.objects.row(0, named=True)
    assert row["object_class"] == OBJECT_INDEX["sofa/couch"] == 31
    assert row["attention"] == [PREDICATE_INDEX["not_looking_at"]] == [1]
    assert sorted(row["spatial"]) == sorted([PREDICATE_INDEX["on_the_side_of"], PREDICATE_INDEX["beneath"]])
    assert sorted(row["contacting"]) == sorted([PREDICATE_INDEX["sitting_on"], PREDICATE_INDEX["leaning_on"]])
    # relations: 1 attention + 2 spatial + 2 contacting per object, 3 frames
    assert index.relations.height == 5 * 3


def test_small_box_filter(tmp_path):
    # frame 3's only object is small: with the filter it becomes invalid -> video has 2 frames -> dropped
    def objects(n):
        return [obj(bbox=(5.0, 5.0, 16.0, 40.0))] if n == 3 else [obj(), obj(cls="book", bbox=(0.0, 0.0, 12.0, 12.0))]

    root = write_root(tmp_path / "ag", *video("SMALL", [1, 2, 3], objects_per_frame=objects), frames=False)
    plain = load_action_genome(root)
    assert plain.frames.height == 3 and plain.objects.height == 5
    assert plain.objects["small"].sum() == 3
    filtered = load_action_genome(root, filter_small=True)
    assert filtered.frames.height == 0
    assert filtered.dropped["small_objects"] == 3
    assert filtered.dropped["videos_with_2_frames"] == 1


def test_val_split_is_deterministic_by_video_and_leaves_test_alone(filtered_root):
    index = load_action_genome(filtered_root)
    a = assign_val_split(index, 0.5, seed=3)
    b = assign_val_split(index, 0.5, seed=3)
    assert a.frames.equals(b.frames)
    per_video = a.frames.group_by("video").agg(pl.col("split").n_unique())
    assert per_video["split"].max() == 1  # a video is never split across train/val
    assert a.frames.filter(pl.col("split") == "test").equals(index.frames.filter(pl.col("split") == "test"))
    assert a.frames.filter(pl.col("split") == "val")["video"].n_unique() == 1  # round(0.5 * 2 train videos)


def test_write_read_roundtrip_and_summary(filtered_root, tmp_path):
    index = build_ag_index(filtered_root, val_fraction=0.0, split_seed=0, small_box_side=16.0)
    summary = write_index(index, tmp_path / "index")
    back = read_index(tmp_path / "index")
    assert back.objects.equals(index.objects)
    assert summary["train"] == {"videos": 2, "frames": 7, "objects": 7, "relations": 21}
    assert summary["test"] == {"videos": 2, "frames": 7, "objects": 10, "relations": 30}
    assert summary["val"]["frames"] == 0
    assert summarize(back)["test"] == summary["test"]


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda o: o.update({"class": "spaceship"}), "unknown object class 'spaceship'"),
        (lambda o: o.update({"contacting_relationship": ["juggling"]}), "unknown predicate 'juggling'"),
        (lambda o: o.update({"bbox": None}), "has no bbox"),
        (lambda o: o.update({"attention_relationship": None}), "attention_relationship=None"),
    ],
)
def test_bad_records_give_one_line_errors_naming_the_frame(tmp_path, mutate, message):
    p, o = video("BAD01", [1, 2, 3])
    mutate(o["BAD01.mp4/000002.png"][0])
    root = write_root(tmp_path / "ag", p, o, frames=False)
    with pytest.raises(DataError, match=message) as info:
        load_action_genome(root)
    assert "BAD01.mp4/000002.png" in str(info.value) and "\n" not in str(info.value)


def test_path_traversal_frame_key_is_refused(tmp_path):
    p, o = video("TRAV1", [1, 2, 3])
    p["../../x.png"] = person()
    o["../../x.png"] = [obj()]
    root = write_root(tmp_path / "ag", p, o, frames=False)
    with pytest.raises(DataError, match="not of the form VIDEO.mp4/NNNNNN.png"):
        load_action_genome(root)


def test_missing_annotation_file_is_named(tmp_path):
    root = write_root(tmp_path / "ag", *video("MISS1", [1, 2, 3]), frames=False)
    (root / "annotations/person_bbox.pkl").unlink()
    with pytest.raises(DataError, match="person_bbox.pkl: missing"):
        load_action_genome(root)


def test_numpy_arrays_in_pickles_load_through_the_restricted_unpickler(tmp_path):
    root = write_root(tmp_path / "ag", *video("NUMPY", [1, 2, 3]), frames=False)
    raw = pickle.loads((root / "annotations/person_bbox.pkl").read_bytes())
    assert isinstance(raw["NUMPY.mp4/000001.png"]["bbox"], np.ndarray)
    assert load_action_genome(root).frames.height == 3
