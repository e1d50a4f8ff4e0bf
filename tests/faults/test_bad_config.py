"""Bad configuration stops a stage before any work: a one-line error naming the key and the fix.

Parsing itself (every kind of bad value) is covered by ``tests/test_params.py``;
here the stage commands are run as ``dvc repro`` runs them and the working
directory is checked for anything they might have started writing.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from support.tiny_detector import write_random_checkpoint, write_tiny_config, write_tiny_dataset
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.extraction.driver import extract_with_detector
from pipeline.io import DataError
from pipeline.params import DetectionPostprocessParams, ExtractParams


def files_under(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def run_stage(tmp_path: Path, monkeypatch, params_yaml: str, *command: str):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text(params_yaml)
    return CliRunner().invoke(app, list(command))


PARAM_ERRORS = {
    "unknown-key": ("motion:\n  window_kk: 3\n", "unknown key 'motion.window_kk'"),
    "wrong-type": ("motion:\n  window_k: four\n", "motion.window_k = 'four'"),
    "out-of-range": ("motion:\n  det_link_iou: 1.5\n", "motion.det_link_iou = 1.5"),
    "negative-lr": ("train:\n  lr: -0.1\n", "train.lr = -0.1"),
}
STAGES = {"motion": ("motion",), "text": ("text",), "train": ("train", "predcls")}
CASES = [(stage, error, *PARAM_ERRORS[error]) for stage in STAGES for error in PARAM_ERRORS] + [
    ("text", "clip-without-weights", "text:\n  encoder: clip\n", "text.encoder = clip needs CLIP weights: set text.clip_weights"),
]


@pytest.mark.parametrize("stage, error, params_yaml, message", CASES, ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_bad_setting_stops_the_stage_before_it_writes_anything(tmp_path, monkeypatch, stage, error, params_yaml, message):
    result = run_stage(tmp_path, monkeypatch, params_yaml, *STAGES[stage])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and message in lines[0]
    assert files_under(tmp_path) == ["params.yaml"], "the stage started writing before it checked its settings"


def test_detector_checkpoint_with_another_class_count_stops_extraction_before_work(tmp_path):
    write_tiny_dataset(tmp_path / "ag", tmp_path / "index", videos=2, frames_per_video=2)
    config = write_tiny_config(tmp_path / "tiny.py")  # the 36 AG classes
    five = write_tiny_config(tmp_path / "five.py", class_names=("person", "bag", "bed", "book", "box"))
    checkpoint = write_random_checkpoint(five, tmp_path / "five.pth")
    extract = ExtractParams(out_dir=str(tmp_path / "roi"), metrics_path=str(tmp_path / "metrics" / "extract.json"))
    with pytest.raises(DataError, match=r"trained for 5 classes but the config has num_classes=36 \(set model") as error:
        extract_with_detector(str(config), str(checkpoint), str(tmp_path / "index"), str(tmp_path / "ag"), extract, DetectionPostprocessParams())
    assert "\n" not in str(error.value) and str(checkpoint) in str(error.value)
    assert not (tmp_path / "roi").exists() and not (tmp_path / "roi.parts").exists()
    assert not (tmp_path / "metrics").exists()
