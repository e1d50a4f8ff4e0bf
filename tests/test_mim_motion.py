"""MIM: a lone pair's motion must reach the logits (the single-pair trap: attention over one key returns its value whatever the query), and inside one
layer motion is the query while the relation features are the keys and values."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from support.model_inputs import random_batch, random_spec

from pipeline.model.mim import MotionInteractionLayer
from pipeline.model.mosa import MOSA
from pipeline.params import ModelParams

SMALL = {"d_model": 16, "heads": 2, "mim_heads": 2, "temporal_layers": 1, "dropout": 0.0}


def lone_pair_logits(residual: str, motion: torch.Tensor) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    spec = random_spec()
    model = MOSA(
        ModelParams(**SMALL, mfe=True, mim=True, mim_residual=residual),
        spec,
        classify_objects=False,
    ).eval()
    batch = random_batch(spec, frames_per_video=(1,), max_pairs=1)
    assert batch.motion.shape[0] == 1  # one frame holding one pair
    with torch.no_grad():
        return model(dataclasses.replace(batch, motion=motion)).logits


@pytest.mark.parametrize("residual", ["both", "motion"])
def test_lone_pair_motion_changes_its_logits(residual):
    still = lone_pair_logits(residual, torch.zeros(1, 4))
    moving = lone_pair_logits(residual, torch.tensor([[0.5, -2.0, 1.0, 3.0]]))
    for group in still:
        assert (still[group] - moving[group]).abs().max() > 1e-3, group


def test_relation_residual_ignores_a_lone_pairs_motion():
    # the trap the default avoids: one key, softmax weight 1, values and residual are relation features
    still = lone_pair_logits("relation", torch.zeros(1, 4))
    moving = lone_pair_logits("relation", torch.tensor([[0.5, -2.0, 1.0, 3.0]]))
    for group in still:
        torch.testing.assert_close(still[group], moving[group])


# ---- one MIM layer: motion is the query, relation features are keys and values ---------------------


def mim_layer(residual: str = "both") -> MotionInteractionLayer:
    torch.manual_seed(0)
    return MotionInteractionLayer(16, 2, dropout=0.0, residual=residual, pre_norm=True).eval()


def test_query_and_key_value_streams_have_their_own_layer_norms():
    layer = mim_layer()
    assert isinstance(layer.norm_motion, torch.nn.LayerNorm) and isinstance(layer.norm_relation, torch.nn.LayerNorm)
    assert layer.norm_motion is not layer.norm_relation
    # Each norm acts on its own stream: scaling the relation norm's gain changes the output,
    # and so does scaling the motion norm's, independently.
    motion, relation = torch.randn(1, 2, 16), torch.randn(1, 2, 16)
    padding = torch.zeros(1, 2, dtype=torch.bool)
    with torch.no_grad():
        base = layer(motion, relation, padding)
        layer.norm_relation.weight.mul_(3.0)
        after_relation = layer(motion, relation, padding)
        layer.norm_relation.weight.div_(3.0)
        layer.norm_motion.weight.mul_(3.0)
        after_motion = layer(motion, relation, padding)
    assert (base - after_relation).abs().max() > 1e-4
    assert (base - after_motion).abs().max() > 1e-4


@pytest.mark.parametrize("residual", ["both", "motion"])
def test_one_layer_lone_pair_motion_changes_its_output(residual):
    layer = mim_layer(residual)
    relation = torch.randn(1, 1, 16)
    padding = torch.zeros(1, 1, dtype=torch.bool)
    with torch.no_grad():
        still = layer(torch.zeros(1, 1, 16), relation, padding)
        moving = layer(torch.randn(1, 1, 16), relation, padding)
    assert (still - moving).abs().max() > 1e-3


def test_keys_and_values_come_from_the_relation_stream():
    """Pair 0's output depends on pair 1's relation feature (a key/value), not on pair 1's motion."""
    layer = mim_layer()
    torch.manual_seed(1)
    motion, relation = torch.randn(1, 2, 16), torch.randn(1, 2, 16)
    padding = torch.zeros(1, 2, dtype=torch.bool)
    other_relation, other_motion = relation.clone(), motion.clone()
    other_relation[0, 1] = torch.randn(16)
    other_motion[0, 1] = torch.randn(16)
    with torch.no_grad():
        base = layer(motion, relation, padding)[0, 0]
        relation_changed = layer(motion, other_relation, padding)[0, 0]
        motion_changed = layer(other_motion, relation, padding)[0, 0]
    assert (base - relation_changed).abs().max() > 1e-3
    torch.testing.assert_close(base, motion_changed)
