"""Relation search: index types, exactness, persistence, queries and the precision@K metric."""

from __future__ import annotations

import json
import os

import numpy as np
import polars as pl
import pytest
import torch
from support.model_inputs import random_batch, random_spec
from trained_world import build_trained_world, hashed_encoder

from pipeline.constants import NUM_PREDICATES, OBJECT_INDEX, PREDICATE_INDEX, PREDICATES
from pipeline.io import DataError
from pipeline.model.mosa import MOSA
from pipeline.params import ModelParams, SearchParams
from pipeline.search import (
    build_faiss_index,
    choose_index_type,
    read_relation_index,
    run_search_index_stage,
    search_like,
)
from pipeline.search.index import RelationIndex, num_lists, write_relation_index
from pipeline.search.quality import precision_at_k
from pipeline.search.query import find_pair, object_class_of
from pipeline.viz.triplets import ground_truth_predicates


def unit_rows(count: int, dim: int, seed: int = 0) -> np.ndarray:
    vectors = np.random.default_rng(seed).standard_normal((count, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def pair_table(frames: list[str], labels: list[int], gt: list[list[int]]) -> pl.DataFrame:
    """A minimal ids table: what queries and the metric read."""
    n = len(frames)
    return pl.DataFrame(
        {
            "frame": frames,
            "object_label": labels,
            "object_box": [[0.0, 0.0, 10.0, 10.0]] * n,
            "attention": [[0.7, 0.2, 0.1]] * n,
            "spatial": [[0.1] * 6] * n,
            "contacting": [[0.1] * 17] * n,
            "gt_predicates": gt,
        },
        schema_overrides={"gt_predicates": pl.List(pl.Int16)},
    )


# --------------------------------------------------------------------------- index


@pytest.mark.parametrize(
    ("count", "expected"), [(10, "flat"), (1000, "flat"), (1001, "ivf"), (4999, "ivf"), (5000, "ivfpq")]
)
def test_auto_index_type_follows_the_size_thresholds(count, expected):
    settings = SearchParams(flat_max_vectors=1000, ivfpq_min_vectors=5000)
    assert choose_index_type(count, settings) == expected
    assert choose_index_type(count, SearchParams(index_type="ivf")) == "ivf"


def test_ivf_cells_follow_sqrt_n_but_keep_enough_training_points_each():
    assert num_lists(170_000, SearchParams()) == int(4 * 170_000**0.5)
    assert num_lists(170_000, SearchParams(train_sample=20_000)) == 20_000 // 39
    assert num_lists(170_000, SearchParams(nlist=100)) == 100
    assert num_lists(10, SearchParams()) == 1


def test_flat_index_returns_the_exact_inner_product_ranking():
    data, queries = unit_rows(500, 24), unit_rows(7, 24, seed=1)
    scores, rows = build_faiss_index(data, SearchParams(index_type="flat")).search(queries, 10)
    truth = np.argsort(-(queries @ data.T), axis=1, kind="stable")[:, :10]
    np.testing.assert_array_equal(rows, truth)
    np.testing.assert_allclose(scores, np.take_along_axis(queries @ data.T, truth, axis=1), rtol=1e-5)


def test_ivf_probing_every_cell_is_exact_and_ivfpq_keeps_many_neighbours():
    # Clustered data, like relation embeddings (pairs of one predicate sit together).
    # 10,000 rows: just above the 39 x 256 points PQ's 8-bit codebooks need.
    rng = np.random.default_rng(0)
    centres = unit_rows(40, 16, seed=2)
    data = centres[rng.integers(0, 40, 10_000)] + 0.3 * rng.standard_normal((10_000, 16)).astype(np.float32)
    data /= np.linalg.norm(data, axis=1, keepdims=True)
    queries = data[:50] + 0.05 * rng.standard_normal((50, 16)).astype(np.float32)
    _, exact = build_faiss_index(data, SearchParams(index_type="flat")).search(queries, 10)

    ivf = build_faiss_index(data, SearchParams(index_type="ivf", nlist=32, nprobe=32))
    np.testing.assert_array_equal(ivf.search(queries, 10)[1], exact)

    pq = build_faiss_index(data, SearchParams(index_type="ivfpq", nlist=16, nprobe=4, pq_bytes=4))
    found = pq.search(queries, 10)[1]
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(found, exact, strict=True)])
    assert 0.3 < recall < 1.0  # approximate, yet far above the 10/10000 of a random guess


def test_ivfpq_settings_are_checked_before_training():
    with pytest.raises(DataError, match="pq_bytes = 7 must divide the embedding dimension 32"):
        build_faiss_index(unit_rows(10_000, 32), SearchParams(index_type="ivfpq", pq_bytes=7))
    with pytest.raises(DataError, match="ivfpq needs at least 9984 training vectors for its 8-bit codebooks, got 100"):
        build_faiss_index(unit_rows(100, 32), SearchParams(index_type="ivfpq", pq_bytes=8))
    with pytest.raises(DataError, match="got 5000"):
        build_faiss_index(unit_rows(12_000, 32), SearchParams(index_type="ivfpq", pq_bytes=8, train_sample=5000))


