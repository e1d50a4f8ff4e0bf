"""Triplets of one predicted or ground-truth pair as (subject, predicate, object) words.

Predictions follow the evaluator's *with* constraint: the argmax of each
predicate group, so a pair always shows three triplets (attention,
spatial, contacting). Spatial relations point from the object to the
person, as Action Genome annotates them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pipeline.constants import GROUPS, OBJECT_CLASSES, PREDICATES, readable_object, readable_predicate


@dataclass(frozen=True)
class Triplet:
    subject: str
    predicate: int  # global predicate index
    object: str
    score: float | None = None  # None for ground truth

    @property
    def group(self) -> str:
        return next(name for name, span in GROUPS.items() if span.start <= self.predicate < span.stop)

    def text(self) -> str:
        words = f"{self.subject} {readable_predicate(PREDICATES[self.predicate])} {self.object}"
        return words if self.score is None else f"{words} ({self.score:.2f})"


def _oriented(predicate: int, object_name: str, score: float | None) -> Triplet:
    if GROUPS["spatial"].start <= predicate < GROUPS["spatial"].stop:
        return Triplet(object_name, predicate, "person", score)
    return Triplet("person", predicate, object_name, score)


def object_name(object_class: int) -> str:
    """Short display name of an AG object index ('cup' for cup/glass/bottle)."""
    return readable_object(OBJECT_CLASSES[int(object_class)])


def predicted_triplets(object_class: int, attention: Sequence[float], spatial: Sequence[float], contacting: Sequence[float]) -> list[Triplet]:
    """The best predicate of each group (with constraint), with its probability."""
    name = object_name(object_class)
    triplets = []
    for probs, span in ((attention, GROUPS["attention"]), (spatial, GROUPS["spatial"]), (contacting, GROUPS["contacting"])):
        probs = np.asarray(probs, dtype=np.float64)
        best = int(probs.argmax())
        triplets.append(_oriented(span.start + best, name, float(probs[best])))
    return triplets


def ground_truth_triplets(object_class: int, predicates: Sequence[int]) -> list[Triplet]:
    """Every annotated predicate of one object, in global predicate order."""
    name = object_name(object_class)
    return [_oriented(int(p), name, None) for p in sorted(predicates)]
