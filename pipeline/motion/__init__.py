"""MFE: per-pair motion attributes computed once per dataset and cached in Parquet."""

from pipeline.motion.attributes import BASE_ATTRIBUTES, EXTRA_ATTRIBUTES, motion_attributes
from pipeline.motion.linking import link_tracks
from pipeline.motion.table import (
    det_pairs,
    gt_pairs,
    motion_table,
    run_motion_stage,
    write_motion_parquet,
    write_motion_table,
)

__all__ = [
    "BASE_ATTRIBUTES",
    "EXTRA_ATTRIBUTES",
    "det_pairs",
    "gt_pairs",
    "link_tracks",
    "motion_attributes",
    "motion_table",
    "run_motion_stage",
    "write_motion_table",
    "write_motion_parquet",
]