@pytest.mark.parametrize("index_type", ["flat", "ivf"])
def test_index_and_ids_table_round_trip_and_query_by_example(tmp_path, index_type):
    data = unit_rows(2000, 16)
    data[1] = data[0] + 0.01  # the nearest neighbour of row 0 is row 1
    data[1] /= np.linalg.norm(data[1])
    frames = [f"V.mp4/{i:06d}.png" for i in range(2000)]
    table = pair_table(frames, [OBJECT_INDEX["cup/glass/bottle"]] * 2000, [[0]] * 2000)
    settings = SearchParams(index_type=index_type, nprobe=64)
    write_relation_index(tmp_path, build_faiss_index(data, settings), table, {"dim": 16})
    index = read_relation_index(tmp_path, nprobe=64)
    assert index.index.ntotal == 2000 and index.table.equals(table)
    hits = search_like(index, "V.mp4/000000.png:cup", k=3)
    assert [h.row for h in hits][0] == 1 and 0 not in [h.row for h in hits]
    assert [h.rank for h in hits] == [1, 2, 3]
    assert hits[0].triplets[0].text().startswith("person looking at cup")


def test_missing_index_and_bad_examples_are_one_line_errors(tmp_path):
    with pytest.raises(DataError, match="relation index not found"):
        read_relation_index(tmp_path)
    index = RelationIndex(build_faiss_index(unit_rows(3, 4), SearchParams()), pair_table(["A.mp4/000001.png"] * 3, [11, 8, 2], [[], [], []]), {})
    assert find_pair(index, "A.mp4/000001.png:chair") == 1
    with pytest.raises(DataError, match="expected FRAME_KEY:OBJECT_CLASS"):
        find_pair(index, "A.mp4/000001.png")
    with pytest.raises(DataError, match="that frame holds cup, chair, bag"):
        find_pair(index, "A.mp4/000001.png:sofa")
    with pytest.raises(DataError, match="not indexed"):
        find_pair(index, "B.mp4/000001.png:cup")
    with pytest.raises(DataError, match="unknown object class 'mug'"):
        object_class_of("mug")


# --------------------------------------------------------------------------- quality metric


def test_precision_at_k_counts_annotated_hits_and_skips_absent_predicates():
    gt = [[0], [0], [0], [5, 9], [9], [9]]
    data = np.zeros((6, NUM_PREDICATES), dtype=np.float32)
    for row, direction in enumerate([0, 0, 0, 5, 12, 12]):
        data[row, direction] = 1.0
    queries = np.eye(NUM_PREDICATES, dtype=np.float32)
    queries[9] = queries[0]  # predicate 9's query lands on rows 0-2, none of which holds it
    index = RelationIndex(build_faiss_index(data, SearchParams()), pair_table(["F.mp4/000001.png"] * 6, [2] * 6, gt), {})
    result = precision_at_k(index, queries, k=2)
    precision = result["precision@2"]
    assert precision["looking_at"] == 1.0  # two of rows 0-2, all holding predicate 0
    assert precision["in_front_of"] == 0.5  # only row 3 scores > 0 for predicate 5; the 2nd hit is a miss
    assert precision["carrying"] == 0.0
    assert precision["unsure"] is None and precision["eating"] is None  # nobody holds them
    assert result["predicates_scored"] == 3
    assert result["mean_precision@2"] == pytest.approx(0.5)
    assert result["base_rate"]["carrying"] == pytest.approx(0.5)


def test_pairs_take_the_annotation_of_the_same_class_overlapping_object():
    objects = pl.DataFrame(
        {"frame": ["F/1.png"] * 2, "object_class": [11, 8], "x1": [0.0, 50.0], "y1": [0.0] * 2, "x2": [10.0, 60.0],
         "y2": [10.0] * 2, "attention": [[0], [1]], "spatial": [[3], []], "contacting": [[11], [19]]},
        schema_overrides={"object_class": pl.Int16, "attention": pl.List(pl.Int16), "spatial": pl.List(pl.Int16), "contacting": pl.List(pl.Int16)},
    )  # fmt: skip
    pairs = pl.DataFrame({
        "frame": ["F/1.png"] * 4,
        "object_label": [11, 8, 8, 13],
        "object_box": [[1.0, 0.0, 10.0, 10.0], [50.0, 0.0, 60.0, 10.0], [0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 10.0, 10.0]],
    })  # fmt: skip
    # cup overlaps the cup; the chair box matches; a chair label on the cup's box and an unannotated class match nothing
    assert ground_truth_predicates(pairs, objects).to_list() == [[0, 3, 11], [1, 19], [], []]


