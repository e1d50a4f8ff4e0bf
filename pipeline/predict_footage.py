"""``mosa predict``: scene graphs for footage the pipeline has never seen.

The footage (a folder of frames or a video file) is laid out as a one-video
Action Genome root with a one-split index, then goes through the same
library code as the stages: :func:`pipeline.extraction.driver.extract_cache`
(detector, AG post-processing, ROI features), :func:`pipeline.motion.write_motion_table`
(tracks and motion attributes) and the trained SGDet head through
:func:`pipeline.training.mode_data.open_mode` / :func:`pipeline.training.inference.predict`.
Without annotations only SGDet applies: boxes and labels come from the detector.

Outputs in ``OUT_DIR``: ``graphs/<frame>.json`` (one scene graph per frame,
format in docs/predict_output.md), ``overlays/<frame>.png`` (the frame with
boxes and triplets), both limited to confident detections after class-aware
NMS (:mod:`pipeline.viz.detections`), ``predictions.parquet`` (every pair, the
evaluator's format) and ``work/`` (the intermediate caches, kept so a rerun
can be inspected).
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import polars as pl
from PIL import Image
from tqdm import tqdm

from pipeline.ag.reader import FRAME_SCHEMA, OBJECT_SCHEMA, RELATION_SCHEMA, AGIndex, write_index
from pipeline.constants import GROUPS, PREDICATES
from pipeline.io import (
    UNREADABLE_IMAGE_ERRORS,
    DataError,
    DiskFullError,
    atomic_dir,
    atomic_path,
    atomic_write_json,
    disk_full_as_error,
    tree_size,
)
from pipeline.outputs import detector_checkpoint, head_model_path
from pipeline.params import Params
from pipeline.viz.detections import MIN_OBJECT_SCORE, shown_pairs
from pipeline.viz.drawing import render_frame, save_png
from pipeline.viz.triplets import object_name, predicted_triplets

MODE = "sgdet"  # the only mode that needs no annotated boxes
FRAME_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm")


@dataclass(frozen=True)
class FootageFrame:
    key: str  # AG-style key VIDEO.mp4/NNNNNN.png
    number: int
    width: int
    height: int


def footage_video_name(source: Path) -> str:
    """AG-style video id of the footage: its name (letters, digits, -_) with ``.mp4``."""
    stem = source.stem if source.is_file() or source.suffix.lower() in VIDEO_SUFFIXES else source.name
    return (re.sub(r"[^A-Za-z0-9_-]", "_", stem) or "footage") + ".mp4"


def _frame_number(path: Path, position: int) -> int:
    """The number in the file name (AG and `mosa synth` name frames 000089.png), else the position."""
    digits = re.findall(r"\d+", path.stem)
    return int(digits[-1]) if digits else position + 1


def stage_frames(source: Path, root: Path, every: int = 1) -> list[FootageFrame]:
    """Copy (folder) or decode (video, every ``every``-th frame) the footage into ``root/frames/VIDEO/``."""
    video = footage_video_name(source)
    out = root / "frames" / video
    out.mkdir(parents=True, exist_ok=True)
    staged = []

    def keep(image: Image.Image, number: int) -> None:
        key = f"{video}/{number:06d}.png"
        image.convert("RGB").save(root / "frames" / key)
        staged.append(FootageFrame(key, number, image.width, image.height))

    if source.is_dir():
        paths = sorted(p for p in source.iterdir() if p.suffix.lower() in FRAME_SUFFIXES)
        if not paths:
            raise DataError(f"{source}: no frames ({', '.join(FRAME_SUFFIXES)}) in this folder")
        numbers = [_frame_number(p, i) for i, p in enumerate(paths)]
        if len(set(numbers)) != len(numbers):  # names without distinct numbers: use the sorted order
            numbers = list(range(1, len(paths) + 1))
        for path, number in sorted(zip(paths[::every], numbers[::every], strict=True), key=lambda item: item[1]):
            try:
                with Image.open(path) as image:
                    image.load()
            except UNREADABLE_IMAGE_ERRORS as err:
                raise DataError(f"{path}: cannot read this frame ({type(err).__name__})") from None
            # outside the try: an error writing the copy (a full disk) is not a bad frame
            keep(image, number)
    elif source.suffix.lower() in VIDEO_SUFFIXES:
        import cv2

        capture = cv2.VideoCapture(str(source))
        if not capture.isOpened():
            raise DataError(f"{source}: cannot open this video (unsupported codec or not a video)")
        position = 0
        while True:
            ok, bgr = capture.read()
            if not ok:
                break
            if position % every == 0:
                keep(Image.fromarray(bgr[:, :, ::-1]), position + 1)
            position += 1
        capture.release()
        if not staged:
            raise DataError(f"{source}: no frame could be decoded")
    else:
        raise DataError(f"{source}: not a folder of frames or a video ({', '.join(VIDEO_SUFFIXES)})")
    return staged


def footage_index(frames: list[FootageFrame]) -> AGIndex:
    """A one-video index (split ``test``) without annotations.

    The person box columns are required by the schema; the whole image
    stands in for them. Only ground-truth-box modes read it, never SGDet.
    """
    rows = [
        {"frame": f.key, "video": f.key.split("/")[0], "frame_number": f.number, "split": "test", "width": f.width,
         "height": f.height, "person_x1": 0.0, "person_y1": 0.0, "person_x2": float(f.width), "person_y2": float(f.height)}
        for f in frames
    ]  # fmt: skip
    return AGIndex(
        pl.DataFrame(rows, schema=FRAME_SCHEMA),
        pl.DataFrame(schema=OBJECT_SCHEMA),
        pl.DataFrame(schema=RELATION_SCHEMA),
    )


def footage_params(params: Params, work: Path) -> Params:
    """``params`` with the dataset, index, ROI cache and motion table moved into ``work``."""
    return params.model_copy(
        update={
            "dataset": params.dataset.model_copy(update={"root": str(work / "dataset"), "index_dir": str(work / "index")}),
            "extract": params.extract.model_copy(update={"out_dir": str(work / "roi"), "metrics_path": str(work / "extract.json")}),
            "motion": params.motion.model_copy(update={"out_path": str(work / "motion.parquet")}),
        }
    )


def extract_features(params: Params, footage: Params) -> None:
    """Detector + ROI features of the footage; refused up front if the head was trained on another detector's features."""
    import torch

    from pipeline.detector.model import load_detector
    from pipeline.extraction.cache import (
        CACHE_FILE,
        FORMAT_VERSION,
        RoiCache,
        require_same_extractor,
    )
    from pipeline.extraction.driver import extract_cache
    from pipeline.extraction.frame_records import load_frame_records

    use_cuda = params.extract.device == "cuda" or (params.extract.device == "auto" and torch.cuda.is_available())
    device = torch.device("cuda" if use_cuda else "cpu")
    detector = load_detector(params.detector.config, detector_checkpoint(params.detector), device)
    trained_on = Path(params.extract.out_dir) / CACHE_FILE
    if trained_on.is_file():
        with RoiCache(trained_on) as training:
            require_same_extractor(
                training.identity,
                {"format_version": FORMAT_VERSION, **detector.identity()},
                f"{trained_on} (training features) and {detector_checkpoint(params.detector)} (detector for the footage)",
            )
    records = load_frame_records(footage.dataset.index_dir, footage.dataset.root)
    extract_cache(detector, records, footage.extract, params.detector.postprocess, device=device)


