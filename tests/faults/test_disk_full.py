"""A full disk: a one-line error naming the folder and the space needed, nothing half-written.

The disk is a small tmpfs when this process may mount one (root, or a
container that allows it). Elsewhere the same tests inject
``OSError(ENOSPC)`` at the write layer (``os.fsync`` of the atomic writers,
PIL's ``save``, and the writers of polars, h5py and torch) and say so in a
warning, so the suite never skips the case silently.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import warnings
from pathlib import Path

import h5py
import numpy as np
import polars as pl
import pytest
from ag_fixtures import video, write_root
from PIL import Image
from typer.testing import CliRunner

from faults.crash import snapshot
from pipeline.cli import app
from pipeline.io import DiskFullError, atomic_path, atomic_write_json, is_disk_full

DISK_BYTES = 4 * 1024 * 1024


class FullDisk:
    """A folder on a disk that :meth:`fill` leaves with (almost) no free space."""

    def __init__(self, folder: Path, kind: str, monkeypatch: pytest.MonkeyPatch):
        self.folder, self.kind, self._monkeypatch = folder, kind, monkeypatch

    def fill(self, leave_bytes: int = 0) -> None:
        if self.kind == "tmpfs":
            free = shutil.disk_usage(self.folder).free
            with open(self.folder / "filler", "wb") as handle:
                handle.truncate(0)
                try:
                    handle.write(b"\0" * max(free - leave_bytes, 0))
                    handle.flush()
                except OSError as err:
                    assert err.errno == errno.ENOSPC
            return

        # injected: every write that reaches the disk fails the way a full one does
        def no_space(*args, **kwargs):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        self._monkeypatch.setattr(os, "fsync", no_space)
        self._monkeypatch.setattr(Image.Image, "save", no_space)
        self._monkeypatch.setattr(pl.DataFrame, "write_parquet", no_space)

    def empty(self) -> None:
        (self.folder / "filler").unlink(missing_ok=True)
        self._monkeypatch.undo()


def _mount_tmpfs(folder: Path) -> bool:
    if shutil.which("mount") is None:
        return False
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={DISK_BYTES}", "tmpfs", str(folder)],
        capture_output=True,
    )
    return result.returncode == 0


@pytest.fixture(params=["tmpfs", "injected"])
def disk(request, tmp_path, monkeypatch):
    folder = tmp_path / "disk"
    folder.mkdir()
    mounted = request.param == "tmpfs" and _mount_tmpfs(folder)
    if request.param == "tmpfs" and not mounted:
        warnings.warn(
            "cannot mount a tmpfs here: ENOSPC is injected at the write layer instead", stacklevel=1
        )
    try:
        yield FullDisk(folder, "tmpfs" if mounted else "injected", monkeypatch)
    finally:
        monkeypatch.undo()
        if mounted:
            subprocess.run(["umount", "-l", str(folder)], check=False)


def assert_disk_full_message(message: str, folder: Path) -> None:
    assert "\n" not in message, message
    assert str(folder) in message and "no space left on device" in message, message
    assert "needs about" in message or "needs more" in message, message


def no_temporaries(folder: Path) -> None:
    leftovers = [p for p in folder.rglob("*") if p.name.endswith((".tmp", ".partial"))]
    assert not leftovers, leftovers


def test_synth_on_a_full_disk(disk, tmp_path):
    out = disk.folder / "synth_ag"
    params = tmp_path / "params.yaml"
    params.write_text("synth:\n  videos: 2\n  min_frames: 1\n  max_frames: 3\n")
    assert CliRunner().invoke(app, ["synth", str(out), "--params", str(params)]).exit_code == 0
    before = snapshot(out)

    disk.fill(leave_bytes=20_000)
    result = CliRunner().invoke(app, ["synth", str(out), "--params", str(params), "--videos", "40"])
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit), result.output
    last_line = result.output.strip().splitlines()[-1]  # after the progress bar
    assert last_line.startswith("error: ")
    assert_disk_full_message(last_line, out)
    assert snapshot(out) == before  # the previous dataset is intact
    assert not (disk.folder / ".synth_ag.partial").exists()
    no_temporaries(disk.folder)


def test_index_stage_on_a_full_disk(disk, tmp_path):
    root = write_root(tmp_path / "ag", *video("FULL", [1, 2, 3]), frames=False)
    index_dir = disk.folder / "index"
    params = tmp_path / "params.yaml"
    params.write_text(f"dataset:\n  root: {root}\n  index_dir: {index_dir}\n  val_fraction: 0.0\n")
    assert CliRunner().invoke(app, ["index", "--params", str(params)]).exit_code == 0
    before = snapshot(index_dir)

    disk.fill()
    result = CliRunner().invoke(app, ["index", "--params", str(params)])
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit), result.output
    assert_disk_full_message(result.output.strip(), index_dir)
    assert snapshot(index_dir) == before
    no_temporaries(disk.folder)


def _write_parquet(tmp: Path) -> None:
    pl.DataFrame({"x": np.arange(200_000)}).write_parquet(tmp)


def _write_hdf5(tmp: Path) -> None:
    with h5py.File(tmp, "w") as handle:
        handle.create_dataset("x", data=np.random.default_rng(0).uniform(size=400_000))


def _write_png(tmp: Path) -> None:
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (900, 900, 3), dtype=np.uint8)).save(
        tmp, format="PNG"
    )


def _write_json(tmp: Path) -> None:
    tmp.write_text("[" + ",".join(["1.2345"] * 900_000) + "]")


WRITERS = {
    "parquet": _write_parquet,
    "hdf5": _write_hdf5,
    "png": _write_png,
    "json": _write_json,
}


@pytest.mark.parametrize("writer", sorted(WRITERS))
def test_every_writer_library_reports_a_full_disk_through_atomic_path(disk, writer):
    """The writers the stages use (polars, h5py, PIL, torch, plain files) all end in DiskFullError."""
    dest = disk.folder / "out" / "file.bin"
    atomic_write_json(dest, {"previous": True})
    before = dest.read_bytes()
    disk.fill(leave_bytes=64_000)
    with pytest.raises(DiskFullError) as info:
        with atomic_path(dest) as tmp:
            WRITERS[writer](tmp)
    assert_disk_full_message(str(info.value), dest.parent)
    assert dest.read_bytes() == before
    no_temporaries(disk.folder)


def test_checkpoints_report_a_full_disk(disk):
    """torch's own file writer loses the errno, so checkpoints are serialised in memory first."""
    torch = pytest.importorskip("torch")
    from pipeline.io import atomic_torch_save

    dest = disk.folder / "model.pt"
    atomic_torch_save({"w": torch.zeros(10)}, dest)
    before = dest.read_bytes()
    disk.fill(leave_bytes=64_000)
    with pytest.raises(DiskFullError) as info:
        atomic_torch_save({"w": torch.randn(600_000)}, dest)
    assert_disk_full_message(str(info.value), disk.folder)
    assert dest.read_bytes() == before
    no_temporaries(disk.folder)


