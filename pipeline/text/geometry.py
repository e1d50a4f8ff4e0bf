"""How far apart the prompts of one object are: the text geometry ASM works in.

ASM compares a relation embedding with the prompts of its object class, so
what separates predicates is the spread of those prompts. The measure is the
mean within-object prompt cosine over the real object classes O (AG's 35,
background and person excluded), for the predicates of a group G:

    cos_within(G) = mean_{c in O} mean_{p < q in G} <z_cp, z_cq>

(z unit vectors). Near 1, the prompts of an object are nearly one point and
ASM's logits are nearly flat across the group; lower is more separable.
"""

from __future__ import annotations

import numpy as np

from pipeline.constants import CONTACTING, GROUPS, NUM_PREDICATES, PERSON_INDEX

FIRST_OBJECT_CLASS = PERSON_INDEX + 1


def mean_pairwise_cosine(vectors: np.ndarray) -> float:
    """Mean of <u_p, u_q> over the pairs p < q of the rows of ``vectors`` [P, D] (normalised here)."""
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=-1, keepdims=True), 1e-12)
    gram = unit @ unit.T
    upper = np.triu_indices(len(unit), k=1)
    return float(gram[upper].mean())


def within_object_cosine(prompt_embeddings: np.ndarray, predicates: slice = CONTACTING) -> float:
    """cos_within over the predicates ``predicates`` of a [37, 26, D] prompt table (module docstring)."""
    if prompt_embeddings.ndim != 3 or prompt_embeddings.shape[1] != NUM_PREDICATES:
        raise ValueError(f"expected per-object prompt embeddings [C, {NUM_PREDICATES}, D], got {prompt_embeddings.shape}")
    per_object = [mean_pairwise_cosine(table[predicates]) for table in prompt_embeddings[FIRST_OBJECT_CLASS:]]
    return float(np.mean(per_object))


def prompt_geometry(prompt_embeddings: np.ndarray) -> dict[str, float]:
    """cos_within for each group and for all 26 predicates; per-predicate prompts give the plain mean cosine."""
    groups = {**GROUPS, "all": slice(0, NUM_PREDICATES)}
    if prompt_embeddings.ndim == 2:  # one prompt per predicate: no object to be within
        return {name: mean_pairwise_cosine(prompt_embeddings[span]) for name, span in groups.items()}
    return {name: within_object_cosine(prompt_embeddings, span) for name, span in groups.items()}
