"""Pictures: triplet wording, frame panels, contact sheets, timelines and `mosa show`."""

from __future__ import annotations

import os

import numpy as np
import polars as pl
import pytest
from PIL import Image
from trained_world import build_trained_world
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.constants import OBJECT_INDEX
from pipeline.io import DataError
from pipeline.viz.drawing import (
    MIN_WIDTH,
    PALETTE,
    PANEL_WIDTH,
    _panel_lines,
    contact_sheet,
    draw_pairs,
    load_frame,
    render_frame,
)
from pipeline.viz.timeline import _predicted_cells, render_timeline
from pipeline.viz.triplets import ground_truth_triplets, predicted_triplets

CUP = OBJECT_INDEX["cup/glass/bottle"]


def one_hot(size: int, index: int, high: float = 0.9) -> list[float]:
    values = [0.05] * size
    values[index] = high
    return values


def pair_rows(frame: str = "V.mp4/000001.png") -> pl.DataFrame:
    """One cup pair: looking_at, in_front_of (spatial index 5 - 3 = 2), drinking_from (11 - 9 = 2)."""
    return pl.DataFrame({
        "frame": [frame], "subject_box": [[2.0, 2.0, 30.0, 46.0]], "object_box": [[36.0, 10.0, 50.0, 30.0]],
        "subject_label": [1], "object_label": [CUP], "subject_score": [1.0], "object_score": [0.8],
        "attention": [one_hot(3, 0)], "spatial": [one_hot(6, 2)], "contacting": [one_hot(17, 2)],
    })  # fmt: skip


def annotation(frame: str = "V.mp4/000001.png") -> pl.DataFrame:
    """The cup is annotated looking_at, in_front_of, holding (not drinking_from); a chair is not predicted."""
    return pl.DataFrame(
        {"frame": [frame] * 2, "object_class": [CUP, OBJECT_INDEX["chair"]], "x1": [36.0, 5.0], "y1": [10.0, 30.0],
         "x2": [50.0, 20.0], "y2": [30.0, 47.0], "attention": [[0], [1]], "spatial": [[5], [4]], "contacting": [[14], [19]]},
        schema_overrides={"object_class": pl.Int16, "attention": pl.List(pl.Int16), "spatial": pl.List(pl.Int16), "contacting": pl.List(pl.Int16)},
    )  # fmt: skip


def test_triplets_follow_the_with_constraint_and_ag_directions():
    row = pair_rows().row(0, named=True)
    texts = [t.text() for t in predicted_triplets(CUP, row["attention"], row["spatial"], row["contacting"])]
    assert texts == ["person looking at cup (0.90)", "cup in front of person (0.90)", "person drinking from cup (0.90)"]
    gt = ground_truth_triplets(OBJECT_INDEX["chair"], [19, 4, 1])
    assert [t.text() for t in gt] == ["person not looking at chair", "chair beneath person", "person sitting on chair"]
    assert [t.group for t in gt] == ["attention", "spatial", "contacting"]


def test_panel_marks_hits_misses_and_unpredicted_annotations():
    lines = _panel_lines(pair_rows(), annotation())
    by_text = {text.strip(): colour for text, colour in lines}
    assert by_text["+ person looking at cup (0.90)"] == (64, 170, 64)  # annotated: green
    assert by_text["+ person drinking from cup (0.90)"] == (200, 60, 60)  # not annotated: red
    assert by_text["gt person holding cup"] == (110, 110, 110)  # missed: grey
    assert "chair  (annotated, not predicted)" in by_text and "gt person sitting on chair" in by_text
    assert "gt person looking at cup" not in by_text  # predicted already, not repeated


def test_frames_are_upscaled_and_boxes_drawn_in_the_pair_colour():
    image = Image.new("RGB", (64, 48), (0, 0, 0))
    drawn, factor = draw_pairs(image, pair_rows(), captions=False)
    assert factor == MIN_WIDTH / 64 and drawn.size == (MIN_WIDTH, 288)
    x1, y1, x2, y2 = (round(v * factor) for v in (36.0, 10.0, 50.0, 30.0))
    assert drawn.getpixel((x1, (y1 + y2) // 2)) == PALETTE[0]  # left edge of the cup box
    assert drawn.getpixel(((x1 + x2) // 2, (y1 + y2) // 2)) == (0, 0, 0)  # outline only
    panel = render_frame(image, pair_rows(), annotation(), "title")
    assert panel.width == MIN_WIDTH + PANEL_WIDTH and panel.height >= 288


def test_contact_sheet_grid():
    tiles = [Image.new("RGB", (100, 50), (i * 40, 0, 0)) for i in range(5)]
    sheet = contact_sheet(tiles, [["a", "b"]] * 5, columns=2, tile_width=200)
    assert sheet.width == 2 * 208 + 8
    assert sheet.getpixel((8 + 208 + 10, 8 + 10)) == (40, 0, 0)  # second tile, first row
    with pytest.raises(ValueError, match="at least one tile"):
        contact_sheet([], [])


def test_timeline_holds_each_frames_with_constraint_triplets():
    rows = pl.concat([pair_rows("V.mp4/000001.png"), pair_rows("V.mp4/000009.png")])
    cells = _predicted_cells(rows)
    assert cells == {CUP: [(1, 0, 0.9), (1, 5, 0.9), (1, 11, 0.9), (9, 0, 0.9), (9, 5, 0.9), (9, 11, 0.9)]}
    objects = annotation().with_columns(frame_number=pl.lit(1, pl.Int32))
    image = render_timeline("V.mp4", rows, objects)
    assert image.width > 500 and np.asarray(image).std() > 10
    with pytest.raises(ValueError, match="no predicted or annotated pairs"):
        render_timeline("V.mp4", rows.clear(), objects.clear())


def test_missing_frame_image_names_the_file(tmp_path):
    with pytest.raises(DataError, match="frames/V.mp4/000001.png: cannot read frame"):
        load_frame(tmp_path, "V.mp4/000001.png")


# --------------------------------------------------------------------------- mosa show


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    cwd = os.getcwd()
    yield build_trained_world(tmp_path_factory.mktemp("viz_world"))
    os.chdir(cwd)


def test_show_frame_and_video_write_pngs(world, tmp_path):
    runner = CliRunner()
    frame = pl.read_parquet("predictions/predcls.parquet")["frame"][0]
    result = runner.invoke(app, ["show", frame, "--out", str(tmp_path / "frame.png")])
    assert result.exit_code == 0, result.output
    with Image.open(tmp_path / "frame.png") as image:
        assert image.width == MIN_WIDTH + PANEL_WIDTH
    result = runner.invoke(app, ["show", "V5.mp4", "--out", str(tmp_path / "video.png")])
    assert result.exit_code == 0, result.output
    assert Image.open(tmp_path / "video.png").height > 100
    result = runner.invoke(app, ["show", "V5.mp4/000099.png"])
    assert result.exit_code == 2 and "neither predicted nor annotated" in result.output
    result = runner.invoke(app, ["show", frame, "--mode", "sgdet"])
    assert result.exit_code == 2 and "predictions/sgdet.parquet: predictions not found" in result.output
