"""``mosa evaluate`` on a tiny hand-written Action Genome root."""

from __future__ import annotations

import json

import pytest
import typer
from ag_fixtures import obj, person, write_root
from evaluation_cases import dist, pair, table_of
from typer.testing import CliRunner

from pipeline.constants import OBJECT_INDEX, PERSON_INDEX
from pipeline.evaluation import write_predictions
from pipeline.evaluation.command import evaluate_command

CUP = OBJECT_INDEX["cup/glass/bottle"]
PERSON_XYXY = (10.0, 20.0, 60.0, 200.0)  # ag_fixtures.person()
CUP_XYXY = (100.0, 50.0, 130.0, 90.0)  # obj() default bbox, xywh (100, 50, 30, 40)
FRAMES = [f"vid.mp4/{n:06d}.png" for n in (1, 2, 3)]


@pytest.fixture()
def app() -> typer.Typer:
    app = typer.Typer()
    app.command("evaluate")(evaluate_command)
    app.command("unused")(lambda: None)  # two commands keep 'evaluate' a subcommand
    return app


@pytest.fixture()
def ag_root(tmp_path):
    # 3 test frames, each a cup (looking_at, in_front_of, holding); frame 3 also a small book.
    person_bbox = {f: person() for f in FRAMES}
    object_bbox = {f: [obj(split="test")] for f in FRAMES}
    object_bbox[FRAMES[2]].append(obj("book", (0.0, 0.0, 8.0, 8.0), split="test", spatial=(), contacting=()))
    return write_root(tmp_path / "ag", person_bbox, object_bbox, frames=False)


@pytest.fixture()
def predictions(tmp_path):
    # Frames 1 and 2 predicted perfectly; frame 3 (and its book) not at all.
    probs = dist(looking_at=0.9, not_looking_at=0.1, in_front_of=0.95, above=0.1, holding=0.97, carrying=0.1)
    path = tmp_path / "preds.parquet"
    write_predictions(table_of([pair(f, CUP, CUP_XYXY, probs, subject_box=PERSON_XYXY) for f in FRAMES[:2]]), path)
    return path


def invoke(app, *args):
    return CliRunner().invoke(app, ["evaluate", *map(str, args), "--params", "absent.yaml"])


def test_prints_table_and_writes_json(app, ag_root, predictions, tmp_path):
    out = tmp_path / "metrics.json"
    result = invoke(app, "--ag-root", ag_root, "--predictions", predictions, "--mode", "predcls", "--json", out)
    assert result.exit_code == 0, result.output
    assert "predcls, test split: 3 frames, 10 ground-truth triplets" in result.output
    metrics = json.loads(out.read_text())
    assert set(metrics) == {"with", "semi", "no", "per_predicate"}
    # Frames 1-2: 3/3; frame 3: 0/4 (cup 3 + book's attention).
    for constraint in ("with", "semi", "no"):
        assert metrics[constraint]["R@20"] == pytest.approx(200 / 3)
    looking = metrics["per_predicate"]["with"]["looking_at"]
    assert looking == {"group": "attention", "gt_count": 4, "R@10": 50.0, "R@20": 50.0, "R@50": 50.0, "R@100": 50.0}
    assert metrics["per_predicate"]["with"]["eating"]["R@10"] is None
    # mR@10: looking_at 2/4, in_front_of 2/3, holding 2/3, 23 predicates without GT count 0.
    assert metrics["with"]["mR@10"] == pytest.approx(100 * (0.5 + 2 / 3 + 2 / 3) / 26)


def test_sgcls_drops_small_boxes_and_one_constraint(app, ag_root, predictions, tmp_path):
    out = tmp_path / "m.json"
    result = invoke(app, "--ag-root", ag_root, "--predictions", predictions, "--mode", "sgcls", "--constraint", "semi",
                    "--json", out, "--per-predicate")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "3 frames, 9 ground-truth triplets" in result.output
    assert "per-predicate recall, semi constraint" in result.output
    metrics = json.loads(out.read_text())
    assert set(metrics) == {"semi", "per_predicate"}
    assert metrics["semi"]["R@10"] == pytest.approx(200 / 3)


def test_errors_are_one_line(app, ag_root, predictions, tmp_path):
    stray = tmp_path / "stray.parquet"
    write_predictions(table_of([pair("zzz.mp4/000001.png", CUP, CUP_XYXY, dist(looking_at=1.0))]), stray)
    result = invoke(app, "--ag-root", ag_root, "--predictions", stray, "--mode", "predcls")
    assert result.exit_code == 2
    assert "1 frame(s) are not in the ground truth: zzz.mp4/000001.png" in result.output
    result = invoke(app, "--ag-root", ag_root, "--predictions", predictions, "--mode", "detcls")
    assert result.exit_code == 2 and "--mode" in result.output
    result = invoke(app, "--ag-root", tmp_path / "nowhere", "--predictions", predictions, "--mode", "predcls")
    assert result.exit_code == 2 and result.output.startswith("error: ") and result.output.count("\n") == 1


def test_person_label_is_not_required_to_be_first(app, ag_root, tmp_path):
    # A file whose pairs put the object first is valid; it just scores nothing in 'with'.
    path = tmp_path / "swapped.parquet"
    rows = [pair(f, PERSON_INDEX, PERSON_XYXY, dist(looking_at=1.0), subject_class=CUP, subject_box=CUP_XYXY) for f in FRAMES]
    write_predictions(table_of(rows), path)
    result = invoke(app, "--ag-root", ag_root, "--predictions", path, "--mode", "predcls", "--constraint", "with")
    assert result.exit_code == 0, result.output


def test_val_split_is_carved_from_train_like_the_index(tmp_path):
    from ag_fixtures import video

    from pipeline.ag.reader import assign_val_split, load_action_genome
    from pipeline.evaluation.from_files import load_ground_truth
    from pipeline.params import DatasetParams

    person_bbox, object_bbox = {}, {}
    for name in ("v1", "v2", "v3", "v4"):
        p, o = video(name, (1, 2, 3), split="train")
        person_bbox.update(p)
        object_bbox.update(o)
    root = write_root(tmp_path / "ag", person_bbox, object_bbox, frames=False)
    dataset = DatasetParams(val_fraction=0.5, split_seed=3)
    index = assign_val_split(load_action_genome(root), dataset.val_fraction, dataset.split_seed)
    for split in ("train", "val"):
        expected = sorted(index.frames.filter(index.frames["split"] == split)["frame"].to_list())
        assert list(load_ground_truth(root, split, "predcls", dataset).frames) == expected
        assert len(expected) == 6
