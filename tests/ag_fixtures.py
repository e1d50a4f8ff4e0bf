"""Hand-written Action Genome fixtures: tiny roots built from plain dicts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from pipeline.ag.layout import write_annotations

SIZE = (320, 240)


def person(box=(10.0, 20.0, 60.0, 200.0), size=SIZE) -> dict:
    boxes = np.zeros((0, 4), np.float32) if box is None else np.array([box], np.float32)
    n = boxes.shape[0]
    return {
        "bbox": boxes,
        "bbox_score": np.ones(n, np.float32),
        "bbox_size": size,
        "bbox_mode": "xyxy",
        "keypoints": np.zeros((n, 17, 3), np.float32),
        "keypoints_logits": np.zeros((n, 17), np.float32),
    }


def obj(cls="cup/glass/bottle", bbox=(100.0, 50.0, 30.0, 40.0), split="train", attention=("looking_at",),
        spatial=("in_front_of",), contacting=("holding",), visible=True) -> dict:  # fmt: skip
    return {
        "class": cls,
        "bbox": bbox if visible else None,
        "attention_relationship": list(attention) if visible else None,
        "spatial_relationship": list(spatial) if visible else None,
        "contacting_relationship": list(contacting) if visible else None,
        "metadata": {"tag": f"x/{cls}/0", "set": split},
        "visible": visible,
    }


def write_root(root: Path, person_bbox: dict, object_bbox: dict, frames: bool = True) -> Path:
    """Write an AG root; with ``frames`` also a blank PNG per frame key."""
    write_annotations(root, person_bbox, object_bbox, sorted(person_bbox))
    if frames:
        for key, entry in person_bbox.items():
            path = root / "frames" / key
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", tuple(entry["bbox_size"]), (200, 200, 200)).save(path)
    return root


def video(name: str, numbers, split="train", objects_per_frame=None) -> tuple[dict, dict]:
    """A video whose frames each hold one visible cup (or ``objects_per_frame``)."""
    person_bbox, object_bbox = {}, {}
    for number in numbers:
        key = f"{name}.mp4/{number:06d}.png"
        person_bbox[key] = person()
        object_bbox[key] = objects_per_frame(number) if objects_per_frame else [obj(split=split)]
    return person_bbox, object_bbox
