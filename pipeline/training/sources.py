"""Builds per-video :class:`VideoPairs` from the caches, for one mode.

Inputs (docs/schemas.md): the index tables (targets), the ROI cache
(features and boxes, read one video group at a time), the motion table
(attributes per pair and frame) and the text cache (class-name and prompt
embeddings).

* PredCls/SGCls: the cache's ground-truth pairs. SGCls and SGDet use the
  index without small objects, as the reference's ``filtersmall`` file does.
* SGDet: the cache's detection pairs with the frame's top-scoring person
  (as the motion stage links them), each detection matched to a
  ground-truth box by IoU for its targets; unmatched detections teach only
  "background" to the object classifier.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from pipeline.boxes import pairwise_iou
from pipeline.constants import CONTACTING, NUM_OBJECT_CLASSES, PERSON_INDEX, SPATIAL, check_mode
from pipeline.evaluation.ground_truth import drop_small_objects
from pipeline.extraction.cache import RoiCache, top_person_rows
from pipeline.io import DataError
from pipeline.motion.attributes import BASE_ATTRIBUTES, EXTRA_ATTRIBUTES
from pipeline.training.data import VideoPairs
from pipeline.training.matching import greedy_match

OBJECT_BOX = ["x1", "y1", "x2", "y2"]
PERSON_BOX = ["person_x1", "person_y1", "person_x2", "person_y2"]


def motion_columns(attributes: tuple[str, ...]) -> list[str]:
    """Motion-table columns of the selected MFE attributes, in order."""
    columns: list[str] = []
    for name in attributes:
        columns.extend((name,) if name in BASE_ATTRIBUTES else EXTRA_ATTRIBUTES[name])
    return columns


def mode_view(frames: pl.DataFrame, objects: pl.DataFrame, mode: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The index as a mode sees it: SGCls/SGDet drop small objects (and the frames left empty).

    An index without any annotated object (new footage, ``mosa predict``) has
    nothing to filter by; SGDet keeps all its frames.
    """
    if check_mode(mode) == "predcls" or (mode == "sgdet" and objects.is_empty()):
        return frames, objects
    return drop_small_objects(frames, objects)


def multi_hot(lists: pl.Series, start: int, size: int) -> np.ndarray:
    """[rows, size] float32 indicator of global predicate indices start..start+size-1."""
    out = np.zeros((len(lists), size), dtype=np.float32)
    lengths = lists.list.len().fill_null(0).to_numpy()
    values = lists.explode().drop_nulls().to_numpy().astype(np.int64) - start
    rows = np.repeat(np.arange(len(lists)), lengths)
    out[rows, values] = 1.0
    return out


def _by_video(table: pl.DataFrame) -> dict[str, pl.DataFrame]:
    return {key[0]: part for key, part in table.partition_by("video", as_dict=True).items()}


