"""The ablation grid's commands and the table built from `dvc exp show --json`."""

from __future__ import annotations

import json
import math

import pytest
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.io import DataError
from pipeline.params import parse_params
from pipeline.training.ablation import (
    CORE_VARIANTS,
    GRIDS,
    ablation_table,
    apply_overrides,
    collect_results,
    queue_commands,
    render_markdown,
)


def _experiment(name: str, r20: float, mr20: float) -> dict:
    """One record shaped like dvc 3's `exp show --json` output."""
    return {
        "revs": [
            {
                "rev": "0" * 40,
                "name": name,
                "data": {
                    "params": {"params.yaml": {"data": {}}},
                    "metrics": {"metrics/predcls.json": {"data": {"with": {"R@20": r20, "mR@20": mr20}}}},
                },
                "error": None,
                "experiments": None,
            }
        ],
        "name": name,
    }


EXP_SHOW = [
    {"rev": "workspace", "name": None, "data": {"metrics": {}}, "experiments": None},
    {
        "rev": "1" * 40,
        "name": "main",
        "data": {"metrics": {"metrics/predcls.json": {"error": {"type": "FileNotFoundError"}}}},
        "experiments": [
            _experiment("full-s0", 60.0, 30.0),
            _experiment("full-s1", 62.0, 34.0),
            _experiment("baseline-s0", 50.0, 20.0),
            _experiment("unrelated-name", 1.0, 1.0),
        ],
    },
]


def test_queue_commands_cover_every_variant_and_seed():
    commands = queue_commands(CORE_VARIANTS, [0, 1, 2], ["predcls"])
    assert len(commands) == 3 * len(CORE_VARIANTS)
    names = [c[c.index("--name") + 1] for c in commands]
    assert len(set(names)) == len(names) and "no-mim-s2" in names
    no_mim = commands[names.index("no-mim-s2")]
    assert no_mim[:4] == ["dvc", "exp", "run", "--queue"]
    sets = [no_mim[i + 1] for i, arg in enumerate(no_mim) if arg == "--set-param"]
    assert sets == ["train.seed=2", "train.modes=[predcls]", "model.mim=false"]


@pytest.mark.parametrize("variant", GRIDS["all"], ids=lambda v: v.name)
def test_every_override_names_a_real_params_key(variant):
    """Each -S override must parse against the params schema (a typo would fail every experiment)."""
    parsed = parse_params(apply_overrides({}, variant.overrides))
    assert parsed != parse_params({}) or variant.name == "full"


def test_overrides_parse_values_like_dvc():
    settings = apply_overrides({"model": {"mim": True, "d_model": 8}}, ["model.mim=false", "model.loss.gamma=0", "train.modes=[predcls,sgdet]"])
    assert settings == {"model": {"mim": False, "d_model": 8, "loss": {"gamma": 0}}, "train": {"modes": ["predcls", "sgdet"]}}


def test_table_averages_seeds_per_variant_in_grid_order():
    results = collect_results(EXP_SHOW, "predcls", "with")
    assert {(r.variant, r.seed) for r in results} == {("full", 0), ("full", 1), ("baseline", 0)}
    table = ablation_table(results, ["R@20", "mR@20"], GRIDS["all"])
    assert table["variant"].to_list() == ["full", "baseline"]
    full = table.row(0, named=True)
    assert full["seeds"] == 2 and full["R@20 mean"] == 61.0
    assert full["R@20 std"] == pytest.approx(math.sqrt(2.0))
    assert math.isnan(table.row(1, named=True)["R@20 std"])  # one seed: no spread
    markdown = render_markdown(table, ["R@20", "mR@20"], "predcls, with constraint")
    assert "| MOSA (full) | 2 | 61.00 ± 1.41 | 32.00 ± 2.83 |" in markdown
    assert "| baseline (MOSA components off, gamma kept) | 1 | 50.00 | 20.00 |" in markdown


def test_no_finished_experiment_is_a_one_line_error():
    with pytest.raises(DataError, match="mosa ablate"):
        ablation_table(collect_results(EXP_SHOW, "sgdet", "with"), ["R@20"], GRIDS["core"])


def test_ablation_table_command_writes_markdown_and_csv(tmp_path):
    saved = tmp_path / "exp_show.json"
    saved.write_text(json.dumps(EXP_SHOW))
    result = CliRunner().invoke(
        app, ["ablation-table", "--exp-show-json", str(saved), "--out-dir", str(tmp_path), "--metrics", "R@20"]
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "ablation_predcls_with.csv").read_text().startswith("variant,label,seeds,R@20 mean,R@20 std")
    assert "61.00 ± 1.41" in (tmp_path / "ablation_predcls_with.md").read_text()
