"""ASM text prompts: one per predicate, or one per (object class, predicate).

The paper's template is ``"a photo of a person {predicate} a {object}"`` with
human-readable phrases (``drinking_from`` -> "drinking from",
``cup/glass/bottle`` -> "cup"). Prompts for all 37 object indices are built
so the table can be indexed by a label directly; the background entry uses
the neutral word :data:`BACKGROUND_WORD`.
"""

from __future__ import annotations

from pipeline.constants import OBJECT_CLASSES, PREDICATES, readable_object, readable_predicate

BACKGROUND_WORD = "object"


def object_phrase(index: int) -> str:
    """The word that stands for object class ``index`` in a prompt ('cup' for cup/glass/bottle)."""
    return BACKGROUND_WORD if index == 0 else readable_object(OBJECT_CLASSES[index])


def class_name_text(index: int) -> str:
    """Text encoded for the label embedding of class ``index``: every alternative ('cup or glass or bottle')."""
    return "background" if index == 0 else " or ".join(OBJECT_CLASSES[index].split("/"))


def predicate_prompts(template: str) -> list[str]:
    """One prompt per predicate, in global predicate order (26)."""
    return [template.format(predicate=readable_predicate(p)) for p in PREDICATES]


def pair_prompts(template: str) -> list[list[str]]:
    """prompts[c][p]: the prompt of object class c (all 37 indices) and predicate p (26)."""
    return [
        [
            template.format(predicate=readable_predicate(p), object=object_phrase(c))
            for p in PREDICATES
        ]
        for c in range(len(OBJECT_CLASSES))
    ]


def class_name_texts() -> list[str]:
    """The 37 class-name texts used to initialise the model's label embeddings."""
    return [class_name_text(c) for c in range(len(OBJECT_CLASSES))]
