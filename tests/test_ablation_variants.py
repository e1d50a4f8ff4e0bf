"""The ablation's variant table, its overrides and the data seeds' paths."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
import yaml

from pipeline.ablation.data_seeds import build_data_seed, data_seed_overrides, seed_dir
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


def test_a_data_seed_is_reused_after_a_model_change_and_refused_after_a_data_change(tmp_path, monkeypatch):
    """Its caches follow the synth/dataset/detector/extract/motion sections only."""
    monkeypatch.chdir(tmp_path)
    settings = {"synth": {"out_dir": "data/synth_ag"}, "dataset": {"root": "data/synth_ag"}}
    first = apply_overrides(settings, data_seed_overrides(1, default_seed=0))
    params = parse_params(first)
    Path(params.motion.out_path).parent.mkdir(parents=True)
    Path(params.motion.out_path).write_bytes(b"built")  # a built seed: its motion table exists
    (seed_dir(1) / "params.yaml").write_text(yaml.safe_dump(first, sort_keys=False))
    changed_model = apply_overrides(settings, ["model.appearance_dropout=0.5", "train.semi_calibration=false"])
    assert build_data_seed(changed_model, 1, default_seed=0, log=lambda _: None) == seed_dir(1) / "params.yaml"
    with pytest.raises(DataError, match="built with other params"):
        build_data_seed(apply_overrides(settings, ["synth.videos=50"]), 1, default_seed=0, log=lambda _: None)