def test_other_errors_are_not_mistaken_for_a_full_disk(tmp_path):
    assert is_disk_full(OSError(errno.ENOSPC, "No space left on device"))
    assert is_disk_full(
        RuntimeError("[enforce fail at inline_container.cc:664] . unexpected pos; errno = 28")
    )
    assert not is_disk_full(OSError(errno.EACCES, "Permission denied"))
    assert not is_disk_full(RuntimeError("CUDA out of memory"))
    with pytest.raises(PermissionError):
        with atomic_path(tmp_path / "x.json"):
            raise PermissionError(errno.EACCES, "Permission denied")


def test_a_library_writing_on_its_own_still_gets_one_line(capsys):
    """dvclive and friends write outside pipeline.io: the command wrapper catches their ENOSPC only."""
    from pipeline.user_errors import one_line_errors

    @one_line_errors
    def stage(err):
        raise err

    with pytest.raises(SystemExit) as info:
        stage(OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "/data/dvclive/metrics.json"))
    assert info.value.code == 2
    message = capsys.readouterr().err.strip()
    assert message == "error: /data/dvclive: no space left on device; free some space, then rerun"
    with pytest.raises(PermissionError):
        stage(PermissionError(errno.EACCES, "Permission denied"))


def test_evaluate_json_on_a_full_disk(disk, tmp_path):
    from pipeline.evaluation.predictions import PREDICTION_SCHEMA

    root = write_root(tmp_path / "ag", *video("EVAL", [1, 2, 3], split="test"), frames=False)
    predictions = tmp_path / "predictions.parquet"
    pl.DataFrame(schema=PREDICTION_SCHEMA).write_parquet(predictions)
    out = disk.folder / "results.json"
    command = [
        "evaluate",
        "--ag-root",
        str(root),
        "--predictions",
        str(predictions),
        "--mode",
        "predcls",
        "--json",
        str(out),
    ]
    assert CliRunner().invoke(app, command).exit_code == 0
    before = out.read_bytes()
    disk.fill()
    result = CliRunner().invoke(app, command)
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit), result.output
    assert_disk_full_message(result.output.strip().splitlines()[-1], disk.folder)
    assert out.read_bytes() == before
    no_temporaries(disk.folder)


def test_copying_footage_frames_to_a_full_disk_is_not_called_a_bad_frame(disk, tmp_path):
    """``mosa predict`` stages the footage first; a full disk there is a full disk, not an unreadable frame."""
    from pipeline.predict_footage import stage_frames

    source = tmp_path / "footage"
    source.mkdir()
    for number in (1, 2):
        Image.new("RGB", (64, 48), (number * 60, 0, 0)).save(source / f"{number:06d}.png")
    disk.fill()
    with pytest.raises(Exception) as info:
        stage_frames(source, disk.folder / "work" / "dataset")
    assert is_disk_full(info.value), info.value
