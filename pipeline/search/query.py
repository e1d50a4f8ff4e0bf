"""Queries against the relation index: free text, or an indexed pair as the example."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from pipeline.constants import OBJECT_CLASSES, OBJECT_INDEX, readable_object
from pipeline.io import DataError
from pipeline.params import TextParams
from pipeline.search.index import RelationIndex
from pipeline.text.text_encoders import TextEncoder
from pipeline.viz.triplets import Triplet, object_name, predicted_triplets


@dataclass(frozen=True)
class Hit:
    rank: int  # 1-based
    row: int  # row of the ids table / faiss id
    score: float  # cosine similarity
    frame: str
    object_class: int
    triplets: list[Triplet]

    def line(self) -> str:
        triplets = "; ".join(t.text() for t in self.triplets)
        return f"{self.rank:>3}  {self.score:.3f}  {self.frame}  {object_name(self.object_class)}  {triplets}"


def encode_texts(texts: list[str], text: TextParams, expected: dict, encoder: TextEncoder | None = None) -> np.ndarray:
    """Unit query vectors from the text stage's encoder (or ``encoder``); refuse one other than the index's."""
    from pipeline.text.embed import embed_texts
    from pipeline.text.text_encoders import build_encoder

    if encoder is None and expected.get("encoder") not in (None, text.encoder):
        raise DataError(
            f"the relation index was built for text.encoder = {expected['encoder']!r}, params say {text.encoder!r}; "
            "rerun the text, train and search_index stages"
        )
    encoder = encoder or build_encoder(text)
    if expected.get("dim") not in (None, encoder.dim):
        raise DataError(f"text encoder gives {encoder.dim}-d vectors, the relation index holds {expected['dim']}-d ones")
    return embed_texts(encoder, np.array(texts, dtype=object))


def hits_of(index: RelationIndex, scores: np.ndarray, rows: np.ndarray, skip: int | None = None) -> list[Hit]:
    """Hits of one query row (``scores``/``rows`` of shape [k]), optionally leaving out one row."""
    table = index.table
    hits = []
    for score, row in zip(scores.tolist(), rows.tolist(), strict=True):
        if row < 0 or row == skip:
            continue
        pair = table.row(row, named=True)
        triplets = predicted_triplets(pair["object_label"], pair["attention"], pair["spatial"], pair["contacting"])
        hits.append(Hit(len(hits) + 1, row, float(score), pair["frame"], int(pair["object_label"]), triplets))
    return hits


def prompt_vectors(index: RelationIndex, text: TextParams, encoder: TextEncoder | None = None) -> np.ndarray:
    """The index's encoded relation prompts (written by the search_index stage), else encoded now."""
    from pipeline.search.relations import relation_prompts

    if index.prompt_vectors is not None and encoder is None:
        return index.prompt_vectors
    return encode_texts(relation_prompts().texts, text, index.meta, encoder)


def search_relation(index: RelationIndex, query: str, k: int, text: TextParams, encoder: TextEncoder | None = None) -> tuple[list[Hit], str]:
    """The k pairs most likely to be the relation ``query`` describes, and that reading of the query.

    See :mod:`pipeline.search.relations`; a hit's score is the expected
    probability of the queried relation (0..1).
    """
    from pipeline.search.relations import (
        RelationScorer,
        reading_text,
        relation_prompts,
        relation_weights,
    )

    vectors = prompt_vectors(index, text, encoder)
    weights = relation_weights(encode_texts([query], text, index.meta, encoder), relation_prompts(), vectors)[0]
    scores, rows = RelationScorer.of(index).top(weights, k)
    return hits_of(index, scores, rows), reading_text(weights)


def object_class_of(name: str) -> int:
    """AG object index from its full name ('cup/glass/bottle') or short name ('cup')."""
    short = {readable_object(c): i for i, c in enumerate(OBJECT_CLASSES) if i > 0}
    if name in OBJECT_INDEX:
        return OBJECT_INDEX[name]
    if name in short:
        return short[name]
    raise DataError(f"unknown object class {name!r}; use one of: {', '.join(sorted(short))}")


def find_pair(index: RelationIndex, example: str) -> int:
    """Row of ``FRAME_KEY:OBJECT_CLASS`` (e.g. ``001YG.mp4/000089.png:cup``) in the ids table."""
    frame, sep, name = example.rpartition(":")
    if not sep or not frame:
        raise DataError(f"--like {example!r}: expected FRAME_KEY:OBJECT_CLASS, e.g. 001YG.mp4/000089.png:cup")
    rows = (
        index.table.with_row_index("row")
        .filter((pl.col("frame") == frame) & (pl.col("object_label") == object_class_of(name)))["row"]
    )
    if rows.is_empty():
        in_frame = index.table.filter(pl.col("frame") == frame)["object_label"].to_list()
        where = (
            f"that frame holds {', '.join(object_name(c) for c in in_frame)}" if in_frame else "that frame is not indexed (test split only)"
        )
        raise DataError(f"--like {example!r}: no indexed pair; {where}")
    return int(rows[0])


def search_like(index: RelationIndex, example: str, k: int) -> list[Hit]:
    """Query by example: the k pairs nearest to an indexed pair (the pair itself left out)."""
    row = find_pair(index, example)
    scores, rows = index.search(index.vector(row)[None, :], k + 1)
    return hits_of(index, scores[0], rows[0], skip=row)[:k]
