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
from PIL import Image

from pipeline.ag.layout import (
    ANNOTATION_FILES,
    FRAME_KEY_PATTERN,
    FRAME_LIST_TXT,
    OBJECT_PKL,
    PERSON_PKL,
    parse_frame_key,
    read_object_classes,
    read_predicates,
    read_text_lines,
)
from pipeline.constants import ATTENTION, CONTACTING, SPATIAL
from pipeline.io import UNREADABLE_IMAGE_ERRORS, DataError, safe_load_pickle

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
    """Value problems of one object whose structure :func:`frame_structure_problems` accepted."""
    name = obj.get("class")
    problems = []
    if name not in classes[2:]:
        problems.append(Problem(ERROR, "unknown_class", key, f"unknown object class {name!r}"))
    if not obj.get("visible"):
        return problems
    bbox = obj.get("bbox")
    if bbox is None:
        return [*problems, Problem(ERROR, "visible_without_box", key, f"visible {name!r} has no bbox")]
    x, y, w, h = (float(v) for v in bbox)
    if all(math.isfinite(v) for v in (x, y, w, h)) and w > 0 and h > 0 and (x + w > width + BORDER_TOLERANCE or y + h > height + BORDER_TOLERANCE) and w > x and h > y and w <= width and h <= height:
        # As xywh it leaves the image, as xyxy it fits: the classic mix-up.
        problems.append(Problem(ERROR, "xyxy_as_xywh", key, f"{name!r} bbox {tuple(bbox)} looks like xyxy but object boxes must be (x, y, w, h)"))
    else:
        problems.extend(box_problems((x, y, x + w, y + h), width, height, key, f"{name!r}"))
    problems.extend(_check_relationships(obj, key, predicates))
    return problems


def _person_problems(entry: dict, key: str) -> tuple[list[Problem], tuple[int, int]]:
    """Value problems of a person entry whose structure :func:`frame_structure_problems` accepted."""
    width, height = (int(v) for v in entry["bbox_size"])
    boxes = person_boxes(entry)
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


# ------------------------------------------------------------------ structure
#
# Pickles come from the internet and may hold anything. Every record is
# checked for the types and shapes the reader relies on before any value is
# used, so a list where a dict belongs, a string where a number belongs or a
# (3, 5) box array is a problem naming the frame and the key, not a Python
# exception deep inside the reader.

SPLIT_NAMES = ("train", "test")
RELATIONSHIP_FIELDS = ("attention_relationship", "spatial_relationship", "contacting_relationship")


def _real(value) -> float | None:
    """``value`` as a float when it is a real number (not a bool, string or container), else None."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        return None
    try:
        return float(value)
    except OverflowError:  # a Python int beyond float range
        return None


def _numbers(value) -> list[float] | None:
    """A flat list/tuple/1-D array of real numbers as floats, else None."""
    if isinstance(value, np.ndarray):
        if value.ndim != 1 or value.dtype.kind not in "iuf":
            return None
        return value.astype(np.float64).tolist()
    if not isinstance(value, (list, tuple)):
        return None
    out = [_real(v) for v in value]
    return None if any(v is None for v in out) else out


def person_boxes(entry: dict) -> np.ndarray:
    """The ``(N, 4)`` float64 person boxes of a structurally valid entry (N=0 for an empty array)."""
    bbox = entry["bbox"]
    if isinstance(bbox, np.ndarray):
        boxes = bbox.astype(np.float64)
    else:
        boxes = np.array([_numbers(row) for row in bbox], dtype=np.float64)
    return boxes.reshape(0, 4) if boxes.size == 0 else boxes


def _person_structure(entry) -> str | None:
    if not isinstance(entry, dict):
        return f"person entry is {type(entry).__name__}, expected a dict with 'bbox' and 'bbox_size'"
    for name in ("bbox", "bbox_size"):
        if name not in entry:
            return f"person entry has no {name!r} key"
    bbox = entry["bbox"]
    if isinstance(bbox, np.ndarray):
        ok = bbox.size == 0 or (bbox.dtype.kind in "iuf" and bbox.ndim == 2 and bbox.shape[1] == 4)
    else:
        ok = isinstance(bbox, (list, tuple)) and all((row := _numbers(r)) is not None and len(row) == 4 for r in bbox)
    if not ok:
        return f"person 'bbox' {_short(bbox)} is not an (N, 4) array of xyxy numbers"
    size = _numbers(entry["bbox_size"])
    if size is None or len(size) != 2 or not all(math.isfinite(v) and v >= 1 and v == int(v) and v < 2**31 for v in size):
        return f"person 'bbox_size' {_short(entry['bbox_size'])} is not (width, height) in whole pixels"
    return None


def _object_structure(obj, first: bool) -> str | None:
    if not isinstance(obj, dict):
        return f"object entry is {type(obj).__name__}, expected a dict"
    if not isinstance(obj.get("class"), str):
        return f"object 'class' {_short(obj.get('class'))} is not a class name"
    name = obj["class"]
    visible = obj.get("visible", False)
    if not isinstance(visible, (bool, np.bool_)):
        return f"{name!r} 'visible' {_short(visible)} is not True or False"
    metadata = obj.get("metadata")
    if first and not (isinstance(metadata, dict) and isinstance(metadata.get("set"), str)):
        # the reader takes the frame's split from its first object
        return f"first object {name!r} has 'metadata' {_short(metadata)}, expected a dict with 'set' ('train' or 'test')"
    if not visible:
        return None
    bbox = obj.get("bbox")
    if bbox is not None and ((numbers := _numbers(bbox)) is None or len(numbers) != 4):
        return f"{name!r} 'bbox' {_short(bbox)} is not 4 numbers (x, y, w, h)"
    for field_name in RELATIONSHIP_FIELDS:
        names = obj.get(field_name)
        if names is not None and not (isinstance(names, (list, tuple)) and all(isinstance(n, str) for n in names)):
            return f"{name!r} {field_name!r} {_short(names)} is not a list of predicate names"
    return None


def _short(value) -> str:
    text = repr(value).replace("\n", " ")
    return text if len(text) <= 60 else text[:57] + "..."


# the annotation file each structural problem kind is about
STRUCTURE_FILES = {"malformed_person": PERSON_PKL, "malformed_object": OBJECT_PKL, "unknown_split": OBJECT_PKL}


def frame_structure_problems(key: str, person_entry, objects) -> list[Problem]:
    """Type and shape problems of one frame's records (kinds in :data:`STRUCTURE_FILES`)."""
    problems = []
    message = _person_structure(person_entry)
    if message:
        problems.append(Problem(ERROR, "malformed_person", key, message))
    if not isinstance(objects, (list, tuple)):
        problems.append(Problem(ERROR, "malformed_object", key, f"object entry is {type(objects).__name__}, expected a list of object dicts"))
        return problems
    for position, obj in enumerate(objects):
        message = _object_structure(obj, first=position == 0)
        if message:
            problems.append(Problem(ERROR, "malformed_object", key, message))
    if objects and not problems and objects[0]["metadata"]["set"] not in SPLIT_NAMES:
        problems.append(Problem(ERROR, "unknown_split", key, f"metadata set {objects[0]['metadata']['set']!r} is neither 'train' nor 'test'"))
    return problems


