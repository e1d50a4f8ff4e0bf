"""Category weights from counts and the focal loss forms."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
import torch
import torch.nn.functional as F
from support.model_inputs import random_batch, random_spec

from pipeline.ag.reader import predicate_counts
from pipeline.loss import (
    RelationLoss,
    category_weights,
    contrastive_alignment,
    focal_binary_cross_entropy,
    focal_cross_entropy,
    multi_positive_cross_entropy,
)
from pipeline.model.mosa import MOSA
from pipeline.params import LossParams, ModelParams


def test_counts_come_from_the_training_split_only():
    relations = pl.DataFrame(
        {
            "split": ["train", "train", "train", "val", "test"],
            "predicate": [0, 0, 25, 0, 3],
        },
        schema={"split": pl.String, "predicate": pl.Int16},
    )
    counts = predicate_counts(relations)
    assert counts.shape == (26,)
    assert counts[0] == 2 and counts[25] == 1 and counts.sum() == 3


def test_weights_follow_inverse_log_count_with_mean_one():
    counts = np.array([0, 10, 1000] + [100] * 23)
    weights = category_weights(counts)
    raw = 1.0 / np.log(counts + math.e)
    assert weights.mean().item() == pytest.approx(1.0, abs=1e-6)
    assert np.allclose(weights.numpy(), raw / raw.mean(), atol=1e-6)
    # rarer predicates weigh more; an unseen one is finite (1/log e = 1 before rescaling)
    assert weights[0] > weights[1] > weights[3] > weights[2]


def test_focal_gamma_zero_is_weighted_cross_entropy():
    torch.manual_seed(0)
    logits, target, weight = torch.randn(7, 3), torch.randint(0, 3, (7,)), torch.rand(3) + 0.5
    expected = F.cross_entropy(logits, target, weight=weight, reduction="none").mean()
    assert torch.allclose(focal_cross_entropy(logits, target, weight, gamma=0.0), expected)


def test_focal_gamma_zero_is_bce_with_positive_weights():
    torch.manual_seed(0)
    logits, target, weight = torch.randn(5, 6), (torch.rand(5, 6) < 0.4).float(), torch.rand(6) + 0.5
    expected = F.binary_cross_entropy_with_logits(logits, target, pos_weight=weight)
    assert torch.allclose(focal_binary_cross_entropy(logits, target, weight, gamma=0.0), expected)


def test_focal_term_matches_its_formula_and_downweights_easy_examples():
    logits = torch.tensor([[2.0, -1.0, 0.0]])
    target = torch.tensor([0])
    weight = torch.tensor([2.0, 1.0, 1.0])
    p = torch.softmax(logits, dim=-1)[0, 0]
    expected = -2.0 * (1 - p) ** 2 * torch.log(p)
    assert torch.allclose(focal_cross_entropy(logits, target, weight, gamma=2.0), expected)
    assert focal_cross_entropy(logits, target, weight, 2.0) < focal_cross_entropy(logits, target, weight, 0.0)
    # BCE: a confident correct negative costs almost nothing with gamma 2.
    easy = focal_binary_cross_entropy(torch.tensor([[-6.0]]), torch.tensor([[0.0]]), torch.ones(1), 2.0)
    assert easy < 1e-5


def _loss_setup(classify_objects: bool, **loss_overrides):
    torch.manual_seed(0)
    spec = random_spec()
    model = MOSA(ModelParams(d_model=16, heads=2, mim_heads=2, temporal_layers=1), spec, classify_objects)
    batch = random_batch(spec)
    loss = RelationLoss(LossParams(**loss_overrides), np.arange(26) * 7)
    return model, batch, loss


def test_relation_loss_components_follow_the_switches():
    model, batch, loss = _loss_setup(classify_objects=True)
    parts = loss(model(batch), batch)
    assert set(parts) == {
        "total", "attention", "spatial", "contacting",
        "asm_attention", "asm_spatial", "asm_contacting", "object",
    }  # fmt: skip
    assert torch.allclose(parts["total"], sum(v for k, v in parts.items() if k != "total"))
    model, batch, loss = _loss_setup(classify_objects=False, asm_alignment=0.0)
    assert set(loss(model(batch), batch)) == {"total", "attention", "spatial", "contacting"}


def test_unweighted_loss_uses_unit_weights_and_needs_no_counts():
    loss = RelationLoss(LossParams(category_weighted=False), None)
    assert torch.equal(loss.weights, torch.ones(26))
    with pytest.raises(ValueError, match="counts"):
        RelationLoss(LossParams(category_weighted=True), None)


def test_pairs_without_ground_truth_add_no_relation_loss():
    model, batch, loss = _loss_setup(classify_objects=True)
    none = type(batch)(**{**batch.__dict__, "has_relation": torch.zeros_like(batch.has_relation)})
    parts = loss(model(none), none)
    assert set(parts) == {"total", "object"}


# ---- ASM alignment over the prompts of a group --------------------------------------------------


def test_multi_positive_cross_entropy_averages_minus_log_softmax_over_positives():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 3.0], [1.0, 2.0, 3.0]])
    target = torch.tensor([[1.0, 1.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, 0.0]])  # the last row has no positive
    log_p = F.log_softmax(logits, dim=-1)
    expected = (-(log_p[0, 0] + log_p[0, 1]) / 2 - log_p[1, 2]) / 2
    assert torch.allclose(multi_positive_cross_entropy(logits, target), expected)
    none = multi_positive_cross_entropy(logits, torch.zeros_like(target))
    assert none.item() == 0.0 and none.requires_grad is False  # logits here need no grad


def test_contrastive_alignment_is_a_softmax_over_the_group_prompts():
    """Only differences between a group's prompt logits count: a shift common to a group changes nothing.

    The old form (sigmoid focal BCE on each cosine) does change: it scores each prompt on its own.
    """
    model, batch, _ = _loss_setup(classify_objects=False)
    asm = model(batch).asm_logits
    keep = batch.has_relation
    shifted = {group: value + 4.0 for group, value in asm.items()}
    contrastive, contrastive_shifted = (contrastive_alignment(x, batch, keep) for x in (asm, shifted))
    for group in asm:
        assert torch.allclose(contrastive[group], contrastive_shifted[group], atol=1e-5), group
    group_form = RelationLoss(LossParams(asm_alignment_form="group"), np.arange(26) * 7)
    old, old_shifted = (group_form.group_losses(x, batch, keep) for x in (asm, shifted))
    assert not torch.allclose(old["contacting"], old_shifted["contacting"])
    expected = F.cross_entropy(asm["attention"][keep], batch.target_attention[keep])
    assert torch.allclose(contrastive["attention"], expected)


@pytest.mark.parametrize("form", ["contrastive", "group"])
def test_alignment_form_switch_picks_the_asm_terms(form):
    model, batch, loss = _loss_setup(classify_objects=False, asm_alignment=0.5, asm_alignment_form=form)
    output = model(batch)
    parts = loss(output, batch)
    keep = batch.has_relation
    if form == "contrastive":
        expected = contrastive_alignment(output.asm_logits, batch, keep)
    else:
        expected = loss.group_losses(output.asm_logits, batch, keep)
    for group, value in expected.items():
        assert torch.allclose(parts[f"asm_{group}"], 0.5 * value)


def test_contrastive_alignment_trains_the_asm_temperature():
    model, batch, loss = _loss_setup(classify_objects=False)
    parts = loss(model(batch), batch)
    sum(parts[f"asm_{g}"] for g in ("attention", "spatial", "contacting")).backward()
    assert model.asm.log_tau.grad is not None and model.asm.log_tau.grad.abs() > 0
