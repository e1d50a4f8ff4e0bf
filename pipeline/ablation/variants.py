"""The ablation's variants, and turning one into parameter overrides.

Every variant differs from full in exactly one switch; the baseline (all
MOSA components off) keeps gamma, and gamma 0 is a row of its own. A
variant is a list of ``key=value`` overrides of params.yaml, the same a
``dvc exp run -S key=value`` takes, so every run of the ablation can be
repeated as a DVC experiment (:func:`dvc_exp_command`).
"""

from __future__ import annotations

import copy
import shlex
from collections.abc import Sequence
from dataclasses import dataclass

import yaml

from pipeline.io import DataError


@dataclass(frozen=True)
class Variant:
    name: str  # a valid git ref component (used in run keys and experiment names)
    label: str  # row label in the table
    overrides: tuple[str, ...]  # ``dvc exp run -S`` arguments


# The preregistered rows (docs/synthetic_benchmark.md, section 6; paper-token: docs/model_selection.md, section 3).
VARIANTS: tuple[Variant, ...] = (
    Variant("full", "MOSA (full)", ()),
    Variant("no-mfe", "w/o MFE (so no MIM)", ("model.mfe=false",)),
    Variant("no-mim", "w/o MIM (motion added)", ("model.mim=false",)),
    Variant("no-asm", "w/o ASM", ("model.asm=false",)),
    Variant("no-weighted-loss", "w/o category weights", ("model.loss.category_weighted=false",)),
    Variant("gamma-0", "gamma = 0", ("model.loss.gamma=0",)),
    Variant(
        "mfe-speeds",
        "MFE + per-entity speeds (extra)",
        ("model.mfe_attributes=[distance,velocity,persistence,direction_consistency,relative_displacement,track_speed]",),
    ),
    # The token choice of docs/model_selection.md, undone: its own effect, at the ablation's power.
    Variant("paper-token", "paper's token (no appearance dropout)", ("model.appearance_dropout=0",)),
    Variant(
        "baseline",
        "baseline (MFE, MIM, ASM, weights off; gamma kept)",
        (
            "model.mfe=false",
            "model.mim=false",
            "model.asm=false",
            "model.loss.category_weighted=false",
        ),
    ),
)
VARIANT_NAMES = tuple(v.name for v in VARIANTS)


def chosen_variants(names: Sequence[str] | None) -> tuple[Variant, ...]:
    """The variants named in ``names`` (all when None), in table order; an unknown name is an error."""
    if names is None:
        return VARIANTS
    unknown = sorted(set(names) - set(VARIANT_NAMES))
    if unknown:
        raise DataError(f"unknown ablation variant(s) {', '.join(unknown)}; choose from {', '.join(VARIANT_NAMES)}")
    return tuple(v for v in VARIANTS if v.name in names)


def budget_overrides(epochs: int) -> tuple[str, ...]:
    """The same budget for every variant: fixed epochs of the fixed warm-up + cosine schedule, last epoch kept."""
    return (f"train.epochs={epochs}", "train.schedule=warmup_cosine", "train.selection=last")


def apply_overrides(settings: dict, overrides: Sequence[str]) -> dict:
    """``settings`` (a params.yaml mapping) with ``key.path=value`` overrides applied, as ``dvc exp run -S`` would.

    Values are parsed as YAML (``false``, ``0``, ``[a,b]``), like DVC does.
    """
    out = copy.deepcopy(settings)
    for override in overrides:
        key, _, value = override.partition("=")
        node = out
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = yaml.safe_load(value)
    return out


def dvc_exp_command(overrides: Sequence[str], name: str) -> str:
    """The ``dvc exp run`` command line that repeats one run through the pipeline's stages."""
    sets = " ".join(f"-S {shlex.quote(o)}" for o in overrides)
    return f"dvc exp run --name {shlex.quote(name)} {sets}".rstrip()
