"""ROI feature vectors from a two-stage mmdet detector.

The feature of a box is the output of the box head's shared FC layers (after
their ReLU): the vector that mmdet's classification and regression branches
both read. For the default config it is 256-d; for an mmdet Faster R-CNN
R101 it is 1024-d. Pooling is mmdet's own RoI extractor (RoIAlign over the
FPN level chosen by box size), so a box gets the same feature whether it is
a ground-truth box, a detection or a union box.
"""

from __future__ import annotations

import torch

from pipeline.constants import PERSON_INDEX


def shared_fc_output(bbox_head: torch.nn.Module, pooled: torch.Tensor) -> torch.Tensor:
    """The shared part of ``ConvFCBBoxHead.forward``: convs, optional avg-pool, flatten, FC+ReLU."""
    x = pooled
    for conv in bbox_head.shared_convs:
        x = conv(x)
    if bbox_head.with_avg_pool:
        x = bbox_head.avg_pool(x)
    x = x.flatten(1)
    for fc in bbox_head.shared_fcs:
        x = bbox_head.relu(fc(x))
    return x


def roi_embeddings(
    model: torch.nn.Module, feats: tuple[torch.Tensor, ...], rois: torch.Tensor
) -> torch.Tensor:
    """Feature vectors of ``rois`` (``(r, 5)``: batch index, x1, y1, x2, y2 in input pixels)."""
    roi_head = model.roi_head
    bbox_head = roi_head.bbox_head
    if rois.shape[0] == 0:
        return feats[0].new_zeros((0, bbox_head.shared_out_channels))
    extractor = roi_head.bbox_roi_extractor
    pooled = extractor(feats[: extractor.num_inputs], rois)
    if roi_head.with_shared_head:
        pooled = roi_head.shared_head(pooled)
    return shared_fc_output(bbox_head, pooled)


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
