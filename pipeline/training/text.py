"""Read the text stage's cache: class-name and predicate-prompt embeddings."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from pipeline.constants import NUM_OBJECT_CLASSES, NUM_PREDICATES, OBJECT_CLASSES, PREDICATES
from pipeline.io import DataError, open_hdf5


@dataclass(frozen=True)
class TextEmbeddings:
    class_embeddings: torch.Tensor  # [37, D]
    prompt_embeddings: torch.Tensor  # [26, D] per predicate, or [37, 26, D] per (object class, predicate)


def _strings(values: np.ndarray) -> list[str]:
    return [v.decode() if isinstance(v, bytes) else str(v) for v in values]


def read_text_embeddings(path: str | Path) -> TextEmbeddings:
    """Embeddings from the text cache (layout in docs/schemas.md), shape-checked."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: text embeddings not found (run the text stage)")
    with open_hdf5(path, "text") as handle:
        for name in ("class_embeddings", "prompt_embeddings"):
            if name not in handle:
                raise DataError(f"{path}: no dataset '{name}'; rerun the text stage")
        classes = np.asarray(handle["class_embeddings"][()], dtype=np.float32)
        prompts = np.asarray(handle["prompt_embeddings"][()], dtype=np.float32)
        # The axes must follow this code's class and predicate order.
        for name, expected in (("object_classes", OBJECT_CLASSES), ("predicates", PREDICATES)):
            if name in handle and tuple(_strings(handle[name][()])) != expected:
                raise DataError(f"{path}: '{name}' is not in this code's order; rerun the text stage")
    dim = classes.shape[-1]
    if classes.shape != (NUM_OBJECT_CLASSES, dim):
        raise DataError(f"{path}: class_embeddings has shape {classes.shape}, expected ({NUM_OBJECT_CLASSES}, D)")
    if prompts.shape not in ((NUM_PREDICATES, dim), (NUM_OBJECT_CLASSES, NUM_PREDICATES, dim)):
        raise DataError(
            f"{path}: prompt_embeddings has shape {prompts.shape}, expected ({NUM_PREDICATES}, {dim}) "
            f"or ({NUM_OBJECT_CLASSES}, {NUM_PREDICATES}, {dim})"
        )
    return TextEmbeddings(torch.from_numpy(classes), torch.from_numpy(prompts))