def shown_person(frame_rows: pl.DataFrame, min_score: float) -> dict | None:
    """The frame's person detection (every row of a frame has the same one) if its score is >= ``min_score``."""
    if not len(frame_rows):
        return None
    person = frame_rows.row(0, named=True)
    return person if person["subject_score"] >= min_score else None


def scene_graph(pair_rows: pl.DataFrame, frame: FootageFrame, person: dict | None = None) -> dict:
    """One frame's graph: nodes (person first, then objects) and the with-constraint triplets with probabilities.

    ``person`` (a predictions row) keeps the person a node when no pair is shown.
    """
    nodes, edges, pairs = [], [], []
    if person is None and len(pair_rows):
        person = pair_rows.row(0, named=True)
    if person is not None:
        nodes.append({"id": 0, "label": "person", "box": list(person["subject_box"]), "score": person["subject_score"]})
    for pair in pair_rows.iter_rows(named=True):
        node = len(nodes)
        nodes.append({"id": node, "label": object_name(pair["object_label"]), "box": list(pair["object_box"]), "score": pair["object_score"]})
        for triplet in predicted_triplets(pair["object_label"], pair["attention"], pair["spatial"], pair["contacting"]):
            spatial = triplet.group == "spatial"  # AG points spatial relations from the object to the person
            edges.append({"subject": node if spatial else 0, "predicate": PREDICATES[triplet.predicate],
                          "object": 0 if spatial else node, "group": triplet.group, "score": triplet.score})  # fmt: skip
        pairs.append({
            "subject": 0, "object": node,
            **{group: dict(zip(PREDICATES[span], map(float, pair[group]), strict=True)) for group, span in GROUPS.items()},
        })  # fmt: skip
    return {"frame": frame.key, "frame_number": frame.number, "width": frame.width, "height": frame.height,
            "mode": MODE, "nodes": nodes, "triplets": edges, "pair_probabilities": pairs}  # fmt: skip


