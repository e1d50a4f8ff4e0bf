"""The ``pack@<mode>`` stage: the train and val splits of a mode in one fast file each.

The file format is :mod:`pipeline.training.pack`.
"""

from __future__ import annotations

from pipeline.constants import check_mode
from pipeline.params import Params
from pipeline.training.mode_data import motion_attribute_names, open_mode, pack_inputs
from pipeline.training.pack import PACK_SPLITS, pack_path, reusable, write_split


def pack_mode(params: Params, mode: str) -> dict[str, dict[str, int]]:
    """The ``pack`` stage: write (or keep, when complete and intact) the train and val packs of one mode."""
    summary = {}
    with open_mode(params, mode, attributes=motion_attribute_names(params)) as data:
        inputs = pack_inputs(params, mode, data.source.cache)
        for split in PACK_SPLITS:
            path = pack_path(params.train.pack_dir, mode, split)
            if reusable(path, inputs):
                summary[split] = {"reused": 1}
                continue
            summary[split] = write_split(data.source, split, path, inputs, mode, data.source.motion_columns)
    return summary


def run_pack_stage(params: Params, mode: str) -> dict:
    """The ``pack@<mode>`` stage: the mode's train/val packs, keeping complete, intact ones."""
    summary = pack_mode(params, check_mode(mode))
    for split, counts in summary.items():
        print(f"{mode} {split}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    return summary
