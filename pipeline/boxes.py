"""Box IoU in numpy, for xyxy boxes: the one home of the geometry every part shares.

* :func:`rowwise_iou`: box ``i`` against box ``i``, exactly as the reference
  evaluator computes it (the recall numbers depend on its last bit);
* :func:`pairwise_iou`: every box against every box, in continuous
  coordinates (SGDet training targets, NMS in the viewers).

The motion table computes the same IoU on polars columns
(:func:`pipeline.motion.attributes.box_iou`).
"""

from __future__ import annotations

import numpy as np


def rowwise_iou(gt_boxes: np.ndarray, pred_boxes: np.ndarray, legacy_plus_one: bool = True) -> np.ndarray:
    """IoU of row ``i`` of ``gt_boxes`` with row ``i`` of ``pred_boxes`` (xyxy).

    Same operations in the same order as the reference's ``bbox_overlaps``
    (ground truth first), so values equal to the last bit: widths are
    ``x2 - x1 + 1`` with the legacy convention, and boxes that do not overlap
    get exactly 0.
    """
    one = 1.0 if legacy_plus_one else 0.0
    g, p = gt_boxes, pred_boxes
    iw = np.minimum(g[:, 2], p[:, 2]) - np.maximum(g[:, 0], p[:, 0]) + one
    ih = np.minimum(g[:, 3], p[:, 3]) - np.maximum(g[:, 1], p[:, 1]) + one
    overlap = (iw > 0) & (ih > 0)
    inter = iw * ih
    union = (g[:, 2] - g[:, 0] + one) * (g[:, 3] - g[:, 1] + one) + (p[:, 2] - p[:, 0] + one) * (p[:, 3] - p[:, 1] + one) - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(overlap, inter / np.where(overlap, union, 1.0), 0.0)


def pairwise_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """[A, B] IoU of xyxy boxes (continuous coordinates)."""
    top_left = np.maximum(a[:, None, :2], b[None, :, :2])
    bottom_right = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(bottom_right - top_left, 0.0, None).prod(axis=2)
    area_a = np.clip(a[:, 2:] - a[:, :2], 0.0, None).prod(axis=1)
    area_b = np.clip(b[:, 2:] - b[:, :2], 0.0, None).prod(axis=1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)
