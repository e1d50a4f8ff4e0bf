"""Where everything is in every frame: the person, the objects and the camera.

The at-hand object rests at the hand with one single-frame offset
distribution for all four at-hand classes; what moves differs
(docs/synthetic_benchmark.md, section 2.2). Per video a speed s is drawn from
one shared range, and every moving body follows a *bounded walk*: it moves
at its speed along a line, reverses at the ends of its range, and stands
still on a random share of the frame steps (pauses):

===================  =====================  ==========================================
class                person                 object relative to the hand
===================  =====================  ==========================================
touching             still                  still (small partial moves)
holding              still                  walks along a line within 45 deg of vertical
not_contacting       walks along a line     still in the world
                     within 45 deg of
                     horizontal
carrying             walks (s + 0.15)       follows the hand, swings 0-3 px
===================  =====================  ==========================================

Holding and at-hand not_contacting have the same relative motion up to its
direction; that direction (lift versus step) is what MOSA's relative-motion
attributes can see. The camera shakes in every frame, and pans in
``plan.pans`` videos: every box of a frame then moves by the same offset, so
a still pair looks, pair by pair, like a carried object; only the frame's
other objects show that the camera moved (MIM's phenomenon, section 2.3).
All positions here are in scene coordinates; :attr:`VideoMotion.camera`
is the per-frame offset that painting and annotation add.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from pipeline.ag.synth.plan import MOTION_SCRIPTS, VideoPlan, choose_classes, predicate_of
from pipeline.params import SynthParams

# (w, h) size ranges in px per class; colours and shapes live in paint.py
SIZES: dict[str, tuple[tuple[int, int], tuple[int, int]]] = {
    "cup/glass/bottle": ((10, 16), (16, 24)), "phone/camera": ((12, 18), (10, 14)),
    "book": ((20, 28), (16, 22)), "paper/notebook": ((24, 32), (18, 24)), "food": ((16, 24), (14, 20)),
    "sandwich": ((20, 28), (14, 20)), "medicine": ((8, 14), (12, 18)), "dish": ((24, 32), (10, 14)),
    "towel": ((24, 32), (14, 20)), "bag": ((22, 30), (22, 30)), "shoe": ((16, 22), (8, 12)),
    "clothes": ((26, 34), (30, 40)), "blanket": ((46, 60), (40, 52)), "laptop": ((28, 36), (18, 24)),
    "chair": ((40, 50), (44, 56)), "sofa/couch": ((80, 100), (44, 56)), "bed": ((110, 140), (40, 50)),
    "table": ((50, 70), (34, 44)), "floor": ((200, 240), (16, 22)), "doorknob": ((10, 14), (10, 14)),
    "television": ((44, 56), (30, 38)), "box": ((20, 28), (18, 24)), "broom": ((8, 12), (40, 50)),
    "groceries": ((22, 30), (22, 28)), "pillow": ((24, 32), (14, 20)), "vacuum": ((16, 22), (30, 40)),
    "window": ((36, 48), (30, 40)), "picture": ((24, 34), (18, 26)), "light": ((14, 20), (14, 20)),
    "mirror": ((22, 30), (30, 40)), "shelf": ((40, 56), (12, 16)), "closet/cabinet": ((34, 44), (50, 64)),
    "refrigerator": ((34, 42), (60, 72)), "door": ((34, 42), (70, 84)), "doorway": ((36, 46), (72, 86)),
}  # fmt: skip

# Frame-number steps between sampled frames, [low, high): AG samples sparsely.
FRAME_GAP = (4, 13)
# One shared speed range (px per frame number) for every moving body, so no
# class is told by its speed alone; a walking person adds WALK_EXTRA.
SPEED_RANGE = (0.35, 0.8)
WALK_EXTRA = 0.15
PAUSE_PROBABILITY = 0.05  # a frame step on which the moving body stands still
# at-hand offsets lie within a disc of this radius (px) around the rest point
RADIUS_RANGE = (8.0, 16.0)
PARTIAL_MOVE_PROBABILITY = 0.1  # touching/carrying: a small adjustment on this share of steps
PARTIAL_MOVE_PX = (0.5, 2.0)
SWING_PX = (0.0, 3.0)  # carrying: the carried object swings with the gait
MAX_TILT = math.radians(45)  # holding moves within this of vertical, not_contacting within this of horizontal
PAN_SPEED = (0.2, 0.6)
PAN_RANGE = 25.0  # px: a pan reverses at +-this
PAN_TILT = math.radians(30)
SHAKE_SD = 0.25  # px, every frame, every box alike
PERSON_MARGIN = 70.0  # px: a person's base centre stays this far from the left/right edges
WALK_MARGIN = 40.0


@dataclass
class Placed:
    """One object instance's state in one frame (scene coordinates)."""

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


