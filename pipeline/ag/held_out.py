"""Held-out (contacting predicate, object class) combinations of an index relations table.

ASM's compositional claim is about test triplets whose (predicate, object)
combination training never showed. The benchmark probe (P7: are there
enough of them?) and the evaluator's held-out recall both read them here, so
the two cannot drift apart. Which splits count as seen is the caller's:
the model trains on ``train`` only, while the generator keeps its held-out
combinations out of ``train`` and ``val`` alike.
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl


def held_out_triplets(
    relations: pl.DataFrame, split: str = "test", seen_splits: Sequence[str] = ("train",)
) -> pl.DataFrame:
    """The contacting rows of ``split`` whose (predicate, object_class) no split in ``seen_splits`` holds."""
    contacting = relations.filter(pl.col("group") == "contacting")
    seen = contacting.filter(pl.col("split").is_in(list(seen_splits))).select("predicate", "object_class").unique()
    return contacting.filter(pl.col("split") == split).join(seen, on=["predicate", "object_class"], how="anti")
