"""Text stage: prompts, encoders (real MiniLM, tiny random CLIP) and the HDF5 cache."""

from __future__ import annotations

import json
import string

import h5py
import numpy as np
import pytest
import torch

from pipeline.constants import NUM_OBJECT_CLASSES, NUM_PREDICATES, OBJECT_INDEX, PREDICATE_INDEX
from pipeline.io import DataError
from pipeline.params import ParamsError, TextParams, parse_params
from pipeline.text import (
    build_encoder,
    class_name_texts,
    pair_prompts,
    predicate_prompts,
    write_text_embeddings,
)
from pipeline.training.text import read_text_embeddings


def test_prompts_use_readable_phrases():
    pairs = pair_prompts("a photo of a person {predicate} a {object}")
    assert len(pairs) == NUM_OBJECT_CLASSES and all(len(row) == NUM_PREDICATES for row in pairs)
    cup, drinking = OBJECT_INDEX["cup/glass/bottle"], PREDICATE_INDEX["drinking_from"]
    assert pairs[cup][drinking] == "a photo of a person drinking from a cup"
    assert (
        pairs[0][0] == "a photo of a person looking at a object"
    )  # background row keeps indexing by label
    assert (
        predicate_prompts("person {predicate}")[PREDICATE_INDEX["in_front_of"]]
        == "person in front of"
    )
    names = class_name_texts()
    assert (
        names[cup] == "cup or glass or bottle"
        and names[1] == "person"
        and len(names) == NUM_OBJECT_CLASSES
    )


def test_template_placeholders_are_checked():
    with pytest.raises(
        ParamsError,
        match=r"text.pair_template = 'a \{predicate\} \{obj\}': .*must use exactly the placeholders \{object\} and \{predicate\}",
    ):
        parse_params({"text": {"pair_template": "a {predicate} {obj}"}})
    with pytest.raises(
        ParamsError, match=r"text.predicate_template = 'a photo': .*placeholders \{predicate\}"
    ):
        parse_params({"text": {"predicate_template": "a photo"}})


# ---- MiniLM (the real offline model) -----------------------------------------------------------


@pytest.fixture(scope="module")
def minilm():
    return build_encoder(TextParams())


def test_minilm_is_semantically_sane(minilm):
    holding, carrying, above = (
        predicate_prompts("a photo of a person {predicate}")[14],
        "a photo of a person carrying",
        "a photo of a person above",
    )
    assert holding.endswith("holding")
    z = minilm.encode([holding, carrying, above])
    z = z / np.linalg.norm(z, axis=1, keepdims=True)
    assert minilm.dim == 384 and z.shape == (3, 384)
    assert z[0] @ z[1] > z[0] @ z[2] + 0.05


def test_minilm_file_schema_and_determinism(minilm, tmp_path):
    # predicate mode keeps this fast; the (class, predicate) layout is checked with the tiny CLIP below
    params = TextParams(prompt_mode="predicate", predicate_template="someone is {predicate} it")
    first, second = tmp_path / "a.h5", tmp_path / "b.h5"
    summary = write_text_embeddings(first, params, minilm)
    write_text_embeddings(second, params, minilm)
    assert summary == {
        "encoder": "minilm",
        "dim": 384,
        "prompts": NUM_PREDICATES,
        "shape": [NUM_PREDICATES, 384],
    }
    assert first.read_bytes() == second.read_bytes()
    with h5py.File(first) as handle:
        assert handle.attrs["encoder"] == "minilm" and handle.attrs["dim"] == 384
        assert "all-MiniLM-L6-v2" in handle.attrs["encoder_model"]
        assert handle.attrs["prompt_mode"] == "predicate"
        assert handle["prompts"].asstr()[PREDICATE_INDEX["wiping"]] == "someone is wiping it"
        embeddings = handle["prompt_embeddings"][()]
        assert embeddings.shape == (NUM_PREDICATES, 384) and embeddings.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(embeddings, axis=-1), 1.0, rtol=1e-5)
        assert handle["class_embeddings"].shape == (NUM_OBJECT_CLASSES, 384)
        assert list(handle["predicates"].asstr()[()])[PREDICATE_INDEX["holding"]] == "holding"
        # row c of class_embeddings is the unit vector of class name c (up to batch-padding float noise)
        sofa = handle["class_names"].asstr()[()].tolist().index("sofa or couch")
        np.testing.assert_allclose(
            handle["class_embeddings"][sofa], minilm_unit(minilm, "sofa or couch"), atol=1e-6
        )
    text = read_text_embeddings(first)  # the training side reads it back
    assert tuple(text.prompt_embeddings.shape) == (NUM_PREDICATES, 384)


def minilm_unit(encoder, text: str) -> np.ndarray:
    vector = encoder.encode([text])[0]
    return (vector / np.linalg.norm(vector)).astype(np.float32)


# ---- CLIP (tiny random model in Hugging Face format) -------------------------------------------


TINY_TEXT = dict(
    hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
    max_position_embeddings=64, bos_token_id=0, eos_token_id=1, pad_token_id=1,
)  # fmt: skip