@dataclass(frozen=True)
class PredictSummary:
    video: str
    frames: int
    pairs: int
    graphs_dir: Path
    overlays_dir: Path


def predict_footage(
    source: str | Path, out_dir: str | Path, params: Params, every: int = 1, overlays: bool = True, min_score: float = MIN_OBJECT_SCORE
) -> PredictSummary:
    """Run detector -> features -> motion -> trained SGDet head on new footage; write graphs and overlays.

    Graphs and overlays hold the pairs :func:`pipeline.viz.detections.shown_pairs` keeps
    (object score >= ``min_score``, class-aware NMS); ``predictions.parquet`` holds all.

    The graphs and overlays folders are replaced as a whole when complete; on
    a full disk the intermediate ``work`` folder is removed as well.
    """
    source, out_dir = Path(source), Path(out_dir)
    if not source.exists():
        raise DataError(f"{source}: no such folder or video")
    if every < 1:
        raise DataError(f"--every {every}: must be at least 1")
    head = head_model_path(params.train.out_dir, MODE)
    if not head.is_file():
        raise DataError(f"{head}: no trained {MODE} head (run `dvc repro train@{MODE}`)")
    work = out_dir / "work"
    try:
        with disk_full_as_error(out_dir, lambda: tree_size(out_dir)):
            return _predict_into(source, out_dir, work, params, every, overlays, min_score)
    except DiskFullError:
        shutil.rmtree(work, ignore_errors=True)  # intermediate files only: give the space back
        raise


def _predict_into(source: Path, out_dir: Path, work: Path, params: Params, every: int, overlays: bool, min_score: float) -> PredictSummary:
    from pipeline.motion import write_motion_table
    from pipeline.training.inference import predict
    from pipeline.training.mode_data import load_trained, open_mode

    footage = footage_params(params, work)
    frames = stage_frames(source, work / "dataset", every)
    write_index(footage_index(frames), footage.dataset.index_dir)
    extract_features(params, footage)
    write_motion_table(footage.dataset.index_dir, footage.extract.out_dir, footage.motion)
    with open_mode(footage, MODE) as data:
        model = load_trained(params, data)  # checked against the settings it was trained with
        table = predict(model, data.batches(footage, "test"), MODE)
    with atomic_path(out_dir / "predictions.parquet", suffix=".parquet") as tmp:
        table.write_parquet(tmp)
    graphs_dir, overlays_dir = out_dir / "graphs", out_dir / "overlays"
    with atomic_dir(graphs_dir) as graphs_staging, atomic_dir(overlays_dir) if overlays else contextlib.nullcontext() as overlays_staging:
        for frame in tqdm(frames, desc="graphs", unit="frame"):
            frame_rows = table.filter(pl.col("frame") == frame.key)
            rows, person = shown_pairs(frame_rows, min_score), shown_person(frame_rows, min_score)
            name = frame.key.split("/")[1].removesuffix(".png")
            atomic_write_json(graphs_staging / f"{name}.json", scene_graph(rows, frame, person))
            if overlays:
                person_box = None if person is None else person["subject_box"]
                with Image.open(work / "dataset" / "frames" / frame.key) as image:
                    save_png(render_frame(image.convert("RGB"), rows, None, f"{frame.key} ({MODE}, no annotation)", person_box), overlays_staging / f"{name}.png")
    return PredictSummary(frames[0].key.split("/")[0], len(frames), int(table.height), graphs_dir, overlays_dir)


def summary_counts(graphs_dir: Path) -> dict[str, int]:
    """Triplets per predicate over the written graphs (for the command's closing line)."""
    counts: dict[str, int] = {}
    for path in sorted(graphs_dir.glob("*.json")):
        for edge in json.loads(path.read_text())["triplets"]:
            counts[edge["predicate"]] = counts.get(edge["predicate"], 0) + 1
    return dict(sorted(counts.items(), key=lambda item: -item[1]))


__all__ = ["PredictSummary", "predict_footage", "scene_graph", "shown_person", "stage_frames", "summary_counts"]
