"""Synthetic Action Genome: the exact on-disk format, with something to learn.

The generator writes what a real AG download holds (both pickles with all
their keys, the raw class files with slash-less and underscore-less names,
``frame_list.txt`` and PNG frames), so every later stage runs the same code
path as on real AG.

Design, per MOSA component:

* **appearance** — each object class has its own colour and shape, so a
  detector can learn classes; the person is a body + head whose eye dot
  shows the gaze direction (attention: ``looking_at`` when the object lies on
  the gaze side, ``unsure`` when the head is drawn without an eye).
* **geometry** — spatial predicates are computed from the drawn boxes and
  the drawing order (objects drawn before the person are ``behind`` it).
* **motion** — the hand-held scripts ``holding``, ``carrying``, ``touching``
  and ``not_contacting`` put the object at the hand in a single frame; only
  the motion over several frames tells them apart:

  ===============  ===============================================
  holding          person still, object bobs up and down at the hand
  carrying         person walks, object moves rigidly with the hand
  touching         both still
  not_contacting   object drifts past the hand at constant speed
  ===============  ===============================================

* **long tail** — contact scripts are drawn with AG-like frequencies
  (``not_contacting``/``holding`` head, ``twisting``/``writing_on``/
  ``have_it_on_the_back`` tail).
* **filters** — sparse frame numbers, some frames without a person box,
  some invisible objects, some 1-2 frame videos, some boxes of 16 px or less.

Everything is drawn from one ``numpy`` generator seeded per video, so the
output is byte-identical for a fixed seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from tqdm import tqdm

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

HAND_HELD = ("cup/glass/bottle", "phone/camera", "book", "paper/notebook", "food", "sandwich",
             "medicine", "dish", "towel", "bag", "laptop")  # fmt: skip

# contact script -> (weight, allowed classes). Weights follow AG's long tail.
SCRIPTS: dict[str, tuple[float, tuple[str, ...]]] = {
    "not_contacting": (26.0, (*HAND_HELD, "television", "chair", "table", "doorknob")),
    "holding": (22.0, HAND_HELD),
    "sitting_on": (9.0, ("chair", "sofa/couch")),
    "touching": (8.0, HAND_HELD),
    "standing_on": (6.0, ("floor",)),
    "carrying": (6.0, HAND_HELD),
    "wearing": (4.0, ("clothes", "shoe")),
    "lying_on": (3.0, ("bed", "sofa/couch")),
    "leaning_on": (3.0, ("table",)),
    "eating": (2.0, ("food", "sandwich")),
    "drinking_from": (2.0, ("cup/glass/bottle",)),
    "covered_by": (1.5, ("blanket",)),
    "wiping": (1.0, ("towel",)),
    "other_relationship": (1.0, HAND_HELD),
    "writing_on": (0.5, ("paper/notebook",)),
    "have_it_on_the_back": (0.4, ("bag",)),
    "twisting": (0.3, ("doorknob",)),
}
# Scripts whose object sits at the hand in any single frame.
AT_HAND = ("holding", "carrying", "touching", "not_contacting_hand", "other_relationship")

PERSON_COLOUR = (40, 60, 120)
SKIN = (235, 190, 150)


@dataclass
class Placed:
    """One object instance's state in one frame."""

    name: str
    box: tuple[float, float, float, float]  # xyxy
    in_front: bool
    visible: bool
    contacting: list[str]
    angle: float = 0.0


