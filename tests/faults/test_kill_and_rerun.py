"""SIGKILL in the middle of detector training, motion, text and relation-head training, then a rerun.

Each child process stops itself at a chosen point inside the stage (see
:func:`faults.crash.kill_when_paused`) and is killed there. The test then
checks that nothing half-written sits where the next stage reads, that the
stage's inputs are untouched, and that the rerun gives exactly what an
uninterrupted run gives. Synthesis and extraction have their own kill tests
(``test_crash_and_lock.py``, ``tests/test_extract_processes.py``).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from support.tiny_detector import write_tiny_config, write_tiny_dataset
from support.training_caches import write_synthetic_caches
from trained_world import hashed_encoder, override

from faults.crash import kill_when_paused, snapshot
from pipeline.detector.model import load_detector
from pipeline.detector.train import train_or_use_detector
from pipeline.motion import write_motion_table
from pipeline.params import DetectorParams, DetectorTrainParams, Params
from pipeline.text.embed import write_text_embeddings
from pipeline.training import head_checkpoint as checkpoint
from pipeline.training.train_stage import train_mode

# The child loads the same params the test uses, from JSON.
LOAD_PARAMS = """
from pathlib import Path
from pipeline.params import Params
params = Params.model_validate_json(Path("params.json").read_text())
"""


def save_params(params: Params, workdir: Path) -> None:
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "params.json").write_text(params.model_dump_json())


def visible_files(folder: Path) -> list[str]:
    """What a later stage could open: everything but the hidden temporaries of atomic writes."""
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Params:
    params = write_synthetic_caches(tmp_path_factory.mktemp("world"))
    params = override(params, "model", d_model=16, heads=2, mim_heads=2, temporal_layers=1)
    return override(params, "train", epochs=2, batch_videos=2)


def test_killed_detector_training_leaves_no_checkpoint_and_the_rerun_trains_cleanly(tmp_path):
    write_tiny_dataset(tmp_path / "ag", tmp_path / "index", videos=3, frames_per_video=2)
    config = write_tiny_config(tmp_path / "tiny.py")
    params = DetectorParams(
        config=str(config),
        work_dir=str(tmp_path / "models"),
        metrics_path=str(tmp_path / "metrics" / "detector.json"),
        train=DetectorTrainParams(iterations=3, batch_size=2),
    )
    index = snapshot(tmp_path / "index")
    kill_when_paused(
        f"""
from pipeline.params import DetectorParams
import pipeline.detector.train as train
make_hook = train._progress_hook
def hook_that_pauses_after_one_iteration(total):
    hook = make_hook(total)
    step = hook.after_train_iter
    def after_train_iter(runner, **kwargs):
        step(runner, **kwargs)
        pause_here()
    hook.after_train_iter = after_train_iter
    return hook
train._progress_hook = hook_that_pauses_after_one_iteration
params = DetectorParams.model_validate_json({params.model_dump_json()!r})
train.train_or_use_detector(params, {str(tmp_path / "ag")!r}, {str(tmp_path / "index")!r})
""",
        tmp_path,
    )
    checkpoint_path = tmp_path / "models" / "detector.pth"
    assert not checkpoint_path.exists() and not (tmp_path / "metrics" / "detector.json").exists()
    assert [p.name for p in checkpoint_path.parent.glob(".*.tmp")] == []
    assert snapshot(tmp_path / "index") == index

    metrics = train_or_use_detector(params, tmp_path / "ag", tmp_path / "index")
    assert metrics["trained"] is True and metrics["iterations"] == 3
    assert load_detector(config, checkpoint_path).feature_dim == 32


def test_killed_motion_stage_leaves_no_table_and_the_rerun_is_byte_identical(world, tmp_path):
    # One video per chunk, so the kill lands between two chunks of a started file.
    params = override(world, "motion", out_path=str(tmp_path / "motion" / "motion.parquet"), videos_per_chunk=1)
    save_params(params, tmp_path)
    inputs = snapshot(Path(world.dataset.index_dir)), snapshot(Path(world.extract.out_dir))
    kill_when_paused(
        LOAD_PARAMS
        + """
import pipeline.motion.table as table
original, chunks = table._attributes_of, []
def attributes_then_pause(*args, **kwargs):
    chunks.append(1)
    if len(chunks) == 3:
        pause_here()
    return original(*args, **kwargs)
