"""Per-class AP from the detections file CocoMetric writes."""

from __future__ import annotations

import json

import pytest

from pipeline.detector.class_ap import per_class_ap


def box(image: int, category: int, bbox: list[int]) -> dict:
    return {"image_id": image, "category_id": category, "bbox": bbox}


def test_per_class_ap_scores_each_class_with_ground_truth(tmp_path):
    person, medicine, bed = 1, 21, 3
    annotations = [box(1, person, [0, 0, 20, 40]), box(2, person, [10, 10, 20, 40])]
    annotations += [box(1, medicine, [30, 30, 10, 12]), box(2, medicine, [40, 5, 10, 12])]
    truth = {
        "images": [{"id": i, "file_name": f"{i}.png", "width": 64, "height": 64} for i in (1, 2)],
        "categories": [
            {"id": c, "name": n}
            for c, n in ((person, "person"), (medicine, "medicine"), (bed, "bed"))
        ],
        "annotations": [
            {"id": i + 1, **a, "area": a["bbox"][2] * a["bbox"][3], "iscrowd": 0}
            for i, a in enumerate(annotations)
        ],
    }
    # Both persons found; the second medicine is missed.
    found = [{**a, "score": s} for a, s in zip(annotations[:3], (0.9, 0.8, 0.7), strict=True)]
    (tmp_path / "truth.json").write_text(json.dumps(truth))
    (tmp_path / "found.json").write_text(json.dumps(found))
    classes = per_class_ap(tmp_path / "truth.json", tmp_path / "found.json")
    assert list(classes) == ["medicine", "person"]  # worst first; bed has no ground truth
    assert classes["person"]["AP50"] == pytest.approx(1.0) and classes["person"]["instances"] == 2
    assert classes["medicine"]["AP50"] == pytest.approx(0.5, abs=0.01)
    assert per_class_ap(tmp_path / "truth.json", tmp_path / "absent.json") == {}
