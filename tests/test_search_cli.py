"""`mosa search` end to end: a head trained into MiniLM's 384-d text space, queried by text and by example."""

from __future__ import annotations

import os

import pytest
from PIL import Image
from trained_world import build_trained_world
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.search import read_relation_index, run_search_index_stage
from pipeline.viz.triplets import object_name


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    cwd = os.getcwd()
    params = build_trained_world(tmp_path_factory.mktemp("search_cli_world"), text_dim=384)
    run_search_index_stage(params)  # the real text encoder named by params (minilm)
    yield params
    os.chdir(cwd)


def hit_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.strip()[:1].isdigit()]


def test_text_query_lists_k_hits_and_draws_a_contact_sheet(world, tmp_path):
    sheet = tmp_path / "sheet.png"
    result = CliRunner().invoke(app, ["search", "person drinking from a cup", "-k", "3", "--sheet", str(sheet)])
    assert result.exit_code == 0, result.output
    lines = hit_lines(result.output)
    assert [line.split()[0] for line in lines] == ["1", "2", "3"]
    scores = [float(line.split()[1]) for line in lines]
    assert scores == sorted(scores, reverse=True) and all(-1.0 <= s <= 1.0 for s in scores)
    assert all("V5.mp4/" in line and "person" in line for line in lines)  # test-split frames, with triplets
    with Image.open(sheet) as image:
        assert image.width > 3 * 300


def test_query_by_example_leaves_out_the_example(world):
    table = read_relation_index(world.search.out_dir).table
    first = table.row(0, named=True)
    example = f"{first['frame']}:{object_name(first['object_label'])}"
    result = CliRunner().invoke(app, ["search", "--like", example, "-k", "4"])
    assert result.exit_code == 0, result.output
    lines = hit_lines(result.output)
    assert len(lines) == 4
    assert not any(f"{first['frame']}  {object_name(first['object_label'])}  " in line for line in lines)


def test_search_needs_exactly_one_kind_of_query(world):
    runner = CliRunner()
    assert runner.invoke(app, ["search"]).exit_code == 2
    result = runner.invoke(app, ["search", "x", "--like", "V5.mp4/000001.png:bag"])
    assert result.exit_code == 2 and "either a text query or --like" in result.output
