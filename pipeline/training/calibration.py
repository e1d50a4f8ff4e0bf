"""Temperature scaling of the relation scores: one temperature per predicate group.

The evaluator ranks probabilities, and the semi and no constraints compare
them across groups and against a fixed threshold (0.9), so their scale
matters. A focal loss (gamma > 0) stops pushing a probability up once it is
fairly confident, which leaves the scores of true labels well below what
they would be under plain cross-entropy. Temperature scaling (Guo et al.,
"On Calibration of Modern Neural Networks", ICML 2017) rescales each group's
logits z (classifier + lambda * ASM, the combined logits) by 1 / T_g:

    attention:            p = softmax(z / T_a)      (3)
    spatial, contacting:  p = sigmoid(z / T_g)      (6, 17)

T_g > 0 minimises the group's negative log-likelihood on the validation
split (pairs with ground-truth predicates only):

    NLL_a(T) = -mean_i log softmax(z_i / T)_{y_i}
    NLL_g(T) = -mean_{i,r} [ y_ir log sigmoid(z_ir / T) + (1 - y_ir) log sigmoid(-z_ir / T) ]

Both are convex in beta = 1 / T (a log-sum-exp or softplus of a linear
function of beta, minus a linear one), hence unimodal in log T, and a
golden-section search over log T finds the minimum; it is deterministic and
needs no learning rate. Dividing by T > 0 keeps every row's argmax, so each
row's with-constraint prediction is unchanged. (R@K with constraint ranks a
frame's 3P row maxima across groups, so it can move only when a frame has
more than K/3 pairs.)

The temperatures live in the model's ``temperature`` buffer (group order of
:data:`pipeline.constants.GROUPS`), so they travel in ``model.pt``; the
forward pass never reads them: training and the fit see raw logits.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from pipeline.constants import GROUPS
from pipeline.model.mosa import MOSA
from pipeline.training.data import VideoBatches, to_device

# Search range of T: far outside what a trained head needs, finite so the search terminates.
LOG_T_RANGE = (math.log(0.02), math.log(50.0))
GOLDEN_STEPS = 80  # the bracket shrinks by 0.618 per step: 80 steps reach float precision
INVERSE_GOLDEN = (math.sqrt(5.0) - 1.0) / 2.0


def group_nll(logits: Tensor, target: Tensor, temperature: float) -> float:
    """NLL of ``logits / temperature``: cross-entropy for [N] class targets, mean BCE for [N, C] multi-hot ones."""
    scaled = logits.double() / temperature
    if target.dim() == 1:
        return float(F.cross_entropy(scaled, target))
    return float(F.binary_cross_entropy_with_logits(scaled, target.double()))


def fit_temperature(logits: Tensor, target: Tensor) -> float:
    """The T in ``LOG_T_RANGE`` that minimises :func:`group_nll` (1.0 when there are no rows)."""
    if logits.shape[0] == 0:
        return 1.0

    def nll(log_t: float) -> float:
        return group_nll(logits, target, math.exp(log_t))

    low, high = LOG_T_RANGE
    left, right = high - INVERSE_GOLDEN * (high - low), low + INVERSE_GOLDEN * (high - low)
    f_left, f_right = nll(left), nll(right)
    for _ in range(GOLDEN_STEPS):
        if f_left <= f_right:
            high, right, f_right = right, left, f_left
            left = high - INVERSE_GOLDEN * (high - low)
            f_left = nll(left)
        else:
            low, left, f_left = left, right, f_right
            right = low + INVERSE_GOLDEN * (high - low)
            f_right = nll(right)
    return math.exp((low + high) / 2.0)


def scaled_logits(logits: dict[str, Tensor], temperature: Tensor, offset: Tensor | None = None) -> dict[str, Tensor]:
    """Each group's logits divided by its temperature, plus its offset when given (both in GROUPS order)."""
    scaled = {group: logits[group] / temperature[i].to(logits[group].dtype) for i, group in enumerate(GROUPS)}
    if offset is None:
        return scaled
    return {group: scaled[group] + offset[i].to(scaled[group].dtype) for i, group in enumerate(GROUPS)}


@torch.no_grad()
def labelled_logits(model: MOSA, batches: VideoBatches) -> dict[str, tuple[Tensor, Tensor]]:
    """Combined logits and targets of every labelled pair: group -> ([N, size] logits, targets)."""
    model.eval()
    device = next(model.parameters()).device
    cpu = torch.device("cpu")
    parts: dict[str, tuple[list[Tensor], list[Tensor]]] = {group: ([], []) for group in GROUPS}
    for batch, _ in batches:
        output = model(batch) if device.type == "cpu" else to_device(model(to_device(batch, device)), cpu)
        keep = batch.has_relation
        targets = {
            "attention": batch.target_attention,
            "spatial": batch.target_spatial,
            "contacting": batch.target_contacting,
        }
        for group, (logits, labels) in parts.items():
            logits.append(output.logits[group][keep].float())
            labels.append(targets[group][keep])
    return {
        group: (torch.cat(logits), torch.cat(labels)) if logits else (torch.zeros(0, 1), torch.zeros(0, dtype=torch.long))
        for group, (logits, labels) in parts.items()
    }


def calibrate(model: MOSA, labelled: dict[str, tuple[Tensor, Tensor]]) -> dict[str, dict[str, float]]:
    """Fit the temperatures on ``labelled`` (:func:`labelled_logits` of the validation split), store them, report them.

    Returns ``{group: {"temperature", "nll_before", "nll_after", "pairs"}}``.
    """
    report = {}
    temperatures = []
    for group, (logits, target) in labelled.items():
        temperature = fit_temperature(logits, target)
        temperatures.append(temperature)
        empty = logits.shape[0] == 0
        report[group] = {
            "temperature": temperature,
            "nll_before": math.nan if empty else group_nll(logits, target, 1.0),
            "nll_after": math.nan if empty else group_nll(logits, target, temperature),
            "pairs": int(logits.shape[0]),
        }
    model.temperature.copy_(torch.tensor(temperatures, dtype=model.temperature.dtype))
    return report
