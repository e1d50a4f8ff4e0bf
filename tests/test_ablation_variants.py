"""The ablation's variant table, its overrides and the data seeds' paths."""

from __future__ import annotations

import shlex

import pytest

from pipeline.ablation.data_seeds import data_seed_overrides
from pipeline.ablation.variants import VARIANTS, apply_overrides, chosen_variants, dvc_exp_command
from pipeline.io import DataError
from pipeline.params import parse_params


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: v.name)
def test_every_override_names_a_real_params_key(variant):
    """Each -S override must parse against the params schema (a typo would fail every run)."""
    parsed = parse_params(apply_overrides({}, variant.overrides))
    assert parsed != parse_params({}) or variant.name == "full"


def test_every_variant_but_the_baseline_is_one_switch_from_full():
    for variant in VARIANTS:
        assert len(variant.overrides) == (0 if variant.name == "full" else 4 if variant.name == "baseline" else 1)
    assert len({v.name for v in VARIANTS}) == len(VARIANTS)


def test_overrides_parse_values_like_dvc():
    settings = apply_overrides({"model": {"mim": True, "d_model": 8}}, ["model.mim=false", "model.loss.gamma=0", "train.modes=[predcls,sgdet]"])
    assert settings == {"model": {"mim": False, "d_model": 8, "loss": {"gamma": 0}}, "train": {"modes": ["predcls", "sgdet"]}}


def test_chosen_variants_keep_table_order_and_refuse_unknown_names():
    assert [v.name for v in chosen_variants(["no-asm", "full"])] == ["full", "no-asm"]
    assert chosen_variants(None) == VARIANTS
    with pytest.raises(DataError, match="no-such-thing.*choose from full"):
        chosen_variants(["full", "no-such-thing"])


def test_dvc_exp_command_repeats_the_overrides():
    command = dvc_exp_command(["train.seed=3", "model.mfe_attributes=[distance,velocity]"], "d0-no-mim-s3")
    assert shlex.split(command) == [
        "dvc", "exp", "run", "--name", "d0-no-mim-s3",
        "-S", "train.seed=3", "-S", "model.mfe_attributes=[distance,velocity]",
    ]  # fmt: skip


def test_data_seed_overrides_move_every_data_path_and_nothing_else():
    assert data_seed_overrides(0, default_seed=0) == []
    overrides = data_seed_overrides(2, default_seed=0)
    settings = parse_params(apply_overrides({}, overrides))
    default = parse_params({})
    assert settings.synth.seed == 2 and settings.dataset.root == settings.synth.out_dir != default.synth.out_dir
    for path in (settings.dataset.index_dir, settings.extract.out_dir, settings.motion.out_path, settings.detector.work_dir):
        assert "d2" in path
    # the model, training and text settings are the default run's
    assert settings.model == default.model and settings.train == default.train and settings.text == default.text
