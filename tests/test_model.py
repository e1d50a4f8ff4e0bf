"""Shapes, switches and invariants of the MOSA relation head on tiny random tensors."""

from __future__ import annotations

import itertools

import pytest
import torch
from support.model_inputs import random_batch, random_spec

from pipeline.constants import GROUPS, NUM_OBJECT_CLASSES
from pipeline.model.asm import ActionSemanticMatching
from pipeline.model.batch import (
    gather_padded,
    pad_groups,
    scatter_mean,
    sliding_windows,
    window_tables,
)
from pipeline.model.mosa import MOSA, predicted_object_label
from pipeline.model.tokens import box_masks
from pipeline.params import ModelParams, ParamsError, parse_params
from pipeline.training.inference import relation_logits

SMALL = {"d_model": 16, "heads": 2, "mim_heads": 2, "temporal_layers": 1, "dropout": 0.0}


def build(classify_objects: bool = False, per_object_prompts: bool = True, **overrides) -> tuple[MOSA, object]:
    torch.manual_seed(0)
    spec = random_spec(per_object_prompts=per_object_prompts)
    params = ModelParams(**{**SMALL, **overrides})
    return MOSA(params, spec, classify_objects), spec


@pytest.mark.parametrize(
    ("mfe", "mim", "asm", "temporal", "spatial_layers"),
    list(itertools.product([False, True], [False, True], [False, True], [False, True], [0, 1])),
)
def test_every_switch_combination_builds_and_backpropagates(mfe, mim, asm, temporal, spatial_layers):
    model, spec = build(mfe=mfe, mim=mim, asm=asm, temporal=temporal, spatial_layers=spatial_layers)
    batch = random_batch(spec)
    output = model(batch)
    n = batch.num_pairs
    assert {k: tuple(v.shape) for k, v in output.logits.items()} == {
        "attention": (n, 3), "spatial": (n, 6), "contacting": (n, 17),
    }  # fmt: skip
    assert (output.asm_logits is not None) == asm
    assert (model.mim is not None) == (mfe and mim)
    total = sum(v.sum() for v in output.logits.values())
    total.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_object_classifier_only_outside_predcls_and_labels_are_real_objects():
    model, spec = build(classify_objects=True)
    batch = random_batch(spec)
    output = model(batch)
    assert output.object_logits.shape == (batch.num_pairs, NUM_OBJECT_CLASSES)
    assert (output.object_label >= 2).all()
    # PredCls passes the given labels straight through.
    predcls, _ = build(classify_objects=False)
    assert torch.equal(predcls(batch).object_label, batch.object_label)


def test_predicted_label_skips_background_and_person():
    logits = torch.full((2, NUM_OBJECT_CLASSES), -5.0)
    logits[:, 0] = logits[:, 1] = 10.0
    logits[0, 7] = 0.0
    logits[1, 30] = 0.0
    assert predicted_object_label(logits).tolist() == [7, 30]


def test_pairs_of_other_frames_do_not_leak_without_temporal_decoder():
    """Spatial encoder and MIM attend within a frame only: editing one frame changes only its rows."""
    model, spec = build(temporal=False)
    model.eval()
    batch = random_batch(spec, frames_per_video=(3,), max_pairs=3)
    rows_of_first_frame = batch.frame_pairs[0][batch.frame_pairs[0] >= 0]
    changed = batch.union.clone()
    changed[rows_of_first_frame] += 1.0
    before = model(batch).logits["contacting"]
    after = model(type(batch)(**{**batch.__dict__, "union": changed})).logits["contacting"]
    differs = (before - after).abs().sum(dim=1) > 1e-6
    assert differs[rows_of_first_frame].all()
    others = torch.ones_like(differs)
    others[rows_of_first_frame] = False
    assert not differs[others].any()


def test_temporal_decoder_mixes_neighbouring_frames():
    model, spec = build(temporal=True, temporal_window=2)
    model.eval()
    batch = random_batch(spec, frames_per_video=(3,), max_pairs=2)
    first = batch.frame_pairs[0][batch.frame_pairs[0] >= 0]
    second = batch.frame_pairs[1][batch.frame_pairs[1] >= 0]
    changed = batch.union.clone()
    changed[first] += 1.0
    before = model(batch).logits["contacting"]
    after = model(type(batch)(**{**batch.__dict__, "union": changed})).logits["contacting"]
    assert ((before - after)[second].abs().sum(dim=1) > 1e-6).all()


