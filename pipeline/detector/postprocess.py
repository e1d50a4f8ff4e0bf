"""AG-style post-processing of raw Faster R-CNN outputs for SGDet.

mmdet's own ``multiclass_nms`` keeps only the winning score of each box. The
relation head needs each detection's full class distribution (SGDet object
classifier input), and AG frames have exactly one person, so we apply
STTran's rules to the raw per-proposal outputs instead:

1. a (proposal, class) pair is a candidate if its class score > ``score_threshold``;
   its box is the class-specific regressed box;
2. non-maximum suppression per class at ``nms_iou``, class by class (no
   coordinate-offset trick, which rounds large shifted coordinates); IoU
   with ``x2 - x1 + nms_offset`` sides (STTran: 1);
3. persons: only the best one is kept (``person_top1``); if none passes the
   threshold, the best-scoring person box is kept anyway (``person_fallback``);
4. objects: the ``max_objects`` best, by score (``None``: all, as STTran);
5. ``det_labels="renormalised"``: the label and score become the argmax and
   max of the distribution over the detector's classes without background,
   renormalised (STTran's ``softmax(RCNN_cls_score(feature)[:, 1:])``, equal
   to ``p / (1 - p_bg)``); the box stays the one kept under its NMS class.

Detections are ordered persons first, then objects by descending score
(STTran orders objects by class, then score). Each carries its proposal's
row and softmax distribution over the 37 AG classes (column 0 is background).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from pipeline.constants import NUM_OBJECT_CLASSES, PERSON_INDEX
from pipeline.params import DetectionPostprocessParams


@dataclass(frozen=True)
class FrameDetections:
    boxes: torch.Tensor  # (k, 4) float32 xyxy, original image pixels
    labels: torch.Tensor  # (k,) int64 AG object index
    scores: torch.Tensor  # (k,) float32 score of `labels`
    class_scores: torch.Tensor  # (k, 37) float32 softmax over AG classes, column 0 = background
    proposals: torch.Tensor  # (k,) int64 row of the proposal each detection came from

    def __len__(self) -> int:
        return int(self.labels.numel())


def ag_class_scores(scores: torch.Tensor, ag_labels: np.ndarray) -> torch.Tensor:
    """Reorder mmdet's ``(n, C + 1)`` softmax (background last) into the 37 AG columns.

    AG classes the detector does not know get probability 0.
    """
    num_classes = len(ag_labels)
    out = scores.new_zeros((scores.shape[0], NUM_OBJECT_CLASSES))
    out[:, 0] = scores[:, num_classes]
    out[:, torch.as_tensor(ag_labels, dtype=torch.long)] = scores[:, :num_classes]
    return out


def per_class_nms(
    boxes: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor, iou: float, offset: int
) -> torch.Tensor:
    """Indices kept by NMS run separately per label, by descending score (ties: input order)."""
    from mmcv.ops import nms

    kept = [torch.zeros(0, dtype=torch.long, device=boxes.device)]
    for value in torch.unique(labels):
        rows = torch.nonzero(labels == value).flatten()
        _, keep = nms(boxes[rows].contiguous(), scores[rows].contiguous(), iou, offset=offset)
        kept.append(rows[keep])
    keep = torch.cat(kept)
    return keep[torch.sort(scores[keep], descending=True, stable=True)[1]]


def postprocess_detections(
    boxes: torch.Tensor,
    scores: torch.Tensor,
    ag_labels: np.ndarray,
    params: DetectionPostprocessParams,
) -> FrameDetections:
    """Apply the AG SGDet rules to one image.

    Args:
        boxes: ``(n, C * 4)`` class-specific boxes of the ``n`` proposals, xyxy.
        scores: ``(n, C + 1)`` softmax class scores, background last (mmdet layout).
        ag_labels: AG index of each of the ``C`` detector labels.
    """
    num_classes = len(ag_labels)
    boxes = boxes.float().reshape(-1, num_classes, 4)
    class_scores = scores.float()[:, :num_classes]
    distribution = ag_class_scores(scores.float(), ag_labels)
    ag_of_label = torch.as_tensor(ag_labels, dtype=torch.long)

    proposal, label = torch.nonzero(class_scores > params.score_threshold, as_tuple=True)
    if proposal.numel():
        keep = per_class_nms(
            boxes[proposal, label],
            class_scores[proposal, label],
            label,
            params.nms_iou,
            params.nms_offset,
        )
        proposal, label = proposal[keep], label[keep]  # sorted by descending score

    is_person = ag_of_label[label] == PERSON_INDEX
    person_proposal, person_label = proposal[is_person], label[is_person]
    if params.person_top1:
        person_proposal, person_label = person_proposal[:1], person_label[:1]
    person_labels = torch.nonzero(ag_of_label == PERSON_INDEX).flatten()
    if (
        not person_proposal.numel()
        and params.person_fallback
        and person_labels.numel()
        and len(boxes)
    ):
        best = int(class_scores[:, person_labels[0]].argmax())
        person_proposal = torch.tensor([best])
        person_label = person_labels[:1]
    object_proposal = proposal[~is_person][: params.max_objects]
    object_label = label[~is_person][: params.max_objects]

    proposal = torch.cat([person_proposal, object_proposal])
    label = torch.cat([person_label, object_label])
    kept_boxes = boxes[proposal, label].reshape(-1, 4)
    if params.det_labels == "renormalised":
        foreground = class_scores[proposal]
        score, label = (foreground / foreground.sum(dim=1, keepdim=True)).max(dim=1)
    else:
        score = class_scores[proposal, label]
    return FrameDetections(
        boxes=kept_boxes,
        labels=ag_of_label[label],
        scores=score,
        class_scores=distribution[proposal],
        proposals=proposal,
    )
