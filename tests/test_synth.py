import hashlib

import polars as pl

from pipeline.ag.reader import load_action_genome
from pipeline.ag.synth import attention_label, spatial_labels, write_synthetic_ag
from pipeline.ag.validate import ERROR, validate_root
from pipeline.constants import PREDICATE_INDEX
from pipeline.params import SynthParams

SMALL = SynthParams(videos=12, seed=5, min_frames=1, max_frames=6)


def _digest(root):
    h = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        h.update(str(path.relative_to(root)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def test_same_seed_gives_byte_identical_output(tmp_path):
    write_synthetic_ag(tmp_path / "a", SMALL, progress=False)
    write_synthetic_ag(tmp_path / "b", SMALL, progress=False)
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    write_synthetic_ag(tmp_path / "c", SMALL.model_copy(update={"seed": 6}), progress=False)
    assert _digest(tmp_path / "a") != _digest(tmp_path / "c")


def test_annotations_only_root_has_the_same_annotations(tmp_path):
    write_synthetic_ag(tmp_path / "full", SMALL, progress=False)
    write_synthetic_ag(tmp_path / "bare", SMALL, progress=False, images=False)
    assert not (tmp_path / "bare" / "frames").exists()
    for name in ("person_bbox.pkl", "object_bbox_and_relationship.pkl", "frame_list.txt"):
        assert (tmp_path / "full/annotations" / name).read_bytes() == (tmp_path / "bare/annotations" / name).read_bytes()


def test_synthetic_root_is_valid_ag_and_reads(tmp_path):
    root = tmp_path / "ag"
    summary = write_synthetic_ag(root, SMALL, progress=False)
    assert not [p for p in validate_root(root) if p.severity == ERROR]
    for name in ("person_bbox.pkl", "object_bbox_and_relationship.pkl", "object_classes.txt",
                 "relationship_classes.txt", "frame_list.txt"):  # fmt: skip
        assert (root / "annotations" / name).is_file()
    assert len((root / "annotations/frame_list.txt").read_text().split()) == summary["frames"]
    index = load_action_genome(root)
    assert index.frames.height > 0 and set(index.frames["split"]) <= {"train", "test"}


def test_default_size_exercises_every_filter_and_has_a_long_tail(tmp_path):
    root = tmp_path / "ag"
    write_synthetic_ag(root, SynthParams(videos=200, seed=0), progress=False, images=False)
    index = load_action_genome(root)
    for counter in ("frames_without_person", "videos_with_1_frames", "videos_with_2_frames"):
        assert index.dropped.get(counter, 0) > 0, counter
    assert index.objects["small"].any()
    counts = index.relations.group_by("predicate").len()
    by_name = dict(zip(counts["predicate"].to_list(), counts["len"].to_list(), strict=True))
    assert by_name[PREDICATE_INDEX["not_contacting"]] > 5 * by_name.get(PREDICATE_INDEX["wiping"], 0)
    # the motion-only quartet all appear
    for name in ("holding", "carrying", "touching", "not_contacting"):
        assert by_name.get(PREDICATE_INDEX[name], 0) > 0, name
    assert index.objects.filter(pl.col("split") == "test").height > 0


def test_geometry_rules():
    person = (100.0, 50.0, 130.0, 150.0)
    assert spatial_labels((140, 60, 160, 80), person, in_front=True) == ["on_the_side_of"]
    assert "beneath" in spatial_labels((90, 140, 140, 170), person, in_front=False)
    assert spatial_labels((110, 80, 125, 100), person, in_front=True) == ["in_front_of"]
    assert attention_label((140, 60, 160, 80), person, gaze=1, eye_visible=True) == "looking_at"
    assert attention_label((140, 60, 160, 80), person, gaze=-1, eye_visible=True) == "not_looking_at"
    assert attention_label((140, 60, 160, 80), person, gaze=1, eye_visible=False) == "unsure"