def test_sliding_windows_cover_every_frame():
    assert sliding_windows([[0, 1, 2], [3], [4, 5]], 2) == [[0, 1], [1, 2], [3], [4, 5]]
    rows, positions = window_tables([[0], [1, 2], [3]], [[0, 1, 2]], 2)
    assert rows.tolist() == [[0, 1, 2], [1, 2, 3]]
    assert positions.tolist() == [[0, 1, 1], [0, 0, 1]]


def test_gather_and_scatter_mean_round_trip_and_average_duplicates():
    rows = torch.arange(8, dtype=torch.float32).view(4, 2)
    table = pad_groups([[0, 1], [1, 2, 3]])
    padded, padding = gather_padded(rows, table)
    assert padding.tolist() == [[False, False, True], [False, False, False]]
    assert torch.equal(scatter_mean(padded, table, 4), rows)
    doubled = padded.clone()
    doubled[1] *= 3  # row 1 appears in both groups: mean of x and 3x is 2x
    assert torch.equal(scatter_mean(doubled, table, 4)[1], 2 * rows[1])


def test_box_masks_mark_each_box_inside_the_union():
    subject = torch.tensor([[0.0, 0.0, 0.5, 1.0]])
    obj = torch.tensor([[0.5, 0.0, 1.0, 0.5]])
    masks = box_masks(subject, obj, size=4) + 0.5
    assert masks[0, 0].tolist() == [[1, 1, 0, 0]] * 4
    assert masks[0, 1].tolist() == [[0, 0, 1, 1]] * 2 + [[0, 0, 0, 0]] * 2


def test_asm_logits_are_scaled_cosines_of_the_object_prompts():
    d, text = 4, 3
    prompts = torch.nn.functional.normalize(torch.randn(NUM_OBJECT_CLASSES, 26, text), dim=-1)
    asm = ActionSemanticMatching(d, prompts, tau_init=0.5)
    relation = torch.randn(2, d)
    labels = torch.tensor([3, 9])
    logits = asm(relation, labels)
    query = torch.nn.functional.normalize(asm.proj(relation), dim=-1)
    expected = torch.stack([prompts[3] @ query[0], prompts[9] @ query[1]]) / 0.5
    assert torch.allclose(logits, expected, atol=1e-6)
    assert logits.abs().max() <= 1 / 0.5 + 1e-6


def test_asm_per_predicate_prompts_ignore_the_object():
    model, spec = build(per_object_prompts=False)
    batch = random_batch(spec)
    relation = torch.randn(batch.num_pairs, 16)
    a = model.asm(relation, batch.object_label)
    b = model.asm(relation, torch.full_like(batch.object_label, 5))
    assert torch.equal(a, b)


def test_label_embeddings_start_from_the_class_name_embeddings():
    model, spec = build()
    assert torch.equal(model.labels.table.weight.detach(), spec.class_embeddings)


def test_mfe_normalisation_is_saved_with_the_weights():
    model, _ = build()
    model.mfe.set_normalization(torch.tensor([1.0, 2.0, 3.0, 4.0]), torch.tensor([2.0, 0.0, 1.0, 1.0]))
    state = model.state_dict()
    assert state["mfe.std"].tolist() == [2.0, 1.0, 1.0, 1.0]  # zero spread keeps unit scale
    assert state["mfe.mean"].tolist() == [1.0, 2.0, 3.0, 4.0]


def test_model_params_reject_heads_that_do_not_divide_the_width():
    with pytest.raises(ParamsError, match="divisible by heads"):
        parse_params({"model": {"d_model": 10, "heads": 4}})


def test_everything_off_is_the_sttran_style_baseline():
    model, _ = build(mfe=False, mim=False, asm=False)
    assert model.mfe is None and model.mim is None and model.asm is None
    assert model.spatial is not None and model.temporal is not None


@pytest.mark.parametrize("residual", ["relation", "motion", "both"])
def test_post_norm_layers_and_mim_residual_options_build_and_run(residual):
    model, spec = build(pre_norm=False, mim_residual=residual)
    assert not model.mim.layers[0].pre_norm
    output = model(random_batch(spec))
    assert torch.isfinite(output.logits["contacting"]).all()