table._attributes_of = attributes_then_pause
table.write_motion_table(params.dataset.index_dir, params.extract.out_dir, params.motion)
""",
        tmp_path,
    )
    out = Path(params.motion.out_path)
    assert any(p.name.endswith(".tmp") for p in out.parent.iterdir()), "the kill must land while the table is written"
    assert visible_files(out.parent) == [], "a killed motion stage must leave no table"
    assert (snapshot(Path(world.dataset.index_dir)), snapshot(Path(world.extract.out_dir))) == inputs

    write_motion_table(params.dataset.index_dir, params.extract.out_dir, params.motion)
    reference = override(params, "motion", out_path=str(tmp_path / "reference.parquet"))
    write_motion_table(params.dataset.index_dir, params.extract.out_dir, reference.motion)
    assert out.read_bytes() == Path(reference.motion.out_path).read_bytes()


def test_killed_text_stage_leaves_no_embeddings_and_the_rerun_is_byte_identical(tmp_path):
    params = Params().text.model_copy(update={"out_path": str(tmp_path / "text" / "text.h5")})
    kill_when_paused(
        f"""
import h5py
from trained_world import hashed_encoder
from pipeline.params import TextParams
from pipeline.text.embed import write_text_embeddings
original, written = h5py.Group.create_dataset, []
def create_then_pause(self, *args, **kwargs):
    written.append(1)
    if len(written) == 3:
        pause_here()
    return original(self, *args, **kwargs)
h5py.Group.create_dataset = create_then_pause
write_text_embeddings({params.out_path!r}, TextParams.model_validate_json({params.model_dump_json()!r}), hashed_encoder())
""",
        tmp_path,
    )
    out = Path(params.out_path)
    assert any(p.name.endswith(".tmp") for p in out.parent.iterdir()), "the kill must land while the file is written"
    assert visible_files(out.parent) == [], "a killed text stage must leave no embeddings file"

    write_text_embeddings(out, params, hashed_encoder())
    write_text_embeddings(tmp_path / "reference.h5", params, hashed_encoder())
    assert out.read_bytes() == (tmp_path / "reference.h5").read_bytes()


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return checkpoint.load(path)["model"]


@pytest.fixture(scope="module")
def straight(world, tmp_path_factory) -> tuple[Path, object]:
    """An uninterrupted two-epoch run: its folder and result."""
    out_dir = tmp_path_factory.mktemp("straight")
    return out_dir / "predcls", train_mode(override(world, "train", out_dir=str(out_dir)), "predcls")


# Where the child dies in its second epoch: inside a training step, or half-way
# through writing that epoch's checkpoint (after model.pt, so the model on
# disk is one epoch ahead of checkpoint/last.pt).
KILL_POINTS = {
    "mid-epoch": """
class LossThatPausesInTheSecondEpoch(run.RelationLoss):
    def forward(self, *args, **kwargs):
        if last.exists():  # the first epoch is saved
            pause_here()
        return super().forward(*args, **kwargs)
run.RelationLoss = LossThatPausesInTheSecondEpoch
""",
    # checkpoints are serialised in memory, then written by atomic_path's temporary file
    "saving-checkpoint": """
write = Path.write_bytes
def write_that_tears_the_second_last_pt(self, data):
    if last.exists() and ".last.pt." in str(self):
        write(self, bytes(data)[:1000])
        pause_here()
    return write(self, data)
Path.write_bytes = write_that_tears_the_second_last_pt
""",
}


@pytest.mark.parametrize("kill_point", sorted(KILL_POINTS))
def test_killed_training_resumes_and_ends_like_an_uninterrupted_run(world, straight, tmp_path, kill_point):
    params = override(world, "train", out_dir=str(tmp_path / "killed"))
    save_params(params, tmp_path)
    inputs = [snapshot(Path(p)) for p in (world.dataset.index_dir, world.extract.out_dir)]
    kill_when_paused(
        LOAD_PARAMS
        + """
import pipeline.training.train_stage as run
last = Path(params.train.out_dir) / "predcls" / "checkpoint" / "last.pt"
"""
        + KILL_POINTS[kill_point]
        + """
run.train_mode(params, "predcls")
""",
        tmp_path,
    )
    killed = tmp_path / "killed" / "predcls"
    # What a rerun reads is whole: the first epoch's checkpoint.
    assert checkpoint.load(killed / "checkpoint" / "last.pt")["epoch"] == 0
    assert visible_files(killed / "checkpoint") == ["last.pt"]
    assert [snapshot(Path(p)) for p in (world.dataset.index_dir, world.extract.out_dir)] == inputs

    resumed = train_mode(params, "predcls")
    straight_dir, straight_result = straight
    assert resumed.resumed_from == 1 and [r.epoch for r in resumed.history] == [1]
    assert resumed.history[0].validation == straight_result.history[1].validation
    assert resumed.best_epoch == straight_result.best_epoch
    for name in ("checkpoint/last.pt", "model.pt"):
        a, b = _weights(straight_dir / name), _weights(killed / name)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
    # The run folder is a persisted DVC output: a torn temporary left in it
    # would be cached and pushed with the model.
    leftovers = [str(p.relative_to(killed)) for p in killed.rglob(".*")]
    assert leftovers == [], "the rerun must remove the killed run's temporary files"
