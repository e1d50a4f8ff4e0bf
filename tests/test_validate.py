import numpy as np
import pytest
from ag_fixtures import obj, person, video, write_root
from typer.testing import CliRunner

from pipeline.ag.validate import ERROR, WARNING, validate_root
from pipeline.cli import app


def _kinds(problems, severity=ERROR):
    return {p.kind for p in problems if p.severity == severity}


@pytest.fixture
def clean(tmp_path):
    return video("CLEAN", [1, 2, 3])


def test_clean_root_has_no_problems(tmp_path, clean):
    root = write_root(tmp_path / "ag", *clean)
    assert validate_root(root) == []
    result = CliRunner().invoke(app, ["validate", str(root)])
    assert result.exit_code == 0 and "0 errors, 0 warnings" in result.output


FAULTS = {
    "unknown_class": lambda p, o: o["CLEAN.mp4/000001.png"][0].update({"class": "unicorn"}),
    "unknown_predicate": lambda p, o: o["CLEAN.mp4/000001.png"][0].update({"spatial_relationship": ["inside_of"]}),
    "visible_without_box": lambda p, o: o["CLEAN.mp4/000001.png"][0].update({"bbox": None}),
    "missing_label": lambda p, o: o["CLEAN.mp4/000001.png"][0].update({"attention_relationship": []}),
    "box_outside_image": lambda p, o: o["CLEAN.mp4/000001.png"][0].update({"bbox": (300.0, 10.0, 60.0, 20.0)}),
    "zero_area_box": lambda p, o: o["CLEAN.mp4/000001.png"][0].update({"bbox": (30.0, 10.0, 0.0, 20.0)}),
    "nan_box": lambda p, o: o["CLEAN.mp4/000001.png"][0].update({"bbox": (float("nan"), 10.0, 5.0, 20.0)}),
    "negative_box": lambda p, o: o["CLEAN.mp4/000001.png"][0].update({"bbox": (-40.0, 10.0, 50.0, 20.0)}),
    # (x1, y1, x2, y2) stored where (x, y, w, h) belongs: leaves the image as xywh
    "xyxy_as_xywh": lambda p, o: o["CLEAN.mp4/000001.png"][0].update({"bbox": (200.0, 150.0, 300.0, 230.0)}),
    # person (x, y, w, h) stored where xyxy belongs
    "xywh_as_xyxy": lambda p, o: p["CLEAN.mp4/000001.png"].update({"bbox": np.array([[100, 50, 30, 120]], np.float32)}),
    "wrong_predicate_group": lambda p, o: o["CLEAN.mp4/000001.png"][0].update({"contacting_relationship": ["above"]}),
    "unpaired_frame": lambda p, o: o.pop("CLEAN.mp4/000003.png"),
}


@pytest.mark.parametrize("kind", sorted(FAULTS))
def test_each_fault_kind_is_detected(tmp_path, clean, kind):
    p, o = clean
    FAULTS[kind](p, o)
    root = write_root(tmp_path / "ag", p, o)
    assert kind in _kinds(validate_root(root))


def test_all_faults_reported_in_one_pass_and_cli_exits_1(tmp_path, clean):
    p, o = clean
    for kind in ("unknown_class", "nan_box", "unpaired_frame"):
        FAULTS[kind](p, o)
    root = write_root(tmp_path / "ag", p, o)
    (root / "frames/CLEAN.mp4/000002.png").unlink()
    (root / "frames/CLEAN.mp4/000001.png").write_bytes(b"garbage")
    kinds = _kinds(validate_root(root))
    assert {"unknown_class", "nan_box", "unpaired_frame", "missing_frame", "unreadable_frame"} <= kinds
    result = CliRunner().invoke(app, ["validate", str(root)])
    assert result.exit_code == 1


def test_mixed_image_sizes_and_size_mismatch(tmp_path, clean):
    p, o = clean
    root = write_root(tmp_path / "ag", p, o)
    from PIL import Image

    Image.new("RGB", (100, 80)).save(root / "frames/CLEAN.mp4/000002.png")
    kinds = _kinds(validate_root(root))
    assert {"mixed_image_sizes", "size_mismatch"} <= kinds


def test_missing_annotation_files_and_warnings_only_exit_0(tmp_path, clean):
    p, o = clean
    p["CLEAN.mp4/000002.png"] = person(box=None)
    root = write_root(tmp_path / "ag", p, o)
    assert _kinds(validate_root(root), WARNING) == {"no_person_box"}
    assert CliRunner().invoke(app, ["validate", str(root)]).exit_code == 0
    (root / "annotations/frame_list.txt").unlink()
    (root / "annotations/object_classes.txt").unlink()
    assert "missing_file" in _kinds(validate_root(root))


def test_bad_frame_key_and_unsafe_pickle(tmp_path, clean):
    p, o = clean
    p["../../etc.png"] = person()
    o["../../etc.png"] = [obj()]
    root = write_root(tmp_path / "ag", p, o, frames=False)
    assert "bad_frame_key" in _kinds(validate_root(root, check_frames=False))
    import os
    import pickle

    class Payload:
        def __reduce__(self):
            return (os.system, ("true",))

    (root / "annotations/person_bbox.pkl").write_bytes(pickle.dumps({"a": Payload()}))
    assert "bad_pickle" in _kinds(validate_root(root, check_frames=False))
