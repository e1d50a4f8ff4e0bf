"""Building detectors from config and loading checkpoints safely."""

from __future__ import annotations

import pathlib

import numpy as np
import pytest
import torch
from support.tiny_detector import write_random_checkpoint, write_tiny_config

from pipeline.detector.model import ag_label_map, build_model, load_config, load_detector
from pipeline.detector.weights import read_checkpoint
from pipeline.io import DataError


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny_detector")
    config = write_tiny_config(root / "tiny.py")
    checkpoint = write_random_checkpoint(config, root / "tiny.pth")
    return config, checkpoint


def touch_file(path: str) -> None:
    pathlib.Path(path).touch()


class TouchOnUnpickle:
    """A pickle payload: unpickling it would call ``touch_file`` and create a file."""

    def __init__(self, path: pathlib.Path):
        self.path = path

    def __reduce__(self):
        return (touch_file, (str(self.path),))


def test_default_config_maps_labels_to_ag_order():
    cfg = load_config("configs/detector/faster_rcnn_r18_synth.py")
    assert ag_label_map(cfg).tolist() == list(range(1, 37))


def test_label_map_follows_metainfo_names(tmp_path):
    cfg = load_config(
        write_tiny_config(tmp_path / "c.py", class_names=("table", "person", "closetcabinet"))
    )
    assert ag_label_map(cfg).tolist() == [32, 1, 9]  # raw AG spellings are accepted


def test_non_ag_class_name_is_an_error(tmp_path):
    cfg = load_config(write_tiny_config(tmp_path / "c.py", class_names=("person", "car")))
    with pytest.raises(DataError, match="'car'.*not an Action Genome object class"):
        ag_label_map(cfg)


def test_checkpoint_round_trip_gives_identical_outputs(tiny):
    config, checkpoint = tiny
    detector = load_detector(config, checkpoint)
    reference = build_model(load_config(config))
    reference.load_state_dict(torch.load(checkpoint, weights_only=True)["state_dict"])
    image = torch.rand(1, 3, 64, 64)
    assert torch.equal(detector.model.extract_feat(image)[0], reference.extract_feat(image)[0])
    assert len(detector.checkpoint_sha256) == 64 and detector.feature_dim == 32


def test_class_count_mismatch_names_both_counts(tmp_path, tiny):
    config, _ = tiny
    other = write_random_checkpoint(
        write_tiny_config(
            tmp_path / "five.py", class_names=("person", "bag", "bed", "book", "box")
        ),
        tmp_path / "five.pth",
    )
    with pytest.raises(DataError, match=r"trained for 5 classes but the config has num_classes=36"):
        load_detector(config, other)


def test_missing_weights_are_reported(tmp_path, tiny):
    config, checkpoint = tiny
    state = torch.load(checkpoint, weights_only=True)["state_dict"]
    del state["roi_head.bbox_head.fc_cls.bias"]
    torch.save({"state_dict": state}, tmp_path / "partial.pth")
    with pytest.raises(DataError, match=r"1 missing keys \(e.g. roi_head.bbox_head.fc_cls.bias\)"):
        load_detector(config, tmp_path / "partial.pth")


def test_pickle_payload_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "payload-ran"
    torch.save({"state_dict": {}, "meta": TouchOnUnpickle(marker)}, tmp_path / "evil.pth")
    with pytest.raises(
        DataError, match=r"evil.pth: checkpoint contains \S*touch_file, which weights-only"
    ):
        read_checkpoint(tmp_path / "evil.pth")
    assert not marker.exists()


def test_numpy_meta_loads(tmp_path):
    payload = {
        "state_dict": {"w": torch.ones(2)},
        "meta": {"seed": np.int64(3), "lr": np.float64(0.02), "array": np.arange(3)},
    }
    torch.save(payload, tmp_path / "numpy_meta.pth")
    loaded = read_checkpoint(tmp_path / "numpy_meta.pth")
    assert loaded["meta"]["array"].tolist() == [0, 1, 2] and loaded["meta"]["seed"] == 3
    assert torch.equal(loaded["state_dict"]["w"], torch.ones(2))


def test_mmengine_message_hub_is_refused_with_a_pointer_to_the_fix(tmp_path):
    from mmengine.logging.history_buffer import HistoryBuffer

    buffer = HistoryBuffer()
    buffer.update(1.5)
    torch.save(
        {"state_dict": {"w": torch.ones(2)}, "message_hub": {"log_scalars": {"loss": buffer}}},
        tmp_path / "runner.pth",
    )
    with pytest.raises(
        DataError, match=r"HistoryBuffer.*re-save only its state_dict if you trust the file"
    ):
        read_checkpoint(tmp_path / "runner.pth")


def test_not_a_checkpoint_is_a_one_line_error(tmp_path):
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(DataError, match="junk.pth: not a readable"):
        read_checkpoint(tmp_path / "junk.pth")
