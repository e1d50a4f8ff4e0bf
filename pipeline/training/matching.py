"""SGDet training targets: detections matched to ground-truth boxes by IoU."""

from __future__ import annotations

import numpy as np

from pipeline.boxes import pairwise_iou


def greedy_match(detections: np.ndarray, truths: np.ndarray, threshold: float) -> np.ndarray:
    """Index of the ground-truth box each detection is matched to, -1 if none.

    Class-agnostic and one-to-one, highest IoU first (ties: lower indices),
    so each ground-truth object teaches at most one detection its labels.
    """
    match = np.full(len(detections), -1, dtype=np.int64)
    if len(detections) == 0 or len(truths) == 0:
        return match
    iou = pairwise_iou(detections, truths)
    det_idx, gt_idx = np.nonzero(iou >= threshold)
    order = np.lexsort((gt_idx, det_idx, -iou[det_idx, gt_idx]))
    used_gt: set[int] = set()
    for k in order:
        d, g = int(det_idx[k]), int(gt_idx[k])
        if match[d] < 0 and g not in used_gt:
            match[d] = g
            used_gt.add(g)
    return match
