"""Weights-only checkpoints: every file loads with ``torch.load(weights_only=True)``.

* ``model.pt``: the selected model (best validation score) and the settings
  it was built with, read by the evaluate stage.
* ``checkpoint/last.pt``: model, optimiser and scheduler state after the last
  finished epoch, plus a fingerprint of the run's settings and of its
  inputs' contents; a rerun resumes from it only when the fingerprint matches.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch

from pipeline.io import DataError, atomic_torch_save


def fingerprint(settings: dict[str, Any], inputs: dict[str, Any]) -> str:
    """Hash of the settings and of a record of the inputs' contents (``train_stage.run_inputs``).

    Any change means a fresh start rather than resuming a different run.
    Contents, not file times or places: ``last.pt`` is part of a DVC output,
    so a fresh clone that reruns the stage must write the same bytes.
    """
    blob = json.dumps({"settings": settings, "inputs": inputs}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def save(path: Path, payload: dict[str, Any]) -> None:
    atomic_torch_save(payload, path)


def load(path: Path) -> dict[str, Any]:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise DataError(f"{path}: no checkpoint (run the train stage first)") from None
    except Exception as err:  # torch raises several unrelated types for damaged files
        raise DataError(f"{path}: unreadable checkpoint ({type(err).__name__}); delete it and retrain") from None
