"""The ``search_index`` stage: embed the test pairs, build the index, score it."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.io import atomic_write_json
from pipeline.params import Params
from pipeline.search.embeddings import read_relation_embeddings
from pipeline.search.index import (
    RelationIndex,
    build_faiss_index,
    choose_index_type,
    write_relation_index,
)
from pipeline.search.quality import precision_at_k
from pipeline.search.query import encode_texts
from pipeline.text.encoders import TextEncoder
from pipeline.text.prompts import predicate_prompts


def predicate_queries(params: Params, meta: dict, encoder: TextEncoder | None = None) -> np.ndarray:
    """[26, D] encoded predicate prompts, the queries of the quality metric."""
    return encode_texts(predicate_prompts(params.text.predicate_template), params.text, meta, encoder)


def run_search_index_stage(params: Params, encoder: TextEncoder | None = None) -> dict:
    """Write the index, its ids table and ``search.metrics_path``; return the metrics.

    ``encoder`` replaces the one ``text.encoder`` names (tests use a small stand-in).
    """
    settings = params.search
    relations = read_relation_embeddings(params, settings.mode)
    index = build_faiss_index(relations.embeddings, settings)
    meta = {
        "mode": settings.mode,
        "split": "test",
        "vectors": int(index.ntotal),
        "dim": int(index.d),
        "type": choose_index_type(index.ntotal, settings),
        "encoder": params.text.encoder,
        "predicate_template": params.text.predicate_template,
    }
    write_relation_index(settings.out_dir, index, relations.table, meta)
    quality = precision_at_k(RelationIndex(index, relations.table, meta), predicate_queries(params, meta, encoder), settings.precision_k)
    atomic_write_json(Path(settings.metrics_path), quality)
    return quality
