"""Per-class AP from the detections file CocoMetric writes."""

from __future__ import annotations

import json

import pytest

from pipeline.detector.class_ap import per_class_ap


def test_per_class_ap_scores_each_class_with_ground_truth(tmp_path):
    truth = {
        "images": [{"id": i, "file_name": f"{i}.png", "width": 64, "height": 64} for i in (1, 2)],
        "categories": [{"id": 1, "name": "person"}, {"id": 21, "name": "medicine"}, {"id": 3, "name": "bed"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 20, 40], "area": 800, "iscrowd": 0},
            {"id": 2, "image_id": 2, "category_id": 1, "bbox": [10, 10, 20, 40], "area": 800, "iscrowd": 0},
            {"id": 3, "image_id": 1, "category_id": 21, "bbox": [30, 30, 10, 12], "area": 120, "iscrowd": 0},
            {"id": 4, "image_id": 2, "category_id": 21, "bbox": [40, 5, 10, 12], "area": 120, "iscrowd": 0},
        ],
    }
    found = [
        {"image_id": 1, "category_id": 1, "bbox": [0, 0, 20, 40], "score": 0.9},
        {"image_id": 2, "category_id": 1, "bbox": [10, 10, 20, 40], "score": 0.8},
        {"image_id": 1, "category_id": 21, "bbox": [30, 30, 10, 12], "score": 0.7},  # the second medicine is missed
    ]
    (tmp_path / "truth.json").write_text(json.dumps(truth))
    (tmp_path / "found.json").write_text(json.dumps(found))
    classes = per_class_ap(tmp_path / "truth.json", tmp_path / "found.json")
    assert list(classes) == ["medicine", "person"]  # worst first; bed has no ground truth
    assert classes["person"]["AP50"] == pytest.approx(1.0) and classes["person"]["instances"] == 2
    assert classes["medicine"]["AP50"] == pytest.approx(0.5, abs=0.01)
    assert per_class_ap(tmp_path / "truth.json", tmp_path / "absent.json") == {}
