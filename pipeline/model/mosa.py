"""MOSA relation head, assembled from ``ModelParams``.

Forward pass for the pairs of a batch of videos (every step can be switched
off; all off is the STTran-style baseline):

    x   = tokens(f_s, f_o, f_u, boxes, labels)        relation tokens
    r   = SpatialEncoder(x)                           pairs of one frame
    m   = MFE(a)                                      motion embedding      [mfe]
    r   = MIM(q = m, kv = r)   or   r + m             motion-aware relation [mim]
    r   = TemporalDecoder(r)                          sliding frame window  [temporal]
    z_g = Head_g(r) + lambda * ASM_g(r)               g in {attention, spatial, contacting} [asm]

In SGCls/SGDet the object labels fed to the tokens and to ASM are the
object classifier's argmax (detached), so training sees what inference sees.

The ``temperature`` buffer holds one calibration temperature per group
(GROUPS order; 1 until the train stage fits them on validation, see
pipeline/training/calibration.py), ``score_offset`` one logit offset per
group (0 until the semi fit, pipeline/training/semi_calibration.py). The
forward pass never applies them: the prediction tables score
z_g / T_g + b_g with the softmax/sigmoid.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from pipeline.constants import GROUPS, NUM_OBJECT_CLASSES, PERSON_INDEX
from pipeline.model.asm import ActionSemanticMatching
from pipeline.model.batch import RelationBatch
from pipeline.model.heads import ObjectClassifier, RelationHeads
from pipeline.model.mfe import MotionFeatureExtractor
from pipeline.model.mim import MotionInteraction
from pipeline.model.sttran_encoders import SpatialEncoder, TemporalDecoder
from pipeline.model.tokens import LabelEmbedding, RelationTokenBuilder
from pipeline.params import ModelParams

# Objects are never background or person in AG; predictions skip both.
FIRST_OBJECT_CLASS = PERSON_INDEX + 1


@dataclass(frozen=True)
class RelationOutput:
    logits: dict[str, Tensor]  # group -> [N, size], classifier + lambda * ASM
    asm_logits: dict[str, Tensor] | None  # group -> [N, size], ASM alone (alignment loss)
    object_logits: Tensor | None  # [N, C] (SGCls/SGDet)
    object_label: Tensor  # [N] label used for tokens and ASM
    relation_embedding: Tensor | None = None  # [N, D] ASM's unit projection into the text space (relation search)


@dataclass(frozen=True)
class FeatureSpec:
    """Sizes and frozen text tensors the model is built around (read from the caches)."""

    roi_dim: int
    union_dim: int
    class_embeddings: Tensor  # [C, D] class-name text embeddings
    prompt_embeddings: Tensor  # [P, D] or [C, P, D]
    motion_dim: int  # motion-table columns of the selected MFE attributes (dx, dy count as two)


class MOSA(nn.Module):
    def __init__(self, params: ModelParams, spec: FeatureSpec, classify_objects: bool) -> None:
        super().__init__()
        self.params = params
        d = params.d_model
        self.labels = LabelEmbedding(spec.class_embeddings)
        self.tokens = RelationTokenBuilder(
            spec.roi_dim, spec.union_dim, d, self.labels, soft_masks=params.box_masks == "soft",
            appearance=params.token_appearance, appearance_dropout=params.appearance_dropout,
        )  # fmt: skip
        self.spatial = (
            SpatialEncoder(d, params.heads, params.spatial_layers, params.dropout, params.pre_norm)
            if params.spatial_layers > 0
            else None
        )
        self.mfe = MotionFeatureExtractor(spec.motion_dim, d) if params.mfe else None
        # MIM's queries are MFE's output: without MFE there is nothing to query with.
        self.mim = (
            MotionInteraction(
                d, params.mim_heads, params.mim_layers, params.dropout, params.mim_residual, params.pre_norm
            )
            if params.mfe and params.mim
            else None
        )
        self.temporal = (
            TemporalDecoder(
                d, params.heads, params.temporal_layers, params.temporal_window, params.dropout, params.pre_norm
            )
            if params.temporal
            else None
        )
        self.heads = RelationHeads(d)
        self.asm = (
            ActionSemanticMatching(d, spec.prompt_embeddings, params.asm_tau_init) if params.asm else None
        )
        self.object_classifier = (
            ObjectClassifier(spec.roi_dim, d, self.labels, NUM_OBJECT_CLASSES) if classify_objects else None
        )
        # Buffers, so the fitted temperatures and semi offsets travel in model.pt with the weights.
        self.register_buffer("temperature", torch.ones(len(GROUPS)))
        self.register_buffer("score_offset", torch.zeros(len(GROUPS)))

    def forward(self, batch: RelationBatch) -> RelationOutput:
        object_logits, object_label = self._object_labels(batch)
        subject_label = torch.full_like(object_label, PERSON_INDEX)
        relation = self.tokens(
            batch.subject_roi, batch.object_roi, batch.union,
            batch.subject_box, batch.object_box, subject_label, object_label,
        )  # fmt: skip
        if self.spatial is not None:
            relation = self.spatial(relation, batch.frame_pairs)
        if self.mfe is not None:
            motion = self.mfe(batch.motion)
            if self.mim is not None:
                relation = self.mim(motion, relation, batch.frame_pairs)
            else:
                relation = relation + motion
        if self.temporal is not None:
            relation = self.temporal(relation, batch.window_pairs, batch.window_position)

        logits = self.heads(relation)
        asm_logits = embedding = None
        if self.asm is not None:
            embedding = self.asm.embed(relation)
            similarity = self.asm.similarity(embedding, object_label)
            asm_logits = {group: similarity[:, span] for group, span in GROUPS.items()}
            logits = {group: logits[group] + self.params.asm_lambda * asm_logits[group] for group in logits}
        return RelationOutput(logits, asm_logits, object_logits, object_label, embedding)

    def _object_labels(self, batch: RelationBatch) -> tuple[Tensor | None, Tensor]:
        if self.object_classifier is None:
            if batch.object_label is None:
                raise ValueError("PredCls model needs batch.object_label (ground-truth object classes)")
            return None, batch.object_label
        object_logits = self.object_classifier(batch.object_roi, batch.object_box, batch.object_dist)
        return object_logits, predicted_object_label(object_logits.detach())


def predicted_object_label(object_logits: Tensor) -> Tensor:
    """Argmax over the real object classes (never background or person)."""
    return object_logits[:, FIRST_OBJECT_CLASS:].argmax(dim=1) + FIRST_OBJECT_CLASS
