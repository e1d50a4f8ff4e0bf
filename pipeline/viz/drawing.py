"""A frame with its boxes, the predicted triplets beside the ground truth, and contact sheets.

Drawn with Pillow only (no figure machinery), so rendering hundreds of
tiles for a contact sheet or a report gallery stays cheap.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np
import polars as pl
from PIL import Image, ImageDraw, ImageFont

from pipeline.io import UNREADABLE_IMAGE_ERRORS, DataError
from pipeline.viz.triplets import (
    ground_truth_predicates,
    ground_truth_triplets,
    object_name,
    predicted_triplets,
)

# Frames are upscaled to at least this width so 12-px labels stay readable on small footage.
MIN_WIDTH = 384
PANEL_WIDTH = 360
LINE_HEIGHT = 15
PERSON_COLOUR = (255, 255, 255)
HIT_COLOUR = (64, 170, 64)  # predicted triplet that the annotation holds
MISS_COLOUR = (200, 60, 60)  # predicted triplet the annotation does not hold
GT_COLOUR = (110, 110, 110)
TEXT_COLOUR = (0, 0, 0)
# Distinct, colour-blind-safe object colours (Okabe-Ito), cycled.
PALETTE = [(230, 159, 0), (86, 180, 233), (0, 158, 115), (240, 228, 66), (0, 114, 178), (213, 94, 0), (204, 121, 167)]


@lru_cache(maxsize=4)
def font(size: int = 12) -> ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def frame_path(dataset_root: str | Path, frame: str) -> Path:
    return Path(dataset_root) / "frames" / frame


def load_frame(dataset_root: str | Path, frame: str) -> Image.Image:
    """The RGB image of an AG frame key; a one-line error naming the file if it cannot be read."""
    path = frame_path(dataset_root, frame)
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except UNREADABLE_IMAGE_ERRORS as err:
        raise DataError(f"{path}: cannot read frame {frame} ({type(err).__name__}); check dataset.root") from None


def _scale(image: Image.Image) -> tuple[Image.Image, float]:
    factor = max(1.0, MIN_WIDTH / image.width)
    if factor == 1.0:
        return image.copy(), 1.0
    size = (round(image.width * factor), round(image.height * factor))
    return image.resize(size, Image.Resampling.BILINEAR), factor


def _ink(fill: Sequence[int]) -> tuple[int, int, int]:
    """Black or white text, whichever reads better on ``fill`` (Rec. 601 luma)."""
    return (0, 0, 0) if 0.299 * fill[0] + 0.587 * fill[1] + 0.114 * fill[2] > 128 else (255, 255, 255)


def _box(draw: ImageDraw.ImageDraw, box: Sequence[float], factor: float, colour, label: str | None) -> None:
    x1, y1, x2, y2 = (float(v) * factor for v in box)
    draw.rectangle((x1, y1, x2, y2), outline=colour, width=2)
    if label:
        # The tag sits above the box when there is room, so it hides neither the object nor a small box.
        _, _, width, height = draw.textbbox((0, 0), label, font=font())
        canvas_width = draw.im.size[0]
        x = min(max(x1, 0.0), max(canvas_width - width - 4, 0))
        y = y1 - height - 3 if y1 - height - 3 >= 0 else y1 + 1
        draw.rectangle((x, y, x + width + 4, y + height + 2), fill=colour)
        draw.text((x + 2, y), label, fill=_ink(colour), font=font())


def draw_pairs(
    image: Image.Image, pairs: pl.DataFrame, captions: bool = True, person_box: Sequence[float] | None = None
) -> tuple[Image.Image, float]:
    """Upscaled copy of ``image`` with each pair's person and object boxes (predictions format rows).

    ``person_box`` is drawn as the person even when no pair is shown (footage
    where no object passes the display threshold).
    """
    canvas, factor = _scale(image)
    draw = ImageDraw.Draw(canvas)
    persons_drawn: set[tuple[float, ...]] = set()
    if person_box is not None:
        _box(draw, tuple(person_box), factor, PERSON_COLOUR, "person" if captions else None)
        persons_drawn.add(tuple(person_box))
    for i, pair in enumerate(pairs.iter_rows(named=True)):
        person = tuple(pair["subject_box"])
        if person not in persons_drawn:
            _box(draw, person, factor, PERSON_COLOUR, "person" if captions else None)
            persons_drawn.add(person)
        label = f"{object_name(pair['object_label'])} {pair['object_score']:.2f}" if pair["object_score"] < 1.0 else object_name(pair["object_label"])
        _box(draw, pair["object_box"], factor, PALETTE[i % len(PALETTE)], label if captions else None)
    return canvas, factor


def _panel_lines(pairs: pl.DataFrame, objects: pl.DataFrame | None) -> list[tuple[str, tuple[int, int, int]]]:
    """Text lines of the side panel: per pair its predictions (hit or miss), then unmatched annotations.

    ``objects`` None: footage without annotation, predictions in one neutral colour.
    """
    lines: list[tuple[str, tuple[int, int, int]]] = []
    if objects is None:
        for i, pair in enumerate(pairs.iter_rows(named=True)):
            lines.append((f"{object_name(pair['object_label'])}  (score {pair['object_score']:.2f})", PALETTE[i % len(PALETTE)]))
            for triplet in predicted_triplets(pair["object_label"], pair["attention"], pair["spatial"], pair["contacting"]):
                lines.append(("  + " + triplet.text(), TEXT_COLOUR))
        return lines
    annotated = ground_truth_predicates(pairs, objects).to_list() if len(pairs) else []
    for i, (pair, truth) in enumerate(zip(pairs.iter_rows(named=True), annotated, strict=True)):
        lines.append((f"{object_name(pair['object_label'])}  (score {pair['object_score']:.2f})", PALETTE[i % len(PALETTE)]))
        predicted = predicted_triplets(pair["object_label"], pair["attention"], pair["spatial"], pair["contacting"])
        for triplet in predicted:
            lines.append(("  + " + triplet.text(), HIT_COLOUR if triplet.predicate in truth else MISS_COLOUR))
        shown_predicates = {t.predicate for t in predicted}
        for triplet in ground_truth_triplets(pair["object_label"], [p for p in truth if p not in shown_predicates]):
            lines.append(("  gt " + triplet.text(), GT_COLOUR))
    shown = {int(label) for label in pairs["object_label"]} if len(pairs) else set()
    for obj in objects.iter_rows(named=True):
        if int(obj["object_class"]) in shown:
            continue
        lines.append((f"{object_name(obj['object_class'])}  (annotated, not predicted)", GT_COLOUR))
        for triplet in ground_truth_triplets(obj["object_class"], [*obj["attention"], *obj["spatial"], *obj["contacting"]]):
            lines.append(("  gt " + triplet.text(), GT_COLOUR))
    return lines


def render_frame(
    image: Image.Image,
    pairs: pl.DataFrame,
    objects: pl.DataFrame | None,
    title: str,
    person_box: Sequence[float] | None = None,
) -> Image.Image:
    """Frame with boxes (left) and, per pair, predicted triplets beside the ground truth (right).

    ``pairs``: the frame's predictions-format rows; ``objects``: its rows of
    ``objects.parquet``, or None for footage without annotation. Predicted
    triplets are green when annotated, red when not; missed annotations are grey.
    ``person_box``: see :func:`draw_pairs`.
    """
    drawn, _ = draw_pairs(image, pairs, person_box=person_box)
    lines = [(title, TEXT_COLOUR)]
    if objects is not None:
        lines.append(("green: annotated  red: not annotated  grey: missed", GT_COLOUR))
    lines += _panel_lines(pairs, objects)
    height = max(drawn.height, LINE_HEIGHT * (len(lines) + 1))
    canvas = Image.new("RGB", (drawn.width + PANEL_WIDTH, height), (255, 255, 255))
    canvas.paste(drawn, (0, 0))
    draw = ImageDraw.Draw(canvas)
    for row, (text, colour) in enumerate(lines):
        draw.text((drawn.width + 8, 4 + row * LINE_HEIGHT), text, fill=colour, font=font())
    return canvas


def contact_sheet(tiles: Sequence[Image.Image], captions: Sequence[Sequence[str]], columns: int = 4, tile_width: int = 320) -> Image.Image:
    """Grid of tiles, each resized to ``tile_width`` and captioned with a few lines below it."""
    if not tiles:
        raise ValueError("a contact sheet needs at least one tile")
    resized = [tile.resize((tile_width, round(tile.height * tile_width / tile.width))) for tile in tiles]
    caption_height = LINE_HEIGHT * max(len(c) for c in captions) + 6
    cell_height = max(t.height for t in resized) + caption_height
    columns = min(columns, len(tiles))
    rows = -(-len(tiles) // columns)
    sheet = Image.new("RGB", (columns * (tile_width + 8) + 8, rows * (cell_height + 8) + 8), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for i, (tile, lines) in enumerate(zip(resized, captions, strict=True)):
        x = 8 + (i % columns) * (tile_width + 8)
        y = 8 + (i // columns) * (cell_height + 8)
        sheet.paste(tile, (x, y))
        for row, text in enumerate(lines):
            draw.text((x, y + tile.height + 3 + row * LINE_HEIGHT), text, fill=(0, 0, 0), font=font(11))
    return sheet


def save_png(image: Image.Image, path: str | Path) -> Path:
    """Write a PNG atomically."""
    from pipeline.io import atomic_path

    with atomic_path(path, suffix=".png") as tmp:
        image.save(tmp, format="PNG")
    return Path(path)


def blank_frame(width: int, height: int) -> Image.Image:
    """Grey stand-in when a frame's image is not available (e.g. a report built without the dataset)."""
    return Image.fromarray(np.full((height, width, 3), 200, dtype=np.uint8))
