"""Typed configuration: ``params.yaml`` parsed once into pydantic models.

Every section forbids unknown keys, so a typo is an error rather than a
silently ignored setting. :func:`load_params` turns pydantic's multi-line
report into one line naming the key, the bad value and what is allowed.
"""

from __future__ import annotations

import string
from pathlib import Path
from typing import Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from pipeline.constants import MODES, Mode


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SynthParams(Section):
    out_dir: str = "data/synth_ag"
    videos: int = Field(200, ge=1, le=100_000)
    seed: int = 0
    width: int = Field(256, ge=64, le=4096)
    height: int = Field(192, ge=64, le=4096)
    min_frames: int = Field(18, ge=1)
    max_frames: int = Field(30, ge=1, le=500)
    test_fraction: float = Field(0.35, gt=0.0, lt=1.0)
    pan_share: float = Field(0.15, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _frames_range(self) -> SynthParams:
        if self.min_frames > self.max_frames:
            raise ValueError(
                f"min_frames ({self.min_frames}) must be <= max_frames ({self.max_frames})"
            )
        return self


class DatasetParams(Section):
    root: str = "data/synth_ag"
    index_dir: str = "features/index"
    val_fraction: float = Field(0.15, ge=0.0, lt=1.0)
    split_seed: int = 0
    small_box_side: float = Field(16.0, ge=0.0)


class DetectorTrainParams(Section):
    """Training of the synthetic-default detector (`train_detector` stage).

    Ignored when ``detector.checkpoint`` is set. The LR schedule's milestones
    in the mmdet config are scaled to ``iterations``.
    """

    iterations: int = Field(1400, ge=1)
    batch_size: int = Field(4, ge=1)
    lr: float = Field(0.02, gt=0.0)
    momentum: float = Field(0.9, ge=0.0, lt=1.0)
    weight_decay: float = Field(1e-4, ge=0.0)
    seed: int = 0
    # The splits whose frames train the detector. Both halves of AG's own
    # train set by default, as for a real AG detector (STTran's was trained
    # on all AG train videos, which hold our validation carve-out).
    train_splits: tuple[Literal["train", "val"], ...] = ("train", "val")
    eval_split: Literal["val", "test"] = "test"

    @model_validator(mode="after")
    def _evaluated_on_unseen_frames(self):
        if not self.train_splits or len(set(self.train_splits)) != len(self.train_splits):
            raise ValueError(f"train_splits must name distinct splits, got {list(self.train_splits)}")
        if self.eval_split in self.train_splits:
            raise ValueError(
                f"eval_split {self.eval_split!r} is one of train_splits {list(self.train_splits)}: "
                "the detector would be evaluated on its training frames"
            )
        return self


class DetectionPostprocessParams(Section):
    """AG-style SGDet post-processing of raw detector scores.

    Defaults follow STTran's detector wrapper: per-class score > 0.1,
    per-class NMS at IoU 0.4, only the best person kept.
    """

    score_threshold: float = Field(0.1, ge=0.0, le=1.0)
    nms_iou: float = Field(0.4, gt=0.0, le=1.0)
    max_objects: int | None = Field(10, ge=0)  # None: no cap (STTran)
    person_top1: bool = True
    # AG has exactly one person per frame: when no person passes the score
    # threshold, keep the best-scoring person box anyway so the frame still
    # has a subject for its pairs.
    person_fallback: bool = True
    # STTran's lib/object_detector.py (printed by `mosa import-detector sttran`):
    # NMS IoU with x2 - x1 + 1 sides, the kept proposal's feature, and labels
    # re-read as the argmax of the renormalised 36-way distribution.
    nms_offset: Literal[0, 1] = 0
    det_features: Literal["repooled", "proposal"] = "repooled"
    det_labels: Literal["nms_class", "renormalised"] = "nms_class"


class DetectorParams(Section):
    config: str = "configs/detector/faster_rcnn_r18_synth.py"
    checkpoint: str | None = None
    work_dir: str = "models/detector"
    metrics_path: str = "metrics/detector.json"
    train: DetectorTrainParams = DetectorTrainParams()
    postprocess: DetectionPostprocessParams = DetectionPostprocessParams()


class ExtractParams(Section):
    out_dir: str = "features/roi"
    metrics_path: str = "metrics/extract.json"
    videos_per_shard: int = Field(16, ge=1)
    batch_frames: int = Field(8, ge=1)
    decode_workers: int = Field(1, ge=0)
    skip_missing_frames: bool = False
    device: Literal["auto", "cpu", "cuda"] = "auto"


class MotionAttributes(Section):
    """Optional MFE attributes written to the motion table (ours; see docs/schemas.md)."""

    relative_displacement: bool = True
    log_area_ratio: bool = True
    scale_change: bool = True
    track_speed: bool = True


class MotionParams(Section):
    out_path: str = "features/motion/motion.parquet"
    window_k: int = Field(4, ge=1, le=64)
    still_fraction: float = Field(0.004, ge=0.0, lt=1.0)
    extras: MotionAttributes = MotionAttributes()
    # > 0 so that boxes that do not overlap are never linked into one track
    det_link_iou: float = Field(0.3, gt=0.0, le=1.0)
    videos_per_chunk: int = Field(2000, ge=1)


def _template_fields(template: str) -> set[str]:
    return {field for _, field, _, _ in string.Formatter().parse(template) if field is not None}


class TextParams(Section):
    out_path: str = "features/text/text.h5"
    encoder: Literal["minilm", "clip"] = "minilm"
    # local Hugging Face-format CLIP directory (config.json, weights, tokenizer files)
    clip_weights: str | None = None
    prompt_mode: Literal["predicate", "predicate_object"] = "predicate_object"
    predicate_template: str = "a photo of a person {predicate}"
    pair_template: str = "a photo of a person {predicate} a {object}"
    # How the predicate is worded inside the templates (ours): ``phrase`` is the
    # paper's bare phrase ("holding"); ``described`` puts a short definition of
    # the predicate after it (pipeline/text/prompts.py: PREDICATE_DESCRIPTIONS),
    # so prompts of one object differ by more than one word.
    predicate_wording: Literal["phrase", "described"] = "described"
    # Weight w of the predicate-only embedding mixed into each pair prompt
    # (ours): z_cp = normalise((1 - w) e(pair prompt) + w e(predicate prompt)).
    # 0 is the paper's pair prompt; only used in predicate_object mode.
    # MiniLM, mean within-object cosine of the 17 contacting prompts: paper
    # (phrase, 0) 0.78, described 0.60, described + 0.5 0.50.
    predicate_mix: float = Field(0.5, ge=0.0, le=1.0)

    @field_validator("predicate_template", "pair_template")
    @classmethod
    def _template_placeholders(cls, template: str, info: ValidationInfo) -> str:
        wanted = {"predicate"} if info.field_name == "predicate_template" else {"predicate", "object"}
        try:
            fields = _template_fields(template)
        except ValueError as err:
            raise ValueError(f"not a valid format string ({err})") from None
        if fields != wanted:
            raise ValueError("must use exactly the placeholders " + " and ".join("{" + f + "}" for f in sorted(wanted)))
        return template


class LossParams(Section):
    # alpha_r = 1/log(n_r + e), rescaled to mean 1 (False: every predicate weighs 1).
    category_weighted: bool = True
    # Focal exponent on (1 - p); 0 gives plain weighted CE/BCE.
    gamma: float = Field(2.0, ge=0.0, le=10.0)
    # Weight of the alignment loss on the ASM logits alone (0 = none).
    asm_alignment: float = Field(1.0, ge=0.0)
    # Its form: ``contrastive`` (cross-entropy over the prompts of each group,
    # multi-positive for spatial/contacting; pipeline/loss.py) or ``group``
    # (the classifier's focal losses applied to the ASM logits, the old form).
    asm_alignment_form: Literal["contrastive", "group"] = "contrastive"
    # Weight of the object-classification cross-entropy (SGCls/SGDet).
    object_weight: float = Field(1.0, ge=0.0)


AppearanceStream = Literal["subject_roi", "object_roi", "union"]
MotionAttributeName = Literal[
    "distance",
    "velocity",
    "persistence",
    "direction_consistency",
    "relative_displacement",
    "log_area_ratio",
    "scale_change",
    "track_speed",
]


class ModelParams(Section):
    d_model: int = Field(128, ge=8)
    heads: int = Field(8, ge=1)
    dropout: float = Field(0.1, ge=0.0, lt=1.0)
    pre_norm: bool = True
    spatial_layers: int = Field(1, ge=0)
    temporal: bool = True
    temporal_layers: int = Field(3, ge=1)
    temporal_window: int = Field(2, ge=1)
    mfe: bool = True
    mfe_attributes: tuple[MotionAttributeName, ...] = (
        "distance",
        "velocity",
        "persistence",
        "direction_consistency",
        "relative_displacement",
    )
    mim: bool = True
    mim_layers: int = Field(1, ge=1)
    mim_heads: int = Field(8, ge=1)
    mim_residual: Literal["relation", "motion", "both"] = "both"
    asm: bool = True
    asm_lambda: float = Field(1.0, ge=0.0)
    asm_tau_init: float = Field(0.07, gt=0.0)
    box_masks: Literal["binary", "soft"] = "binary"  # soft: STTran's draw_union_boxes coverage
    # Appearance streams of the relation token and their training-time
    # modality dropout (pipeline/model/tokens.py; paper: all three, 0).
    token_appearance: tuple[AppearanceStream, ...] = ("subject_roi", "object_roi", "union")
    appearance_dropout: float = Field(0.8, ge=0.0, lt=1.0)
    loss: LossParams = LossParams()

    @model_validator(mode="after")
    def _heads_divide_width(self) -> ModelParams:
        for key in ("heads", "mim_heads"):
            if self.d_model % getattr(self, key):
                raise ValueError(f"d_model ({self.d_model}) must be divisible by {key} ({getattr(self, key)})")
        if self.mfe and not self.mfe_attributes:
            raise ValueError("mfe_attributes is empty while mfe is true (list attributes or set mfe: false)")
        if len(set(self.token_appearance)) != len(self.token_appearance):
            raise ValueError(f"token_appearance lists a stream twice: {list(self.token_appearance)}")
        if self.appearance_dropout > 0 and not self.token_appearance:
            raise ValueError("appearance_dropout > 0 but token_appearance is empty (nothing to drop; set it to 0)")
        return self


class TrainParams(Section):
    modes: tuple[Mode, ...] = MODES
    epochs: int = Field(20, ge=1)
    lr: float = Field(1e-3, gt=0.0)
    weight_decay: float = Field(1e-2, ge=0.0)
    batch_videos: int = Field(4, ge=1)
    grad_clip: float = Field(5.0, gt=0.0)
    # ``warmup_cosine``: linear warm-up over ``warmup_epochs``, then cosine
    # decay to 0 at the end of ``epochs``, per step, the same for every
    # variant. ``plateau``: the old validation-driven cut (ReduceLROnPlateau
    # with ``lr_patience`` and ``lr_factor``, which only it reads).
    schedule: Literal["warmup_cosine", "plateau"] = "warmup_cosine"
    warmup_epochs: int = Field(1, ge=0)
    lr_patience: int = Field(1, ge=0)
    lr_factor: float = Field(0.5, gt=0.0, lt=1.0)
    selection: Literal["best", "last"] = "last"
    # Fit one temperature per predicate group on the validation split after
    # training and apply it to the scores written for evaluation.
    calibrate: bool = True
    # Then offset the spatial and contacting logits so that the semi
    # constraint's 0.9 threshold asserts their predicates with the best
    # validation F1 (pipeline/training/semi_calibration.py).
    semi_calibration: bool = True
    sgdet_match_iou: float = Field(0.5, gt=0.0, le=1.0)
    feature_cache_mb: int = Field(512, ge=0)
    seed: int = 0
    out_dir: str = "models/mosa"
    device: Literal["auto", "cpu", "cuda"] = "cpu"
    threads: int | None = Field(0, ge=0)  # torch intra-op threads; 0 or None: all cores
    pack_dir: str = "features/pack"
    prefetch_batches: int = Field(2, ge=0)

    @model_validator(mode="after")
    def _semi_after_nll(self) -> TrainParams:
        if self.semi_calibration and not self.calibrate:
            raise ValueError("semi_calibration is fitted after the NLL temperatures: it needs calibrate: true (or set it to false)")
        return self


class EvaluateParams(Section):
    constraints: tuple[Literal["with", "semi", "no"], ...] = ("with", "semi", "no")
    iou_threshold: float = Field(0.5, gt=0.0, le=1.0)
    legacy_plus_one: bool = True
    semi_threshold: float = Field(0.9, ge=0.0, le=1.0)
    no_constraint_top_k: int = Field(100, ge=1)

    @field_validator("constraints", mode="before")
    @classmethod
    def _yaml_no_is_false(cls, value):
        # YAML 1.1 reads a bare `no` as False; the user meant the constraint.
        if isinstance(value, (list, tuple)):
            return [("no" if item is False else item) for item in value]
        return value


class SearchParams(Section):
    """Relation search index (stage ``search_index``); index types in pipeline/search/index.py."""

    mode: Mode = "predcls"
    out_dir: str = "models/search"
    metrics_path: str = "metrics/search.json"
    index_type: Literal["auto", "flat", "ivf", "ivfpq"] = "auto"
    flat_max_vectors: int = Field(100_000, ge=0)
    ivfpq_min_vectors: int = Field(2_000_000, ge=1)
    nlist: int = Field(0, ge=0)
    nprobe: int = Field(64, ge=1)
    pq_bytes: int = Field(48, ge=1)
    train_sample: int = Field(100_000, ge=1)
    seed: int = 0
    precision_k: int = Field(10, ge=1)
    paraphrase_queries: str | None = "tests/data/search_paraphrases.yaml"


class ReportParams(Section):
    """Static HTML report (stage ``report``)."""

    out_path: str = "reports/report.html"
    gallery_mode: Mode = "predcls"
    gallery_frames: int = Field(3, ge=0)
    gallery_k: int = Field(20, ge=1)
    ablation_dir: str = "ablations"
    footage_dir: str = "reports/footage"
    footage_seed: int = 1001
    footage_videos: int = Field(2, ge=1)


class Params(Section):
    seed: int = 0
    synth: SynthParams = SynthParams()
    dataset: DatasetParams = DatasetParams()
    detector: DetectorParams = DetectorParams()
    extract: ExtractParams = ExtractParams()
    motion: MotionParams = MotionParams()
    text: TextParams = TextParams()
    model: ModelParams = ModelParams()
    train: TrainParams = TrainParams()
    evaluate: EvaluateParams = EvaluateParams()
    search: SearchParams = SearchParams()
    report: ReportParams = ReportParams()


# Keys that change how a stage runs but not what it writes: devices, worker
# counts, in-memory cache sizes, shard and chunk sizes. dvc.yaml never
# declares them and a
# trained model's settings fingerprint ignores them, so changing one reruns
# nothing (tests/test_dvc_dependencies.py holds dvc.yaml to this).
RUN_ONLY_KEYS: dict[str, frozenset[str]] = {
    "extract": frozenset({"device", "decode_workers", "videos_per_shard"}),
    "motion": frozenset({"videos_per_chunk"}),
    "train": frozenset({"device", "feature_cache_mb", "threads", "prefetch_batches", "pack_dir"}),
}


class ParamsError(ValueError):
    """A one-line, user-facing configuration error."""


def _format_error(source: str, err: ValidationError) -> str:
    first = err.errors()[0]
    # a key of a hostile file may hold a newline: quote it then, to stay on one line
    key = ".".join(str(part) if str(part).isprintable() else repr(part) for part in first["loc"]) or "<root>"
    value = first.get("input")
    if first["type"] == "extra_forbidden":
        return f"{source}: unknown key '{key}' (remove it or fix its spelling; see the comments in params.yaml)"
    more = f" (+{err.error_count() - 1} more)" if err.error_count() > 1 else ""
    return f"{source}: {key} = {value!r}: {first['msg']}{more}"


def parse_params(data: dict | None, source: str = "params.yaml") -> Params:
    """Validate a params mapping; raise :class:`ParamsError` with a one-line message."""
    try:
        return Params.model_validate(data or {})
    except ValidationError as err:
        raise ParamsError(_format_error(source, err)) from None


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate ``params.yaml`` (or another file of the same schema)."""
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"{path}: not found (run from the repository root or pass --params)")
    try:
        data = yaml.safe_load(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as err:
        raise ParamsError(f"{path}: not UTF-8 text (byte {err.start}); save it as UTF-8") from None
    except yaml.YAMLError as err:
        raise ParamsError(f"{path}: not valid YAML: {str(err).splitlines()[0]}") from None
    except RecursionError:  # PyYAML's composer recurses once per nesting level
        raise ParamsError(f"{path}: not valid YAML: nested too deeply") from None
    if data is not None and not isinstance(data, dict):
        raise ParamsError(f"{path}: top level must be a mapping of sections, got {type(data).__name__}")
    return parse_params(data, str(path))
