"""Faiss index over relation embeddings: the type follows the size.

All vectors are unit length, so inner product is cosine similarity.

=========  =============================  ================================================
type       used for (``index_type: auto``)  trade-off
=========  =============================  ================================================
``flat``   N <= ``flat_max_vectors``       exact; every query scans all N x D floats
                                           (4 D bytes per vector). Best below ~10^5.
``ivf``    up to ``ivfpq_min_vectors``     k-means into ``nlist`` cells; a query scans
                                           ``nprobe`` of them (about nprobe / nlist of the
                                           data), so it is faster but may miss neighbours
                                           in unvisited cells. Same memory as flat.
``ivfpq``  above                           IVF plus product quantisation to ``pq_bytes``
                                           bytes per vector: 4 D / pq_bytes times less
                                           memory, approximate scores, lower recall.
=========  =============================  ================================================

``benchmarks/bench_search.py`` measures queries per second and recall@10
against the exact index for each type at Action Genome test scale (170k
pairs): IVF with ``nprobe`` 64 answered single queries tens of times faster
than flat at recall@10 ~0.999, while 48-byte IVF-PQ codes lost most of the
exact top 10 among tightly clustered relation embeddings. IVF-PQ is
therefore only the default where flat vectors no longer fit in memory.

Files in ``search.out_dir``: ``relations.faiss`` (the index; faiss id = row),
``relations.parquet`` (the ids table: row i names vector i),
``index.json`` (type, size, dimension, mode, text encoder) and
``relation_prompts.npy`` (the encoded prompts free-text queries are read
with, see :mod:`pipeline.search.relations`).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np
import polars as pl

from pipeline.io import DataError, atomic_path, atomic_write_json, read_parquet
from pipeline.params import SearchParams

INDEX_FILE = "relations.faiss"
IDS_FILE = "relations.parquet"
META_FILE = "index.json"
PROMPTS_FILE = "relation_prompts.npy"
# faiss warns below 39 training points per k-means centroid.
POINTS_PER_CENTROID = 39


def choose_index_type(num_vectors: int, settings: SearchParams) -> str:
    """``settings.index_type``, or for ``auto`` the type the size calls for (table above)."""
    if settings.index_type != "auto":
        return settings.index_type
    if num_vectors <= settings.flat_max_vectors:
        return "flat"
    return "ivf" if num_vectors < settings.ivfpq_min_vectors else "ivfpq"


def num_lists(num_vectors: int, settings: SearchParams) -> int:
    """IVF cells: ``settings.nlist``, or 4 sqrt(N) (the usual faiss guideline) when 0.

    Capped so that every cell gets enough k-means training points from the sample.
    """
    wanted = settings.nlist or int(4 * math.sqrt(num_vectors))
    return max(1, min(wanted, min(num_vectors, settings.train_sample) // POINTS_PER_CENTROID))


def training_sample(vectors: np.ndarray, settings: SearchParams) -> np.ndarray:
    """At most ``settings.train_sample`` rows, drawn with ``settings.seed``: k-means cost grows with the rows."""
    if len(vectors) <= settings.train_sample:
        return vectors
    rows = np.random.default_rng(settings.seed).choice(len(vectors), settings.train_sample, replace=False)
    return vectors[np.sort(rows)]


def build_faiss_index(embeddings: np.ndarray, settings: SearchParams) -> faiss.Index:
    """An inner-product index of the chosen type holding ``embeddings`` (ids = row numbers)."""
    vectors = np.ascontiguousarray(embeddings, dtype=np.float32)
    count, dim = vectors.shape
    kind = choose_index_type(count, settings)
    if kind == "flat":
        index = faiss.IndexFlatIP(dim)
    else:
        nlist = num_lists(count, settings)
        if kind == "ivfpq" and dim % settings.pq_bytes:
            raise DataError(f"search.pq_bytes = {settings.pq_bytes} must divide the embedding dimension {dim}")
        trained_on = min(count, settings.train_sample)
        if kind == "ivfpq" and trained_on < POINTS_PER_CENTROID * 256:
            raise DataError(
                f"search: ivfpq needs at least {POINTS_PER_CENTROID * 256} training vectors for its 8-bit codebooks, "
                f"got {trained_on} (more pairs or a larger search.train_sample; or index_type: ivf)"
            )
        codes = "Flat" if kind == "ivf" else f"PQ{settings.pq_bytes}"
        index = faiss.index_factory(dim, f"IVF{nlist},{codes}", faiss.METRIC_INNER_PRODUCT)
        ivf = faiss.extract_index_ivf(index)
        ivf.cp.seed = settings.seed  # k-means initialisation: same seed, same cells
        index.train(training_sample(vectors, settings))
        ivf.nprobe = min(settings.nprobe, nlist)
    index.add(vectors)
    return index


@dataclass
class RelationIndex:
    """A loaded index with its ids table."""

    index: faiss.Index
    table: pl.DataFrame
    meta: dict
    prompt_vectors: np.ndarray | None = None  # [M, D] unit rows of relation_prompts(); None: encode on demand

    @property
    def dim(self) -> int:
        return self.index.d

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Scores and row ids [Q, k]; id -1 where fewer than k vectors were found."""
        k = min(k, self.index.ntotal)
        return self.index.search(np.ascontiguousarray(queries, dtype=np.float32), k)

    def vector(self, row: int) -> np.ndarray:
        """The stored (for ivfpq: decoded) embedding of one row."""
        return self.index.reconstruct(int(row))


