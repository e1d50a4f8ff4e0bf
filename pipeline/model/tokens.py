"""Relation token builder (STTran's input representation, run on cached vectors).

For a pair (s, o) with union box u:

    x = W [ W_s f_s ; W_o f_o ; g(f_u, M(s, o)) ; e(c_s) ; e(c_o) ]

f_s, f_o are the ROI features, f_u the pooled union feature, M the two 27x27
masks of s and o drawn inside u (0/1 at cell centres, or STTran's soft
coverage with ``soft_masks``), g the fusion of the union feature
with a small CNN over M, and e the label embedding, initialised from the
text encoder's embedding of each class name.

Appearance (ours; the paper keeps all of it): ``appearance`` lists which of
the streams f_s, f_o, f_u enter (a left-out stream leaves the concatenation;
the mask CNN and the labels always enter), and ``appearance_dropout`` zeroes
all of a pair's appearance streams with that probability during training
(modality dropout, Neverova et al., "ModDrop", TPAMI 2016), not rescaled: a
stream is present or absent. On the synthetic data a person's appearance
names its training video, and with it the video's at-hand class; see
docs/model_selection.md for the validation-only choice.
"""

from __future__ import annotations

from typing import get_args

import torch
from torch import Tensor, nn

from pipeline.params import AppearanceStream

MASK_SIZE = 27
APPEARANCE_STREAMS: tuple[str, ...] = get_args(AppearanceStream)


def union_boxes(subject_box: Tensor, object_box: Tensor) -> Tensor:
    """[N, 4] smallest boxes containing both boxes (xyxy)."""
    top_left = torch.minimum(subject_box[:, :2], object_box[:, :2])
    bottom_right = torch.maximum(subject_box[:, 2:], object_box[:, 2:])
    return torch.cat([top_left, bottom_right], dim=1)


def box_masks(subject_box: Tensor, object_box: Tensor, size: int = MASK_SIZE) -> Tensor:
    """[N, 2, size, size] masks of the two boxes inside their union box, centred at 0.

    Rebuilt from boxes each step rather than cached: it is a few comparisons
    per cell, and caching would cost 2*27*27 floats per pair.
    """
    union = union_boxes(subject_box, object_box)
    extent = (union[:, 2:] - union[:, :2]).clamp(min=1e-6)
    # Cell centres in image coordinates, per pair: [N, size].
    steps = (torch.arange(size, dtype=subject_box.dtype, device=subject_box.device) + 0.5) / size
    xs = union[:, 0:1] + steps * extent[:, 0:1]
    ys = union[:, 1:2] + steps * extent[:, 1:2]
    masks = []
    for box in (subject_box, object_box):
        inside_x = (xs >= box[:, 0:1]) & (xs <= box[:, 2:3])  # [N, size]
        inside_y = (ys >= box[:, 1:2]) & (ys <= box[:, 3:4])
        masks.append(inside_y.unsqueeze(2) & inside_x.unsqueeze(1))  # [N, y, x]
    # STTran subtracts 0.5 so empty cells are negative rather than zero.
    return torch.stack(masks, dim=1).to(subject_box.dtype) - 0.5


def soft_box_masks(subject_box: Tensor, object_box: Tensor, size: int = MASK_SIZE) -> Tensor:
    """[N, 2, size, size] STTran's masks: the fraction of each cell a box covers, minus 0.5.

    ``lib/draw_rectangles/draw_rectangles.pyx`` (yrcong/STTran): boxes are
    mapped into ``[0, size]`` of their union (``(x - ux1) * size / uw``, no +1)
    and cell ``(j, k)`` gets ``clip(j + 1 - y1) * clip(y2 - j) *
    clip(k + 1 - x1) * clip(x2 - k)``, each factor clipped to ``[0, 1]``.
    """
    union = union_boxes(subject_box, object_box)
    extent = (union[:, 2:] - union[:, :2]).clamp(min=1e-6)
    cells = torch.arange(size, dtype=subject_box.dtype, device=subject_box.device)
    masks = []
    for box in (subject_box, object_box):
        low = (box[:, :2] - union[:, :2]) * size / extent  # [N, 2] (x1, y1) in cells
        high = (box[:, 2:] - union[:, :2]) * size / extent
        x = (cells + 1 - low[:, 0:1]).clamp(0, 1) * (high[:, 0:1] - cells).clamp(0, 1)  # [N, size]
        y = (cells + 1 - low[:, 1:2]).clamp(0, 1) * (high[:, 1:2] - cells).clamp(0, 1)
        masks.append(y.unsqueeze(2) * x.unsqueeze(1))
    return torch.stack(masks, dim=1) - 0.5