def write_tiny_clip(folder, full: bool):
    """A randomly initialised 1-layer CLIP with a character-level BPE vocabulary, in Hugging Face format.

    ``full``: a whole CLIPModel (like a copy of openai/clip-vit-base-patch32);
    otherwise only the text tower with its projection.
    """
    from transformers import (
        CLIPConfig,
        CLIPModel,
        CLIPTextConfig,
        CLIPTextModelWithProjection,
        CLIPTokenizer,
    )

    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for suffix in ("", "</w>"):
        for char in string.ascii_lowercase:
            vocab[char + suffix] = len(vocab)
    CLIPTokenizer(vocab=vocab, merges=[]).save_pretrained(folder)
    torch.manual_seed(0)
    if full:
        vision = dict(
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            image_size=32,
            patch_size=16,
        )
        config = CLIPConfig(
            text_config=dict(vocab_size=len(vocab), **TINY_TEXT),
            vision_config=vision,
            projection_dim=8,
        )
        model = CLIPModel(config)
    else:
        model = CLIPTextModelWithProjection(
            CLIPTextConfig(vocab_size=len(vocab), projection_dim=8, **TINY_TEXT)
        )
    model.save_pretrained(folder)
    return model.eval()


@pytest.fixture(scope="module", params=["text_tower", "full_clip"])
def tiny_clip_dir(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp(request.param)
    write_tiny_clip(folder, full=request.param == "full_clip")
    return folder


def test_full_clip_checkpoint_gives_clip_text_features(tmp_path):
    from transformers import CLIPTokenizer

    model = write_tiny_clip(tmp_path, full=True)
    texts = ["a photo of a person holding a cup", "a photo"]
    tokens = CLIPTokenizer.from_pretrained(tmp_path)(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        features = model.get_text_features(**tokens)
    expected = getattr(features, "pooler_output", features).numpy()
    encoder = build_encoder(TextParams(encoder="clip", clip_weights=str(tmp_path)))
    assert encoder.dim == 8
    np.testing.assert_allclose(encoder.encode(texts), expected, atol=1e-6)


def test_clip_encoder_from_a_local_folder(tiny_clip_dir, tmp_path):
    params = TextParams(encoder="clip", clip_weights=str(tiny_clip_dir))
    first, second = tmp_path / "a.h5", tmp_path / "b.h5"
    write_text_embeddings(first, params, build_encoder(params))
    write_text_embeddings(second, params, build_encoder(params))  # a fresh load gives the same file
    assert first.read_bytes() == second.read_bytes()
    with h5py.File(first) as handle:
        assert handle.attrs["encoder"] == "clip" and handle.attrs["dim"] == 8
        assert handle.attrs["encoder_model"] == f"clip:{tiny_clip_dir.name}"
        assert handle.attrs["prompt_mode"] == "predicate_object"
        prompts = handle["prompts"].asstr()[()]
        assert prompts.shape == (NUM_OBJECT_CLASSES, NUM_PREDICATES)
        assert (
            prompts[OBJECT_INDEX["sofa/couch"], PREDICATE_INDEX["sitting_on"]]
            == "a photo of a person sitting on a sofa"
        )
        embeddings = handle["prompt_embeddings"][()]
        assert embeddings.shape == (NUM_OBJECT_CLASSES, NUM_PREDICATES, 8)
        np.testing.assert_allclose(np.linalg.norm(embeddings, axis=-1), 1.0, rtol=1e-5)
        # different prompts, different vectors (padding does not leak into the pooled token)
        assert not np.allclose(embeddings[2, 0], embeddings[2, 1])
    text = read_text_embeddings(first)
    assert tuple(text.prompt_embeddings.shape) == (NUM_OBJECT_CLASSES, NUM_PREDICATES, 8)


def test_clip_batches_do_not_change_embeddings(tiny_clip_dir):
    encoder = build_encoder(TextParams(encoder="clip", clip_weights=str(tiny_clip_dir)))
    texts = ["a photo of a person holding a cup", "a photo", "a person sitting on a very long sofa"]
    together = encoder.encode(texts)
    alone = np.stack([encoder.encode([t])[0] for t in texts])
    np.testing.assert_allclose(together, alone, atol=1e-5)


def test_clip_without_weights_is_a_one_line_error(tmp_path):
    with pytest.raises(
        DataError, match="text.encoder = clip needs CLIP weights: set text.clip_weights"
    ) as err:
        build_encoder(TextParams(encoder="clip"))
    assert "\n" not in str(err.value)
    with pytest.raises(DataError, match=f"text.clip_weights = {tmp_path}: no config.json there"):
        build_encoder(TextParams(encoder="clip", clip_weights=str(tmp_path)))
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "clip_text_model"}))
    with pytest.raises(DataError, match="cannot load a CLIP text model") as err:
        build_encoder(TextParams(encoder="clip", clip_weights=str(tmp_path)))
    assert "\n" not in str(err.value)
