"""ASM-aligned relation embeddings of every test-split pair, with the ids table that names them.

The embedding of a pair is ASM's unit projection of its final relation
feature into the text space (``MOSA.forward(...).relation_embedding``), the
same vector the model compares with the predicate prompts. Text queries
encoded by the text stage's encoder therefore land in the same space.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
import torch
from tqdm import tqdm

from pipeline.io import DataError
from pipeline.params import Params
from pipeline.training.inference import prediction_rows
from pipeline.training.mode_stage import load_trained, open_mode
from pipeline.viz.triplets import ground_truth_predicates


@dataclass(frozen=True)
class RelationSet:
    """Row i of ``embeddings`` is the pair described by row i of ``table``."""

    embeddings: np.ndarray  # [N, D] float32, unit rows
    table: pl.DataFrame  # predictions-format columns + video, gt_predicates


@torch.no_grad()
def collect_relation_embeddings(params: Params, mode: str, split: str = "test") -> RelationSet:
    """Run the trained ``mode`` head over ``split`` and keep each pair's relation embedding."""
    with open_mode(params, mode) as data:
        model = load_trained(params, data)
        if model.asm is None:
            raise DataError(f"model.asm is false for the {mode} model: relation search needs ASM's text-space projection")
        model.eval()
        embeddings, tables = [], []
        for batch, meta in tqdm(data.batches(params, split), desc=f"embed {split} pairs", unit="batch"):
            output = model(batch)
            embeddings.append(output.relation_embedding.float().numpy())
            tables.append(prediction_rows(output, meta, mode))
        objects = data.index_objects.filter(pl.col("split") == split)
    if not tables:
        raise DataError(f"{params.dataset.index_dir}: the {split} split has no pairs to index")
    table = pl.concat(tables)
    table = table.with_columns(video=pl.col("frame").str.split("/").list.first()).with_columns(
        gt_predicates=ground_truth_predicates(table, objects)
    )
    return RelationSet(np.ascontiguousarray(np.concatenate(embeddings), dtype=np.float32), table)
