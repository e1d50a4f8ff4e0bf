"""Model outputs -> the evaluator's predictions table (one row per person-object pair)."""

from __future__ import annotations

import numpy as np
import polars as pl
import torch

from pipeline.constants import PERSON_INDEX
from pipeline.evaluation.predictions import PREDICTION_SCHEMA, predictions_table
from pipeline.model.mosa import FIRST_OBJECT_CLASS, MOSA, RelationOutput
from pipeline.training.data import BatchMeta, VideoBatches, to_device


def prediction_rows(output: RelationOutput, meta: BatchMeta, mode: str) -> pl.DataFrame:
    """Probabilities per pair: softmax for attention, sigmoid for spatial and contacting.

    PredCls uses the given labels with score 1. SGCls/SGDet use the object
    classifier's best real class and its probability; SGDet keeps the
    detector's scores for the person box and multiplies the object's.
    """
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
        attention=torch.softmax(output.logits["attention"].double(), dim=-1).numpy(),
        spatial=torch.sigmoid(output.logits["spatial"].double()).numpy(),
        contacting=torch.sigmoid(output.logits["contacting"].double()).numpy(),
    )


@torch.no_grad()
def predict(model: MOSA, batches: VideoBatches, mode: str, with_embeddings: bool = False):
    """Predictions for every pair of the batches' videos, sorted by frame.

    With ``with_embeddings`` also returns ASM's relation embedding of each
    row, in the table's row order (``[N, 0]`` when the model has no ASM).
    """
    model.eval()
    device = next(model.parameters()).device
    cpu = torch.device("cpu")
    tables, embeddings = [], []
    for batch, meta in batches:
        output = model(batch) if device.type == "cpu" else to_device(model(to_device(batch, device)), cpu)
        tables.append(prediction_rows(output, meta, mode))
        if with_embeddings and output.relation_embedding is not None:
            embeddings.append(output.relation_embedding.float().numpy())
    if not tables:
        table = pl.DataFrame(schema=PREDICTION_SCHEMA)
        return (table, np.zeros((0, 0), np.float32)) if with_embeddings else table
    table = pl.concat(tables).with_row_index("_row").sort("frame", maintain_order=True)
    order = table["_row"].to_numpy()
    table = table.drop("_row")
    if not with_embeddings:
        return table
    stacked = np.concatenate(embeddings) if embeddings else np.zeros((len(order), 0), np.float32)
    return table, np.ascontiguousarray(stacked[order], dtype=np.float32)