def _printable_key(key) -> str:
    """A frame key as it can stand in a one-line report (repr unless it is a well-formed key)."""
    return key if isinstance(key, str) and FRAME_KEY_PATTERN.match(key) else repr(key)


def _frame_key_order(key) -> tuple[bool, str]:
    # keys of a damaged pickle may mix types; order them without comparing across types
    return (not isinstance(key, str), repr(key))


def _frame_file_problems(root: Path, key: str, size: tuple[int, int] | None) -> tuple[list[Problem], tuple[int, int] | None]:
    path = root / "frames" / key
    if not path.is_file():
        return [Problem(ERROR, "missing_frame", str(path), "frame listed in the annotations but missing on disk")], None
    try:
        with Image.open(path) as image:
            image_size = image.size
            # walks the chunks and their checksums without decoding pixels:
            # finds a truncated or bit-flipped download at a fraction of a decode
            image.verify()
    except UNREADABLE_IMAGE_ERRORS as err:
        return [Problem(ERROR, "unreadable_frame", str(path), f"not a readable image ({type(err).__name__}: {err})")], None
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
    for rel, data in pickles.items():
        if not isinstance(data, dict):
            problems.append(Problem(ERROR, "bad_pickle", str(root / rel), f"holds a {type(data).__name__}, expected a dict keyed by frame; re-download the annotation file"))
    person_bbox, object_bbox = pickles.get(PERSON_PKL), pickles.get(OBJECT_PKL)
    if not isinstance(person_bbox, dict) or not isinstance(object_bbox, dict):
        return problems

    for key in sorted(set(person_bbox) ^ set(object_bbox), key=_frame_key_order):
        where = PERSON_PKL if key in person_bbox else OBJECT_PKL
        problems.append(Problem(ERROR, "unpaired_frame", _printable_key(key), f"only in {where}"))

    video_sizes: dict[str, Counter] = defaultdict(Counter)
    for key in sorted(set(person_bbox) & set(object_bbox), key=_frame_key_order):
        try:
            parsed = parse_frame_key(key)
        except DataError as err:
            problems.append(Problem(ERROR, "bad_frame_key", repr(key), str(err)))
            continue
        structure = frame_structure_problems(key, person_bbox[key], object_bbox[key])
        if structure:
            problems.extend(structure)
            continue
        person_problems, size = _person_problems(person_bbox[key], key)
        problems.extend(person_problems)
        for obj in object_bbox[key]:
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
        try:
            listed = {line.strip() for line in read_text_lines(frame_list) if line.strip()}
        except DataError as err:
            return [*problems, Problem(ERROR, "bad_frame_list", str(frame_list), str(err))]
        for key in sorted(listed - set(person_bbox)):
            problems.append(Problem(WARNING, "listed_without_annotation", _printable_key(key), "in frame_list.txt but not in the pickles"))
    return problems
