"""Classifiers on the final relation feature r and on each object box.

Relation heads (one linear layer per predicate group):
    attention  = softmax(W_a r)  (3)
    spatial    = sigmoid(W_s r)  (6)
    contacting = sigmoid(W_c r)  (17)

Object classifier (SGCls/SGDet), on the ROI feature f_o, the box geometry
b_o and the expected label embedding under the detector's distribution q_o:
    c_o = MLP([f_o ; geom(b_o) ; sum_c q_oc e(c)])
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from pipeline.constants import GROUP_SIZES
from pipeline.model.tokens import LabelEmbedding

GEOMETRY_DIM = 7


def box_geometry(box: Tensor) -> Tensor:
    """[N, 4] normalised xyxy -> [N, 7] (x1, y1, x2, y2, w, h, area)."""
    size = (box[:, 2:] - box[:, :2]).clamp(min=0.0)
    return torch.cat([box, size, size.prod(dim=1, keepdim=True)], dim=1)


class RelationHeads(nn.Module):
    def __init__(self, d_model: int) -> None:
        super().__init__()
        self.heads = nn.ModuleDict({group: nn.Linear(d_model, size) for group, size in GROUP_SIZES.items()})

    def forward(self, relation: Tensor) -> dict[str, Tensor]:
        return {group: head(relation) for group, head in self.heads.items()}


class ObjectClassifier(nn.Module):
    def __init__(self, roi_dim: int, d_model: int, labels: LabelEmbedding, num_classes: int) -> None:
        super().__init__()
        self.labels = labels
        self.mlp = nn.Sequential(
            nn.Linear(roi_dim + GEOMETRY_DIM + labels.dim, d_model),
            nn.ReLU(),
            nn.Linear(d_model, num_classes),
        )

    def forward(self, object_roi: Tensor, object_box: Tensor, object_dist: Tensor | None) -> Tensor:
        if object_dist is None:
            # No detector distribution (e.g. ground-truth boxes without class
            # scores): the label part carries the mean embedding, i.e. no hint.
            label_part = self.labels.table.weight.mean(dim=0).expand(object_roi.shape[0], -1)
        else:
            label_part = self.labels.soft(object_dist)
        return self.mlp(torch.cat([object_roi, box_geometry(object_box), label_part], dim=-1))
