"""Paths and file-level helpers of the official Action Genome layout.

```
ROOT/annotations/person_bbox.pkl
ROOT/annotations/object_bbox_and_relationship.pkl
ROOT/annotations/object_classes.txt        # 36 raw names
ROOT/annotations/relationship_classes.txt  # 26 raw names
ROOT/annotations/frame_list.txt            # one frame key per line
ROOT/frames/VIDEO.mp4/NNNNNN.png
```
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from pipeline.constants import (
    OBJECT_CLASSES,
    PREDICATES,
    RAW_OBJECT_FIXES,
    RAW_PREDICATE_FIXES,
)
from pipeline.io import DataError

PERSON_PKL = "annotations/person_bbox.pkl"
OBJECT_PKL = "annotations/object_bbox_and_relationship.pkl"
OBJECT_CLASSES_TXT = "annotations/object_classes.txt"
RELATIONSHIP_CLASSES_TXT = "annotations/relationship_classes.txt"
FRAME_LIST_TXT = "annotations/frame_list.txt"
ANNOTATION_FILES = (PERSON_PKL, OBJECT_PKL, OBJECT_CLASSES_TXT, RELATIONSHIP_CLASSES_TXT, FRAME_LIST_TXT)

# VIDEO.mp4/NNNNNN.png with a plain file-name video id: anything else (slashes,
# '..', absolute paths) could escape the frames folder.
# (\Z, not $: a $ would also accept a trailing newline.)
FRAME_KEY_PATTERN = re.compile(r"^(?P<video>[A-Za-z0-9_\-]+\.mp4)/(?P<number>\d{6})\.png\Z")


@dataclass(frozen=True)
class FrameKey:
    video: str
    number: int


def parse_frame_key(key: str) -> FrameKey:
    """Split ``'001YG.mp4/000089.png'``; refuse anything that is not that shape."""
    match = FRAME_KEY_PATTERN.match(key) if isinstance(key, str) else None
    if match is None:
        raise DataError(
            f"frame key {key!r} is not of the form VIDEO.mp4/NNNNNN.png (path traversal or a corrupt annotation file)"
        )
    return FrameKey(match["video"], int(match["number"]))


def frame_path(root: str | Path, key: str) -> Path:
    """The PNG of a frame key; the key is validated first, so it cannot escape ``root/frames``."""
    parse_frame_key(key)
    return Path(root) / "frames" / key


def read_text_lines(path: Path) -> list[str]:
    """The lines of a UTF-8 text file (a leading byte-order mark is dropped); other bytes are a :class:`DataError`."""
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not UTF-8 text (byte {err.start} is {data[err.start:err.start + 1]!r}); use the official file") from None
    if "\x00" in text:
        raise DataError(f"{path}: holds NUL bytes, not a text file; use the official file")
    return text.splitlines()


def read_class_file(path: Path, fixes: dict[str, str], expected: tuple[str, ...]) -> list[str]:
    """Read a raw class txt, apply the standard name fix-ups and check it matches ``expected``."""
    if not path.is_file():
        raise DataError(f"{path}: missing (an Action Genome root needs annotations/{path.name})")
    names = [fixes.get(line.strip(), line.strip()) for line in read_text_lines(path) if line.strip()]
    if tuple(names) != expected:
        unknown = [n for n in names if n not in expected]
        missing = [n for n in expected if n not in names]
        if unknown:
            detail = f"unknown names {unknown[:5]}"
        elif missing:
            detail = f"missing names {missing[:5]}"
        else:
            detail = f"{len(names)} names (expected {len(expected)}) in a different order or repeated"
        raise DataError(f"{path}: does not match the Action Genome class list ({detail}); use the official file")
    return names


def read_object_classes(root: str | Path) -> list[str]:
    """The 37-entry object list: ``__background__`` + the 36 fixed-up names."""
    names = read_class_file(Path(root) / OBJECT_CLASSES_TXT, RAW_OBJECT_FIXES, OBJECT_CLASSES[1:])
    return ["__background__", *names]


def read_predicates(root: str | Path) -> list[str]:
    return read_class_file(Path(root) / RELATIONSHIP_CLASSES_TXT, RAW_PREDICATE_FIXES, PREDICATES)


def write_annotations(root: str | Path, person_bbox: dict, object_bbox: dict, frame_keys: list[str]) -> None:
    """Write the five annotation files of an AG root (raw class names, as the official files have)."""
    import pickle

    from pipeline.constants import OBJECT_CLASSES, raw_object_name, raw_predicate_name
    from pipeline.io import atomic_write_bytes, atomic_write_text

    root = Path(root)
    atomic_write_bytes(root / PERSON_PKL, pickle.dumps(person_bbox, protocol=4))
    atomic_write_bytes(root / OBJECT_PKL, pickle.dumps(object_bbox, protocol=4))
    atomic_write_text(root / OBJECT_CLASSES_TXT, "".join(raw_object_name(n) + "\n" for n in OBJECT_CLASSES[1:]))
    atomic_write_text(root / RELATIONSHIP_CLASSES_TXT, "".join(raw_predicate_name(n) + "\n" for n in PREDICATES))
    atomic_write_text(root / FRAME_LIST_TXT, "".join(k + "\n" for k in frame_keys))