def bounded_walk(
    rng: np.random.Generator, frame_numbers: list[int], speed: float, low: float, high: float, pause: float
) -> np.ndarray:
    """Positions on [low, high] at each frame: speed x frame gap per step, reversing at the ends; paused steps stay."""
    span = high - low
    position = float(rng.uniform(low, high))
    direction = 1.0 if rng.random() < 0.5 else -1.0
    out = [position]
    for gap in np.diff(frame_numbers):
        if span > 0 and rng.random() >= pause:
            position += direction * speed * float(gap)
            while position > high or position < low:  # reflect at the ends
                position = 2 * high - position if position > high else 2 * low - position
                direction = -direction
        out.append(position)
    return np.asarray(out)


def _direction_within(rng: np.random.Generator, axis: float, tilt: float) -> tuple[float, float]:
    """A unit vector within ``tilt`` of the axis at angle ``axis`` (either sense)."""
    angle = axis + float(rng.uniform(-tilt, tilt)) + (math.pi if rng.random() < 0.5 else 0.0)
    return math.cos(angle), math.sin(angle)


def _partial_moves(rng: np.random.Generator, n: int, radius: float) -> np.ndarray:
    """[n, 2] cumulative small adjustments of a resting object, kept inside the disc."""
    offsets = np.zeros((n, 2))
    for t in range(1, n):
        offsets[t] = offsets[t - 1]
        if rng.random() < PARTIAL_MOVE_PROBABILITY:
            angle = rng.uniform(0, 2 * math.pi)
            offsets[t] += rng.uniform(*PARTIAL_MOVE_PX) * np.array([math.cos(angle), math.sin(angle)])
            norm = np.linalg.norm(offsets[t])
            if norm > radius:
                offsets[t] *= radius / norm
    return offsets


