"""One mode's data, opened from the caches, and the model trained on it.

:func:`open_mode` gives every split's batches (from the pack when asked);
:func:`run_settings` is the identity of a trained model, checked when
:func:`load_trained` opens it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import torch

from pipeline.ag.reader import read_index
from pipeline.distributed import SINGLE_PROCESS, Ranks
from pipeline.evaluation.ground_truth import GroundTruth, ground_truth_for_mode
from pipeline.extraction.cache import RoiCache
from pipeline.io import (
    DataError,
    read_parquet,
    sha256_file,
)
from pipeline.model.mosa import MOSA, FeatureSpec
from pipeline.motion.attributes import BASE_ATTRIBUTES, EXTRA_ATTRIBUTES
from pipeline.outputs import head_model_path
from pipeline.params import RUN_ONLY_KEYS, Params
from pipeline.training import head_checkpoint as checkpoint
from pipeline.training.data import BoundedCache, VideoBatches, rank_share
from pipeline.training.pack import PACK_SPLITS, PackedSource
from pipeline.training.sources import CacheSource
from pipeline.training.text import read_text_embeddings


@dataclass
class ModeData:
    """Everything one mode trains or evaluates on, opened from the caches."""

    mode: str
    source: CacheSource
    cached: BoundedCache
    spec: FeatureSpec
    index_frames: pl.DataFrame  # the unfiltered index
    index_objects: pl.DataFrame
    relations: pl.DataFrame
    packed: PackedSource | None = None  # the train/val splits as packed by the pack stage

    def batches(
        self, params: Params, split: str, shuffle: bool = False, ranks: Ranks = SINGLE_PROCESS, pin_memory: bool = False
    ) -> VideoBatches:
        """Batches of ``split``; an unshuffled (prediction) split is cut into one block per rank.

        Training batches cover the whole split on every rank; each rank takes
        its part of every step (:meth:`VideoBatches.rank_steps`). Splits of the
        pack (when opened with one) are read from it, with prefetching, and
        their features put in pinned memory when ``pin_memory`` (GPU training).
        """
        from_pack = self.packed is not None and split in PACK_SPLITS
        source = self.packed if from_pack else self.cached
        videos = source.videos(split)
        if not shuffle:
            videos = rank_share(videos, ranks.rank, ranks.world_size)
        return VideoBatches(
            source,
            videos,
            params.train.batch_videos,
            params.model.temporal_window,
            with_object_dist=self.mode == "sgdet",
            shuffle=shuffle,
            seed=params.train.seed,
            prefetch=params.train.prefetch_batches if from_pack else 0,
            pin_memory=from_pack and pin_memory,
        )

    def __enter__(self) -> ModeData:
        return self

    def __exit__(self, *exc: object) -> None:
        self.source.cache.close()

    def ground_truth(self, split: str) -> GroundTruth:
        return ground_truth_for_mode(self.index_frames, self.index_objects, split, self.mode)


def open_mode(params: Params, mode: str, packed: bool = False, attributes: tuple[str, ...] | None = None) -> ModeData:
    """The caches of one mode; ``packed``: train/val batches come from the pack (which must match them).

    ``attributes`` overrides ``model.mfe_attributes`` (the pack stage takes every one the motion table has).
    """
    index = read_index(params.dataset.index_dir)
    cache = RoiCache(params.extract.out_dir)
    motion_path = Path(params.motion.out_path)
    motion = read_parquet(motion_path, "motion")
    text = read_text_embeddings(params.text.out_path)
    source = CacheSource(
        mode, cache, index.frames, index.objects, motion, attributes or params.model.mfe_attributes,
        params.train.sgdet_match_iou, motion_path,
    )  # fmt: skip
    spec = FeatureSpec(
        roi_dim=cache.feature_dim,
        union_dim=cache.feature_dim,
        class_embeddings=text.class_embeddings,
        prompt_embeddings=text.prompt_embeddings,
        motion_dim=len(source.motion_columns),
    )
    cached = BoundedCache(source, params.train.feature_cache_mb * 2**20)
    pack = None
    if packed:
        pack = PackedSource(params.train.pack_dir, mode, pack_inputs(params, mode, cache), source.motion_columns)
    return ModeData(mode, source, cached, spec, index.frames, index.objects, index.relations, pack)


def pack_inputs(params: Params, mode: str, cache: RoiCache) -> dict:
    """What a pack is built from: a pack whose record differs is refused (see :mod:`pipeline.training.pack`).

    Small inputs are hashed; the ROI cache (gigabytes) is known by its extractor identity and size.
    """
    index_dir = Path(params.dataset.index_dir)
    hashed = [index_dir / "frames.parquet", index_dir / "objects.parquet", Path(params.motion.out_path)]
    record = {
        "mode": mode,
        "sgdet_match_iou": params.train.sgdet_match_iou,
        "roi": {**cache.identity, "bytes": cache.path.stat().st_size},
        **{path.name: sha256_file(path) for path in hashed},
    }
    return json.loads(json.dumps(record, default=str))


def motion_attribute_names(params: Params) -> tuple[str, ...]:
    """Every MFE attribute the motion table of these params has (a pack keeps them all)."""
    extras = params.motion.extras.model_dump()
    return (*BASE_ATTRIBUTES, *(name for name in EXTRA_ATTRIBUTES if extras.get(name, False)))


def build_model(params: Params, data: ModeData) -> MOSA:
    torch.manual_seed(params.train.seed)
    return MOSA(params.model, data.spec, classify_objects=data.mode != "predcls")


def run_settings(params: Params, mode: str) -> dict:
    """The settings a trained model depends on.

    Under the ``plateau`` schedule epochs are excluded (a longer run may resume
    a shorter one); under ``warmup_cosine`` the epoch count shapes every
    step's learning rate, so a run with other epochs is another run.
    """
    exclude = {"modes", *RUN_ONLY_KEYS["train"]}
    if params.train.schedule == "plateau":
        exclude.add("epochs")
    train = params.train.model_dump(exclude=exclude)
    return {"mode": mode, "model": params.model.model_dump(), "train": train, "dataset": params.dataset.model_dump()}


def load_trained(params: Params, data: ModeData) -> MOSA:
    path = head_model_path(params.train.out_dir, data.mode)
    state = checkpoint.load(path)
    if state.get("settings") != run_settings(params, data.mode):
        raise DataError(f"{path}: trained with other settings than params.yaml; rerun the train stage")
    model = build_model(params, data)
    model.load_state_dict(state["model"])
    return model
