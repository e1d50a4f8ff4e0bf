"""Retrieval quality: precision@K of text queries against the annotation.

Two query sets:

* per predicate, its prompt under ``text.predicate_template`` ("a photo of
  a person drinking from") searched by ASM-embedding neighbours; a hit is
  relevant when the pair's annotation holds the predicate;
* paraphrases (``search.paraphrase_queries``): natural phrasings of each
  (predicate, object) combination the test split holds often enough,
  searched by relation (:mod:`pipeline.search.relations`) and, for
  comparison, by embedding neighbours; a hit is relevant when the pair's
  object is that class and its annotation holds that predicate.

The base rate (fraction of indexed pairs that are relevant) is what a
random ranking would score.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import yaml

from pipeline.constants import NUM_PREDICATES, OBJECT_CLASSES, PREDICATES
from pipeline.io import DataError
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


# --------------------------------------------------------------------------- paraphrase queries


@dataclass(frozen=True)
class ParaphraseQuery:
    text: str
    predicate: int
    object_class: int


def read_paraphrases(path: str | Path) -> dict:
    """The paraphrase file: ``min_pairs``, ``predicates`` (name -> phrasings with {object}), ``objects`` (class -> nouns)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: paraphrase query file not found (search.paraphrase_queries in params.yaml)")
    spec = yaml.safe_load(path.read_text())
    unknown = (set(spec.get("predicates", {})) - set(PREDICATES)) | (set(spec.get("objects", {})) - set(OBJECT_CLASSES[2:]))
    if unknown:
        raise DataError(f"{path}: unknown predicate or object class {sorted(unknown)[0]!r}; use the names in pipeline/constants.py")
    return spec


def combination_counts(table: pl.DataFrame) -> dict[tuple[int, int], int]:
    """Pairs per annotated (predicate, object class) of a table with ``object_label`` and ``gt_predicates``."""
    exploded = table.select(pl.col("object_label").cast(pl.Int64), "gt_predicates").explode("gt_predicates").drop_nulls()
    counts = exploded.group_by("gt_predicates", "object_label").len()
    return {(int(p), int(c)): int(n) for p, c, n in counts.iter_rows()}


def paraphrase_queries(spec: dict, counts: dict[tuple[int, int], int], source: str = "paraphrase file") -> list[ParaphraseQuery]:
    """One query per phrasing of each combination with at least ``min_pairs`` pairs, nouns used in turn.

    A combination the file cannot phrase at least twice (new predicate or class) is a one-line error.
    """
    queries = []
    for (p, c), n in sorted(counts.items()):
        if n < spec["min_pairs"]:
            continue
        phrases = spec["predicates"].get(PREDICATES[p], [])
        nouns = spec["objects"].get(OBJECT_CLASSES[c], [])
        if len(phrases) < 2 or not nouns:
            raise DataError(
                f"{source}: ({PREDICATES[p]}, {OBJECT_CLASSES[c]}) has {n} test pairs but no two paraphrases "
                "(add phrasings for the predicate and nouns for the object)"
            )
        queries += [ParaphraseQuery(phrase.format(object=nouns[i % len(nouns)]), p, c) for i, phrase in enumerate(phrases)]
    return queries


def paraphrase_precision(
    index: RelationIndex, queries: list[ParaphraseQuery], query_vectors: np.ndarray, prompt_vectors: np.ndarray, k: int
) -> dict:
    """precision@k of the relation search (and, for comparison, of the ASM-embedding neighbours) per paraphrase.

    A hit is relevant when the pair's object is the queried class and its annotation holds the queried predicate.
    """
    from pipeline.search.relations import (
        RelationScorer,
        best_reading,
        relation_prompts,
        relation_weights,
    )

    relevant = relevance_matrix(index)
    labels = index.table["object_label"].to_numpy().astype(np.int64)
    scorer = RelationScorer.of(index)
    weights = relation_weights(query_vectors, relation_prompts(), prompt_vectors)
    _, neighbours = index.search(query_vectors, k) if queries else (None, np.zeros((0, k), np.int64))
    rows = []
    for q, query in enumerate(queries):
        wanted = relevant[:, query.predicate] & (labels == query.object_class)
        _, top = scorer.top(weights[q], k)
        near = neighbours[q][neighbours[q] >= 0]
        c, p = best_reading(weights[q])
        rows.append({
            "query": query.text, "predicate": PREDICATES[query.predicate], "object": OBJECT_CLASSES[query.object_class],
            "test_pairs": int(wanted.sum()), "read_as": f"{PREDICATES[p]} {OBJECT_CLASSES[c]}",
            f"precision@{k}": float(wanted[top].sum() / k), f"embedding_precision@{k}": float(wanted[near].sum() / k),
            "base_rate": float(wanted.mean()),
        })  # fmt: skip
    mean = {key: float(np.mean([r[key] for r in rows])) if rows else None for key in (f"precision@{k}", f"embedding_precision@{k}", "base_rate")}
    return {
        f"mean_precision@{k}": mean[f"precision@{k}"],
        f"embedding_mean_precision@{k}": mean[f"embedding_precision@{k}"],
        "mean_base_rate": mean["base_rate"],
        "queries": len(rows),
        "combinations": len({(r["predicate"], r["object"]) for r in rows}),
        "per_query": rows,
    }
