"""Offsets for the semi constraint: where the spatial and contacting scores cross its threshold.

The semi constraint keeps a spatial or contacting predicate when its score
passes a fixed threshold (0.9, Action Genome's protocol): it reads the
scores as decisions, "the model asserts this predicate", not as ranks.
Temperatures fitted by minimum NLL (:mod:`pipeline.training.calibration`)
make a score mean "right this often", so 0.9 then asserts only what the
model is 90% sure of: a correct argmax it is 70% sure of is dropped, and
semi loses a triplet the with constraint keeps. STTran-style heads trained
with plain BCE are overconfident and pass 0.9 anyway; a focal-loss head is
not.

After the NLL fit, each of the two thresholded groups gets a logit offset
b_g >= 0, chosen on the **validation** split to make the threshold the best
decision rule for that group: the offset whose asserted predicates have the
highest F1 against the ground-truth labels (micro over the labelled pairs'
(pair, predicate) cells; ties go to the smaller offset):

    p_gr = sigmoid(z_gr / T_g + b_g),   b_g = argmax_b F1_val(p_gr > 0.9),  b in SEMI_OFFSETS

F1, not the semi recall itself, is the criterion: R@20 semi on these small
frames keeps rising as the offset grows (in the limit every predicate passes
and semi becomes no constraint), so maximising it would stop meaning
anything. For calibrated scores the F1-optimal threshold is half the optimal
F1 (Lipton, Elkan & Naryanaswamy, ECML 2014), well below 0.9.

The offset moves the decision, not the scale: each row's argmax and each
group's ranking stay as they were, so the with constraint is unchanged; no
constraint ranks across groups and can move. Attention keeps no offset:
semi reads its argmax, and a softmax ignores a shared offset.
"""

from __future__ import annotations

import torch
from torch import Tensor

from pipeline.constants import GROUPS
from pipeline.model.mosa import MOSA

# 0 to 4 in steps of 0.25 (logit(0.9) = 2.197: at b = 2.197 the threshold sits at z / T = 0).
SEMI_OFFSETS = tuple(0.25 * step for step in range(17))
SEMI_GROUPS = ("spatial", "contacting")


def asserted_f1(logits: Tensor, target: Tensor, temperature: float, offset: float, threshold: float) -> float:
    """Micro F1 of the cells with ``sigmoid(logits / temperature + offset) > threshold`` against multi-hot ``target``."""
    asserted = torch.sigmoid(logits.double() / temperature + offset) > threshold
    truth = target > 0.5
    hits = int((asserted & truth).sum())
    wrong = int((asserted & ~truth).sum()) + int((~asserted & truth).sum())
    return 2 * hits / (2 * hits + wrong) if hits else 0.0


def best_offset_index(scores: list[float]) -> int:
    """Index of the highest score; on a tie the first (the smallest offset, nearest the NLL fit)."""
    return max(range(len(scores)), key=lambda k: (scores[k], -k))


def fit_semi_offsets(model: MOSA, labelled: dict[str, tuple[Tensor, Tensor]], threshold: float) -> dict[str, dict]:
    """Set ``model.score_offset`` of spatial and contacting as above (after the NLL fit); report the search.

    ``labelled``: the raw validation logits the NLL fit read (:func:`~pipeline.training.calibration.labelled_logits`);
    ``threshold`` is the evaluator's ``evaluate.semi_threshold``. Returns
    ``{group: {"offset", "f1": {offset: validation F1}}}``.
    """
    offset = torch.zeros_like(model.score_offset)
    report = {}
    for group in SEMI_GROUPS:
        index = list(GROUPS).index(group)
        logits, target = labelled[group]
        temperature = float(model.temperature[index])
        f1 = [asserted_f1(logits, target, temperature, value, threshold) for value in SEMI_OFFSETS]
        offset[index] = SEMI_OFFSETS[best_offset_index(f1)]
        report[group] = {"offset": float(offset[index]), "f1": {f"{v:.2f}": f for v, f in zip(SEMI_OFFSETS, f1, strict=True)}}
    model.score_offset.copy_(offset)
    return report
