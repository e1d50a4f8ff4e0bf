"""Pairs and union boxes for ROI features.

The feature of a box is :func:`pipeline.detector.model.box_features`: the
vector that the detector's classification and regression branches both
read (the shared FC output of an FPN head, 256-d for the default config; the
spatial mean of layer4 for a C4 head, 2048-d for STTran's detector), pooled
by the detector's own RoI extractor, so a box gets the same feature whether
it is a ground-truth box, a detection or a union box.
"""

from __future__ import annotations

import torch

from pipeline.constants import PERSON_INDEX


def person_object_pairs(labels: torch.Tensor) -> torch.Tensor:
    """``(p, 2)`` row pairs (person row, object row) of one frame, persons outer, rows in order."""
    rows = torch.arange(labels.numel())
    persons = rows[labels == PERSON_INDEX]
    objects = rows[labels != PERSON_INDEX]
    return torch.cartesian_prod(persons, objects).reshape(-1, 2)


def union_boxes(boxes: torch.Tensor, pairs: torch.Tensor) -> torch.Tensor:
    """The smallest box covering both boxes of each pair (xyxy)."""
    first, second = boxes[pairs[:, 0]], boxes[pairs[:, 1]]
    return torch.cat(
        [torch.minimum(first[:, :2], second[:, :2]), torch.maximum(first[:, 2:], second[:, 2:])],
        dim=1,
    )
