"""The text stage: encode the ASM prompts and the class names once into HDF5.

Layout of ``text.out_path`` (also in docs/schemas.md):

====================  ==========================  =============================================
dataset               shape / dtype               meaning
====================  ==========================  =============================================
prompts               (26,) or (37, 26) str       the prompt texts, shaped like the embeddings
prompt_embeddings     (26, D) or (37, 26, D) f32  L2-normalised; [c, p] = object class c, predicate p
class_names           (37,) str                   texts encoded for the label embeddings
class_embeddings      (37, D) float32             L2-normalised
predicates            (26,) str                   predicate names, the second-to-last axis order
object_classes        (37,) str                   object class names, the first axis order
====================  ==========================  =============================================

Root attributes: ``format_version``, ``encoder`` (registry key),
``encoder_model`` (weights), ``dim``, ``prompt_mode``, both templates,
``predicate_wording``, ``predicate_mix`` and ``within_object_cosine_<group>``
(the prompt geometry, :mod:`pipeline.text.geometry`; also in the stage's
summary line).

In ``predicate_object`` mode with ``text.predicate_mix`` w > 0, each pair
prompt's embedding is mixed with its predicate-only prompt's (same wording,
``predicate_template``):

    z_cp = normalise((1 - w) e(pair prompt c, p) + w e(predicate prompt p))

w = 1 makes every object's prompts the predicate prompts; w = 0 is the paper.
"""

from __future__ import annotations

import time
from pathlib import Path

import h5py
import numpy as np

from pipeline.constants import OBJECT_CLASSES, PREDICATES
from pipeline.io import atomic_path
from pipeline.params import Params, TextParams
from pipeline.text.geometry import prompt_geometry
from pipeline.text.prompts import class_name_texts, pair_prompts, predicate_prompts
from pipeline.text.text_encoders import TextEncoder, build_encoder

FORMAT_VERSION = 1


def l2_normalise(vectors: np.ndarray) -> np.ndarray:
    """Unit rows; an all-zero row stays zero instead of becoming NaN."""
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return (vectors / np.maximum(norms, 1e-12)).astype(np.float32)


def prompt_texts(params: TextParams) -> np.ndarray:
    """The prompts of ``params.prompt_mode`` as an object array of shape (26,) or (37, 26)."""
    if params.prompt_mode == "predicate":
        return np.array(predicate_prompts(params.predicate_template, params.predicate_wording), dtype=object)
    return np.array(pair_prompts(params.pair_template, params.predicate_wording), dtype=object)


def prompt_embeddings(params: TextParams, encoder: TextEncoder, prompts: np.ndarray) -> np.ndarray:
    """L2-normalised embeddings of ``prompts``, mixed with the predicate-only prompts when asked (module docstring)."""
    embedded = embed_texts(encoder, prompts)
    if params.prompt_mode == "predicate" or params.predicate_mix == 0.0:
        return embedded
    alone = embed_texts(encoder, np.array(predicate_prompts(params.predicate_template, params.predicate_wording), dtype=object))
    weight = params.predicate_mix
    return l2_normalise((1.0 - weight) * embedded + weight * alone[None, :, :])


def embed_texts(encoder: TextEncoder, texts: np.ndarray) -> np.ndarray:
    """L2-normalised embeddings of an array of texts of any shape: shape + (D,)."""
    flat = encoder.encode([str(t) for t in texts.reshape(-1)])
    return l2_normalise(flat).reshape(*texts.shape, encoder.dim)


def write_text_embeddings(
    out_path: str | Path, params: TextParams, encoder: TextEncoder
) -> dict[str, object]:
    """Encode prompts and class names with ``encoder`` and write the HDF5 file atomically."""
    prompts = prompt_texts(params)
    class_names = np.array(class_name_texts(), dtype=object)
    prompt_vectors = prompt_embeddings(params, encoder, prompts)
    class_embeddings = embed_texts(encoder, class_names)
    geometry = prompt_geometry(prompt_vectors)
    strings = h5py.string_dtype()
    with (
        atomic_path(out_path, suffix=".h5") as tmp,
        h5py.File(tmp, "w", track_order=True) as handle,
    ):
        # track_times=False keeps modification times out of the file, so a
        # rerun with the same inputs gives the same bytes.
        datasets = {
            "prompts": (prompts, strings),
            "prompt_embeddings": (prompt_vectors, np.float32),
            "class_names": (class_names, strings),
            "class_embeddings": (class_embeddings, np.float32),
            "predicates": (np.array(PREDICATES, dtype=object), strings),
            "object_classes": (np.array(OBJECT_CLASSES, dtype=object), strings),
        }
        for name, (data, dtype) in datasets.items():
            handle.create_dataset(name, data=data, dtype=dtype, track_times=False)
        handle.attrs.update(
            {
                "format_version": FORMAT_VERSION,
                "encoder": encoder.name,
                "encoder_model": encoder.model,
                "dim": encoder.dim,
                "prompt_mode": params.prompt_mode,
                "predicate_template": params.predicate_template,
                "pair_template": params.pair_template,
                "predicate_wording": params.predicate_wording,
                "predicate_mix": params.predicate_mix,
                **{f"within_object_cosine_{name}": value for name, value in geometry.items()},
            }
        )
    return {
        "encoder": encoder.name,
        "dim": encoder.dim,
        "prompts": int(prompts.size),
        "shape": list(prompt_vectors.shape),
        **{f"within_object_cosine_{name}": round(value, 4) for name, value in geometry.items()},
    }


def run_text_stage(params: Params) -> dict[str, object]:
    """The ``text`` stage: build the configured encoder and write ``text.out_path``."""
    text = params.text
    start = time.perf_counter()
    summary = write_text_embeddings(text.out_path, text, build_encoder(text))
    summary = {**summary, "seconds": round(time.perf_counter() - start, 2)}
    print(f"{text.out_path}: " + ", ".join(f"{k}={v}" for k, v in summary.items()))
    return summary
