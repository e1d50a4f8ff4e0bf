"""Free-text relation search: the paraphrase query set covers the data, queries are read as relations."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from trained_world import PARAPHRASES, hashed_encoder

from pipeline.ag.reader import build_ag_index
from pipeline.ag.synth import write_synthetic_ag
from pipeline.constants import OBJECT_CLASSES, OBJECT_INDEX, PREDICATE_INDEX, PREDICATES
from pipeline.io import DataError
from pipeline.params import DatasetParams, SearchParams, SynthParams
from pipeline.search.index import RelationIndex, build_faiss_index
from pipeline.search.quality import (
    combination_counts,
    paraphrase_precision,
    paraphrase_queries,
    read_paraphrases,
)
from pipeline.search.relations import RelationScorer, relation_prompts, relation_weights


def test_every_predicate_has_two_phrasings_and_every_object_a_noun():
    spec = read_paraphrases(PARAPHRASES)
    for predicate in PREDICATES:
        phrases = spec["predicates"][predicate]
        assert len(phrases) >= 2 and all("{object}" in p for p in phrases), predicate
    assert set(spec["objects"]) == set(OBJECT_CLASSES[2:])
    assert all(spec["objects"][name] for name in OBJECT_CLASSES[2:])


def test_every_combination_of_the_synthetic_data_gets_two_paraphrases(tmp_path):
    # Counted from freshly generated data, so the check follows the generator when it changes.
    write_synthetic_ag(tmp_path / "ag", SynthParams(videos=40, seed=3), progress=False, images=False)
    dataset = DatasetParams()
    objects = build_ag_index(
        tmp_path / "ag", dataset.val_fraction, dataset.split_seed, dataset.small_box_side
    ).objects
    table = objects.select(
        pl.col("object_class").alias("object_label"),
        pl.concat_list("attention", "spatial", "contacting").alias("gt_predicates"),
    )
    counts = combination_counts(table)
    spec = read_paraphrases(PARAPHRASES) | {"min_pairs": 1}
    queries = paraphrase_queries(spec, counts)
    per_combination = {}
    for query in queries:
        per_combination.setdefault((query.predicate, query.object_class), []).append(query.text)
    assert set(per_combination) == set(counts)
    assert all(len(set(texts)) >= 2 for texts in per_combination.values())


def test_a_combination_without_paraphrases_is_a_one_line_error():
    spec = {
        "min_pairs": 5,
        "predicates": {"holding": ["a {object}"]},
        "objects": {"cup/glass/bottle": ["cup"]},
    }
    counts = {(PREDICATE_INDEX["holding"], OBJECT_INDEX["cup/glass/bottle"]): 5}
    with pytest.raises(
        DataError, match=r"\(holding, cup/glass/bottle\) has 5 test pairs but no two paraphrases"
    ):
        paraphrase_queries(spec, counts)
    assert paraphrase_queries(spec | {"min_pairs": 6}, counts) == []


def _pairs(labels: list[int], contacting_holding: list[float], gt: list[list[int]]) -> pl.DataFrame:
    n = len(labels)
    contacting = np.full((n, 17), 0.05)
    contacting[:, PREDICATE_INDEX["holding"] - 9] = contacting_holding
    return pl.DataFrame({
        "frame": [f"V.mp4/{i:06d}.png" for i in range(n)], "object_label": labels, "object_score": [1.0] * n,
        "attention": [[0.4, 0.3, 0.3]] * n, "spatial": [[0.1] * 6] * n, "contacting": contacting.tolist(),
        "gt_predicates": gt,
    }, schema_overrides={"gt_predicates": pl.List(pl.Int16)})  # fmt: skip


def test_relation_score_ranks_the_queried_class_by_its_predicted_predicate():
    cup, phone, holding = (
        OBJECT_INDEX["cup/glass/bottle"],
        OBJECT_INDEX["phone/camera"],
        PREDICATE_INDEX["holding"],
    )
    table = _pairs(
        [phone, cup, cup, cup], [0.99, 0.2, 0.9, 0.6], [[holding], [], [holding], [holding]]
    )
    weights = np.zeros((len(OBJECT_CLASSES), len(PREDICATES)))
    weights[cup, holding] = 1.0
    index = RelationIndex(
        build_faiss_index(np.eye(4, 8, dtype=np.float32), SearchParams()), table, {}
    )
    scores, rows = RelationScorer.of(index).top(weights, 3)
    assert rows.tolist() == [2, 3, 1]  # the phone held with 0.99 is another object
    np.testing.assert_allclose(scores, [0.9, 0.6, 0.2])


def test_query_weights_follow_the_nearest_prompt():
    prompts = relation_prompts()
    vectors = hashed_encoder(32).encode(prompts.texts)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    j = prompts.texts.index("a person drinking from a bottle")
    weights = relation_weights(vectors[j], prompts, vectors)[0]
    assert weights.shape == (len(OBJECT_CLASSES), len(PREDICATES))
    assert np.unravel_index(weights.argmax(), weights.shape) == (
        OBJECT_INDEX["cup/glass/bottle"],
        PREDICATE_INDEX["drinking_from"],
    )
    assert weights.sum() == pytest.approx(1.0) and weights.max() > 0.99


def test_paraphrase_precision_counts_class_and_predicate_hits():
    cup, holding = OBJECT_INDEX["cup/glass/bottle"], PREDICATE_INDEX["holding"]
    prompts = relation_prompts()
    vectors = hashed_encoder(32).encode(prompts.texts)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    table = _pairs([cup] * 4, [0.9, 0.8, 0.1, 0.7], [[holding], [], [holding], [holding]])
    index = RelationIndex(
        build_faiss_index(np.eye(4, 32, dtype=np.float32), SearchParams()), table, {}
    )
    spec = {
        "min_pairs": 2,
        "predicates": {"holding": ["x {object}", "y {object}"]},
        "objects": {"cup/glass/bottle": ["cup"]},
    }
    queries = paraphrase_queries(spec, combination_counts(table))
    query_vectors = vectors[[prompts.texts.index("a person holding a cup")] * 2]
    result = paraphrase_precision(index, queries, query_vectors, vectors, k=2)
    assert result["queries"] == 2 and result["combinations"] == 1
    row = result["per_query"][0]
    assert row["read_as"] == "holding cup/glass/bottle" and row["test_pairs"] == 3
    assert row["precision@2"] == 0.5  # rows 0 (holding) and 1 (not annotated) score highest
    assert row["base_rate"] == pytest.approx(0.75)
