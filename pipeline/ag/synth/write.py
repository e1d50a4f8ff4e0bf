"""The synthetic AG root on disk: both pickles, the class files, the frame list and PNG frames.

Labels come from the scene as drawn (:mod:`pipeline.ag.synth.labels`); the
boxes written carry annotation jitter (every corner N(0, ``BOX_JITTER_SD``)),
as human and detector boxes do, and the person box of some frames is
missing, as AG's person detector misses people.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from tqdm import tqdm

from pipeline.ag.layout import write_annotations
from pipeline.ag.synth.labels import attention_label, spatial_labels
from pipeline.ag.synth.paint import scripted_frames
from pipeline.ag.synth.plan import VideoPlan, planned_videos
from pipeline.ag.synth.trajectory import clip_box
from pipeline.io import atomic_dir, disk_full_as_error, usable_cores
from pipeline.params import Params, SynthParams

BOX_JITTER_SD = 0.3  # px per box corner
PERSON_MISSED = 0.07  # share of frames whose person box is missing (AG: about 12%)
# zlib level 1: the painted noise compresses no better at 6 (42.6 against 46.6
# KB a frame) and level 6 took 4x as long, 86% of the stage. The pixels, and
# so everything downstream, do not depend on the level.
PNG_COMPRESS_LEVEL = 1


def _jittered(rng: np.random.Generator, box, width: int, height: int) -> tuple[float, float, float, float]:
    return clip_box(np.asarray(box) + rng.normal(0.0, BOX_JITTER_SD, size=4), width, height)


def synthesize_video(params: SynthParams, index: int, split: str, plan: VideoPlan | None = None):
    """Frames (PIL images) and the two annotation dicts of one video."""
    images, person_ann, object_ann = {}, {}, {}
    for frame, rng, video in scripted_frames(params, index, split, plan):
        name, frame_number, person, eye_visible = frame.video, frame.frame_number, frame.person, frame.eye_visible
        key = f"{name}/{frame_number:06d}.png"
        images[key] = frame.image
        detected = rng.random() > PERSON_MISSED
        person_box = _jittered(rng, person, params.width, params.height)
        box = np.array([person_box], dtype=np.float32) if detected else np.zeros((0, 4), dtype=np.float32)
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
            x1, y1, x2, y2 = _jittered(rng, item.box, params.width, params.height)
            visible = item.visible
            objects.append({
                "class": item.name,
                "bbox": (x1, y1, round(x2 - x1, 1), round(y2 - y1, 1)) if visible else None,
                "attention_relationship": [attention_label(item.box, person, video.gaze, eye_visible)]
                if visible else None,
                "spatial_relationship": spatial_labels(item.box, person, item.in_front) if visible else None,
                "contacting_relationship": list(item.contacting) if visible else None,
                "metadata": {"tag": f"{name}/{item.name.replace('/', '_')}/{frame_number:06d}", "set": split},
                "visible": visible,
            })  # fmt: skip
        object_ann[key] = objects
    return images, person_ann, object_ann


def run_synth_stage(params: Params) -> dict:
    """The ``synth`` stage: the synthetic AG root at ``synth.out_dir``."""
    return write_synthetic_ag(params.synth.out_dir, params.synth)


def write_synthetic_ag(out_dir: str | Path, params: SynthParams, progress: bool = True, images: bool = True) -> dict:
    """Write a synthetic Action Genome root; return a small summary.

    ``images=False`` writes the annotations only (no PNG frames): enough for
    the index, the motion table and the probes, at a fraction of the cost.

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
        return _write_into(staging, params, progress, written, images)


def _write_into(staging: Path, params: SynthParams, progress: bool, written: dict, images: bool) -> dict:
    (staging / "annotations").mkdir(parents=True)
    videos = planned_videos(params)
    n_test = sum(split == "test" for _, split, _ in videos)
    person_all, object_all, frame_keys = {}, {}, []

    def save(key_and_image) -> int:
        path = staging / "frames" / key_and_image[0]
        key_and_image[1].save(path, format="PNG", optimize=False, compress_level=PNG_COMPRESS_LEVEL)
        return path.stat().st_size

    # PIL releases the GIL while it compresses, so threads encode in parallel;
    # each frame's bytes depend only on its pixels, so the files are the same.
    with ThreadPoolExecutor(max_workers=min(4, usable_cores())) as encoders:
        for index, split, plan in tqdm(videos, desc="synth videos", disable=not progress, unit="video"):
            frames, person_ann, object_ann = synthesize_video(params, index, split, plan)
            if images and frames:
                for folder in {Path(key).parent for key in frames}:
                    (staging / "frames" / folder).mkdir(parents=True, exist_ok=True)
                written["bytes"] += sum(encoders.map(save, frames.items()))
            written["videos"] += 1
            person_all.update(person_ann)
            object_all.update(object_ann)
            frame_keys.extend(frames)
    write_annotations(staging, person_all, object_all, frame_keys)
    return {"videos": params.videos, "frames": len(frame_keys), "test_videos": n_test}
