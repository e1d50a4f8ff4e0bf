"""Relation search: a faiss index over the ASM-aligned relation embeddings of the test pairs."""

from pipeline.search.index import (
    RelationIndex,
    build_faiss_index,
    choose_index_type,
    read_relation_index,
)
from pipeline.search.index_stage import run_search_index_stage
from pipeline.search.query import Hit, search_like, search_relation

__all__ = [
    "Hit",
    "RelationIndex",
    "build_faiss_index",
    "choose_index_type",
    "read_relation_index",
    "run_search_index_stage",
    "search_like",
    "search_relation",
]