def test_scored_logits_apply_the_group_temperatures_and_asm_alone_skips_them():
    model, spec = build()
    assert model.state_dict()["temperature"].tolist() == [1.0, 1.0, 1.0]  # saved with the weights
    output = model.eval()(random_batch(spec))
    temperature = torch.tensor([2.0, 0.5, 4.0])
    scaled = relation_logits(output, temperature, "combined")
    offset = torch.tensor([0.0, 1.5, 2.25])  # the semi offsets
    shifted = relation_logits(output, temperature, "combined", offset)
    for i, group in enumerate(GROUPS):
        torch.testing.assert_close(scaled[group], output.logits[group] / temperature[i])
        torch.testing.assert_close(shifted[group], scaled[group] + offset[i])
        assert torch.equal(scaled[group].argmax(dim=1), output.logits[group].argmax(dim=1))
        assert torch.equal(shifted[group].argsort(dim=1), scaled[group].argsort(dim=1))  # each row's ranking kept
    assert model.state_dict()["score_offset"].tolist() == [0.0, 0.0, 0.0]
    assert relation_logits(output, temperature, "asm") is output.asm_logits
    without_asm, spec = build(asm=False)
    with pytest.raises(ValueError, match="ASM-alone scores need a model with ASM"):
        relation_logits(without_asm(random_batch(spec)), temperature, "asm")


def _tokens(model: MOSA, batch, **changes):
    inputs = dict(
        subject_roi=batch.subject_roi, object_roi=batch.object_roi, union=batch.union,
        subject_box=batch.subject_box, object_box=batch.object_box,
        subject_label=torch.full_like(batch.object_label, 1), object_label=batch.object_label,
    )  # fmt: skip
    return model.tokens(**{**inputs, **changes})


@pytest.mark.parametrize(
    ("streams", "ignored"),
    [(("object_roi",), ("subject_roi", "union")), ((), ("subject_roi", "object_roi", "union"))],
)
def test_left_out_appearance_streams_do_not_reach_the_token(streams, ignored):
    model, spec = build(token_appearance=streams, appearance_dropout=0.0)
    batch = random_batch(spec)
    tokens = _tokens(model, batch)
    for name in ("subject_roi", "object_roi", "union"):
        moved = _tokens(model, batch, **{name: getattr(batch, name) + 1.0})
        assert torch.equal(moved, tokens) == (name in ignored), name
    assert model.tokens.subject_proj is None and model.tokens.union_proj is None
    assert model.tokens.fuse.in_features == (len(streams) + 1) * 16 + 2 * spec.class_embeddings.shape[1]


def test_appearance_dropout_acts_only_in_training_and_drops_every_stream_of_a_pair():
    model, spec = build(appearance_dropout=0.5)
    reference, _ = build(appearance_dropout=0.0)  # same seed, so the same weights
    batch = random_batch(spec)
    assert torch.equal(_tokens(model.eval(), batch), _tokens(reference.eval(), batch))
    model.train()
    torch.manual_seed(3)
    dropped = _tokens(model, batch)
    torch.manual_seed(3)
    moved = _tokens(
        model, batch, subject_roi=batch.subject_roi + 1, object_roi=batch.object_roi + 1, union=batch.union + 1
    )
    same = (dropped == moved).all(dim=1)  # a dropped pair ignores all its appearance; a kept one sees it
    assert 0 < int(same.sum()) < batch.num_pairs
    # A dropped pair's token is the token with every appearance stream zeroed; a kept pair's is the full one
    # (both still in training mode: the mask CNN's batch norm reads batch statistics there).
    model.tokens._appearance_kept = lambda reference: torch.zeros(reference.shape[0], 1)
    without_appearance = _tokens(model, batch)
    del model.tokens._appearance_kept
    model.tokens.appearance_dropout = 0.0
    full = _tokens(model, batch)
    torch.testing.assert_close(dropped[same], without_appearance[same])
    torch.testing.assert_close(dropped[~same], full[~same])


def test_token_appearance_settings_are_checked():
    with pytest.raises(ParamsError, match="lists a stream twice"):
        parse_params({"model": {"token_appearance": ["union", "union"]}})
    with pytest.raises(ParamsError, match="nothing to drop"):
        parse_params({"model": {"token_appearance": [], "appearance_dropout": 0.5}})
    with pytest.raises(ParamsError, match="token_appearance"):
        parse_params({"model": {"token_appearance": ["person_roi"]}})
