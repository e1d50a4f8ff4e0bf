"""Per-class box AP of the trained detector, from the results file mmdet's ``CocoMetric`` writes.

``CocoMetric`` reports one mAP over all classes; a class that is small
(cup, medicine, doorknob, shoe) or rare can fail while the mean looks
fine. This reruns pycocotools' evaluation on the same detections and
reads AP at IoU 0.5 and AP over IoU 0.5:0.95 for each class that has
ground truth in the evaluation split (area range all, 100 detections).
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np


def per_class_ap(ann_file: str | Path, results_file: str | Path) -> dict[str, dict[str, float]]:
    """``{class name: {"AP50": ..., "AP": ..., "instances": n}}`` for classes with ground truth."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress lines
        truth = COCO(str(ann_file))
        detections = (
            json.loads(Path(results_file).read_text()) if Path(results_file).is_file() else []
        )
        found = truth.loadRes(detections) if detections else None
        if found is None:
            return {}
        evaluation = COCOeval(truth, found, "bbox")
        evaluation.evaluate()
        evaluation.accumulate()
    # precision: [IoU thresholds (0.5, 0.55, ...), recall points, classes, area ranges, max dets]
    precision = evaluation.eval["precision"]
    result = {}
    for k, category in enumerate(evaluation.params.catIds):
        instances = len(truth.getAnnIds(catIds=[category], iscrowd=False))
        if instances == 0:
            continue
        at_50 = precision[0, :, k, 0, -1]
        every = precision[:, :, k, 0, -1]
        result[truth.cats[category]["name"]] = {
            "AP50": round(float(np.mean(at_50[at_50 > -1])) if (at_50 > -1).any() else 0.0, 4),
            "AP": round(float(np.mean(every[every > -1])) if (every > -1).any() else 0.0, 4),
            "instances": instances,
        }
    return dict(sorted(result.items(), key=lambda item: item[1]["AP50"]))