# --------------------------------------------------------------------------- model embedding


def test_relation_embedding_is_the_unit_vector_asm_compares_with_the_prompts():
    spec = random_spec()
    model = MOSA(ModelParams(d_model=16, heads=2, mim_heads=2, temporal_layers=1), spec, classify_objects=False).eval()
    batch = random_batch(spec)
    with torch.no_grad():
        out = model(batch)
    embedding = out.relation_embedding
    assert embedding.shape == (batch.object_label.shape[0], 16)
    torch.testing.assert_close(embedding.norm(dim=1), torch.ones(embedding.shape[0]))
    prompts = torch.nn.functional.normalize(spec.prompt_embeddings, dim=-1)[out.object_label]
    scale = torch.exp(-model.asm.log_tau)
    expected = scale * torch.einsum("nd,npd->np", embedding, prompts)
    torch.testing.assert_close(out.asm_logits["contacting"], expected[:, 9:])
    no_asm = MOSA(ModelParams(d_model=16, heads=2, mim_heads=2, asm=False), spec, classify_objects=False).eval()
    assert no_asm(batch).relation_embedding is None


# --------------------------------------------------------------------------- stage


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    cwd = os.getcwd()
    params = build_trained_world(tmp_path_factory.mktemp("search_world"))
    yield params
    os.chdir(cwd)


def test_search_index_stage_indexes_every_test_pair_and_writes_the_metric(world):
    first = run_search_index_stage(world, hashed_encoder())
    index = read_relation_index(world.search.out_dir)
    test_objects = pl.read_parquet(f"{world.dataset.index_dir}/objects.parquet").filter(pl.col("split") == "test")
    assert index.index.ntotal == len(index.table) == len(test_objects) == first["vectors"]
    assert set(index.table["video"]) == {"V5.mp4"}
    # PredCls pairs are the annotated objects: each carries its own labels.
    expected = test_objects.select(pl.concat_list("attention", "spatial", "contacting")).to_series().to_list()
    assert sorted(map(sorted, index.table["gt_predicates"].to_list())) == sorted(map(sorted, expected))
    vectors = np.stack([index.vector(i) for i in range(index.index.ntotal)])
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    metrics = json.loads(open(world.search.metrics_path).read())
    assert metrics == first and set(metrics["precision@10"]) == set(PREDICATES)
    assert 0.0 <= metrics["mean_precision@10"] <= 1.0 and metrics["index"] == "flat"
    assert index.meta["mode"] == "predcls" and index.meta["dim"] == 16
    assert run_search_index_stage(world, hashed_encoder()) == first  # deterministic


def test_text_queries_must_use_the_index_encoder(world):
    run_search_index_stage(world, hashed_encoder())
    index = read_relation_index(world.search.out_dir)
    from pipeline.search.query import encode_texts

    with pytest.raises(DataError, match="built for text.encoder = 'minilm', params say 'clip'"):
        encode_texts(["x"], world.text.model_copy(update={"encoder": "clip"}), index.meta)
    with pytest.raises(DataError, match="gives 8-d vectors, the relation index holds 16-d"):
        encode_texts(["x"], world.text, index.meta, hashed_encoder(8))


def test_real_text_encoder_ranks_the_matching_relation_first():
    """The embedding-neighbour search the paraphrase metric reports as its baseline."""
    from pipeline.params import TextParams
    from pipeline.search.query import encode_texts
    from pipeline.text import build_encoder
    from pipeline.text.embed import embed_texts

    minilm = build_encoder(TextParams())
    phrases = {("drinking_from", "cup/glass/bottle"): "a photo of a person drinking from a cup",
               ("sitting_on", "chair"): "a photo of a person sitting on a chair",
               ("holding", "phone/camera"): "a photo of a person holding a phone",
               ("lying_on", "bed"): "a photo of a person lying on a bed"}  # fmt: skip
    # Stand-in relation embeddings: the prompt a perfectly aligned model would map each pair onto.
    vectors = embed_texts(minilm, np.array(list(phrases.values()), dtype=object))
    keys = list(phrases)
    table = pair_table([f"V.mp4/{i:06d}.png" for i in range(4)], [OBJECT_INDEX[o] for _, o in keys], [[PREDICATE_INDEX[p]] for p, _ in keys])
    index = RelationIndex(build_faiss_index(vectors, SearchParams()), table, {"encoder": "minilm", "dim": minilm.dim})
    queries = encode_texts(["person drinking from a cup", "someone asleep in bed"], TextParams(), index.meta, minilm)
    _, rows = index.search(queries, 2)
    assert rows[0, 0] == 0 and rows[1, 0] == 3
