"""Benchmark: relation search at Action Genome test scale, exact flat index vs IVF vs IVF-PQ.

Synthesised embeddings stand in for the test split's relation embeddings:
about 170,000 unit vectors in the 384-d MiniLM space, clustered around one
centre per (object class, predicate) pair as a trained ASM projection
clusters them. Queries are perturbed copies of centres (what an encoded
text query is to the pairs it should find). Each index type is built with
the settings of ``pipeline.params.SearchParams`` and timed on the same
queries in this process; recall@10 is measured against the exact index.

    python benchmarks/bench_search.py [--pairs 170000] [--dim 384] [--queries 2000] [--seed 0]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO)]  # runnable without installing the package

import faiss  # noqa: E402
from timing import timed  # noqa: E402

from pipeline.params import SearchParams  # noqa: E402
from pipeline.search.index import build_faiss_index, index_description  # noqa: E402

CENTRES = 36 * 26  # (object class, predicate) pairs


def unit(vectors: np.ndarray) -> np.ndarray:
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def synthesise(pairs: int, dim: int, queries: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = unit(rng.standard_normal((CENTRES, dim)))
    # Long tail: a few (object, predicate) pairs hold most relations, as in AG.
    weights = 1.0 / np.arange(1, CENTRES + 1) ** 0.8
    members = rng.choice(CENTRES, size=pairs, p=weights / weights.sum())
    data = unit(centres[members] + 0.9 * rng.standard_normal((pairs, dim)) / np.sqrt(dim))
    asked = unit(centres[rng.choice(CENTRES, size=queries, p=weights / weights.sum())] + 0.3 * rng.standard_normal((queries, dim)) / np.sqrt(dim))
    return data, asked


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=170_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0, help="faiss OpenMP threads (0: faiss default)")
    args = parser.parse_args()
    if args.threads:
        # On a busy machine OpenMP threads spin-wait on each other: single queries can get much slower.
        faiss.omp_set_num_threads(args.threads)

    (data, queries), gen_s = timed(lambda: synthesise(args.pairs, args.dim, args.queries, args.seed))
    print(f"{args.pairs} pairs x {args.dim}-d, {args.queries} queries, k={args.k} (generated in {gen_s:.1f} s)")
    print(f"faiss {faiss.__version__}, {faiss.omp_get_max_threads()} threads, load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print("queries/s: one batched search of all queries, and one query at a time (interactive `mosa search`)")
    defaults = SearchParams()
    # PQ trains 48 small k-means; a smaller sample keeps this run short (the stage default is larger).
    types = {"flat": SearchParams(index_type="flat"), "ivf": SearchParams(index_type="ivf"),
             "ivfpq": SearchParams(index_type="ivfpq", train_sample=20_000)}  # fmt: skip
    print(f"{'index':<17}{'built':>8}{'MB':>8}{'batch q/s':>11}{'single q/s':>12}{'vs flat':>9}{'recall@10':>11}  settings")
    exact = flat_qps = None
    singles = queries[: min(300, len(queries))]
    for kind, settings in types.items():
        index, build_s = timed(lambda s=settings: build_faiss_index(data, s))
        size_mb = faiss.serialize_index(index).nbytes / 1e6
        for nprobe in (None,) if kind == "flat" else (16, defaults.nprobe):
            if nprobe is not None:
                faiss.extract_index_ivf(index).nprobe = nprobe
            (_, rows), batch_s = timed(lambda i=index: i.search(queries, args.k))
            _, single_s = timed(lambda i=index: [i.search(q[None, :], args.k) for q in singles])
            single_qps = len(singles) / single_s
            if exact is None:
                exact, flat_qps = rows, single_qps
            recall = np.mean([len(set(a) & set(b)) / args.k for a, b in zip(rows, exact, strict=True)])
            name = kind if nprobe is None else f"{kind} nprobe={nprobe}"
            print(
                f"{name:<17}{build_s:>7.1f}s{size_mb:>8.0f}{len(queries) / batch_s:>11.0f}{single_qps:>12.0f}"
                f"{single_qps / flat_qps:>8.1f}x{recall:>11.3f}  {index_description(index)}"
            )
    print(f"auto picks: {defaults.flat_max_vectors} or fewer pairs -> flat; below {defaults.ivfpq_min_vectors} -> ivf; else ivfpq")


if __name__ == "__main__":
    main()
