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
from pipeline.search.quality import (
    combination_counts,
    paraphrase_precision,
    paraphrase_queries,
    precision_at_k,
    read_paraphrases,
)
from pipeline.search.query import encode_texts
from pipeline.search.relations import relation_prompts
from pipeline.text.prompts import predicate_prompts
from pipeline.text.text_encoders import TextEncoder


def predicate_queries(params: Params, meta: dict, encoder: TextEncoder | None = None) -> np.ndarray:
    """[26, D] encoded predicate prompts, the queries of the quality metric."""
    return encode_texts(predicate_prompts(params.text.predicate_template), params.text, meta, encoder)


def run_search_index_stage(params: Params, encoder: TextEncoder | None = None) -> dict:
    """Write the index, its ids table, the encoded relation prompts and ``search.metrics_path``; return the metrics.

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
    prompt_vectors = encode_texts(relation_prompts().texts, params.text, meta, encoder)
    write_relation_index(settings.out_dir, index, relations.table, meta, prompt_vectors)
    indexed = RelationIndex(index, relations.table, meta, prompt_vectors)
    quality = precision_at_k(indexed, predicate_queries(params, meta, encoder), settings.precision_k)
    if settings.paraphrase_queries:
        spec = read_paraphrases(settings.paraphrase_queries)
        queries = paraphrase_queries(spec, combination_counts(relations.table), settings.paraphrase_queries)
        vectors = encode_texts([q.text for q in queries], params.text, meta, encoder) if queries else np.zeros((0, index.d), np.float32)
        quality["paraphrase"] = paraphrase_precision(indexed, queries, vectors, prompt_vectors, settings.precision_k)
    atomic_write_json(Path(settings.metrics_path), quality)
    return quality