class VideoMotion:
    """Scripts one video: frame numbers, person trajectory, at-hand motion, camera, object placement."""

    def __init__(self, rng: np.random.Generator, params: SynthParams, plan: VideoPlan, split: str):
        self.rng, self.width, self.height = rng, params.width, params.height
        gaps = rng.integers(*FRAME_GAP, size=plan.n_frames)
        self.frame_numbers = (int(rng.integers(1, 60)) + np.cumsum(gaps) - gaps[0]).tolist()
        n = plan.n_frames
        self.person_w = float(rng.uniform(26, 34))
        self.person_h = float(rng.uniform(80, 100))
        self.side = 1 if rng.random() < 0.5 else -1  # which hand holds things
        self.gaze = 1 if rng.random() < 0.5 else -1
        self.scripts = choose_classes(plan, split)
        self.at_hand = next((s for s in self.scripts.values() if s in MOTION_SCRIPTS), None)
        speed = float(rng.uniform(*SPEED_RANGE))
        radius = float(rng.uniform(*RADIUS_RANGE))
        self.person_x0 = float(rng.uniform(PERSON_MARGIN, self.width - PERSON_MARGIN))
        self.person_top = float(rng.uniform(35, self.height - self.person_h - 22))

        # person shift [n, 2] and the at-hand object's offset from its rest point [n, 2]
        self.person_shift = np.zeros((n, 2))
        self.hand_offset = np.zeros((n, 2))
        rest = radius * math.sqrt(rng.random()) * np.array(_direction_within(rng, 0.0, math.pi))
        if self.at_hand == "carrying":
            walk = bounded_walk(rng, self.frame_numbers, speed + WALK_EXTRA, WALK_MARGIN, self.width - WALK_MARGIN,
                                PAUSE_PROBABILITY)  # fmt: skip
            self.person_shift[:, 0] = walk - self.person_x0
            swing = float(rng.uniform(*SWING_PX)) * np.sin(0.5 * np.asarray(self.frame_numbers))
            self.hand_offset = rest + _partial_moves(rng, n, radius)
            self.hand_offset[:, 0] += swing
        elif self.at_hand in ("holding", "not_contacting_hand"):
            axis = math.pi / 2 if self.at_hand == "holding" else 0.0
            along = np.array(_direction_within(rng, axis, MAX_TILT))
            line = bounded_walk(rng, self.frame_numbers, speed, -radius, radius, PAUSE_PROBABILITY)
            if self.at_hand == "holding":
                self.hand_offset = line[:, None] * along
            else:
                # the object stays put in the scene while the person steps along the line
                self.person_shift = line[:, None] * along
                self.hand_offset = -self.person_shift
        elif self.at_hand == "touching":
            self.hand_offset = rest + _partial_moves(rng, n, radius)

        self.camera = rng.normal(0.0, SHAKE_SD, size=(n, 2))
        if plan.pans:
            direction = np.array(_direction_within(rng, 0.0, PAN_TILT))
            pan = bounded_walk(rng, self.frame_numbers, float(rng.uniform(*PAN_SPEED)), -PAN_RANGE, PAN_RANGE, 0.0)
            self.camera += (pan - pan[0])[:, None] * direction
        self.phase = float(rng.uniform(0, 2 * math.pi))
        self.anchors = {name: self._anchor(name) for name in self.scripts}

    def _anchor(self, name: str) -> dict:
        w_range, h_range = SIZES[name]
        return {"w": float(self.rng.uniform(*w_range)), "h": float(self.rng.uniform(*h_range)),
                "far_x": float(self.rng.uniform(0.05, 0.95)), "far_y": float(self.rng.uniform(0.0, 0.3)),
                "behind": bool(self.rng.random() < 0.5)}  # fmt: skip

    def person_box(self, t: int) -> tuple[float, float, float, float]:
        """The person's box in frame ``t`` (index into frame_numbers), scene coordinates."""
        return shifted(self.base_person_box(), self.person_shift[t])

    def base_person_box(self) -> tuple[float, float, float, float]:
        """The person's box before any walk or step: where furniture and a still object rest."""
        x1 = self.person_x0 - self.person_w / 2
        return (x1, self.person_top, x1 + self.person_w, self.person_top + self.person_h)

    def hand(self, person: tuple[float, float, float, float]) -> tuple[float, float]:
        x1, y1, x2, y2 = person
        return ((x2 if self.side > 0 else x1), y1 + 0.5 * (y2 - y1))

    def place(self, name: str, t: int) -> Placed:
        """Object ``name`` in frame ``t``: box, paint side and contacting labels."""
        script, a = self.scripts[name], self.anchors[name]
        frame_number = self.frame_numbers[t]
        w, h = a["w"], a["h"]
        person = self.person_box(t)
        # furniture stays where the person started; what the person wears or holds moves with them
        x1, y1, x2, y2 = (
            self.base_person_box() if script in ("sitting_on", "lying_on", "leaning_on") else person
        )
        pw, ph = x2 - x1, y2 - y1
        hx, hy = self.hand(person)
        in_front = True
        contacting = [predicate_of(script)]
        angle = 0.0
        if script in MOTION_SCRIPTS:
            if script == "not_contacting_hand":
                # still in the scene at the rest point of the unshifted hand; the person steps around it
                hx, hy = self.hand(self.base_person_box())
                ox, oy = 0.0, 0.0
            else:
                ox, oy = self.hand_offset[t]
            cx, cy = hx + self.side * w * 0.3 + ox, hy + oy
        elif script == "other_relationship":
            cx, cy = hx + self.side * w * 0.3, hy - 0.3 * ph
        elif script in ("drinking_from", "eating"):
            cx, cy = x1 + pw / 2 + self.gaze * pw * 0.45, y1 + 0.1 * ph
            contacting = [script, "holding"] if script == "drinking_from" else [script]
        elif script == "wiping":
            cx, cy = hx + self.side * (w * 0.3 + 8.0 * math.sin(0.9 * frame_number + self.phase)), hy + 0.25 * ph
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
        else:  # background: not_contacting, far from the person
            cx = a["far_x"] * self.width
            cy = a["far_y"] * self.height + h / 2
            in_front = not a["behind"]
        return Placed(name, (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2), in_front, True, contacting, angle)


def clip_box(box, width: int, height: int) -> tuple[float, float, float, float]:
    """A box clipped to the image, at least 4 px wide and high, rounded to 0.1 px."""
    x1, y1, x2, y2 = box
    x1, x2 = max(0.0, x1), min(float(width - 1), x2)
    y1, y2 = max(0.0, y1), min(float(height - 1), y2)
    if x2 - x1 < 4:
        x1, x2 = (x1, x1 + 4) if x1 + 4 < width else (x2 - 4, x2)
    if y2 - y1 < 4:
        y1, y2 = (y1, y1 + 4) if y1 + 4 < height else (y2 - 4, y2)
    return (round(x1, 1), round(y1, 1), round(x2, 1), round(y2, 1))


def shifted(box, offset) -> tuple[float, float, float, float]:
    """A scene box moved by a camera offset (dx, dy)."""
    dx, dy = float(offset[0]), float(offset[1])
    return (box[0] + dx, box[1] + dy, box[2] + dx, box[3] + dy)
