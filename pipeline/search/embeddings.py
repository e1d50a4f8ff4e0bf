"""ASM-aligned relation embeddings of every test-split pair, with the ids table that names them.

The embedding of a pair is ASM's unit projection of its final relation
feature into the text space (``MOSA.forward(...).relation_embedding``), the
same vector the model compares with the predicate prompts. Text queries
encoded by the text stage's encoder therefore land in the same space.

The evaluate stage already runs the head over the test split once and keeps
each predictions row's embedding beside the predictions file
(:func:`pipeline.outputs.output_paths`); the search stage reads
those two files instead of running the model a second time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from pipeline.ag.reader import read_index
from pipeline.evaluation.predictions import load_predictions
from pipeline.io import DataError
from pipeline.outputs import output_paths
from pipeline.params import Params
from pipeline.viz.triplets import ground_truth_predicates


@dataclass(frozen=True)
class RelationSet:
    """Row i of ``embeddings`` is the pair described by row i of ``table``."""

    embeddings: np.ndarray  # [N, D] float32, unit rows
    table: pl.DataFrame  # predictions-format columns + video, gt_predicates


def read_relation_embeddings(params: Params, mode: str) -> RelationSet:
    """The ``mode`` evaluate stage's test predictions and their relation embeddings."""
    paths = output_paths(mode)
    table, _ = load_predictions(paths.predictions)
    try:
        embeddings = np.load(paths.relation_embeddings, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise DataError(f"{paths.relation_embeddings}: unreadable ({err}); rerun the evaluate@{mode} stage") from None
    if embeddings.ndim != 2 or embeddings.shape[0] != table.height:
        raise DataError(
            f"{paths.relation_embeddings}: shape {embeddings.shape} does not match the {table.height} rows of "
            f"{paths.predictions}; rerun the evaluate@{mode} stage"
        )
    if embeddings.shape[1] == 0:
        raise DataError(f"model.asm is false for the {mode} model: relation search needs ASM's text-space projection")
    if table.height == 0:
        raise DataError(f"{params.dataset.index_dir}: the test split has no pairs to index")
    objects = read_index(params.dataset.index_dir).objects.filter(pl.col("split") == "test")
    table = table.with_columns(video=pl.col("frame").str.split("/").list.first()).with_columns(
        gt_predicates=ground_truth_predicates(table, objects)
    )
    return RelationSet(np.ascontiguousarray(embeddings, dtype=np.float32), table)
