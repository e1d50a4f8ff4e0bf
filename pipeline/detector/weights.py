"""Weights-only checkpoint loading and saving.

A checkpoint is a pickle, and unpickling a file from the internet can run
arbitrary code. ``torch.load(weights_only=True)`` (the default since torch
2.6) only rebuilds tensors and plain containers, and we keep it on. numpy
arrays, scalars and dtypes, which mmengine writes into ``meta``, are allowed
explicitly. Anything else is refused with an error naming the object; that
includes the ``message_hub`` of checkpoints saved by mmengine's Runner, whose
``HistoryBuffer`` pickles bound methods through ``getattr`` (see
docs/detector.md for keeping only the weights of a file you trust).

Our own checkpoints hold only tensors and plain metadata, so they load with
nothing extra allowed.
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipeline.io import DataError, atomic_torch_save


def _allowed_globals() -> list:
    numpy_core = np._core if hasattr(np, "_core") else np.core
    allowed: list = [
        numpy_core.multiarray._reconstruct,
        numpy_core.multiarray.scalar,
        np.ndarray,
        np.dtype,
    ]
    allowed += [getattr(np.dtypes, name) for name in np.dtypes.__all__]
    return allowed


def _refused_globals(path: Path, err: Exception) -> str | None:
    """Name the object(s) the weights-only unpickler refused; None if it failed for another reason."""
    allowed = {f"{obj.__module__}.{obj.__qualname__}" for obj in _allowed_globals()}
    try:
        found = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
        refused = [name for name in found if name not in allowed]
        if refused:
            return ", ".join(refused[:3])
    except Exception:  # legacy (non-zip) checkpoint format: fall back to the message
        pass
    match = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(err))
    return match.group(1) if match else None


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint file weights-only; raise :class:`DataError` naming the file."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: checkpoint not found")
    try:
        with torch.serialization.safe_globals(_allowed_globals()):
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        refused = _refused_globals(path, err)
        if refused is None:
            # torch's message is a paragraph; the reason is the line after "Unpickler error:".
            reason = re.search(r"Unpickler error:\s*(\S[^\n]*)", str(err))
            detail = reason.group(1) if reason else str(err).splitlines()[0]
            raise DataError(f"{path}: not a readable torch checkpoint ({detail})") from None
        raise DataError(
            f"{path}: checkpoint contains {refused}, which weights-only loading refuses to "
            "run; re-save only its state_dict if you trust the file (see docs/detector.md)"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError) as err:
        raise DataError(
            f"{path}: not a readable torch checkpoint ({type(err).__name__}: {err})"
        ) from None
    if not isinstance(checkpoint, dict):
        raise DataError(f"{path}: checkpoint is a {type(checkpoint).__name__}, expected a dict")
    return checkpoint


def extract_state_dict(
    checkpoint: dict[str, Any], path: str | Path, key: str = "state_dict"
) -> dict[str, torch.Tensor]:
    """The model weights of an mmengine checkpoint (``state_dict`` key) or of a bare state dict.

    ``key="model"`` reads jwyang faster-rcnn.pytorch's layout (``mosa
    import-detector sttran`` only; such weights need key mapping first).
    """
    state = checkpoint.get(key, checkpoint)
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise DataError(f"{path}: checkpoint has no tensor {key}")
    # Checkpoints saved from DistributedDataParallel prefix every key.
    return {key.removeprefix("module."): value for key, value in state.items()}


def _class_count_hint(key: str, got: tuple, want: tuple) -> str:
    if key.endswith("bbox_head.fc_cls.weight") or key.endswith("bbox_head.fc_cls.bias"):
        return (
            f"; the checkpoint was trained for {got[0] - 1} classes but the config has "
            f"num_classes={want[0] - 1} (set model.roi_head.bbox_head.num_classes and "
            "metainfo.classes to the checkpoint's classes)"
        )
    return ""


def load_state_dict_into(
    model: torch.nn.Module, checkpoint_path: str | Path, config_path: str | Path
) -> None:
    """Load a checkpoint into ``model`` strictly; any key or shape difference is a one-line error."""
    state = extract_state_dict(read_checkpoint(checkpoint_path), checkpoint_path)
    expected = model.state_dict()
    where = f"{checkpoint_path} does not fit {config_path}"
    for key, tensor in expected.items():
        if key in state and tuple(state[key].shape) != tuple(tensor.shape):
            got, want = tuple(state[key].shape), tuple(tensor.shape)
            raise DataError(
                f"{where}: {key} has shape {got}, the config builds {want}{_class_count_hint(key, got, want)}"
            )
    mismatch = key_mismatch(expected, state)
    if mismatch:
        raise DataError(f"{where}: {mismatch}; is it a checkpoint of this architecture?")
    model.load_state_dict(state, strict=True)


def save_checkpoint(model: torch.nn.Module, path: str | Path, meta: dict[str, Any]) -> None:
    """Save tensors plus plain-Python ``meta`` atomically, loadable with weights-only."""
    state = {key: value.detach().cpu() for key, value in model.state_dict().items()}
    atomic_torch_save({"state_dict": state, "meta": meta}, path, suffix=".pth")


def key_mismatch(expected: dict, state: dict) -> str | None:
    """``"N missing keys (e.g. K) and M leftover keys (e.g. K)"`` between two state dicts, or None."""
    missing = [key for key in expected if key not in state]
    leftover = [key for key in state if key not in expected]
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing keys (e.g. {missing[0]})")
    if leftover:
        parts.append(f"{len(leftover)} leftover keys (e.g. {leftover[0]})")
    return " and ".join(parts) or None
