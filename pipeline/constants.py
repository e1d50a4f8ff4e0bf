"""Action Genome class lists, in the index order the reference code uses.

Object indices follow STTran: ``__background__`` is prepended, so the 36 raw
classes become 37 entries and ``person`` is 1. Predicate indices are global
(0..25); each predicate group is a contiguous slice.
"""

from __future__ import annotations

from typing import Literal, get_args

from pipeline.io import DataError

# The three AG evaluation settings; params, the CLI, the stages and the
# evaluator all check a mode against this one list.
Mode = Literal["predcls", "sgcls", "sgdet"]
MODES: tuple[str, ...] = get_args(Mode)

OBJECT_CLASSES: tuple[str, ...] = (
    "__background__", "person", "bag", "bed", "blanket", "book", "box", "broom",
    "chair", "closet/cabinet", "clothes", "cup/glass/bottle", "dish", "door",
    "doorknob", "doorway", "floor", "food", "groceries", "laptop", "light",
    "medicine", "mirror", "paper/notebook", "phone/camera", "picture", "pillow",
    "refrigerator", "sandwich", "shelf", "shoe", "sofa/couch", "table",
    "television", "towel", "vacuum", "window",
)  # fmt: skip
PERSON_INDEX = 1
NUM_OBJECT_CLASSES = len(OBJECT_CLASSES)  # 37 incl. background

PREDICATES: tuple[str, ...] = (
    # attention 0..2
    "looking_at", "not_looking_at", "unsure",
    # spatial 3..8
    "above", "beneath", "in_front_of", "behind", "on_the_side_of", "in",
    # contacting 9..25
    "carrying", "covered_by", "drinking_from", "eating", "have_it_on_the_back",
    "holding", "leaning_on", "lying_on", "not_contacting", "other_relationship",
    "sitting_on", "standing_on", "touching", "twisting", "wearing", "wiping",
    "writing_on",
)  # fmt: skip
NUM_PREDICATES = len(PREDICATES)  # 26

ATTENTION = slice(0, 3)
SPATIAL = slice(3, 9)
CONTACTING = slice(9, 26)
GROUPS: dict[str, slice] = {"attention": ATTENTION, "spatial": SPATIAL, "contacting": CONTACTING}
GROUP_SIZES: dict[str, int] = {g: s.stop - s.start for g, s in GROUPS.items()}

# The raw txt files drop '/' and '_'; the pickles use the fixed names.
RAW_OBJECT_FIXES: dict[str, str] = {
    "closetcabinet": "closet/cabinet",
    "cupglassbottle": "cup/glass/bottle",
    "papernotebook": "paper/notebook",
    "phonecamera": "phone/camera",
    "sofacouch": "sofa/couch",
}
RAW_PREDICATE_FIXES: dict[str, str] = {p.replace("_", ""): p for p in PREDICATES if "_" in p}

OBJECT_INDEX: dict[str, int] = {name: i for i, name in enumerate(OBJECT_CLASSES)}
PREDICATE_INDEX: dict[str, int] = {name: i for i, name in enumerate(PREDICATES)}


def predicate_group(predicate_index: int) -> str:
    """Name of the group ('attention', 'spatial', 'contacting') of a global predicate index."""
    for name, group_slice in GROUPS.items():
        if group_slice.start <= predicate_index < group_slice.stop:
            return name
    raise ValueError(f"predicate index {predicate_index} is outside 0..{NUM_PREDICATES - 1}")


def raw_object_name(name: str) -> str:
    """The form a class name takes in the raw object_classes.txt."""
    return name.replace("/", "")


def raw_predicate_name(name: str) -> str:
    """The form a predicate takes in the raw relationship_classes.txt."""
    return name.replace("_", "")


def readable_predicate(name: str) -> str:
    """'drinking_from' -> 'drinking from'."""
    return name.replace("_", " ")


def readable_object(name: str) -> str:
    """'cup/glass/bottle' -> 'cup' (the first alternative)."""
    return name.split("/")[0]


def check_mode(mode: str) -> str:
    """``mode`` if it is one of :data:`MODES`, else a one-line error naming the choices."""
    if mode not in MODES:
        raise DataError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
    return mode