class CacheSource:
    """A :class:`~pipeline.training.data.VideoSource` over the cached features of one mode."""

    def __init__(
        self,
        mode: str,
        cache: RoiCache,
        frames: pl.DataFrame,
        objects: pl.DataFrame,
        motion: pl.DataFrame,
        attributes: tuple[str, ...],
        match_iou: float = 0.5,
        motion_path: str | Path = "motion table",
    ) -> None:
        frames, objects = mode_view(frames, objects, mode)
        self.mode = mode
        self.cache = cache
        self.match_iou = match_iou
        self.motion_columns = motion_columns(attributes)
        missing = [c for c in self.motion_columns if c not in motion.columns]
        if missing:
            raise DataError(
                f"{motion_path}: no column(s) {', '.join(missing)} for model.mfe_attributes; "
                "turn the matching motion.extras switch on, or drop them from model.mfe_attributes"
            )
        source = "det" if mode == "sgdet" else "gt"
        motion = motion.filter(pl.col("source") == source).select(
            "video", "frame", "object_index", *self.motion_columns
        )
        self.frames = _by_video(frames.sort("video", "frame_number"))
        self.objects = _by_video(objects)
        self.motion = _by_video(motion)
        self.skipped_frames = set(cache.attrs.get("skipped_frames", []))
        self.split_of = dict(zip(frames["video"], frames["split"], strict=True))

    def videos(self, split: str) -> list[str]:
        videos = sorted(v for v, s in self.split_of.items() if s == split)
        absent = [v for v in videos if v not in self.cache]
        if absent:
            raise DataError(
                f"{self.cache.path}: video {absent[0]} ({len(absent)} of the {split} split) is not in the ROI "
                "cache; rerun the extract stage on the current index"
            )
        return videos

    def motion_statistics(self, videos: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Per-attribute mean and standard deviation over the given videos' motion rows."""
        parts = [self.motion[v] for v in videos if v in self.motion]
        if not parts:
            zeros = np.zeros(len(self.motion_columns), dtype=np.float32)
            return zeros, np.ones_like(zeros)
        values = pl.concat(parts).select(self.motion_columns).to_numpy().astype(np.float64)
        return values.mean(axis=0).astype(np.float32), values.std(axis=0).astype(np.float32)

    # ------------------------------------------------------------------ loading

    def load(self, video: str) -> VideoPairs:
        arrays = self.cache.read_video(video)
        frames = self.frames.get(video)
        if frames is None:
            raise DataError(f"video {video} is not in the {self.mode} view of the index")
        cache_frame_of = {key: i for i, key in enumerate(arrays["frame"])}
        missing = [f for f in frames["frame"] if f not in cache_frame_of]
        unexplained = [f for f in missing if f not in self.skipped_frames]
        if unexplained:
            raise DataError(f"{self.cache.path}: frame {unexplained[0]} is not in the ROI cache; rerun the extract stage")
        # Frames the extractor could not decode (extract.skip_missing_frames) have no
        # features: they are left out here and count as missed in evaluation.
        frames = frames.filter(~pl.col("frame").is_in(missing))
        kept_cache_frames = np.array([cache_frame_of[f] for f in frames["frame"]], dtype=np.int64)
        if self.mode == "sgdet":
            pairs = self._detection_pairs(arrays, kept_cache_frames)
        else:
            pairs = self._ground_truth_pairs(arrays, kept_cache_frames)
        return self._finish(video, arrays, frames, kept_cache_frames, pairs)

    def _ground_truth_pairs(self, arrays: dict[str, np.ndarray], kept_frames: np.ndarray) -> dict[str, np.ndarray]:
        person_row, object_row = arrays["gt_pairs"][:, 0].astype(np.int64), arrays["gt_pairs"][:, 1].astype(np.int64)
        frame = np.searchsorted(arrays["gt_offsets"], person_row, side="right") - 1
        keep = np.isin(frame, kept_frames)
        if self.mode != "predcls":
            keep &= ~arrays["gt_small"][object_row]
        person_row, object_row, frame = person_row[keep], object_row[keep], frame[keep]
        ones = np.ones(len(frame))
        return {
            **_pair_features(arrays, "gt", person_row, object_row, frame, keep),
            "object_label": arrays["gt_labels"][object_row].astype(np.int64),
            "object_index": arrays["gt_labels"][object_row].astype(np.int64),
            "subject_score": ones,
            "object_score": ones,
        }

    def _detection_pairs(self, arrays: dict[str, np.ndarray], kept_frames: np.ndarray) -> dict[str, np.ndarray]:
        offsets = arrays["det_offsets"]
        labels, scores = arrays["det_labels"].astype(np.int64), arrays["det_scores"].astype(np.float64)
        person_row, object_row = arrays["det_pairs"][:, 0].astype(np.int64), arrays["det_pairs"][:, 1].astype(np.int64)
        frame = np.searchsorted(offsets, person_row, side="right") - 1
        top_person = top_person_rows(labels, scores, offsets)
        keep = np.isin(frame, kept_frames) & (person_row == top_person[frame]) & (labels[object_row] > PERSON_INDEX)
        person_row, object_row, frame = person_row[keep], object_row[keep], frame[keep]
        return {
            **_pair_features(arrays, "det", person_row, object_row, frame, keep),
            "object_label": labels[object_row],
            "object_index": object_row - offsets[frame],
            "object_dist": arrays["det_class_scores"][object_row].astype(np.float32),
            "subject_score": scores[person_row],
            "object_score": scores[object_row],
        }

    def _finish(
        self,
        video: str,
        arrays: dict[str, np.ndarray],
        frames: pl.DataFrame,
        kept_frames: np.ndarray,
        pairs: dict[str, np.ndarray],
    ) -> VideoPairs:
        position_of_cache_frame = {int(c): i for i, c in enumerate(kept_frames)}
        pair_frame = np.array([position_of_cache_frame[int(c)] for c in pairs["cache_frame"]], dtype=np.int64)
        order = np.argsort(pair_frame, kind="stable")
        pairs = {k: v[order] for k, v in pairs.items()}
        pair_frame = pair_frame[order]
        frame_keys = frames["frame"].to_list()
        keys = pl.DataFrame(
            {
                "frame": [frame_keys[i] for i in pair_frame],
                "object_index": pairs["object_index"].astype(np.int32),
            },
            schema={"frame": pl.String, "object_index": pl.Int32},
        )
        motion = self._motion_rows(video, keys)
        targets = self._targets(video, frames, keys, pairs, pair_frame)
        image_size = np.stack([arrays["width"][kept_frames], arrays["height"][kept_frames]], axis=1)
        return VideoPairs(
            video=video,
            frames=frame_keys,
            image_size=image_size.astype(np.float64),
            pair_frame=pair_frame,
            subject_roi=pairs["subject_roi"].astype(np.float32),
            object_roi=pairs["object_roi"].astype(np.float32),
            union=pairs["union"].astype(np.float32),
            subject_box=pairs["subject_box"].astype(np.float64),
            object_box=pairs["object_box"].astype(np.float64),
            subject_score=pairs["subject_score"].astype(np.float64),
            object_score=pairs["object_score"].astype(np.float64),
            object_label=pairs["object_label"].astype(np.int64),
            object_dist=pairs.get("object_dist"),
            motion=motion,
            **targets,
        )

    def _motion_rows(self, video: str, keys: pl.DataFrame) -> np.ndarray:
        table = self.motion.get(video)
        if table is None:
            table = pl.DataFrame(schema={"frame": pl.String, "object_index": pl.Int32, **{c: pl.Float32 for c in self.motion_columns}})
        joined = keys.join(
            table.select("frame", pl.col("object_index").cast(pl.Int32), *self.motion_columns),
            on=["frame", "object_index"],
            how="left",
            maintain_order="left",
        )
        absent = joined.filter(pl.col(self.motion_columns[0]).is_null())
        if absent.height:
            raise DataError(
                f"motion table: no row for frame {absent['frame'][0]} object {absent['object_index'][0]}; "
                "rerun the motion stage on the current index and ROI cache"
            )
        return joined.select(self.motion_columns).to_numpy().astype(np.float32)

    def _targets(
        self, video: str, frames: pl.DataFrame, keys: pl.DataFrame, pairs: dict[str, np.ndarray], pair_frame: np.ndarray
    ) -> dict[str, np.ndarray]:
        objects = self.objects.get(video, pl.DataFrame(schema={"frame": pl.String, "object_class": pl.Int16}))
        n = len(pair_frame)
        if self.mode == "sgdet":
            truth_row = self._match_detections(frames, objects, pairs, pair_frame)
        else:
            lookup = {(f, int(c)): i for i, (f, c) in enumerate(zip(objects["frame"], objects["object_class"], strict=True))}
            truth_row = np.array([lookup.get((f, int(c)), -1) for f, c in zip(keys["frame"], pairs["object_label"], strict=True)], dtype=np.int64)
            if (truth_row < 0).any():
                bad = int(np.argmax(truth_row < 0))
                raise DataError(
                    f"{self.cache.path}: frame {keys['frame'][bad]} has object class {pairs['object_label'][bad]} "
                    "that the index does not list; rebuild the extract stage from the current index"
                )
        matched = truth_row >= 0
        rows = objects[np.where(matched, truth_row, 0).tolist()] if objects.height else None
        target_object = np.zeros(n, dtype=np.int64)
        target_attention = np.zeros(n, dtype=np.int64)
        target_spatial = np.zeros((n, SPATIAL.stop - SPATIAL.start), dtype=np.float32)
        target_contacting = np.zeros((n, CONTACTING.stop - CONTACTING.start), dtype=np.float32)
        if rows is not None and matched.any():
            target_object[matched] = rows["object_class"].to_numpy()[matched]
            target_attention[matched] = rows["attention"].list.first().to_numpy()[matched]
            target_spatial[matched] = multi_hot(rows["spatial"], SPATIAL.start, target_spatial.shape[1])[matched]
            target_contacting[matched] = multi_hot(rows["contacting"], CONTACTING.start, target_contacting.shape[1])[matched]
        if (target_object >= NUM_OBJECT_CLASSES).any():
            raise DataError(f"index: video {video} has an object class outside 0..{NUM_OBJECT_CLASSES - 1}")
        return {
            "target_object": target_object,
            "target_attention": target_attention,
            "target_spatial": target_spatial,
            "target_contacting": target_contacting,
            "has_relation": matched,
        }

    def _match_detections(
        self, frames: pl.DataFrame, objects: pl.DataFrame, pairs: dict[str, np.ndarray], pair_frame: np.ndarray
    ) -> np.ndarray:
        """Index row (into ``objects``) of each detection pair's ground truth, -1 if unmatched."""
        truth_row = np.full(len(pair_frame), -1, dtype=np.int64)
        frame_keys = frames["frame"].to_list()
        person_boxes = frames.select(PERSON_BOX).to_numpy()
        object_rows = objects.with_row_index("row")
        rows_of_frame = {key[0]: part for key, part in object_rows.partition_by("frame", as_dict=True).items()} if objects.height else {}
        for f in np.unique(pair_frame):
            members = np.nonzero(pair_frame == f)[0]
            truths = rows_of_frame.get(frame_keys[f])
            if truths is None:
                continue
            # A pair is only as right as its subject: the person must be found too.
            person_iou = pairwise_iou(pairs["subject_box"][members[:1]], person_boxes[f : f + 1])[0, 0]
            if person_iou < self.match_iou:
                continue
            match = greedy_match(pairs["object_box"][members], truths.select(OBJECT_BOX).to_numpy(), self.match_iou)
            hit = match >= 0
            truth_row[members[hit]] = truths["row"].to_numpy()[match[hit]]
        return truth_row


def _pair_features(arrays: dict[str, np.ndarray], prefix: str, person_row, object_row, frame, keep) -> dict[str, np.ndarray]:
    """Boxes and features of the kept (person, object) pairs of one box set (``gt`` or ``det``)."""
    return {
        "cache_frame": frame,
        "subject_box": arrays[f"{prefix}_boxes"][person_row],
        "object_box": arrays[f"{prefix}_boxes"][object_row],
        "subject_roi": arrays[f"{prefix}_features"][person_row],
        "object_roi": arrays[f"{prefix}_features"][object_row],
        "union": arrays[f"{prefix}_union_features"][keep],
    }