def write_relation_index(
    out_dir: str | Path, index: faiss.Index, table: pl.DataFrame, meta: dict, prompt_vectors: np.ndarray | None = None
) -> None:
    if index.ntotal != len(table):
        raise ValueError(f"index holds {index.ntotal} vectors but the ids table has {len(table)} rows")
    out_dir = Path(out_dir)
    with atomic_path(out_dir / INDEX_FILE) as tmp:
        faiss.write_index(index, str(tmp))
    with atomic_path(out_dir / IDS_FILE, suffix=".parquet") as tmp:
        table.write_parquet(tmp)
    if prompt_vectors is not None:
        with atomic_path(out_dir / PROMPTS_FILE) as tmp, open(tmp, "wb") as handle:
            np.save(handle, np.ascontiguousarray(prompt_vectors, dtype=np.float32))
    atomic_write_json(out_dir / META_FILE, meta)


def read_relation_index(out_dir: str | Path, nprobe: int | None = None) -> RelationIndex:
    out_dir = Path(out_dir)
    paths = [out_dir / name for name in (INDEX_FILE, IDS_FILE, META_FILE)]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise DataError(f"{missing[0]}: relation index not found (run `dvc repro search_index`)")
    try:
        index = faiss.read_index(str(paths[0]))
    except RuntimeError as err:  # faiss reports a damaged file this way
        raise DataError(f"{paths[0]}: not a readable faiss index ({str(err).splitlines()[0]}); rerun `dvc repro search_index`") from None
    ivf = _ivf_part(index)
    if ivf is not None:
        ivf.make_direct_map()  # lets reconstruct(row) serve query by example
        if nprobe is not None:
            ivf.nprobe = min(nprobe, ivf.nlist)
    table = read_parquet(paths[1], "search_index")
    if index.ntotal != len(table):
        raise DataError(f"{out_dir}: index holds {index.ntotal} vectors, ids table {len(table)} rows; rebuild the index")
    prompts = out_dir / PROMPTS_FILE
    prompt_vectors = np.load(prompts) if prompts.is_file() else None
    return RelationIndex(index, table, json.loads(paths[2].read_text()), prompt_vectors)


def _ivf_part(index: faiss.Index) -> faiss.IndexIVF | None:
    try:
        return faiss.extract_index_ivf(index)
    except RuntimeError:  # not an IVF index
        return None


def index_description(index: faiss.Index) -> str:
    """'flat', or 'ivf' / 'ivfpq' with their cell count and probes."""
    ivf = _ivf_part(index)
    if ivf is None:
        return "flat"
    return f"{'ivfpq' if isinstance(ivf, faiss.IndexIVFPQ) else 'ivf'} nlist={ivf.nlist} nprobe={ivf.nprobe}"
