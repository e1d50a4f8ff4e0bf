"""The HTML report: content from the pipeline's outputs, self-containedness, and a headless Chromium render."""

from __future__ import annotations

import base64
import io
import json
import os
import re
from pathlib import Path

import pytest
from PIL import Image
from trained_world import build_trained_world, hashed_encoder, override

from pipeline.report import build_report, html, run_report_stage
from pipeline.report.browser import chromium_binary, render_page
from pipeline.search import run_search_index_stage


@pytest.fixture
def chromium():
    # A missing browser is a failed check, not a skipped one: scripts/test.sh installs it.
    binary = chromium_binary()
    if binary is None:
        pytest.fail("Chromium is not installed (Debian: apt-get install chromium); scripts/test.sh installs it")
    return binary


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    cwd = os.getcwd()
    params = build_trained_world(tmp_path_factory.mktemp("report_world"), modes=("predcls", "sgcls"))
    params = override(params, "report", gallery_frames=2)
    run_search_index_stage(params, hashed_encoder())
    write_detector_and_footage_outputs(params)
    yield params
    os.chdir(cwd)


def write_detector_and_footage_outputs(params) -> None:
    """What the train_detector and footage_gallery stages write: per-class AP, three overlays of one video."""
    metrics = {"trained": True, "bbox_mAP": 0.71, "bbox_mAP_50": 0.934, "eval_split": "test", "eval_images": 9,
               "iterations": 5, "train_seconds": 1.0, "per_class": {"person": {"AP50": 0.99, "AP": 0.8, "instances": 9},
                                                                    "medicine": {"AP50": 0.812, "AP": 0.5, "instances": 26}}}  # fmt: skip
    Path(params.detector.metrics_path).parent.mkdir(parents=True, exist_ok=True)
    Path(params.detector.metrics_path).write_text(json.dumps(metrics))
    overlays = Path(params.report.footage_dir) / "unseen" / "overlays"
    overlays.mkdir(parents=True, exist_ok=True)
    for i in range(3):
        Image.new("RGB", (400, 200), (40 * i, 90, 90)).save(overlays / f"00000{i}.png")


def data_images(page: str) -> list[Image.Image]:
    uris = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    return [Image.open(io.BytesIO(base64.b64decode(uri))) for uri in uris]


def test_report_shows_every_section_from_the_pipeline_outputs(world):
    page = build_report(world)
    for title in ("Scene graph metrics", "Detector", "Long tail", "Training curves", "Ablations", "Relation search",
                  "Best and worst frames", "Predicted scene graphs on unseen footage"):  # fmt: skip
        assert f"<h2>{title}</h2>" in page
    metrics = json.loads(open("metrics/sgcls.json").read())
    assert f"<td>{metrics['semi']['R@20']:.2f}</td>" in page
    # three constraint rows, three predicate-group rows and one motion row per mode
    assert page.count("<tr><td>predcls</td>") == 7 and page.count("<tr><td>sgcls</td>") == 7
    groups = json.loads(open("metrics/predcls.json").read())
    attention = "".join(html.cell(groups["group_recall_by_split"][split]["attention"]) for split in ("train", "val", "test"))
    ceiling = html.cell(groups["ceiling"]["with"]["R@20"])
    assert f"<tr><td>predcls</td><td>attention</td>{attention}{ceiling}</tr>" in page
    assert "<h2>Motion (at-hand contact classes)</h2>" in page and "At-hand confusion matrix (predcls" in page
    by_split = json.loads(open("metrics/predcls.json").read())["motion_by_split"]
    motion_cells = "".join(html.cell(by_split[split]) for split in ("test", "train", "val"))
    assert "<th>same on train</th>" in page and f"<tr><td>predcls</td>{motion_cells}" in page
    search = json.loads(open(world.search.metrics_path).read())
    assert f"mean precision@10 {search['mean_precision@10']:.3f}" in page
    assert "No experiments yet" in page and 'class="note missing"' not in page
    assert "bbox mAP@0.5 0.934" in page and "<tr><td>medicine</td><td>26</td><td>0.812</td>" in page
    # per-class AP, worst first (the metrics file lists classes by name)
    assert page.index("<tr><td>medicine</td><td>26</td>") < page.index("<tr><td>person</td><td>9</td>")
    # 4 frames in the gallery + long tail + curves + 2 of the 3 unseen-footage overlays
    assert len(data_images(page)) == 2 * 2 + 2 + 2
    assert page.index("Best predcls frames") < page.index("Worst predcls frames")


def test_report_is_one_self_contained_file_without_scripts(world):
    page = run_report_stage(world).read_text()
    assert "<script" not in page and "http://" not in page and "https://" not in page
    sources = re.findall(r'(?:src|href)="([^"]*)"', page)
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources)
    for image in data_images(page):
        image.load()  # every embedded picture decodes
        assert image.format == "PNG" and image.width > 100
    assert run_report_stage(world).read_text() == page  # same inputs, same bytes


def test_missing_inputs_become_notes_and_ablations_tables(world, tmp_path):
    partial = override(world, "train", modes=("predcls", "sgdet"))
    ablations = tmp_path / "ablations"
    ablations.mkdir()
    (ablations / "ablation_predcls_with.csv").write_text("variant,R@20,mR@20\nfull,41.5,12.25\nno ASM,39.0,9.5\n")
    partial = override(partial, "report", ablation_dir=str(ablations))
    page = build_report(partial)
    assert "Not evaluated yet: sgdet (metrics/sgdet.json)" in page
    assert "<h3>predcls, with</h3>" in page and "<td>no ASM</td><td>39.00</td><td>9.50</td>" in page


@pytest.mark.usefixtures("chromium")
def test_report_renders_in_headless_chromium_without_console_errors(world, tmp_path):
    path = run_report_stage(world)
    rendered = render_page(path, tmp_path / "report.png", window=(1280, 1600))
    assert rendered.console == []
    assert "<h2>Best and worst frames</h2>" in rendered.dom and rendered.dom.count("<img") == 8
    assert "<h2>Detector</h2>" in rendered.dom and "<h3>unseen.mp4</h3>" in rendered.dom
    with Image.open(rendered.screenshot) as shot:
        assert shot.size == (1280, 1600)
        colours = shot.convert("RGB").getcolors(maxcolors=1_000_000)
        assert colours is not None and len(colours) > 50  # text, tables and plots, not a blank page


@pytest.mark.usefixtures("chromium")
def test_console_errors_are_caught(tmp_path):
    # The check above must be able to fail: a page whose script throws is reported.
    page = tmp_path / "broken.html"
    page.write_text('<!DOCTYPE html><html><body><p>x</p><script>throw new Error("boom")</script></body></html>')
    assert any("Uncaught Error: boom" in message for message in render_page(page).console)
