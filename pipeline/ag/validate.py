"""``mosa validate``: check an Action Genome root and report every problem.

Unlike the reader, which stops at the first bad record, the validator walks
the whole dataset and collects :class:`Problem` records, so a user fixes a
broken download in one pass. Frames are checked by reading only their PNG
header, which keeps thousands of frames within seconds.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from pipeline.ag.layout import (
    ANNOTATION_FILES,
    FRAME_LIST_TXT,
    OBJECT_PKL,
    PERSON_PKL,
    parse_frame_key,
    read_object_classes,
    read_predicates,
)
from pipeline.constants import ATTENTION, CONTACTING, SPATIAL
from pipeline.io import DataError, safe_load_pickle

ERROR, WARNING = "error", "warning"


@dataclass(frozen=True)
class Problem:
    severity: str
    kind: str
    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.severity}: [{self.kind}] {self.where}: {self.message}"


# Out-of-image tolerance: AG's person detections overshoot the border by a
# pixel or two, which is harmless.
BORDER_TOLERANCE = 2.0


def box_problems(box, width: int, height: int, where: str, kind_prefix: str) -> list[Problem]:
    """Problems of one xyxy box in a ``width`` x ``height`` image (also used by the reader)."""
    x1, y1, x2, y2 = box
    if any(not math.isfinite(v) for v in box):
        return [Problem(ERROR, "nan_box", where, f"{kind_prefix} box {tuple(box)} has NaN or infinite values")]
    problems = []
    if min(box) < -BORDER_TOLERANCE:
        problems.append(Problem(ERROR, "negative_box", where, f"{kind_prefix} box {tuple(box)} has negative coordinates"))
    if x2 <= x1 or y2 <= y1:
        problems.append(Problem(ERROR, "zero_area_box", where, f"{kind_prefix} box {tuple(box)} (xyxy) has zero or negative area"))
    elif x2 > width + BORDER_TOLERANCE or y2 > height + BORDER_TOLERANCE:
        problems.append(Problem(ERROR, "box_outside_image", where, f"{kind_prefix} box {tuple(box)} (xyxy) exceeds the image size {width}x{height}"))
    return problems


def _check_relationships(obj: dict, key: str, predicates: list[str]) -> list[Problem]:
    problems = []
    for field_name, group in (
        ("attention_relationship", ATTENTION),
        ("spatial_relationship", SPATIAL),
        ("contacting_relationship", CONTACTING),
    ):
        names = obj.get(field_name)
        if names is None or (field_name == "attention_relationship" and len(names) == 0):
            problems.append(Problem(ERROR, "missing_label", key, f"visible {obj.get('class')!r} has no {field_name}"))
            continue
        for name in names:
            if name not in predicates:
                problems.append(Problem(ERROR, "unknown_predicate", key, f"unknown predicate {name!r} in {field_name}"))
            elif not group.start <= predicates.index(name) < group.stop:
                problems.append(Problem(ERROR, "wrong_predicate_group", key, f"{name!r} is not a {field_name.split('_')[0]} predicate"))
    return problems


def _object_problems(obj, key: str, width: int, height: int, classes: list[str], predicates: list[str]) -> list[Problem]:
    if not isinstance(obj, dict):
        return [Problem(ERROR, "malformed_object", key, f"object entry is {type(obj).__name__}, not a dict")]
    name = obj.get("class")
    problems = []
    if name not in classes[2:]:
        problems.append(Problem(ERROR, "unknown_class", key, f"unknown object class {name!r}"))
    if not obj.get("visible"):
        return problems
    bbox = obj.get("bbox")
    if bbox is None:
        return [*problems, Problem(ERROR, "visible_without_box", key, f"visible {name!r} has no bbox")]
    try:
        x, y, w, h = (float(v) for v in bbox)
    except (TypeError, ValueError):
        return [*problems, Problem(ERROR, "malformed_box", key, f"{name!r} bbox {bbox!r} is not 4 numbers (x, y, w, h)")]
    if all(math.isfinite(v) for v in (x, y, w, h)) and w > 0 and h > 0 and (x + w > width + BORDER_TOLERANCE or y + h > height + BORDER_TOLERANCE) and w > x and h > y and w <= width and h <= height:
        # As xywh it leaves the image, as xyxy it fits: the classic mix-up.
        problems.append(Problem(ERROR, "xyxy_as_xywh", key, f"{name!r} bbox {tuple(bbox)} looks like xyxy but object boxes must be (x, y, w, h)"))
    else:
        problems.extend(box_problems((x, y, x + w, y + h), width, height, key, f"{name!r}"))
    problems.extend(_check_relationships(obj, key, predicates))
    return problems


def _person_problems(entry, key: str) -> tuple[list[Problem], tuple[int, int] | None]:
    if not isinstance(entry, dict) or "bbox" not in entry or "bbox_size" not in entry:
        return [Problem(ERROR, "malformed_person", key, "person entry needs 'bbox' and 'bbox_size'")], None
    width, height = (int(v) for v in entry["bbox_size"])
    boxes = np.asarray(entry["bbox"], dtype=np.float64).reshape(-1, 4)
    problems = []
    for box in boxes:
        x1, y1, x2, y2 = box.tolist()
        if math.isfinite(x1 + x2 + y1 + y2) and x2 > 0 and y2 > 0 and (x2 < x1 or y2 < y1) and x1 + x2 <= width + BORDER_TOLERANCE:
            problems.append(Problem(ERROR, "xywh_as_xyxy", key, f"person bbox {tuple(box)} looks like xywh but person boxes must be xyxy"))
        else:
            problems.extend(box_problems(tuple(box), width, height, key, "person"))
    if boxes.shape[0] == 0:
        problems.append(Problem(WARNING, "no_person_box", key, "no person box (the frame is dropped by the standard filter)"))
    return problems, (width, height)


def _frame_file_problems(root: Path, key: str, size: tuple[int, int] | None) -> tuple[list[Problem], tuple[int, int] | None]:
    path = root / "frames" / key
    if not path.is_file():
        return [Problem(ERROR, "missing_frame", str(path), "frame listed in the annotations but missing on disk")], None
    try:
        with Image.open(path) as image:
            image_size = image.size
    except (UnidentifiedImageError, OSError) as err:
        return [Problem(ERROR, "unreadable_frame", str(path), f"not a readable image ({err})")], None
    if size is not None and image_size != size:
        return [Problem(ERROR, "size_mismatch", str(path), f"image is {image_size[0]}x{image_size[1]} but bbox_size says {size[0]}x{size[1]}")], image_size
    return [], image_size


def validate_root(root: str | Path, check_frames: bool = True) -> list[Problem]:
    """Every problem found in an Action Genome root, errors and warnings."""
    root = Path(root)
    problems: list[Problem] = []
    for rel in ANNOTATION_FILES:
        if not (root / rel).is_file():
            problems.append(Problem(ERROR, "missing_file", str(root / rel), "annotation file missing"))
    classes, predicates = None, None
    for reader, what in ((read_object_classes, "classes"), (read_predicates, "predicates")):
        try:
            result = reader(root)
        except DataError as err:
            if not any(p.kind == "missing_file" and str(err).startswith(p.where) for p in problems):
                problems.append(Problem(ERROR, "bad_class_file", str(root / "annotations"), str(err)))
            continue
        if what == "classes":
            classes = result
        else:
            predicates = result
    classes = classes or ["__background__", "person"]
    predicates = predicates or []

    pickles = {}
    for rel in (PERSON_PKL, OBJECT_PKL):
        if (root / rel).is_file():
            try:
                pickles[rel] = safe_load_pickle(root / rel)
            except DataError as err:
                problems.append(Problem(ERROR, "bad_pickle", str(root / rel), str(err)))
    person_bbox, object_bbox = pickles.get(PERSON_PKL), pickles.get(OBJECT_PKL)
    if person_bbox is None or object_bbox is None:
        return problems

    for key in sorted(set(person_bbox) ^ set(object_bbox)):
        where = PERSON_PKL if key in person_bbox else OBJECT_PKL
        problems.append(Problem(ERROR, "unpaired_frame", str(key), f"only in {where}"))

    video_sizes: dict[str, Counter] = defaultdict(Counter)
    for key in sorted(set(person_bbox) & set(object_bbox)):
        try:
            parsed = parse_frame_key(key)
        except DataError as err:
            problems.append(Problem(ERROR, "bad_frame_key", repr(key), str(err)))
            continue
        person_problems, size = _person_problems(person_bbox[key], key)
        problems.extend(person_problems)
        if size is None:
            continue
        objects = object_bbox[key]
        if not isinstance(objects, list):
            problems.append(Problem(ERROR, "malformed_object", key, "object entry must be a list of dicts"))
            continue
        for obj in objects:
            problems.extend(_object_problems(obj, key, size[0], size[1], classes, predicates))
        if check_frames:
            frame_problems, image_size = _frame_file_problems(root, key, size)
            problems.extend(frame_problems)
            if image_size is not None:
                video_sizes[parsed.video][image_size] += 1

    for video, sizes in sorted(video_sizes.items()):
        if len(sizes) > 1:
            listed = ", ".join(f"{w}x{h} ({n} frames)" for (w, h), n in sorted(sizes.items()))
            problems.append(Problem(ERROR, "mixed_image_sizes", video, f"frames of one video have different sizes: {listed}"))

    frame_list = root / FRAME_LIST_TXT
    if frame_list.is_file():
        listed = {line.strip() for line in frame_list.read_text().splitlines() if line.strip()}
        for key in sorted(listed - set(person_bbox)):
            problems.append(Problem(WARNING, "listed_without_annotation", key, "in frame_list.txt but not in the pickles"))
    return problems