class _Video:
    """Scripts one video: person trajectory, objects and their relation scripts."""

    def __init__(self, rng: np.random.Generator, params: SynthParams, name: str, split: str):
        self.rng, self.params, self.name, self.split = rng, params, name, split
        self.width, self.height = params.width, params.height
        n_frames = int(rng.integers(params.min_frames, params.max_frames + 1))
        gaps = rng.integers(3, 30, size=n_frames)
        self.frame_numbers = (int(rng.integers(1, 60)) + np.cumsum(gaps) - gaps[0]).tolist()
        self.person_w = float(rng.uniform(26, 34))
        self.person_h = float(rng.uniform(80, 100))
        self.side = 1 if rng.random() < 0.5 else -1  # which hand holds things
        self.gaze = 1 if rng.random() < 0.5 else -1
        self.scripts = self._choose_scripts()
        moving = "carrying" in self.scripts.values()
        speed = float(rng.uniform(0.35, 0.6)) if moving else 0.0
        self.velocity = speed * (1 if rng.random() < 0.5 else -1)
        span = (self.frame_numbers[-1] - self.frame_numbers[0]) * abs(self.velocity)
        margin = 40 + span / 2
        cx_lo, cx_hi = margin, self.width - margin
        self.person_x0 = float(rng.uniform(min(cx_lo, self.width / 2), max(cx_hi, self.width / 2)))
        self.person_x0 -= self.velocity * (self.frame_numbers[-1] - self.frame_numbers[0]) / 2
        self.person_top = float(rng.uniform(35, self.height - self.person_h - 22))
        self.phase = float(rng.uniform(0, 2 * math.pi))
        self.anchors = {name: self._anchor(name, script) for name, script in self.scripts.items()}
        self.drift = {name: float(rng.choice([-1, 1]) * rng.uniform(0.4, 0.8)) for name in self.scripts}

    def _choose_scripts(self) -> dict[str, str]:
        names = list(SCRIPTS)
        weights = np.array([SCRIPTS[s][0] for s in names])
        n_objects = int(self.rng.choice([1, 2, 3, 4], p=[0.3, 0.35, 0.25, 0.1]))
        chosen: dict[str, str] = {}
        for _ in range(n_objects * 4):
            if len(chosen) == n_objects:
                break
            script = names[self.rng.choice(len(names), p=weights / weights.sum())]
            candidates = [c for c in SCRIPTS[script][1] if c not in chosen]
            at_hand_taken = any(s in AT_HAND or s == "not_contacting_hand" for s in chosen.values())
            if not candidates:
                continue
            if script in ("holding", "carrying", "touching", "other_relationship") and at_hand_taken:
                continue
            if script == "carrying" and chosen:
                continue  # a walking person cannot also sit, lie or touch still objects
            if "carrying" in chosen.values():
                script = "not_contacting"
            name = candidates[int(self.rng.integers(len(candidates)))]
            if script == "not_contacting" and name in HAND_HELD and not at_hand_taken and self.rng.random() < 0.6:
                script = "not_contacting_hand"
            chosen[name] = script
        return chosen

    def _size(self, name: str) -> tuple[float, float]:
        _, _, w_range, h_range = APPEARANCE[name]
        return float(self.rng.uniform(*w_range)), float(self.rng.uniform(*h_range))

    def _anchor(self, name: str, script: str) -> dict:
        w, h = self._size(name)
        return {"w": w, "h": h, "far_x": float(self.rng.uniform(0.1, 0.9)), "far_y": float(self.rng.uniform(0.05, 0.35)),
                "behind": bool(self.rng.random() < 0.5)}  # fmt: skip

    def person_box(self, frame_number: int) -> tuple[float, float, float, float]:
        dt = frame_number - self.frame_numbers[0]
        cx = self.person_x0 + self.velocity * dt
        jitter = 0.0 if self.velocity else 0.6 * math.sin(0.3 * frame_number)
        x1 = cx - self.person_w / 2 + jitter
        return (x1, self.person_top, x1 + self.person_w, self.person_top + self.person_h)

    def hand(self, person: tuple[float, float, float, float]) -> tuple[float, float]:
        x1, y1, x2, y2 = person
        return ((x2 if self.side > 0 else x1), y1 + 0.5 * (y2 - y1))

    def place(self, name: str, frame_number: int, person) -> Placed:
        script, a = self.scripts[name], self.anchors[name]
        w, h = a["w"], a["h"]
        x1, y1, x2, y2 = person
        pw, ph = x2 - x1, y2 - y1
        hx, hy = self.hand(person)
        dt = frame_number - self.frame_numbers[0]
        in_front = True
        contacting = [script]
        angle = 0.0
        if script in ("holding", "carrying", "touching", "other_relationship"):
            cx, cy = hx + self.side * w * 0.3, hy
            if script == "holding":
                cy += 7.0 * math.sin(0.45 * frame_number + self.phase)
            if script == "other_relationship":
                cy -= 0.3 * ph
        elif script == "not_contacting_hand":
            # Passes the hand at constant speed: at the hand half-way through the video.
            mid = (self.frame_numbers[-1] - self.frame_numbers[0]) / 2
            cx, cy = hx + self.side * w * 0.3 + self.drift[name] * (dt - mid), hy
            contacting = ["not_contacting"]
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
            cx, cy = (x1 if self.gaze > 0 else x2), y1 + 0.35 * ph
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
            contacting = ["not_contacting"]
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
        draw.polygon([(x1, y2), (x2, y2), (x2 - inset, y1), (x1 + inset, y1)], fill=colour, outline=outline)
    elif shape == "chair":
        draw.rectangle((x1, y1, x1 + (x2 - x1) * 0.25, y2), fill=colour)
        draw.rectangle((x1, y1 + (y2 - y1) * 0.5, x2, y1 + (y2 - y1) * 0.65), fill=colour)
        draw.rectangle((x2 - (x2 - x1) * 0.15, y1 + (y2 - y1) * 0.5, x2, y2), fill=colour)
    elif shape == "sofa":
        draw.rounded_rectangle((x1, y1, x2, y2), radius=8, fill=colour, outline=outline, width=3)
        draw.rectangle((x1 + 8, y1 + (y2 - y1) * 0.45, x2 - 8, y2 - 6), fill=tuple(min(255, c + 50) for c in colour))
    elif shape == "bed":
        draw.rectangle((x1, y1 + (y2 - y1) * 0.3, x2, y2), fill=colour, outline=outline, width=2)
        draw.rectangle((x1, y1, x1 + 10, y2), fill=outline)
    elif shape == "table":
        draw.rectangle((x1, y1, x2, y1 + (y2 - y1) * 0.2), fill=colour)
        draw.rectangle((x1 + 3, y1, x1 + 9, y2), fill=colour)
        draw.rectangle((x2 - 9, y1, x2 - 3, y2), fill=colour)


