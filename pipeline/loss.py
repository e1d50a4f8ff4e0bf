"""Category-weighted focal loss for the three predicate groups, plus ASM's alignment loss.

Class weights from the training-split predicate counts n_r:

    alpha_r = (1 / log(n_r + e)) / mean_k (1 / log(n_k + e))      (mean 1)

Focal form on each group (p = predicted probability of the true class):

    attention (softmax, one label):   -alpha_y (1 - p_y)^gamma log p_y
    spatial/contacting (sigmoid):     -alpha_r (1 - p_r)^gamma log p_r    (positives)
                                      -        p_r^gamma  log(1 - p_r)    (negatives)

gamma = 0 gives weighted cross-entropy and BCE with ``pos_weight = alpha``.

ASM alignment (``model.loss.asm_alignment_form``). The ASM logits of a pair
are its cosine similarities to the prompts of its object class, divided by
ASM's learnt temperature tau: s_p = <e, z_p> / tau. The ``contrastive`` form
(default) aligns the relation embedding e with the prompt of each true
predicate *against the other prompts of the same group*, a cross-entropy
over the group's prompts:

    attention (one label y):       L = -log softmax_g(s)_y
    spatial, contacting (labels Y): L = -1/|Y| sum_{y in Y} log softmax_g(s)_y

softmax_g runs over the group's prompts only (3, 6 or 17). The multi-label
groups use a multi-positive InfoNCE: each true predicate is a positive
against all the group's prompts; a row without a positive label in a group
adds nothing to that group. Each group's term is the mean over its rows.
Unlike a sigmoid on each cosine, a softmax cares only about the *differences*
s_p - s_q, which is what separates prompts that share their object.

The ``group`` form applies the classifier's focal losses above to s instead.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pipeline.constants import GROUPS, NUM_PREDICATES
from pipeline.model.batch import RelationBatch
from pipeline.model.mosa import RelationOutput
from pipeline.params import LossParams


def category_weights(counts: np.ndarray | Tensor) -> Tensor:
    """alpha_r from predicate counts; log(n + e) keeps unseen predicates finite (weight 1/1)."""
    counts = torch.as_tensor(counts, dtype=torch.float64)
    inverse_log = 1.0 / torch.log(counts + math.e)
    return (inverse_log / inverse_log.mean()).float()


def focal_cross_entropy(logits: Tensor, target: Tensor, weight: Tensor, gamma: float) -> Tensor:
    """Mean over rows of -alpha_y (1 - p_y)^gamma log p_y."""
    log_p = F.log_softmax(logits, dim=-1).gather(1, target.unsqueeze(1)).squeeze(1)
    modulation = (1.0 - log_p.exp()).pow(gamma) if gamma > 0 else 1.0
    return -(weight[target] * modulation * log_p).mean()


def focal_binary_cross_entropy(logits: Tensor, target: Tensor, weight: Tensor, gamma: float) -> Tensor:
    """Mean over all (row, class) cells; alpha weighs the positive term."""
    log_p = F.logsigmoid(logits)
    log_not_p = F.logsigmoid(-logits)
    if gamma > 0:
        p = log_p.exp()
        positive = (1.0 - p).pow(gamma) * log_p
        negative = p.pow(gamma) * log_not_p
    else:
        positive, negative = log_p, log_not_p
    return -(weight * target * positive + (1.0 - target) * negative).mean()


def multi_positive_cross_entropy(logits: Tensor, target: Tensor) -> Tensor:
    """Mean over rows with a positive of -1/|Y| sum_{y in Y} log softmax(logits)_y (``target`` multi-hot).

    Returns 0 (still connected to ``logits``) when no row has a positive.
    """
    positives = target.sum(dim=1)
    has_positive = positives > 0
    per_row = -(F.log_softmax(logits, dim=-1) * target).sum(dim=1) / positives.clamp(min=1.0)
    if not bool(has_positive.any()):
        return 0.0 * logits.sum()
    return per_row[has_positive].mean()


def contrastive_alignment(logits: dict[str, Tensor], batch: RelationBatch, keep: Tensor) -> dict[str, Tensor]:
    """The ``contrastive`` ASM alignment of each group (module docstring) on the rows ``keep``."""
    return {
        "attention": F.cross_entropy(logits["attention"][keep], batch.target_attention[keep]),
        "spatial": multi_positive_cross_entropy(logits["spatial"][keep], batch.target_spatial[keep]),
        "contacting": multi_positive_cross_entropy(logits["contacting"][keep], batch.target_contacting[keep]),
    }


class RelationLoss(nn.Module):
    """All training losses for one batch; returns named components and their weighted total."""

    def __init__(self, params: LossParams, counts: np.ndarray | None) -> None:
        super().__init__()
        self.params = params
        if params.category_weighted and counts is None:
            raise ValueError("category_weighted loss needs training predicate counts")
        weights = category_weights(counts) if params.category_weighted else torch.ones(NUM_PREDICATES)
        self.register_buffer("weights", weights)

    def group_losses(self, logits: dict[str, Tensor], batch: RelationBatch, keep: Tensor) -> dict[str, Tensor]:
        gamma = self.params.gamma
        return {
            "attention": focal_cross_entropy(
                logits["attention"][keep], batch.target_attention[keep], self.weights[GROUPS["attention"]], gamma
            ),
            "spatial": focal_binary_cross_entropy(
                logits["spatial"][keep], batch.target_spatial[keep], self.weights[GROUPS["spatial"]], gamma
            ),
            "contacting": focal_binary_cross_entropy(
                logits["contacting"][keep], batch.target_contacting[keep], self.weights[GROUPS["contacting"]], gamma
            ),
        }

    def forward(self, output: RelationOutput, batch: RelationBatch) -> dict[str, Tensor]:
        keep = batch.has_relation
        components: dict[str, Tensor] = {}
        if bool(keep.any()):
            components.update(self.group_losses(output.logits, batch, keep))
            if output.asm_logits is not None and self.params.asm_alignment > 0:
                if self.params.asm_alignment_form == "contrastive":
                    alignment = contrastive_alignment(output.asm_logits, batch, keep)
                else:
                    alignment = self.group_losses(output.asm_logits, batch, keep)
                for group, value in alignment.items():
                    components[f"asm_{group}"] = self.params.asm_alignment * value
        if output.object_logits is not None and self.params.object_weight > 0:
            components["object"] = self.params.object_weight * F.cross_entropy(
                output.object_logits, batch.target_object
            )
        total = sum(components.values(), start=output.object_label.new_zeros((), dtype=torch.float32))
        return {"total": total, **components}
