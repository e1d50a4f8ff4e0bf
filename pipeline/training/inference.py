"""Model outputs -> the evaluator's predictions table (one row per person-object pair).

Which relation logits are scored (``scores``):

* ``combined`` (the model's prediction): z_g = Head_g(r) + lambda * ASM_g(r),
  divided by the group's calibration temperature (pipeline/training/calibration.py),
  plus the group's semi offset (pipeline/training/semi_calibration.py);
* ``asm``: ASM's similarity logits s_g alone, uncalibrated ("ASM alone": how
  far the text side predicts without the classifier). Its temperature is
  ASM's own tau.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import polars as pl
import torch

from pipeline.constants import PERSON_INDEX
from pipeline.evaluation.predictions import PREDICTION_SCHEMA, predictions_table
from pipeline.model.mosa import FIRST_OBJECT_CLASS, MOSA, RelationOutput
from pipeline.training.calibration import scaled_logits
from pipeline.training.data import BatchMeta, VideoBatches, to_device

Scores = Literal["combined", "asm"]


def relation_logits(
    output: RelationOutput, temperature: torch.Tensor, scores: Scores, offset: torch.Tensor | None = None
) -> dict[str, torch.Tensor]:
    """The per-group logits the predictions table is built from (module docstring)."""
    if scores == "asm":
        if output.asm_logits is None:
            raise ValueError("ASM-alone scores need a model with ASM (model.asm: true)")
        return output.asm_logits
    return scaled_logits(output.logits, temperature, offset)


def prediction_rows(output: RelationOutput, meta: BatchMeta, mode: str, logits: dict[str, torch.Tensor] | None = None) -> pl.DataFrame:
    """Probabilities per pair: softmax for attention, sigmoid for spatial and contacting.

    ``logits`` (default: ``output.logits``) are the relation logits to score.

    PredCls uses the given labels with score 1. SGCls/SGDet use the object
    classifier's best real class and its probability; SGDet keeps the
    detector's scores for the person box and multiplies the object's.
    """
    logits = output.logits if logits is None else logits
    n = meta.pair_frame.shape[0]
    if output.object_logits is None:
        object_label = meta.object_label
        object_score = meta.object_score.astype(np.float64)
    else:
        probs = torch.softmax(output.object_logits.float(), dim=-1)[:, FIRST_OBJECT_CLASS:]
        best, label = probs.max(dim=1)
        object_label = (label + FIRST_OBJECT_CLASS).numpy()
        object_score = best.double().numpy() * (meta.object_score if mode == "sgdet" else 1.0)
    return predictions_table(
        frame=[meta.frames[i] for i in meta.pair_frame],
        subject_box=meta.subject_box,
        object_box=meta.object_box,
        subject_label=np.full(n, PERSON_INDEX),
        object_label=object_label,
        subject_score=meta.subject_score,
        object_score=object_score,
        attention=torch.softmax(logits["attention"].double(), dim=-1).numpy(),
        spatial=torch.sigmoid(logits["spatial"].double()).numpy(),
        contacting=torch.sigmoid(logits["contacting"].double()).numpy(),
    )


def predict(model: MOSA, batches: VideoBatches, mode: str, with_embeddings: bool = False, scores: Scores = "combined"):
    """Predictions for every pair of the batches' videos, sorted by frame.

    ``scores``: which logits become the relation probabilities (module docstring).

    With ``with_embeddings`` also returns ASM's relation embedding of each
    row, in the table's row order (``[N, 0]`` when the model has no ASM).
    """
    tables, embeddings = predict_tables(model, batches, mode, (scores,))
    return (tables[scores], embeddings) if with_embeddings else tables[scores]


@torch.no_grad()
def predict_tables(
    model: MOSA, batches: VideoBatches, mode: str, scores: tuple[Scores, ...]
) -> tuple[dict[Scores, pl.DataFrame], np.ndarray]:
    """One predictions table per entry of ``scores`` from a single pass, and the ASM embeddings (see :func:`predict`)."""
    model.eval()
    device = next(model.parameters()).device
    cpu = torch.device("cpu")
    temperature, offset = model.temperature.cpu(), model.score_offset.cpu()
    parts: dict[Scores, list[pl.DataFrame]] = {name: [] for name in scores}
    embeddings = []
    for batch, meta in batches:
        output = model(batch) if device.type == "cpu" else to_device(model(to_device(batch, device)), cpu)
        for name, tables in parts.items():
            tables.append(prediction_rows(output, meta, mode, relation_logits(output, temperature, name, offset)))
        if output.relation_embedding is not None:
            embeddings.append(output.relation_embedding.float().numpy())
    if not any(parts.values()):
        return {name: pl.DataFrame(schema=PREDICTION_SCHEMA) for name in scores}, np.zeros((0, 0), np.float32)
    tables = {}
    for name, chunks in parts.items():
        # every table has the same rows in the same order: one sort order serves all
        table = pl.concat(chunks).with_row_index("_row").sort("frame", maintain_order=True)
        order = table["_row"].to_numpy()
        tables[name] = table.drop("_row")
    stacked = np.concatenate(embeddings) if embeddings else np.zeros((len(order), 0), np.float32)
    return tables, np.ascontiguousarray(stacked[order], dtype=np.float32)
