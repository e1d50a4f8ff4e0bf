"""Attention and spatial labels of an object, derived from the drawn scene.

Spatial predicates come from the boxes and the paint side (an object painted
behind the person is ``behind`` it); attention from the gaze side of the
head (``unsure`` when the head is drawn without an eye).
"""

from __future__ import annotations


def _overlap(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def spatial_labels(obj: tuple, person: tuple, in_front: bool) -> list[str]:
    """Spatial predicates of the object relative to the person, from geometry and drawing order."""
    ox1, oy1, ox2, oy2 = obj
    px1, py1, px2, py2 = person
    labels = []
    if ox1 >= px1 - 2 and oy1 >= py1 - 2 and ox2 <= px2 + 2 and oy2 <= py2 + 2 and not in_front:
        labels.append("in")
    if oy2 <= py1 + 0.15 * (py2 - py1):
        labels.append("above")
    if oy1 >= py2 - 0.2 * (py2 - py1):
        labels.append("beneath")
    if _overlap(obj, person) and "in" not in labels:
        labels.append("in_front_of" if in_front else "behind")
    if ox2 <= px1 or ox1 >= px2:
        labels.append("on_the_side_of")
    return labels or ["in_front_of" if in_front else "behind"]


def attention_label(obj: tuple, person: tuple, gaze: int, eye_visible: bool) -> str:
    if not eye_visible:
        return "unsure"
    person_cx = (person[0] + person[2]) / 2
    obj_cx = (obj[0] + obj[2]) / 2
    return "looking_at" if (obj_cx - person_cx) * gaze > 0 else "not_looking_at"