class BoxMaskCNN(nn.Module):
    """STTran's spatial-mask branch: two strided convolutions, pooled to one vector."""

    def __init__(self, out_dim: int, channels: int = 64) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(2, channels // 2, kernel_size=7, stride=2, padding=3),
            nn.ReLU(inplace=True),
            nn.BatchNorm2d(channels // 2),
            nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
            nn.Conv2d(channels // 2, channels, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.BatchNorm2d(channels),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(channels, out_dim),
        )

    def forward(self, masks: Tensor) -> Tensor:
        return self.net(masks)


class LabelEmbedding(nn.Module):
    """Trainable class embeddings e(c), initialised from class-name text embeddings."""

    def __init__(self, class_embeddings: Tensor) -> None:
        super().__init__()
        self.table = nn.Embedding.from_pretrained(class_embeddings.float().clone(), freeze=False)

    @property
    def dim(self) -> int:
        return self.table.embedding_dim

    def forward(self, labels: Tensor) -> Tensor:
        return self.table(labels)

    def soft(self, distribution: Tensor) -> Tensor:
        """Expected embedding under a class distribution [N, C]."""
        return distribution @ self.table.weight


class RelationTokenBuilder(nn.Module):
    """Builds one d_model token per (person, object) pair."""

    def __init__(
        self,
        roi_dim: int,
        union_dim: int,
        d_model: int,
        labels: LabelEmbedding,
        soft_masks: bool = False,
        appearance: tuple[str, ...] = APPEARANCE_STREAMS,
        appearance_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        unknown = set(appearance) - set(APPEARANCE_STREAMS)
        if unknown:
            raise ValueError(f"unknown appearance stream(s) {sorted(unknown)}; choose from {APPEARANCE_STREAMS}")
        self.labels = labels
        self.masks = soft_box_masks if soft_masks else box_masks
        self.appearance_dropout = appearance_dropout
        self.subject_proj = nn.Linear(roi_dim, d_model) if "subject_roi" in appearance else None
        self.object_proj = nn.Linear(roi_dim, d_model) if "object_roi" in appearance else None
        self.union_proj = nn.Linear(union_dim, d_model) if "union" in appearance else None
        self.mask_cnn = BoxMaskCNN(d_model)
        self.union_out = nn.Sequential(nn.ReLU(), nn.Linear(d_model, d_model))
        roi_streams = (self.subject_proj is not None) + (self.object_proj is not None)
        self.fuse = nn.Linear((roi_streams + 1) * d_model + 2 * labels.dim, d_model)

    def forward(
        self,
        subject_roi: Tensor,
        object_roi: Tensor,
        union: Tensor,
        subject_box: Tensor,
        object_box: Tensor,
        subject_label: Tensor,
        object_label: Tensor,
    ) -> Tensor:
        keep = self._appearance_kept(subject_roi)
        union_feature = self.mask_cnn(self.masks(subject_box, object_box))
        if self.union_proj is not None:
            union_feature = union_feature + keep * self.union_proj(union)
        parts = []
        if self.subject_proj is not None:
            parts.append(keep * self.subject_proj(subject_roi))
        if self.object_proj is not None:
            parts.append(keep * self.object_proj(object_roi))
        parts += [self.union_out(union_feature), self.labels(subject_label), self.labels(object_label)]
        return self.fuse(torch.cat(parts, dim=-1))

    def _appearance_kept(self, reference: Tensor) -> Tensor | float:
        """[N, 1] 0/1 per pair while training with appearance dropout, else 1 (and no random draw)."""
        if not (self.training and self.appearance_dropout > 0):
            return 1.0
        return (torch.rand(reference.shape[0], 1, device=reference.device) >= self.appearance_dropout).to(
            reference.dtype
        )
