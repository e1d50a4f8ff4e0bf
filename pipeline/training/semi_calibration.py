"""Offsets for the semi constraint: where the spatial and contacting scores cross 0.9, set on validation.

The semi constraint keeps a spatial or contacting predicate when its score
passes a fixed threshold (0.9, Action Genome's protocol), so it reads the
scores as decisions, not as ranks. Temperatures fitted by minimum NLL
(:mod:`pipeline.training.calibration`) make a score mean "right this often":
a correct argmax the head is 70% sure of then stays below 0.9 and semi loses
a triplet that the with constraint keeps. STTran-style heads trained with
plain BCE are overconfident and pass the threshold anyway; a focal-loss head
is not.

After the NLL fit, each of the two thresholded groups in turn (spatial,
then contacting) gets a logit offset b_g >= 0 that maximises R@20 with the
semi constraint on the **validation** split (ties go to the smaller offset,
the one nearer the NLL fit):

    p_gr = sigmoid(z_gr / T_g + b_g),   b_g = argmax_b R@20_semi,val(b),  b in SEMI_OFFSETS

So predicate r passes semi's 0.9 when z_gr / T_g > logit(0.9) - b_g: the
offset moves the decision, not the scale. (Lowering T instead moves it too,
but saturates: at the T that validation favoured, float32 scores of several
predicates of a row became exactly 1.0, and the argmax of a tie is not the
model's.) An offset keeps each row's argmax and each group's ranking, so the
with constraint is unchanged; no constraint ranks across groups, and can move.
Attention keeps no offset: semi reads its argmax, and a softmax ignores a
shared offset.
"""

from __future__ import annotations

from pipeline.constants import GROUPS
from pipeline.evaluation import align_predictions, evaluate, validate_predictions
from pipeline.evaluation.ground_truth import GroundTruth
from pipeline.model.mosa import MOSA
from pipeline.outputs import RECALL_K
from pipeline.params import EvaluateParams
from pipeline.training.data import VideoBatches
from pipeline.training.inference import forward_outputs, tables_from_outputs

# 0 to 4 in steps of 0.25; logit(0.9) = 2.197 is where the threshold sits at z / T = 0.
SEMI_OFFSETS = tuple(0.25 * step for step in range(17))
SEMI_GROUPS = ("spatial", "contacting")


def best_offset_index(recalls: list[float]) -> int:
    """Index of the highest recall; on a tie the first (the smallest offset, nearest the NLL fit)."""
    return max(range(len(recalls)), key=lambda k: (recalls[k], -k))


def fit_semi_offsets(
    model: MOSA, batches: VideoBatches, mode: str, truth: GroundTruth, settings: EvaluateParams
) -> dict[str, dict]:
    """Set ``model.score_offset`` of spatial and contacting as above; report the search.

    Returns ``{group: {"offset", "semi_recall": {offset: validation R@20 semi}}}``.
    """
    outputs = list(forward_outputs(model, batches))  # one forward pass, rescored per offset
    temperature = model.temperature.detach().cpu()

    def semi_recall(offset) -> float:
        table = tables_from_outputs(outputs, mode, ("combined",), temperature, offset)[0]["combined"]
        aligned = align_predictions(validate_predictions(table, f"{mode} validation predictions"), truth)
        return 100 * evaluate(truth, aligned, settings, constraints=("semi",), ks=(RECALL_K,))["semi"].recall(RECALL_K)

    offset = model.score_offset.detach().cpu().clone().zero_()
    report = {}
    for group in SEMI_GROUPS:
        index = list(GROUPS).index(group)
        recalls = []
        for value in SEMI_OFFSETS:
            trial = offset.clone()
            trial[index] = value
            recalls.append(semi_recall(trial))
        offset[index] = SEMI_OFFSETS[best_offset_index(recalls)]
        report[group] = {
            "offset": float(offset[index]),
            "semi_recall": {f"{v:.2f}": r for v, r in zip(SEMI_OFFSETS, recalls, strict=True)},
        }
    model.score_offset.copy_(offset.to(model.score_offset))
    return report