def _draw_person(draw: ImageDraw.ImageDraw, box, gaze: int, eye_visible: bool) -> None:
    x1, y1, x2, y2 = box
    head_r = (x2 - x1) * 0.32
    cx = (x1 + x2) / 2
    draw.rectangle((x1, y1 + 2 * head_r, x2, y2), fill=PERSON_COLOUR)
    draw.ellipse((cx - head_r, y1, cx + head_r, y1 + 2 * head_r), fill=SKIN if eye_visible else (150, 150, 150))
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
    return "S" + "".join(alphabet[i] for i in rng.integers(0, len(alphabet), size=4)) + f"{index:03d}" + ".mp4"


def synthesize_video(params: SynthParams, index: int, split: str):
    """Frames (PIL images) and the two annotation dicts of one video."""
    rng = np.random.default_rng([params.seed, index])
    name = _video_name(index, params.seed)
    video = _Video(rng, params, name, split)
    images, person_ann, object_ann = {}, {}, {}
    # 1- and 2-frame videos and person-less frames come from the draws below.
    for frame_number in video.frame_numbers:
        key = f"{name}/{frame_number:06d}.png"
        person = video.person_box(frame_number)
        eye_visible = rng.random() > 0.05
        placed = [video.place(obj, frame_number, person) for obj in video.scripts]
        for item in placed:
            if rng.random() < 0.06:
                item.visible = False
        image = _background(rng, params.width, params.height)
        draw = ImageDraw.Draw(image)
        for item in placed:
            if item.visible and not item.in_front:
                _draw_object(draw, item)
        _draw_person(draw, person, video.gaze, eye_visible)
        for item in placed:
            if item.visible and item.in_front:
                _draw_object(draw, item)
        images[key] = image

        detected = rng.random() > 0.07
        box = np.array([person], dtype=np.float32) if detected else np.zeros((0, 4), dtype=np.float32)
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
        for item in placed:
            x1, y1, x2, y2 = item.box
            entry = {
                "class": item.name,
                "bbox": (x1, y1, round(x2 - x1, 1), round(y2 - y1, 1)) if item.visible else None,
                "attention_relationship": [attention_label(item.box, person, video.gaze, eye_visible)] if item.visible else None,
                "spatial_relationship": spatial_labels(item.box, person, item.in_front) if item.visible else None,
                "contacting_relationship": list(item.contacting) if item.visible else None,
                "metadata": {"tag": f"{name}/{item.name.replace('/', '_')}/{frame_number:06d}", "set": split},
                "visible": item.visible,
            }
            objects.append(entry)
        object_ann[key] = objects
    return images, person_ann, object_ann


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
    n_test = int(round(params.videos * params.test_fraction))
    split_rng = np.random.default_rng([params.seed, 999])
    test_ids = set(split_rng.permutation(params.videos)[:n_test].tolist())

    person_all, object_all, frame_keys = {}, {}, []
    for index in tqdm(range(params.videos), desc="synth videos", disable=not progress, unit="video"):
        split = "test" if index in test_ids else "train"
        images, person_ann, object_ann = synthesize_video(params, index, split)
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
