"""Pixels: what every class looks like, the paint order, and the rendered frames.

Each object class has its own colour and shape, so a detector can learn all
35; the person is a body and a head whose eye dot shows the gaze direction.
A frame is painted in layers (:func:`paint_layers`); everything is shifted by
the frame's camera offset (shake, pans), so the pixels move with the boxes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial

import numpy as np
from PIL import Image, ImageDraw

from pipeline.ag.synth.plan import VideoPlan, plan_video
from pipeline.ag.synth.trajectory import Placed, VideoMotion, clip_box, shifted
from pipeline.params import SynthParams

# class -> (RGB fill, shape); sizes are in trajectory.SIZES
APPEARANCE: dict[str, tuple[tuple[int, int, int], str]] = {
    "cup/glass/bottle": ((220, 40, 40), "rect"), "phone/camera": ((30, 30, 30), "rect"),
    "book": ((40, 120, 220), "rect"), "paper/notebook": ((245, 245, 245), "rect"),
    "food": ((240, 170, 30), "ellipse"), "sandwich": ((200, 150, 90), "triangle"),
    "medicine": ((160, 40, 200), "ellipse"), "dish": ((200, 200, 230), "ellipse"),
    "towel": ((40, 200, 200), "rect"), "bag": ((120, 70, 20), "trapezoid"), "shoe": ((90, 50, 50), "ellipse"),
    "clothes": ((230, 120, 180), "rect"), "blanket": ((150, 200, 90), "rect"),
    "laptop": ((130, 130, 140), "trapezoid"), "chair": ((170, 110, 60), "chair"),
    "sofa/couch": ((90, 60, 160), "sofa"), "bed": ((250, 220, 200), "bed"), "table": ((110, 80, 50), "table"),
    "floor": ((150, 150, 120), "rect"), "doorknob": ((230, 200, 40), "ellipse"),
    "television": ((20, 20, 90), "framed"), "box": ((190, 140, 70), "framed"),
    "broom": ((200, 180, 60), "broom"), "groceries": ((60, 160, 60), "trapezoid"),
    "pillow": ((250, 200, 220), "ellipse"), "vacuum": ((200, 30, 120), "vacuum"),
    "window": ((150, 210, 250), "cross"), "picture": ((250, 120, 60), "framed"),
    "light": ((255, 250, 150), "ellipse"), "mirror": ((210, 230, 235), "framed"),
    "shelf": ((100, 60, 30), "rect"), "closet/cabinet": ((140, 90, 40), "door"),
    "refrigerator": ((235, 235, 225), "door"), "door": ((160, 120, 80), "door"),
    "doorway": ((70, 70, 70), "doorway"),
}  # fmt: skip
PERSON_COLOUR = (40, 60, 120)
SKIN = (235, 190, 150)
# the class that is the ground: painted before every other object
GROUND = "floor"
# px width of the straps drawn over the body for a bag worn on the back
STRAP_WIDTH = 4


def _draw_object(draw: ImageDraw.ImageDraw, placed: Placed) -> None:
    colour, shape = APPEARANCE[placed.name]
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
    elif shape == "framed":
        draw.rectangle((x1, y1, x2, y2), fill=outline)
        if x2 - x1 > 6 and y2 - y1 > 6:  # a box clipped at the image edge can be 4 px
            draw.rectangle((x1 + 3, y1 + 3, x2 - 3, y2 - 3), fill=colour)
    elif shape == "cross":
        draw.rectangle((x1, y1, x2, y2), fill=colour, outline=outline, width=3)
        draw.line(((x1 + x2) / 2, y1, (x1 + x2) / 2, y2), fill=outline, width=2)
        draw.line((x1, (y1 + y2) / 2, x2, (y1 + y2) / 2), fill=outline, width=2)
    elif shape == "door":
        draw.rectangle((x1, y1, x2, y2), fill=colour, outline=outline, width=2)
        draw.rectangle((x2 - 7, (y1 + y2) / 2 - 4, x2 - 4, (y1 + y2) / 2 + 4), fill=outline)
    elif shape == "doorway":
        draw.rectangle((x1, y1, x2, y2), outline=colour, width=5)
    elif shape == "broom":
        draw.rectangle(((x1 + x2) / 2 - 1.5, y1, (x1 + x2) / 2 + 1.5, y2), fill=outline)
        draw.polygon([(x1, y2), (x2, y2), ((x1 + x2) / 2, y2 - (y2 - y1) * 0.35)], fill=colour)
    elif shape == "vacuum":
        draw.rectangle(((x1 + x2) / 2 - 1.5, y1, (x1 + x2) / 2 + 1.5, y2), fill=outline)
        draw.ellipse((x1, y2 - (y2 - y1) * 0.4, x2, y2), fill=colour)


def _draw_straps(draw: ImageDraw.ImageDraw, placed: Placed) -> None:
    """The straps of a bag worn on the back, drawn over the body.

    The bag itself lies behind the body and inside its box, so without them
    98% of its pixels are hidden (probe of seed 0) and no detector can find
    it. The straps run down both sides of the bag's box and along its
    bottom, in the bag's colour, so they show where the bag is, as the straps
    and the bag's rim do on a real backpack.
    """
    colour, _ = APPEARANCE[placed.name]
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
    # Then largest first, so a cupboard behind the person never hides the chair they sit on.
    behind = sorted((item for item in shown if not item.in_front), key=lambda item: (item.name != GROUND, -item.area))
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


def video_name(index: int, seed: int) -> str:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    rng = np.random.default_rng([seed, index, 7])
    return "S" + "".join(alphabet[i] for i in rng.integers(0, len(alphabet), size=4)) + f"{index:03d}.mp4"


@dataclass
class ScriptedFrame:
    """One rendered frame with the state it was drawn from (image coordinates: camera applied)."""

    video: str
    frame_number: int
    person: tuple[float, float, float, float]
    eye_visible: bool
    placed: list[Placed]
    layers: list  # paint_layers(...) of this frame, in paint order
    image: Image.Image


def scripted_frames(
    params: SynthParams, index: int, split: str, plan: VideoPlan | None = None
) -> Iterator[tuple[ScriptedFrame, np.random.Generator, VideoMotion]]:
    """Render one video frame by frame; yields (frame, the video's generator, its motion).

    The caller draws the rest of a frame's annotation from the same
    generator, in order, so the output stays byte-identical for a seed.
    """
    rng = np.random.default_rng([params.seed, index])
    name = video_name(index, params.seed)
    plan = plan if plan is not None else plan_video(params.seed, index, params)
    video = VideoMotion(rng, params, plan, split)
    for t, frame_number in enumerate(video.frame_numbers):
        camera = video.camera[t]
        person = shifted(video.person_box(t), camera)
        eye_visible = rng.random() > 0.05
        placed = []
        for obj in video.scripts:
            item = video.place(obj, t)
            item.box = clip_box(shifted(item.box, camera), params.width, params.height)
            item.visible = rng.random() >= 0.06
            placed.append(item)
        image = _background(rng, params.width, params.height)
        draw = ImageDraw.Draw(image)
        layers = paint_layers(placed, person, video.gaze, eye_visible)
        for _, paint in layers:
            paint(draw)
        yield ScriptedFrame(name, frame_number, person, eye_visible, placed, layers, image), rng, video
