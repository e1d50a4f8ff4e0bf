"""Action Genome reader: the official layout in, a normalised Parquet index out.

The filtering reproduces the reference loader (STTran's ``AG`` dataset):

1. a frame belongs to the split of its *first* object's ``metadata['set']``;
2. a frame is valid when at least one of its objects is visible;
3. valid frames whose person box has zero rows are dropped;
4. a video is kept only with more than 2 remaining frames.

With ``filter_small=True`` (SGCls/SGDet) objects whose short side is at most
``small_box_side`` pixels are treated as absent *before* rule 2, which is what
the reference's ``object_bbox_and_relationship_filtersmall.pkl`` amounts to.
Object boxes are stored xywh in AG and converted to xyxy here; person boxes
are already xyxy.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from pipeline.ag.layout import (
    OBJECT_PKL,
    PERSON_PKL,
    parse_frame_key,
    read_object_classes,
    read_predicates,
)
from pipeline.ag.validate import (
    STRUCTURE_FILES,
    box_problems,
    frame_structure_problems,
    person_boxes,
)
from pipeline.constants import ATTENTION, CONTACTING, GROUPS, NUM_PREDICATES, SPATIAL
from pipeline.io import DataError, atomic_path, atomic_write_json, read_parquet, safe_load_pickle
from pipeline.params import DatasetParams, Params

SPLITS = ("train", "val", "test")

FRAME_SCHEMA = {
    "frame": pl.String,
    "video": pl.String,
    "frame_number": pl.Int32,
    "split": pl.String,
    "width": pl.Int32,
    "height": pl.Int32,
    "person_x1": pl.Float64,
    "person_y1": pl.Float64,
    "person_x2": pl.Float64,
    "person_y2": pl.Float64,
}
OBJECT_SCHEMA = {
    "frame": pl.String,
    "video": pl.String,
    "frame_number": pl.Int32,
    "split": pl.String,
    "object_class": pl.Int16,
    "x1": pl.Float64,
    "y1": pl.Float64,
    "x2": pl.Float64,
    "y2": pl.Float64,
    "attention": pl.List(pl.Int16),
    "spatial": pl.List(pl.Int16),
    "contacting": pl.List(pl.Int16),
    "small": pl.Boolean,
}
RELATION_SCHEMA = {
    "frame": pl.String,
    "video": pl.String,
    "split": pl.String,
    "object_class": pl.Int16,
    "predicate": pl.Int16,
    "group": pl.String,
}


@dataclass
class AGIndex:
    """The normalised index: three tables (schemas in docs/schemas.md) and filter counts."""

    frames: pl.DataFrame
    objects: pl.DataFrame
    relations: pl.DataFrame
    dropped: dict[str, int] = field(default_factory=dict)
    settings: dict = field(default_factory=dict)

    def split(self, *names: str) -> AGIndex:
        """The same index restricted to the given splits."""
        return AGIndex(
            self.frames.filter(pl.col("split").is_in(names)),
            self.objects.filter(pl.col("split").is_in(names)),
            self.relations.filter(pl.col("split").is_in(names)),
            dict(self.dropped),
            dict(self.settings),
        )


def _predicate_indices(names, group: slice, predicates: list[str], frame: str, field_name: str) -> list[int]:
    """Global indices of ``names``; ``frame`` is how errors name the record (file and frame key)."""
    if names is None:
        raise DataError(f"{frame}: a visible object has {field_name}=None; fix the annotation or mark it invisible")
    out = []
    for name in names:
        try:
            index = predicates.index(name)
        except ValueError:
            raise DataError(f"{frame}: unknown predicate {name!r} in {field_name}") from None
        if not group.start <= index < group.stop:
            raise DataError(f"{frame}: predicate {name!r} does not belong in {field_name}")
        out.append(index)
    return out


# Box faults the reader refuses: NaN would spread through every IoU and motion
# attribute, and negative coordinates mean a corrupt record. Boxes past the
# image border or of zero area are only reported by ``mosa validate``: real AG
# boxes overshoot the border slightly and the small-box filter drops slivers.
FATAL_BOX_PROBLEMS = frozenset({"nan_box", "negative_box"})


def _refuse_broken_box(box, size, key: str, what: str, root: Path) -> None:
    width, height = (int(v) for v in size)
    source = root / (PERSON_PKL if what == "person" else OBJECT_PKL)
    for problem in box_problems(box, width, height, key, what):
        if problem.kind in FATAL_BOX_PROBLEMS:
            raise DataError(f"{source}: frame {key}: {problem.message}; run `mosa validate {root}` to list every problem")


def load_action_genome(root: str | Path, filter_small: bool = False, small_box_side: float = 16.0) -> AGIndex:
    """Read an Action Genome root and apply the standard filters (module docstring)."""
    root = Path(root)
    object_classes = read_object_classes(root)
    predicates = read_predicates(root)
    for rel in (PERSON_PKL, OBJECT_PKL):
        if not (root / rel).is_file():
            raise DataError(f"{root / rel}: missing (download the Action Genome annotations into {root / 'annotations'})")
    person_bbox = safe_load_pickle(root / PERSON_PKL)
    object_bbox = safe_load_pickle(root / OBJECT_PKL)
    if not isinstance(person_bbox, dict) or not isinstance(object_bbox, dict):
        raise DataError(f"{root / 'annotations'}: pickles must hold a dict keyed by frame")

    dropped = defaultdict(int)
    # video -> list of (frame_number, key, split, visible objects)
    videos: dict[str, list] = defaultdict(list)
    for key in person_bbox:
        try:
            parsed = parse_frame_key(key)
        except DataError as err:
            raise DataError(f"{root / PERSON_PKL}: {err}") from None
        record = f"{root / OBJECT_PKL}: frame {key}"
        if key not in object_bbox:
            raise DataError(f"{root / OBJECT_PKL}: frame {key} is in person_bbox.pkl but has no object entry")
        structure = frame_structure_problems(key, person_bbox[key], object_bbox[key])
        if structure:
            first = structure[0]
            raise DataError(f"{root / STRUCTURE_FILES[first.kind]}: frame {key}: {first.message}; run `mosa validate {root}` to list every problem")
        objects = object_bbox[key]
        if not objects:
            dropped["frames_without_objects"] += 1
            continue
        split = objects[0]["metadata"]["set"]
        visible = []
        for obj in objects:
            if not obj.get("visible"):
                continue
            if obj.get("bbox") is None:
                raise DataError(f"{record}: visible object {obj.get('class')!r} has no bbox")
            x, y, w, h = (float(v) for v in obj["bbox"])
            _refuse_broken_box((x, y, x + w, y + h), person_bbox[key]["bbox_size"], key, repr(obj.get("class")), root)
            small = min(w, h) <= small_box_side
            if filter_small and small:
                dropped["small_objects"] += 1
                continue
            name = obj.get("class")
            if name not in object_classes or name in ("__background__", "person"):
                raise DataError(f"{record}: unknown object class {name!r}")
            visible.append((object_classes.index(name), obj, (x, y, x + w, y + h), small))
        if not visible:
            dropped["frames_without_visible_object"] += 1
            continue
        person = person_bbox[key]
        boxes = person_boxes(person)
        if boxes.shape[0] == 0:
            dropped["frames_without_person"] += 1
            continue
        _refuse_broken_box(tuple(boxes[0].tolist()), person["bbox_size"], key, "person", root)
        videos[parsed.video].append((parsed.number, key, split, person, visible))

    frame_rows = defaultdict(list)
    object_rows = defaultdict(list)
    for video in sorted(videos):
        frames = sorted(videos[video])
        if len(frames) <= 2:
            dropped[f"videos_with_{len(frames)}_frames"] += 1
            dropped["frames_in_short_videos"] += len(frames)
            continue
        for number, key, split, person, visible in frames:
            box = person_boxes(person)[0]
            width, height = (int(v) for v in person["bbox_size"])
            for column, value in zip(
                FRAME_SCHEMA,
                (key, video, number, split, width, height, *box.tolist()),
                strict=True,
            ):
                frame_rows[column].append(value)
            record = f"{root / OBJECT_PKL}: frame {key}"
            for class_index, obj, xyxy, small in sorted(visible, key=lambda item: item[0]):
                values = (
                    key, video, number, split, class_index, *xyxy,
                    _predicate_indices(obj.get("attention_relationship"), ATTENTION, predicates, record, "attention_relationship"),
                    _predicate_indices(obj.get("spatial_relationship"), SPATIAL, predicates, record, "spatial_relationship"),
                    _predicate_indices(obj.get("contacting_relationship"), CONTACTING, predicates, record, "contacting_relationship"),
                    small,
                )  # fmt: skip
                for column, value in zip(OBJECT_SCHEMA, values, strict=True):
                    object_rows[column].append(value)

    frames_df = pl.DataFrame(dict(frame_rows) or None, schema=FRAME_SCHEMA)
    objects_df = pl.DataFrame(dict(object_rows) or None, schema=OBJECT_SCHEMA)
    return AGIndex(
        frames_df,
        objects_df,
        relations_from_objects(objects_df),
        dict(sorted(dropped.items())),
        {"filter_small": filter_small, "small_box_side": small_box_side},
    )


def conform(table: pl.DataFrame, schema: dict) -> pl.DataFrame:
    """``table`` with exactly the columns of ``schema``, in its order and types."""
    return table.select(list(schema)).cast(schema)


def relations_from_objects(objects: pl.DataFrame) -> pl.DataFrame:
    """One row per ground-truth triplet: 1 attention + each spatial + each contacting label."""
    parts = [
        objects.select("frame", "video", "split", "object_class", pl.col(group).alias("predicate"))
        .explode("predicate")
        .drop_nulls("predicate")
        .with_columns(pl.lit(group).alias("group"))
        for group in GROUPS
    ]
    return conform(pl.concat(parts).sort("frame", "object_class", "predicate"), RELATION_SCHEMA)


def assign_val_split(index: AGIndex, val_fraction: float, seed: int) -> AGIndex:
    """Move a deterministic, seed-chosen fraction of train *videos* to ``val``.

    Carving by video (not frame) keeps near-duplicate neighbouring frames out
    of both sides of the split. The test split is never touched. The carve
    is stratified by each video's rarest contacting predicate (rarity = the
    number of train videos holding it): every stratum of 3 or more videos
    gives at least one to val, so val holds every common contact class.
    """
    train_videos = sorted(index.frames.filter(pl.col("split") == "train")["video"].unique().to_list())
    if not (val_fraction > 0 and len(train_videos) > 1):
        val_videos: set[str] = set()
    else:
        strata = _rarest_contact_strata(index.relations, train_videos)
        rng = np.random.default_rng(seed)
        val_videos = set()
        for key in sorted(strata, key=str):
            members = strata[key]
            members = [members[i] for i in rng.permutation(len(members))]
            n_val = int(round(val_fraction * len(members)))
            if len(members) >= 3:
                n_val = max(n_val, 1)
            val_videos.update(members[: min(n_val, len(members) - 1)])
        if not val_videos:
            val_videos = {train_videos[int(rng.integers(len(train_videos)))]}
    relabel = (
        pl.when(pl.col("video").is_in(list(val_videos)) & (pl.col("split") == "train"))
        .then(pl.lit("val"))
        .otherwise(pl.col("split"))
        .alias("split")
    )
    return AGIndex(
        index.frames.with_columns(relabel),
        index.objects.with_columns(relabel),
        index.relations.with_columns(relabel),
        dict(index.dropped),
        {**index.settings, "val_fraction": val_fraction, "split_seed": seed},
    )


def _rarest_contact_strata(relations: pl.DataFrame, videos: list[str]) -> dict[int | None, list[str]]:
    """Train videos grouped by their rarest contacting predicate (None: no contacting label)."""
    contacts = (
        relations.filter((pl.col("group") == "contacting") & pl.col("video").is_in(videos))
        .select("video", "predicate")
        .unique()
    )
    rarity = dict(contacts.group_by("predicate").len().iter_rows())
    rarest: dict[str, int] = {}
    for video, predicate in contacts.sort("video", "predicate").iter_rows():
        if video not in rarest or (rarity[predicate], predicate) < (rarity[rarest[video]], rarest[video]):
            rarest[video] = predicate
    strata: dict[int | None, list[str]] = {}
    for video in videos:
        strata.setdefault(rarest.get(video), []).append(video)
    return strata


def summarize(index: AGIndex) -> dict:
    """Counts per split and per filter, as written to ``summary.json``."""
    summary: dict = {}
    for split in SPLITS:
        part = index.split(split)
        summary[split] = {
            "videos": part.frames["video"].n_unique(),
            "frames": part.frames.height,
            "objects": part.objects.height,
            "relations": part.relations.height,
        }
    summary["dropped"] = index.dropped
    summary["settings"] = index.settings
    return summary


INDEX_FILES = {"frames": "frames.parquet", "objects": "objects.parquet", "relations": "relations.parquet"}


def write_index(index: AGIndex, index_dir: str | Path) -> dict:
    """Write the three tables and ``summary.json`` atomically; return the summary."""
    index_dir = Path(index_dir)
    for name, file_name in INDEX_FILES.items():
        with atomic_path(index_dir / file_name) as tmp:
            getattr(index, name).write_parquet(tmp, compression="zstd", statistics=False)
    summary = summarize(index)
    atomic_write_json(index_dir / "summary.json", summary)
    return summary


def read_index(index_dir: str | Path) -> AGIndex:
    """Read an index written by :func:`write_index`."""
    index_dir = Path(index_dir)
    schemas = {"frames": FRAME_SCHEMA, "objects": OBJECT_SCHEMA, "relations": RELATION_SCHEMA}
    tables = {}
    for name, file_name in INDEX_FILES.items():
        tables[name] = read_parquet(index_dir / file_name, "index", schema=schemas[name])
    return AGIndex(**tables)


def build_ag_index(root: str | Path, val_fraction: float, split_seed: int, small_box_side: float, filter_small: bool = False) -> AGIndex:
    """Reader + validation split: the index stage's whole job."""
    index = load_action_genome(root, filter_small=filter_small, small_box_side=small_box_side)
    return assign_val_split(index, val_fraction, split_seed)


def run_index_stage(params: Params) -> dict:
    """The ``index`` stage."""
    return index_dataset(params.dataset)


def index_dataset(dataset: DatasetParams) -> dict:
    """An AG root -> ``dataset.index_dir`` (Parquet tables + summary.json)."""
    built = build_ag_index(dataset.root, dataset.val_fraction, dataset.split_seed, dataset.small_box_side)
    summary = write_index(built, dataset.index_dir)
    for split in ("train", "val", "test"):
        print(f"{split}: " + ", ".join(f"{k}={v}" for k, v in summary[split].items()))
    return summary


def predicate_counts(relations: pl.DataFrame, split: str = "train") -> np.ndarray:
    """[26] number of ground-truth triplets of each predicate in ``split`` (index relations table)."""
    counts = (
        relations.filter(pl.col("split") == split)
        .group_by("predicate")
        .len()
    )
    out = np.zeros(NUM_PREDICATES, dtype=np.int64)
    out[counts["predicate"].to_numpy().astype(np.int64)] = counts["len"].to_numpy()
    return out
