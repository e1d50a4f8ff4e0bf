"""ASM text prompts: one per predicate, or one per (object class, predicate).

The paper's template is ``"a photo of a person {predicate} a {object}"`` with
human-readable phrases (``drinking_from`` -> "drinking from",
``cup/glass/bottle`` -> "cup"). Prompts for all 37 object indices are built
so the table can be indexed by a label directly; the background entry uses
the neutral word :data:`BACKGROUND_WORD`.

Wording (``text.predicate_wording``, ours). With the bare phrase, the prompts
of one object differ by a single word among eight, and a sentence encoder
places them almost on top of each other (MiniLM: mean cosine 0.82 between
the 17 contacting prompts of one object): ASM's cosine logits are then
nearly flat across predicates. ``described`` appends a short definition of
the predicate, :data:`PREDICATE_DESCRIPTIONS`, written to say what the body
does and never to name the object again, so most of each prompt's words
belong to its predicate:

    "a photo of a person holding a laptop: gripping it in the hand and lifting it up"
"""

from __future__ import annotations

from typing import Literal

from pipeline.constants import OBJECT_CLASSES, PREDICATES, readable_object, readable_predicate

BACKGROUND_WORD = "object"


def object_phrase(index: int) -> str:
    """The word that stands for object class ``index`` in a prompt ('cup' for cup/glass/bottle)."""
    return BACKGROUND_WORD if index == 0 else readable_object(OBJECT_CLASSES[index])


def class_name_text(index: int) -> str:
    """Text encoded for the label embedding of class ``index``: every alternative ('cup or glass or bottle')."""
    return "background" if index == 0 else " or ".join(OBJECT_CLASSES[index].split("/"))


# One definition per predicate: what the person's body does, without naming
# the object (the template already does), in distinct words per predicate.
# Spatial predicates describe the object relative to the person (AG writes
# them object -> person).
PREDICATE_DESCRIPTIONS: dict[str, str] = {
    "looking_at": "the eyes are turned towards it, watching it",
    "not_looking_at": "the gaze is directed elsewhere, away from it",
    "unsure": "it is unclear where the eyes are directed",
    "above": "it is located higher up, over the head",
    "beneath": "it is located lower down, under the body",
    "in_front_of": "it is located in front, between the body and the camera",
    "behind": "it is located behind the back, farther from the camera",
    "on_the_side_of": "it is located beside the body, to the left or right",
    "in": "it is enclosed inside, surrounded on all sides",
    "carrying": "walking around while the arms bear its weight and take it along",
    "covered_by": "lying underneath it while it spreads over the body like a sheet",
    "drinking_from": "raising it to the lips and swallowing a liquid",
    "eating": "chewing and swallowing it as a meal",
    "have_it_on_the_back": "strapped on behind the shoulders, resting against the back",
    "holding": "gripping it in the hand and lifting it up",
    "leaning_on": "tilting the body weight against it for support",
    "lying_on": "stretched out flat and horizontal on top of it, resting",
    "not_contacting": "no part of the body touches it, it stays at a distance",
    "other_relationship": "in contact with it in some other unusual way",
    "sitting_on": "seated on it, the bottom resting on its surface",
    "standing_on": "upright with both feet planted on it",
    "touching": "fingertips resting lightly on its surface without grasping",
    "twisting": "turning it round and round with a rotating wrist",
    "wearing": "dressed in it, covering part of the body as clothing",
    "wiping": "rubbing its surface with a cloth to clean it",
    "writing_on": "moving a pen across it to write words",
}
assert tuple(PREDICATE_DESCRIPTIONS) == PREDICATES

Wording = Literal["phrase", "described"]


def worded(prompt: str, predicate: str, wording: Wording) -> str:
    """``prompt`` as the template gives it, plus ``": <description>"`` under ``described`` wording."""
    return prompt if wording == "phrase" else f"{prompt}: {PREDICATE_DESCRIPTIONS[predicate]}"


def predicate_prompts(template: str, wording: Wording = "phrase") -> list[str]:
    """One prompt per predicate, in global predicate order (26)."""
    return [worded(template.format(predicate=readable_predicate(p)), p, wording) for p in PREDICATES]


def pair_prompts(template: str, wording: Wording = "phrase") -> list[list[str]]:
    """prompts[c][p]: the prompt of object class c (all 37 indices) and predicate p (26)."""
    return [
        [
            worded(template.format(predicate=readable_predicate(p), object=object_phrase(c)), p, wording)
            for p in PREDICATES
        ]
        for c in range(len(OBJECT_CLASSES))
    ]


def class_name_texts() -> list[str]:
    """The 37 class-name texts used to initialise the model's label embeddings."""
    return [class_name_text(c) for c in range(len(OBJECT_CLASSES))]
