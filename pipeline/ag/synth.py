"""Synthetic Action Genome: the exact on-disk format, with something to learn.

The generator writes what a real AG download holds (both pickles with all
their keys, the raw class files with slash-less and underscore-less names,
``frame_list.txt`` and PNG frames), so every later stage runs the same code
path as on real AG.

Design, per MOSA component (docs/synthetic_benchmark.md has the reasoning):

* **appearance** — each object class has its own colour and shape, so a
  detector can learn classes; the person is a body + head whose eye dot
  shows the gaze direction (attention: ``looking_at`` when the object lies on
  the gaze side, ``unsure`` when the head is drawn without an eye).
* **geometry** — spatial predicates are computed from the drawn boxes and
  the drawing order (objects drawn before the person are ``behind`` it).
* **motion** — most videos hold one *at-hand* object whose script is drawn
  uniformly from the four motion scripts. In every one of them the object
  sits at the hand with the same single-frame offset distribution,
  ``R (cos psi, sin psi)`` with uniform psi, so a single frame cannot tell
  them apart; only who moves over time does:

  ===================  ===========  ===========  =========================
  script               person       object       offset to the hand
  ===================  ===========  ===========  =========================
  touching             still        still        constant
  holding              still        circles      psi advances per frame
  not_contacting       sways        still        psi advances per frame
  carrying             walks        with hand    constant
  ===================  ===========  ===========  =========================

  A still person carries a sub-pixel jitter, below ``motion.still_fraction``.
* **long tail** — the other contact scripts keep AG-like frequencies, but
  every tail script has enough videos (about 4% each) that the split below
  can put it in test.
* **splits** — the test videos are stratified by each video's rarest script,
  so test holds every predicate; a few (predicate, object) combinations
  (:data:`HELD_OUT_COMBOS`) never occur in train videos, so compositional
  generalisation (ASM) can be measured on them.
* **filters** — sparse frame numbers, some frames without a person box,
  some invisible objects, some 1-2 frame videos, some boxes of 16 px or less.

Everything is drawn from ``numpy`` generators seeded per video, so the
output is byte-identical for a fixed seed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from tqdm import tqdm

from pipeline.ag.at_hand import HAND_HELD
from pipeline.ag.layout import write_annotations
from pipeline.io import atomic_dir, disk_full_as_error
from pipeline.params import SynthParams

# class -> (RGB fill, shape, (min size, max size) in px as (w, h) ranges)
APPEARANCE: dict[str, tuple[tuple[int, int, int], str, tuple[int, int], tuple[int, int]]] = {
    "cup/glass/bottle": ((220, 40, 40), "rect", (10, 16), (16, 24)),
    "phone/camera": ((30, 30, 30), "rect", (12, 18), (10, 14)),
    "book": ((40, 120, 220), "rect", (20, 28), (16, 22)),
    "paper/notebook": ((245, 245, 245), "rect", (24, 32), (18, 24)),
    "food": ((240, 170, 30), "ellipse", (16, 24), (14, 20)),
    "sandwich": ((200, 150, 90), "triangle", (20, 28), (14, 20)),
    "medicine": ((160, 40, 200), "ellipse", (8, 14), (12, 18)),
    "dish": ((200, 200, 230), "ellipse", (24, 32), (10, 14)),
    "towel": ((40, 200, 200), "rect", (24, 32), (14, 20)),
    "bag": ((120, 70, 20), "trapezoid", (22, 30), (22, 30)),
    "shoe": ((90, 50, 50), "ellipse", (16, 22), (8, 12)),
    "clothes": ((230, 120, 180), "rect", (26, 34), (30, 40)),
    "blanket": ((150, 200, 90), "rect", (46, 60), (40, 52)),
    "laptop": ((130, 130, 140), "trapezoid", (28, 36), (18, 24)),
    "chair": ((170, 110, 60), "chair", (40, 50), (44, 56)),
    "sofa/couch": ((90, 60, 160), "sofa", (80, 100), (44, 56)),
    "bed": ((250, 220, 200), "bed", (110, 140), (40, 50)),
    "table": ((110, 80, 50), "table", (50, 70), (34, 44)),
    "floor": ((150, 150, 120), "rect", (200, 240), (16, 22)),
    "doorknob": ((230, 200, 40), "ellipse", (10, 14), (10, 14)),
    "television": ((20, 20, 90), "rect", (50, 64), (34, 44)),
}


# The at-hand motion scripts: same single-frame geometry, different motion.
# "not_contacting_hand" is annotated as not_contacting.
MOTION_SCRIPTS = ("holding", "carrying", "touching", "not_contacting_hand")
# The person's hand holds at most one object per video: with these shares a
# motion script (uniform over MOTION_SCRIPTS) or a tail hand script (uniform
# over HAND_TAIL_SCRIPTS); otherwise the hand is free.
AT_HAND_SHARE = 0.7
HAND_TAIL_SHARE = 0.16
HAND_TAIL_SCRIPTS = ("other_relationship", "wiping", "writing_on", "twisting")
# Radius (px) of the circle the at-hand object's offset from its rest position lies on.
AT_HAND_RADIUS = 8.0
# angular speed (rad per frame number) of the holding circle and of the person's sway:
# below 2 pi / 29 (the longest frame gap), so no sampled gap aliases to a still pair
MOTION_FREQUENCY = 0.2
# px amplitude of a still person's jitter: far below the default still threshold (about 1.3 px)
STILL_JITTER = 0.1

# Other contact scripts -> (weight, allowed classes), AG-like long tail. Far
# not_contacting objects are never hand-held classes, so a pair with a
# hand-held class and one of AT_HAND_PREDICATES is always an at-hand pair.
SCRIPTS: dict[str, tuple[float, tuple[str, ...]]] = {
    "not_contacting": (10.0, ("television", "chair", "table", "doorknob")),
    "sitting_on": (9.0, ("chair", "sofa/couch")),
    "standing_on": (6.0, ("floor",)),
    "wearing": (4.0, ("clothes", "shoe")),
    "lying_on": (3.0, ("bed", "sofa/couch")),
    "leaning_on": (3.0, ("table",)),
    "eating": (2.0, ("food", "sandwich")),
    "drinking_from": (2.0, ("cup/glass/bottle",)),
    "covered_by": (1.5, ("blanket",)),
    "have_it_on_the_back": (1.5, ("bag",)),
    # hand scripts: drawn only through the hand slot (see HAND_TAIL_SHARE)
    "wiping": (0.0, ("towel",)),
    "other_relationship": (0.0, HAND_HELD),
    "writing_on": (0.0, ("paper/notebook",)),
    "twisting": (0.0, ("doorknob",)),
}
# Scripts that put their object at the same place on the person: the seat
# under the body (sitting_on, lying_on) and the mouth (eating, drinking_from).
# A video holds at most one script of each group. Two of them drew two
# objects on one spot, and the later-painted one hid the other: a sofa hid a
# bed the person was "lying on" (0.16 of the bed's box showed; visibility
# probe, tests/test_synth_visibility.py).
SHARED_SPOTS: tuple[frozenset[str], ...] = (
    frozenset({"sitting_on", "lying_on"}),
    frozenset({"eating", "drinking_from"}),
)
# (contacting predicate, object class) pairs that no train video holds.
HELD_OUT_COMBOS: tuple[tuple[str, str], ...] = (
    ("holding", "laptop"),
    ("carrying", "book"),
    ("touching", "cup/glass/bottle"),
    ("not_contacting", "phone/camera"),
)

# the class that is the ground: painted before every other object
GROUND = "floor"
# px width of the straps drawn over the body for a bag worn on the back
STRAP_WIDTH = 4
PERSON_COLOUR = (40, 60, 120)
SKIN = (235, 190, 150)


def _predicate_of(script: str) -> str:
    return "not_contacting" if script == "not_contacting_hand" else script


@dataclass(frozen=True)
class VideoPlan:
    """What a video shows, drawn before its split is known (the split is stratified on it)."""

    n_frames: int
    scripts: tuple[str, ...]  # one contact script per object slot
    class_choices: tuple[float, ...]  # uniform draws that pick each slot's object class


def plan_video(seed: int, index: int, params: SynthParams) -> VideoPlan:
    rng = np.random.default_rng([seed, index, 1])
    n_frames = int(rng.integers(params.min_frames, params.max_frames + 1))
    scripts: list[str] = []
    hand = rng.random()
    if hand < AT_HAND_SHARE:
        scripts.append(MOTION_SCRIPTS[int(rng.integers(len(MOTION_SCRIPTS)))])
    elif hand < AT_HAND_SHARE + HAND_TAIL_SHARE:
        scripts.append(HAND_TAIL_SCRIPTS[int(rng.integers(len(HAND_TAIL_SCRIPTS)))])
    names = list(SCRIPTS)
    weights = np.array([SCRIPTS[name][0] for name in names])
    n_others = int(rng.choice([0, 1, 2, 3], p=[0.3, 0.35, 0.25, 0.1])) + (0 if scripts else 1)
    for _ in range(n_others):
        script = names[int(rng.choice(len(names), p=weights / weights.sum()))]
        if "carrying" in scripts and script != "not_contacting":
            continue  # a walking person cannot also sit, lie or lean
        if any(script in spot and spot.intersection(scripts) for spot in SHARED_SPOTS):
            continue  # that spot on the person is taken
        scripts.append(script)
    draws = tuple(float(x) for x in rng.random(len(scripts)))
    return VideoPlan(n_frames, tuple(scripts), draws)


def _choose_classes(plan: VideoPlan, split: str) -> dict[str, str]:
    """Object class per slot: a slot whose class is taken moves to the next free one."""
    chosen: dict[str, str] = {}
    for script, draw in zip(plan.scripts, plan.class_choices, strict=True):
        allowed = HAND_HELD if script in MOTION_SCRIPTS else SCRIPTS[script][1]
        if split == "train":
            allowed = tuple(c for c in allowed if (_predicate_of(script), c) not in HELD_OUT_COMBOS)
        start = int(draw * len(allowed))
        for step in range(len(allowed)):
            name = allowed[(start + step) % len(allowed)]
            if name not in chosen:
                chosen[name] = script
                break
    return chosen


def stratified_test_videos(plans: list[VideoPlan], test_fraction: float, seed: int) -> set[int]:
    """Indices of the test videos: each stratum (a video's rarest script) split by ``test_fraction``.

    Videos with fewer than 3 frames are dropped by the index, so they form a
    stratum of their own and never decide whether a script reaches test.
    """
    counts: dict[str, int] = {}
    for plan in plans:
        for script in set(plan.scripts):
            counts[script] = counts.get(script, 0) + 1
    strata: dict[str, list[int]] = {}
    for index, plan in enumerate(plans):
        key = (
            "short"
            if plan.n_frames < 3
            else min(plan.scripts, key=lambda s: (counts[s], s), default="none")
        )
        strata.setdefault(key, []).append(index)
    rng = np.random.default_rng([seed, 999])
    test: set[int] = set()
    for key in sorted(strata):
        members = [strata[key][i] for i in rng.permutation(len(strata[key]))]
        n_test = int(round(test_fraction * len(members)))
        if len(members) >= 2:
            n_test = min(max(n_test, 1), len(members) - 1)
        test.update(members[:n_test])
    return test


@dataclass
class Placed:
    """One object instance's state in one frame."""

    name: str
    box: tuple[float, float, float, float]  # xyxy
    in_front: bool
    visible: bool
    contacting: list[str]
    angle: float = 0.0

    @property
    def area(self) -> float:
        x1, y1, x2, y2 = self.box
        return (x2 - x1) * (y2 - y1)


class _Video:
    """Scripts one video: person trajectory, objects and their relation scripts."""

    def __init__(
        self, rng: np.random.Generator, params: SynthParams, name: str, plan: VideoPlan, split: str
    ):
        self.rng, self.params, self.name, self.split = rng, params, name, split
        self.width, self.height = params.width, params.height
        n_frames = plan.n_frames
        gaps = rng.integers(3, 30, size=n_frames)
        self.frame_numbers = (int(rng.integers(1, 60)) + np.cumsum(gaps) - gaps[0]).tolist()
        self.person_w = float(rng.uniform(26, 34))
        self.person_h = float(rng.uniform(80, 100))
        self.side = 1 if rng.random() < 0.5 else -1  # which hand holds things
        self.gaze = 1 if rng.random() < 0.5 else -1
        self.scripts = _choose_classes(plan, split)
        moving = "carrying" in self.scripts.values()
        self.swaying = "not_contacting_hand" in self.scripts.values()
        speed = float(rng.uniform(0.45, 0.7)) if moving else 0.0
        self.velocity = speed * (1 if rng.random() < 0.5 else -1)
        span = (self.frame_numbers[-1] - self.frame_numbers[0]) * abs(self.velocity)
        margin = 40 + span / 2
        cx_lo, cx_hi = margin, self.width - margin
        self.person_x0 = float(rng.uniform(min(cx_lo, self.width / 2), max(cx_hi, self.width / 2)))
        self.person_x0 -= self.velocity * (self.frame_numbers[-1] - self.frame_numbers[0]) / 2
        self.person_top = float(rng.uniform(35, self.height - self.person_h - 22))
        self.phase = float(rng.uniform(0, 2 * math.pi))
        # sense of rotation of the at-hand circle (holding) or of the sway (not_contacting)
        self.turn = 1 if rng.random() < 0.5 else -1
        self.anchors = {name: self._anchor(name, script) for name, script in self.scripts.items()}

    def _size(self, name: str) -> tuple[float, float]:
        _, _, w_range, h_range = APPEARANCE[name]
        return float(self.rng.uniform(*w_range)), float(self.rng.uniform(*h_range))

    def _anchor(self, name: str, script: str) -> dict:
        w, h = self._size(name)
        return {"w": w, "h": h, "far_x": float(self.rng.uniform(0.1, 0.9)), "far_y": float(self.rng.uniform(0.05, 0.35)),
                "behind": bool(self.rng.random() < 0.5)}  # fmt: skip

    def at_hand_offset(self, frame_number: int, moving: bool) -> tuple[float, float]:
        """Offset of an at-hand object from its rest position, R (cos psi, sin psi): psi advances only when ``moving``."""
        psi = self.phase + (self.turn * MOTION_FREQUENCY * frame_number if moving else 0.0)
        return AT_HAND_RADIUS * math.cos(psi), AT_HAND_RADIUS * math.sin(psi)

    def _person_shift(self, frame_number: int) -> tuple[float, float]:
        dt = frame_number - self.frame_numbers[0]
        if self.velocity:
            return self.velocity * dt, 0.0
        if self.swaying:
            # the person moves so that the still object's offset to the hand follows at_hand_offset
            ox, oy = self.at_hand_offset(frame_number, moving=True)
            rx, ry = self.at_hand_offset(self.frame_numbers[0], moving=True)
            return -(ox - rx), -(oy - ry)
        return STILL_JITTER * math.sin(0.3 * frame_number), 0.0

    def person_box(self, frame_number: int) -> tuple[float, float, float, float]:
        shift_x, shift_y = self._person_shift(frame_number)
        x1 = self.person_x0 - self.person_w / 2 + shift_x
        top = self.person_top + shift_y
        return (x1, top, x1 + self.person_w, top + self.person_h)

    def hand(self, person: tuple[float, float, float, float]) -> tuple[float, float]:
        x1, y1, x2, y2 = person
        return ((x2 if self.side > 0 else x1), y1 + 0.5 * (y2 - y1))

    def place(self, name: str, frame_number: int, person) -> Placed:
        script, a = self.scripts[name], self.anchors[name]
        w, h = a["w"], a["h"]
        x1, y1, x2, y2 = person
        pw, ph = x2 - x1, y2 - y1
        hx, hy = self.hand(person)
        in_front = True
        contacting = [_predicate_of(script)]
        angle = 0.0
        if script in MOTION_SCRIPTS:
            if script == "not_contacting_hand":
                # the object stays where the hand was at the first frame; the person sways
                hx, hy = self.hand(self.person_box(self.frame_numbers[0]))
                ox, oy = self.at_hand_offset(self.frame_numbers[0], moving=True)
            else:
                ox, oy = self.at_hand_offset(frame_number, moving=script == "holding")
            cx, cy = hx + self.side * w * 0.3 + ox, hy + oy
        elif script == "other_relationship":
            cx, cy = hx + self.side * w * 0.3, hy - 0.3 * ph
        elif script in ("drinking_from", "eating"):
            cx, cy = x1 + pw / 2 + self.gaze * pw * 0.45, y1 + 0.1 * ph
            contacting = [script, "holding"] if script == "drinking_from" else [script]
        elif script == "wiping":
            cx, cy = (
                hx + self.side * (w * 0.3 + 8.0 * math.sin(0.9 * frame_number + self.phase)),
                hy + 0.25 * ph,
            )
        elif script == "writing_on":
            cx, cy = hx + self.side * w * 0.2, hy + 0.2 * ph
        elif script == "twisting":
            cx, cy = hx + self.side * w * 0.4, hy - 0.05 * ph
            angle = 0.7 * frame_number + self.phase
        elif script == "have_it_on_the_back":
            # behind the body; a bag narrower than the body lies inside its box ("in")
            cx, cy = x1 + pw / 2 - self.gaze * pw * 0.1, y1 + 0.35 * ph
            in_front = False
        elif script == "wearing":
            if name == "shoe":
                cx, cy = x1 + pw / 2, y2 - h / 2
            else:
                w, h = pw * 1.1, ph * 0.4
                cx, cy = x1 + pw / 2, y1 + 0.42 * ph
        elif script == "covered_by":
            w, h = pw * 1.8, ph * 0.55
            cx, cy = x1 + pw / 2, y2 - h / 2
        elif script == "sitting_on":
            cx, cy = x1 + pw / 2, y1 + 0.75 * ph
            in_front = False
        elif script == "lying_on":
            cx, cy = x1 + pw / 2, y2 - h / 2 + 4
            in_front = False
        elif script == "standing_on":
            w = min(w, self.width - 2.0)
            cx, cy = self.width / 2, min(y2 + h / 2 - 3, self.height - h / 2 - 1)
            in_front = False
        elif script == "leaning_on":
            cx, cy = (x2 + w / 2 - 2) if self.side > 0 else (x1 - w / 2 + 2), y1 + 0.7 * ph
        else:  # not_contacting, far from the person
            cx = a["far_x"] * self.width
            cy = a["far_y"] * self.height + h / 2
            in_front = not a["behind"]
        box = _clip_box((cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2), self.width, self.height)
        return Placed(name, box, in_front, True, contacting, angle)


def _clip_box(box, width: int, height: int) -> tuple[float, float, float, float]:
    x1, y1, x2, y2 = box
    x1, x2 = max(0.0, x1), min(float(width - 1), x2)
    y1, y2 = max(0.0, y1), min(float(height - 1), y2)
    if x2 - x1 < 4:
        x1, x2 = (x1, x1 + 4) if x1 + 4 < width else (x2 - 4, x2)
    if y2 - y1 < 4:
        y1, y2 = (y1, y1 + 4) if y1 + 4 < height else (y2 - 4, y2)
    return (round(x1, 1), round(y1, 1), round(x2, 1), round(y2, 1))


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


def _draw_object(draw: ImageDraw.ImageDraw, placed: Placed) -> None:
    colour, shape, _, _ = APPEARANCE[placed.name]
    x1, y1, x2, y2 = placed.box
    outline = tuple(max(0, c - 70) for c in colour)
    if shape == "rect":
        draw.rectangle((x1, y1, x2, y2), fill=colour, outline=outline, width=2)
    elif shape == "ellipse":
        if placed.angle:
            cx, cy, r = (x1 + x2) / 2, (y1 + y2) / 2, (x2 - x1) / 2
            draw.ellipse((x1, y1, x2, y2), fill=colour, outline=outline)
            dx, dy = r * math.cos(placed.angle), r * math.sin(placed.angle)
            draw.line((cx - dx, cy - dy, cx + dx, cy + dy), fill=(0, 0, 0), width=2)
        else:
            draw.ellipse((x1, y1, x2, y2), fill=colour, outline=outline, width=2)
    elif shape == "triangle":
        draw.polygon([(x1, y2), (x2, y2), ((x1 + x2) / 2, y1)], fill=colour, outline=outline)
    elif shape == "trapezoid":
        inset = (x2 - x1) * 0.2
        draw.polygon(
            [(x1, y2), (x2, y2), (x2 - inset, y1), (x1 + inset, y1)], fill=colour, outline=outline
        )
    elif shape == "chair":
        draw.rectangle((x1, y1, x1 + (x2 - x1) * 0.25, y2), fill=colour)
        draw.rectangle((x1, y1 + (y2 - y1) * 0.5, x2, y1 + (y2 - y1) * 0.65), fill=colour)
        draw.rectangle((x2 - (x2 - x1) * 0.15, y1 + (y2 - y1) * 0.5, x2, y2), fill=colour)
    elif shape == "sofa":
        draw.rounded_rectangle((x1, y1, x2, y2), radius=8, fill=colour, outline=outline, width=3)
        draw.rectangle(
            (x1 + 8, y1 + (y2 - y1) * 0.45, x2 - 8, y2 - 6),
            fill=tuple(min(255, c + 50) for c in colour),
        )
    elif shape == "bed":
        draw.rectangle((x1, y1 + (y2 - y1) * 0.3, x2, y2), fill=colour, outline=outline, width=2)
        draw.rectangle((x1, y1, x1 + 10, y2), fill=outline)
    elif shape == "table":
        draw.rectangle((x1, y1, x2, y1 + (y2 - y1) * 0.2), fill=colour)
        draw.rectangle((x1 + 3, y1, x1 + 9, y2), fill=colour)
        draw.rectangle((x2 - 9, y1, x2 - 3, y2), fill=colour)


def _draw_straps(draw: ImageDraw.ImageDraw, placed: Placed) -> None:
    """The straps of a bag worn on the back, drawn over the body.

    The bag itself lies behind the body and inside its box, so without them
    98% of its pixels are hidden (probe of seed 0) and no detector can find
    it. The straps run down both sides of the bag's box and along its
    bottom, in the bag's colour, so they show where the bag is, as the straps
    and the bag's rim do on a real backpack.
    """
    colour, _, _, _ = APPEARANCE[placed.name]
    x1, y1, x2, y2 = placed.box
    side = STRAP_WIDTH - 1
    draw.rectangle((x1, y1, x1 + side, y2), fill=colour)
    draw.rectangle((x2 - side, y1, x2, y2), fill=colour)
    draw.rectangle((x1, y2 - side, x2, y2), fill=colour)


def paint_layers(
    placed: list[Placed], person, gaze: int, eye_visible: bool
) -> list[tuple[Placed | None, Callable[[ImageDraw.ImageDraw], None]]]:
    """What a frame draws, in paint order: (the object it belongs to or None for the person, painter).

    Objects behind the person first (the floor before the others), then the person, the objects in front
    (largest first) and the straps of a bag worn on the back, which go over
    the clothes. Later layers hide earlier ones; the visibility probe
    (tests/test_synth_visibility.py) measures what is left of each object.
    """
    shown = [item for item in placed if item.visible]
    # The floor is the ground the furniture stands on: painted before every
    # other object behind the person, never over a chair or sofa (script
    # order painted it over a chair or sofa in 25 frames of seed 0).
    behind = sorted((item for item in shown if not item.in_front), key=lambda item: item.name != GROUND)
    layers: list[tuple[Placed | None, Callable[[ImageDraw.ImageDraw], None]]] = [
        (item, partial(_draw_object, placed=item)) for item in behind
    ]
    layers.append((None, partial(_draw_person, box=person, gaze=gaze, eye_visible=eye_visible)))
    # Largest first, so a worn or covering object (clothes, blanket) never
    # hides the smaller object held in front of it.
    in_front = sorted((item for item in shown if item.in_front), key=lambda item: item.area, reverse=True)
    layers += [(item, partial(_draw_object, placed=item)) for item in in_front]
    layers += [
        (item, partial(_draw_straps, placed=item))
        for item in shown
        if "have_it_on_the_back" in item.contacting
    ]
    return layers


def _draw_person(draw: ImageDraw.ImageDraw, box, gaze: int, eye_visible: bool) -> None:
    x1, y1, x2, y2 = box
    head_r = (x2 - x1) * 0.32
    cx = (x1 + x2) / 2
    draw.rectangle((x1, y1 + 2 * head_r, x2, y2), fill=PERSON_COLOUR)
    draw.ellipse(
        (cx - head_r, y1, cx + head_r, y1 + 2 * head_r),
        fill=SKIN if eye_visible else (150, 150, 150),
    )
    if eye_visible:
        ex, ey = cx + gaze * head_r * 0.55, y1 + head_r * 0.9
        draw.ellipse((ex - 2.5, ey - 2.5, ex + 2.5, ey + 2.5), fill=(0, 0, 0))


def _background(rng: np.random.Generator, width: int, height: int) -> Image.Image:
    base = rng.integers(185, 235, size=3)
    noise = rng.integers(-8, 9, size=(height, width, 1))
    pixels = np.clip(base[None, None, :] + noise, 0, 255).astype(np.uint8)
    return Image.fromarray(pixels, "RGB")


def _video_name(index: int, seed: int) -> str:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    rng = np.random.default_rng([seed, index, 7])
    return (
        "S"
        + "".join(alphabet[i] for i in rng.integers(0, len(alphabet), size=4))
        + f"{index:03d}"
        + ".mp4"
    )


@dataclass
class ScriptedFrame:
    """One rendered frame with the state it was drawn from."""

    video: str
    frame_number: int
    person: tuple[float, float, float, float]
    eye_visible: bool
    placed: list[Placed]
    layers: list  # paint_layers(...) of this frame, in paint order
    image: Image.Image


def scripted_frames(
    params: SynthParams, index: int, split: str, plan: VideoPlan | None = None
) -> Iterator[tuple[ScriptedFrame, np.random.Generator, _Video]]:
    """Render one video frame by frame; yields (frame, the video's generator, the video).

    The caller draws the rest of a frame's annotation from the same
    generator, in order, so the output stays byte-identical for a seed.
    """
    rng = np.random.default_rng([params.seed, index])
    name = _video_name(index, params.seed)
    plan = plan if plan is not None else plan_video(params.seed, index, params)
    video = _Video(rng, params, name, plan, split)
    # 1- and 2-frame videos and person-less frames come from the draws below.
    for frame_number in video.frame_numbers:
        person = video.person_box(frame_number)
        eye_visible = rng.random() > 0.05
        placed = [video.place(obj, frame_number, person) for obj in video.scripts]
        for item in placed:
            if rng.random() < 0.06:
                item.visible = False
        image = _background(rng, params.width, params.height)
        draw = ImageDraw.Draw(image)
        layers = paint_layers(placed, person, video.gaze, eye_visible)
        for _, paint in layers:
            paint(draw)
        yield ScriptedFrame(name, frame_number, person, eye_visible, placed, layers, image), rng, video


def synthesize_video(params: SynthParams, index: int, split: str, plan: VideoPlan | None = None):
    """Frames (PIL images) and the two annotation dicts of one video."""
    images, person_ann, object_ann = {}, {}, {}
    for frame, rng, video in scripted_frames(params, index, split, plan):
        name, frame_number, person, eye_visible = frame.video, frame.frame_number, frame.person, frame.eye_visible
        key = f"{name}/{frame_number:06d}.png"
        images[key] = frame.image

        detected = rng.random() > 0.07
        box = (
            np.array([person], dtype=np.float32) if detected else np.zeros((0, 4), dtype=np.float32)
        )
        n = box.shape[0]
        person_ann[key] = {
            "bbox": box,
            "bbox_score": np.full((n,), 0.99, dtype=np.float32),
            "bbox_size": (params.width, params.height),
            "bbox_mode": "xyxy",
            "keypoints": np.zeros((n, 17, 3), dtype=np.float32),
            "keypoints_logits": np.zeros((n, 17), dtype=np.float32),
        }
        objects = []
        for item in frame.placed:
            x1, y1, x2, y2 = item.box
            entry = {
                "class": item.name,
                "bbox": (x1, y1, round(x2 - x1, 1), round(y2 - y1, 1)) if item.visible else None,
                "attention_relationship": [
                    attention_label(item.box, person, video.gaze, eye_visible)
                ]
                if item.visible
                else None,
                "spatial_relationship": spatial_labels(item.box, person, item.in_front)
                if item.visible
                else None,
                "contacting_relationship": list(item.contacting) if item.visible else None,
                "metadata": {
                    "tag": f"{name}/{item.name.replace('/', '_')}/{frame_number:06d}",
                    "set": split,
                },
                "visible": item.visible,
            }
            objects.append(entry)
        object_ann[key] = objects
    return images, person_ann, object_ann


def planned_videos(params: SynthParams) -> list[tuple[int, str, VideoPlan]]:
    """(index, split, plan) of every video, in index order; test videos as :func:`stratified_test_videos` picks them."""
    plans = [plan_video(params.seed, index, params) for index in range(params.videos)]
    test_ids = stratified_test_videos(plans, params.test_fraction, params.seed)
    return [(index, "test" if index in test_ids else "train", plan) for index, plan in enumerate(plans)]


def write_synthetic_ag(out_dir: str | Path, params: SynthParams, progress: bool = True) -> dict:
    """Write a synthetic Action Genome root; return a small summary.

    The folder is assembled next to ``out_dir`` and renamed into place at the
    end, so an interrupted run never leaves a half-written dataset behind.
    On an error (a full disk included) the partial folder is removed and a
    previous ``out_dir`` is left as it was.
    """
    out_dir = Path(out_dir)
    written = {"bytes": 0, "videos": 0}

    def needed() -> int:
        # extrapolated from the videos written before the disk filled
        if written["videos"]:
            return int(written["bytes"] / written["videos"] * params.videos * 1.1)
        return params.videos * (params.min_frames + params.max_frames) // 2 * params.width * params.height

    with disk_full_as_error(out_dir, needed), atomic_dir(out_dir) as staging:
        return _write_into(staging, params, progress, written)


def _write_into(staging: Path, params: SynthParams, progress: bool, written: dict) -> dict:
    (staging / "annotations").mkdir(parents=True)
    videos = planned_videos(params)
    n_test = sum(split == "test" for _, split, _ in videos)

    person_all, object_all, frame_keys = {}, {}, []
    for index, split, plan in tqdm(videos, desc="synth videos", disable=not progress, unit="video"):
        images, person_ann, object_ann = synthesize_video(params, index, split, plan)
        for key, image in images.items():
            path = staging / "frames" / key
            path.parent.mkdir(parents=True, exist_ok=True)
            image.save(path, format="PNG", optimize=False, compress_level=6)
            written["bytes"] += path.stat().st_size
        written["videos"] += 1
        person_all.update(person_ann)
        object_all.update(object_ann)
        frame_keys.extend(images)

    write_annotations(staging, person_all, object_all, frame_keys)
    return {"videos": params.videos, "frames": len(frame_keys), "test_videos": n_test}
