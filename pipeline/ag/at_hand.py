"""The at-hand pairs: the contact classes that only motion separates.

An at-hand pair is an object of a hand-held class whose only contacting
label is one of :data:`AT_HAND_PREDICATES`. The synthetic generator draws
these four scripts with one and the same single-frame geometry (the object
at the hand) and different motion, and never puts a hand-held class far
from the person with ``not_contacting``, so on synthetic data the rule is
exact. On real AG it selects the pairs whose label is one of the four.
"""

from __future__ import annotations

import polars as pl

from pipeline.constants import OBJECT_INDEX, PREDICATE_INDEX

HAND_HELD: tuple[str, ...] = ("cup/glass/bottle", "phone/camera", "book", "paper/notebook", "food", "sandwich",
                              "medicine", "dish", "towel", "bag", "laptop", "box", "broom", "groceries", "pillow",
                              "vacuum")  # fmt: skip
AT_HAND_PREDICATES: tuple[str, ...] = ("holding", "carrying", "touching", "not_contacting")


def at_hand_pairs(objects: pl.DataFrame) -> pl.DataFrame:
    """Rows of an index objects table that are at-hand pairs, with a ``motion_class`` column (predicate index)."""
    classes = [OBJECT_INDEX[name] for name in HAND_HELD]
    predicates = [PREDICATE_INDEX[name] for name in AT_HAND_PREDICATES]
    return objects.filter(
        pl.col("object_class").is_in(classes)
        & (pl.col("contacting").list.len() == 1)
        & pl.col("contacting").list.first().is_in(predicates)
    ).with_columns(motion_class=pl.col("contacting").list.first())
