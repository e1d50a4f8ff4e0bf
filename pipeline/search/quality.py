"""Retrieval quality: precision@K of one text query per predicate.

The query of predicate p is its prompt under ``text.predicate_template``
("a photo of a person drinking from"). A hit is relevant when the pair's
annotation holds p. The base rate (fraction of indexed pairs holding p) is
what a random ranking would score, for comparison.
"""

from __future__ import annotations

import numpy as np

from pipeline.constants import NUM_PREDICATES, PREDICATES
from pipeline.search.index import RelationIndex, index_description


def relevance_matrix(index: RelationIndex) -> np.ndarray:
    """[N, 26] bool: pair i is annotated with predicate p."""
    relevant = np.zeros((len(index.table), NUM_PREDICATES), dtype=bool)
    exploded = index.table.select("gt_predicates").with_row_index("row").explode("gt_predicates").drop_nulls()
    relevant[exploded["row"].to_numpy(), exploded["gt_predicates"].to_numpy().astype(np.int64)] = True
    return relevant


def precision_at_k(index: RelationIndex, predicate_queries: np.ndarray, k: int) -> dict:
    """Per-predicate precision@k (None where no indexed pair holds the predicate), their mean and base rates."""
    relevant = relevance_matrix(index)
    _, rows = index.search(predicate_queries, k)
    per_predicate, base_rate = {}, {}
    for p, name in enumerate(PREDICATES):
        if not relevant[:, p].any():
            per_predicate[name] = base_rate[name] = None
            continue
        found = rows[p][rows[p] >= 0]
        per_predicate[name] = float(relevant[found, p].sum() / k)
        base_rate[name] = float(relevant[:, p].mean())
    scored = [v for v in per_predicate.values() if v is not None]
    rates = [v for v in base_rate.values() if v is not None]
    return {
        f"mean_precision@{k}": float(np.mean(scored)) if scored else None,
        "mean_base_rate": float(np.mean(rates)) if rates else None,
        "predicates_scored": len(scored),
        "vectors": int(index.index.ntotal),
        "index": index_description(index.index),
        f"precision@{k}": per_predicate,
        "base_rate": base_rate,
    }
