"""Free-text search by relation: read the query as (predicate, object), rank pairs by the head's prediction of it.

Why not the nearest neighbours of the encoded query in ASM's embedding
space? ASM compares a pair only with the prompts of its *own* object class
(``ActionSemanticMatching.similarity``), so its embedding orders the
predicates within a class but distances across classes mean nothing: "person
drinking from a cup" returned book, chair and phone pairs (precision@10 of
the predicate prompts 0.27 against 0.16 at random). Training ASM against the
prompts of all classes would change the ASM logits the classifier adds and
the ablations measure. Instead a query is scored in two steps, each resting
on something that was trained for it:

1. **Interpretation** (frozen text encoder). The query ``q`` is compared
   with one prompt per (object class o, predicate p, object name, phrasing),
   e.g. "a person drinking from a bottle" (:func:`relation_prompts`; every
   alternative name of a class, a few phrasings of the predicates whose
   names read badly). With cosine similarities ``c`` aggregated by their
   maximum over names and phrasings,

       w(o, p) = softmax_{o, p}( c(q, o, p) / T )            (T = 0.02)

   T is small, so ``w`` is nearly one-hot on the best reading and splits
   only between readings the encoder cannot tell apart.
2. **Ranking** (trained relation head). Pair i, with object label ``o_i``,
   detector score ``s_i`` (1 for ground-truth boxes) and predicted predicate
   probabilities ``P_i`` (softmax for attention, sigmoid for spatial and
   contacting: what the classifier was trained to output), scores

       score_i = s_i * sum_p w(o_i, p) P_i(p)

   i.e. the expected probability that the pair is the queried relation.

Both steps read only the ids table and the query, so the index needs no
retraining and query by example (``--like``) keeps using the ASM embeddings.
A query is a linear scan over the N pairs' 26 probabilities (on AG test,
170k x 26 floats: milliseconds).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from pipeline.constants import (
    GROUPS,
    NUM_OBJECT_CLASSES,
    NUM_PREDICATES,
    OBJECT_CLASSES,
    PREDICATES,
    predicate_group,
    readable_predicate,
)
from pipeline.search.index import RelationIndex

TEMPERATURE = 0.02

# Phrasings for predicates whose name alone is not how people say it.
# Spatial predicates read from the object to the person, as AG annotates them.
PREDICATE_PHRASES: dict[str, tuple[str, ...]] = {
    "not_looking_at": (
        "a person not looking at a {object}",
        "a person looking away from a {object}",
    ),
    "unsure": ("a person who may or may not see a {object}",),
    "above": ("a {object} above a person",),
    "beneath": ("a {object} beneath a person", "a {object} under a person"),
    "in_front_of": ("a {object} in front of a person",),
    "behind": ("a {object} behind a person",),
    "on_the_side_of": ("a {object} beside a person", "a {object} next to a person"),
    "in": ("a person in a {object}",),
    "have_it_on_the_back": ("a person with a {object} on the back",),
    "not_contacting": ("a person not touching a {object}",),
    "other_relationship": ("a person doing something with a {object}",),
}


def predicate_phrases(predicate: str) -> tuple[str, ...]:
    """Templates (with ``{object}``) that say predicate ``predicate``."""
    return PREDICATE_PHRASES.get(
        predicate, (f"a person {readable_predicate(predicate)} a {{object}}",)
    )


@dataclass(frozen=True)
class RelationPrompts:
    """Row j of the encoded prompts reads relation (``object_class[j]``, ``predicate[j]``)."""

    texts: list[str]
    object_class: np.ndarray  # [M] AG object index (1..36)
    predicate: np.ndarray  # [M] global predicate index


def relation_prompts() -> RelationPrompts:
    """Every (object class, predicate, object name, phrasing) prompt; person and background are no objects."""
    texts, objects, predicates = [], [], []
    for c in range(2, NUM_OBJECT_CLASSES):
        for name in OBJECT_CLASSES[c].split("/"):
            for p, predicate in enumerate(PREDICATES):
                for phrase in predicate_phrases(predicate):
                    texts.append(phrase.format(object=name))
                    objects.append(c)
                    predicates.append(p)
    return RelationPrompts(
        texts, np.array(objects, dtype=np.int64), np.array(predicates, dtype=np.int64)
    )


def relation_weights(
    query: np.ndarray,
    prompts: RelationPrompts,
    prompt_vectors: np.ndarray,
    temperature: float = TEMPERATURE,
) -> np.ndarray:
    """[Q, 37, 26] weights w(o, p) of each unit query vector (rows of ``query``) over the relations."""
    similarity = np.atleast_2d(query) @ prompt_vectors.T  # [Q, M]
    best = np.full((similarity.shape[0], NUM_OBJECT_CLASSES, NUM_PREDICATES), -np.inf)
    for q in range(similarity.shape[0]):
        np.maximum.at(best[q], (prompts.object_class, prompts.predicate), similarity[q])
    logits = best / temperature
    logits -= logits.max(axis=(1, 2), keepdims=True)
    weights = np.exp(logits)
    return weights / weights.sum(axis=(1, 2), keepdims=True)


def predicate_probabilities(table: pl.DataFrame) -> np.ndarray:
    """[N, 26] predicted probability of every predicate for each pair of a predictions-format table."""
    parts = [
        np.asarray(table[group].to_list(), dtype=np.float64).reshape(len(table), -1)
        for group in GROUPS
    ]
    return np.concatenate(parts, axis=1)


@dataclass(frozen=True)
class RelationScorer:
    """What ranking needs of an index, computed once: labels, detector scores, predicate probabilities."""

    labels: np.ndarray  # [N]
    object_scores: np.ndarray  # [N]
    probabilities: np.ndarray  # [N, 26]

    @classmethod
    def of(cls, index: RelationIndex) -> RelationScorer:
        table = index.table
        return cls(
            table["object_label"].to_numpy().astype(np.int64),
            table["object_score"].to_numpy().astype(np.float64),
            predicate_probabilities(table),
        )

    def scores(self, weights: np.ndarray) -> np.ndarray:
        """[N] score_i = s_i * sum_p w(o_i, p) P_i(p) for one query's [37, 26] weights."""
        return self.object_scores * np.einsum("np,np->n", weights[self.labels], self.probabilities)

    def top(self, weights: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Scores and rows of the k best pairs, best first (ties: lower row first)."""
        scores = self.scores(weights)
        k = min(k, len(scores))
        rows = np.lexsort((np.arange(len(scores)), -scores))[:k]
        return scores[rows], rows


def best_reading(weights: np.ndarray) -> tuple[int, int]:
    """(object class, predicate) with the largest weight."""
    c, p = np.unravel_index(int(np.argmax(weights)), weights.shape)
    return int(c), int(p)


def reading_text(weights: np.ndarray) -> str:
    """'person drinking from cup/glass/bottle (0.93)': the best reading and its weight."""
    c, p = best_reading(weights)
    group = predicate_group(p)
    words = readable_predicate(PREDICATES[p])
    phrase = (
        f"{OBJECT_CLASSES[c]} {words} person"
        if group == "spatial"
        else f"person {words} {OBJECT_CLASSES[c]}"
    )
    return f"{phrase} ({weights[c, p]:.2f})"
