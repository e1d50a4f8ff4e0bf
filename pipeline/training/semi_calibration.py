"""Temperatures for the semi constraint: the spatial and contacting scores sharpened on validation.

The semi constraint keeps a spatial or contacting predicate when its score
passes a fixed threshold (0.9, Action Genome's protocol), so it reads the
scores as decisions, not as ranks. Temperatures fitted by minimum NLL
(:mod:`pipeline.training.calibration`) make a score mean "right this often":
a correct argmax the head is 70% sure of then stays below 0.9 and semi loses
a triplet that the with constraint keeps. STTran-style heads trained with
plain BCE are overconfident and pass the threshold anyway; a focal-loss head
is not.

After the NLL fit, each of the two thresholded groups in turn (spatial,
then contacting) gets the temperature T_nll * f, f in :data:`SEMI_FACTORS`,
that maximises R@20 with the semi constraint on the **validation** split
(ties go to the larger f, the one nearer the NLL fit):

    T_g = T_g,nll * argmax_f  R@20_semi,val(T_g,nll * f)

Attention is left at its NLL temperature: semi reads its argmax, which no
temperature moves. Dividing by T keeps every row's argmax, so the with
constraint is unchanged; no constraint's cross-group ranking can move a
little (measured in docs/synthetic_benchmark.md, section 7).
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

# 1 down to 1/16 in steps of sqrt(2): the validation curves of the default flatten well inside it.
SEMI_FACTORS = tuple(2.0 ** (-step / 2) for step in range(9))
SEMI_GROUPS = ("spatial", "contacting")


def best_factor_index(recalls: list[float]) -> int:
    """Index of the highest recall; on a tie the first (the largest factor, nearest the NLL fit)."""
    return max(range(len(recalls)), key=lambda k: (recalls[k], -k))


def fit_semi_temperatures(
    model: MOSA, batches: VideoBatches, mode: str, truth: GroundTruth, settings: EvaluateParams
) -> dict[str, dict]:
    """Lower the NLL temperatures of spatial and contacting as above, in ``model.temperature``; report the search.

    Returns ``{group: {"nll_temperature", "factor", "temperature", "semi_recall": {factor: R@20}}}``.
    """
    outputs = list(forward_outputs(model, batches))  # one forward pass, rescored per factor

    def semi_recall(temperature) -> float:
        table = tables_from_outputs(outputs, mode, ("combined",), temperature)[0]["combined"]
        aligned = align_predictions(validate_predictions(table, f"{mode} validation predictions"), truth)
        return 100 * evaluate(truth, aligned, settings, constraints=("semi",), ks=(RECALL_K,))["semi"].recall(RECALL_K)

    temperature = model.temperature.detach().cpu().clone()
    report = {}
    for group in SEMI_GROUPS:
        index = list(GROUPS).index(group)
        fitted = float(temperature[index])
        recalls = []
        for factor in SEMI_FACTORS:
            trial = temperature.clone()
            trial[index] = fitted * factor
            recalls.append(semi_recall(trial))
        best = best_factor_index(recalls)
        temperature[index] = fitted * SEMI_FACTORS[best]
        report[group] = {
            "nll_temperature": fitted,
            "factor": SEMI_FACTORS[best],
            "temperature": float(temperature[index]),
            "semi_recall": {f"{f:.4f}": r for f, r in zip(SEMI_FACTORS, recalls, strict=True)},
        }
    model.temperature.copy_(temperature.to(model.temperature))
    return report
