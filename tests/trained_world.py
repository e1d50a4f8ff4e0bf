"""A tiny trained pipeline for the search, viz, report and predict tests.

Caches from ``support.training_caches``, PNG frames for the indexed
frames, a relation head trained for one or more modes and its evaluate
outputs, all in one folder that the tests ``chdir`` into (the train and
evaluate stages write to paths relative to the working directory).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import polars as pl
import yaml
from PIL import Image
from support.training_caches import write_synthetic_caches

from pipeline.outputs import live_dir, output_paths
from pipeline.params import Params
from pipeline.text.text_encoders import TextEncoder
from pipeline.training.evaluate_stage import evaluate_mode
from pipeline.training.train_stage import train_mode

PARAPHRASES = Path(__file__).parent / "data" / "search_paraphrases.yaml"


def override(params: Params, section: str, **values) -> Params:
    return params.model_copy(update={section: getattr(params, section).model_copy(update=values)})


def write_frames(params: Params, root: Path) -> None:
    """A 64x48 PNG per indexed frame with the person and object boxes filled in."""
    frames = pl.read_parquet(Path(params.dataset.index_dir) / "frames.parquet")
    objects = pl.read_parquet(Path(params.dataset.index_dir) / "objects.parquet")
    for frame in frames.iter_rows(named=True):
        image = np.full((frame["height"], frame["width"], 3), 30, dtype=np.uint8)
        x1, y1, x2, y2 = (int(frame[f"person_{c}"]) for c in ("x1", "y1", "x2", "y2"))
        image[y1:y2, x1:x2] = (60, 60, 200)
        for obj in objects.filter(pl.col("frame") == frame["frame"]).iter_rows(named=True):
            image[int(obj["y1"]) : int(obj["y2"]), int(obj["x1"]) : int(obj["x2"])] = (40 * (obj["object_class"] % 6), 180, 90)
        path = root / "frames" / frame["frame"]
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(path)


def build_trained_world(root: Path, modes: tuple[str, ...] = ("predcls",), text_dim: int = 16, epochs: int = 2) -> Params:
    """Train and evaluate ``modes`` under ``root`` (which becomes the working directory); write params.yaml."""
    root.mkdir(parents=True, exist_ok=True)
    os.chdir(root)
    params = write_synthetic_caches(root / "caches", text_dim=text_dim)
    params = override(params, "model", d_model=16, heads=2, mim_heads=2, temporal_layers=1)
    params = override(params, "train", epochs=epochs, batch_videos=2, modes=modes)
    params = override(params, "dataset", root=str(root / "dataset"))
    params = override(params, "search", paraphrase_queries=str(PARAPHRASES))
    write_frames(params, root / "dataset")
    for mode in modes:
        train_mode(params, mode, live_dir=live_dir(mode))
        evaluate_mode(params, mode, output_paths(mode))
    (root / "params.yaml").write_text(yaml.safe_dump(params.model_dump(mode="json")))
    return params


def hashed_encoder(dim: int = 16) -> TextEncoder:
    """A deterministic stand-in text encoder: each distinct text gets its own random direction."""

    def encode(texts: list[str]) -> np.ndarray:
        seeds = [int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") for text in texts]
        return np.stack([np.random.default_rng(s).standard_normal(dim) for s in seeds]).astype(np.float32)

    return TextEncoder("minilm", "hashed test encoder", dim, encode)
