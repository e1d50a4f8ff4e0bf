"""MIM must let a lone pair's motion reach the logits (MOSA.md: the single-pair trap)."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from support.model_inputs import random_batch, random_spec

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
