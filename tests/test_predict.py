"""`mosa predict` on footage the pipeline never saw: frames folder, video file, outputs, refusals."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from footage_world import build_footage_world, write_new_footage
from PIL import Image
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.constants import PREDICATES
from pipeline.io import DataError
from pipeline.predict_footage import footage_video_name, predict_footage, stage_frames


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    cwd = os.getcwd()
    root = tmp_path_factory.mktemp("footage_world")
    params = build_footage_world(root)
    yield params, write_new_footage(root)
    os.chdir(cwd)


def graphs(folder: Path) -> dict[str, dict]:
    return {path.name: json.loads(path.read_text()) for path in sorted(folder.glob("*.json"))}


def test_frames_folder_gives_one_graph_and_overlay_per_frame(world, tmp_path):
    params, footage = world
    # min_score 0: the tiny detector's scores are low; the display filter has its own tests (test_viz_detections.py).
    summary = predict_footage(footage, tmp_path / "out", params, min_score=0.0)
    written = graphs(summary.graphs_dir)
    assert summary.video == "TINY00.mp4" and summary.frames == 4
    assert list(written) == ["000001.json", "000008.json", "000015.json", "000022.json"]  # numbers from the file names
    assert sorted(p.name for p in summary.overlays_dir.glob("*.png")) == [n.replace(".json", ".png") for n in written]
    total_pairs = 0
    for graph in written.values():
        nodes = {node["id"]: node for node in graph["nodes"]}
        pairs = len(graph["pair_probabilities"])
        total_pairs += pairs
        assert graph["mode"] == "sgdet" and (not nodes or nodes[0]["label"] == "person")
        assert len(graph["triplets"]) == 3 * pairs  # one per predicate group (with constraint)
        for edge in graph["triplets"]:
            assert edge["predicate"] in PREDICATES and 0.0 <= edge["score"] <= 1.0
            person_side = "object" if edge["group"] == "spatial" else "subject"
            assert edge[person_side] == 0 and {edge["subject"], edge["object"]} <= set(nodes)
        for pair in graph["pair_probabilities"]:
            assert sum(pair["attention"].values()) == pytest.approx(1.0)
    assert 0 < total_pairs <= summary.pairs  # class-aware NMS may merge same-class boxes
    again = predict_footage(footage, tmp_path / "again", params, overlays=False, min_score=0.0)
    assert graphs(again.graphs_dir) == written and not again.overlays_dir.exists()


def test_person_stays_when_no_object_passes_the_threshold(world, tmp_path):
    params, footage = world
    everything = predict_footage(footage, tmp_path / "all", params, overlays=False, min_score=0.0)
    predictions = pl.read_parquet(everything.graphs_dir.parent / "predictions.parquet")
    best_object = float(predictions["object_score"].max())
    person_score = float(predictions["subject_score"].min())
    # the tiny world's detector (fixed seed) scores the person far above any object
    assert best_object < person_score < 1.0
    threshold = (best_object + person_score) / 2  # above every object, below every person
    summary = predict_footage(footage, tmp_path / "person_only", params, min_score=threshold)
    for graph in graphs(summary.graphs_dir).values():
        assert graph["triplets"] == [] and graph["pair_probabilities"] == []
        assert [node["label"] for node in graph["nodes"]] == ["person"]
    with_person = np.asarray(Image.open(next(summary.overlays_dir.glob("*.png"))))
    nothing = predict_footage(footage, tmp_path / "nothing", params, min_score=1.0)
    assert all(graph["nodes"] == [] for graph in graphs(nothing.graphs_dir).values())
    without = np.asarray(Image.open(next(nothing.overlays_dir.glob("*.png"))))
    assert not np.array_equal(with_person, without)  # the person box is drawn


def test_video_file_is_decoded_every_nth_frame(world, tmp_path):
    import cv2

    params, footage = world
    video = tmp_path / "clip.avi"
    frames = [np.asarray(Image.open(p).convert("RGB")) for p in sorted(footage.glob("*.png"))] * 2
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 5, (128, 96))
    for frame in frames:
        writer.write(frame[:, :, ::-1].copy())
    writer.release()
    summary = predict_footage(video, tmp_path / "out", params, every=3)
    assert summary.video == "clip.mp4"
    assert list(graphs(summary.graphs_dir)) == ["000001.json", "000004.json", "000007.json"]


def test_unusable_inputs_are_one_line_errors(world, tmp_path):
    params, footage = world
    with pytest.raises(DataError, match="no such folder or video"):
        predict_footage(tmp_path / "nothing", tmp_path / "out", params)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no frames"):
        predict_footage(tmp_path / "empty", tmp_path / "out", params)
    untrained = params.model_copy(update={"train": params.train.model_copy(update={"out_dir": str(tmp_path / "none")})})
    with pytest.raises(DataError, match="no trained sgdet head"):
        predict_footage(footage, tmp_path / "out", untrained)
    with pytest.raises(DataError, match="--every 0"):
        predict_footage(footage, tmp_path / "out", params, every=0)
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(DataError, match="not a folder of frames or a video"):
        stage_frames(tmp_path / "notes.txt", tmp_path / "staged")
    assert footage_video_name(Path("my clip.mov")) == "my_clip.mp4"


def test_footage_features_from_another_detector_are_refused(world, tmp_path):
    from support.tiny_detector import write_random_checkpoint

    params, footage = world
    other = write_random_checkpoint(params.detector.config, tmp_path / "other.pth", seed=1)
    changed = params.model_copy(update={"detector": params.detector.model_copy(update={"checkpoint": str(other)})})
    with pytest.raises(DataError, match=r"roi.h5 \(training features\) and .*other.pth \(detector for the footage\): checkpoint_sha256 differs"):
        predict_footage(footage, tmp_path / "out", changed)
    assert not (tmp_path / "out" / "work" / "roi").exists()  # refused before any extraction


def test_predict_command(world, tmp_path):
    params, footage = world
    import yaml

    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params.model_dump(mode="json")))
    result = CliRunner().invoke(app, ["predict", str(footage), "--out", str(tmp_path / "out"), "--params", str(tmp_path / "params.yaml")])
    assert result.exit_code == 0, result.output
    assert "TINY00.mp4: 4 frames" in result.output and "most frequent predicted predicates" in result.output
