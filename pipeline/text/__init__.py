"""ASM text side: prompts, frozen text encoders and the HDF5 embedding cache."""

from pipeline.text.embed import run_text_stage, write_text_embeddings
from pipeline.text.prompts import class_name_texts, pair_prompts, predicate_prompts
from pipeline.text.text_encoders import ENCODERS, TextEncoder, build_encoder, register_encoder

__all__ = [
    "ENCODERS",
    "TextEncoder",
    "build_encoder",
    "class_name_texts",
    "pair_prompts",
    "predicate_prompts",
    "register_encoder",
    "run_text_stage",
    "write_text_embeddings",
]
