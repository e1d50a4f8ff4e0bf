"""Per-group temperature scaling of the relation scores (pipeline/training/calibration.py)."""

from __future__ import annotations

import math

import torch

from pipeline.training.calibration import fit_temperature, group_nll, scaled_logits


def _toy_softmax(seed: int, true_temperature: float, n: int = 4000) -> tuple[torch.Tensor, torch.Tensor]:
    """Labels drawn from softmax(z / T0): logits that are over-confident by a factor 1 / T0."""
    g = torch.Generator().manual_seed(seed)
    logits = 3.0 * torch.randn(n, 3, generator=g, dtype=torch.float64)
    labels = torch.multinomial(torch.softmax(logits / true_temperature, dim=-1), 1, generator=g).squeeze(1)
    return logits, labels


def _toy_sigmoid(seed: int, true_temperature: float, n: int = 3000) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    logits = 2.0 * torch.randn(n, 17, generator=g, dtype=torch.float64) - 1.0
    labels = (torch.rand(n, 17, generator=g, dtype=torch.float64) < torch.sigmoid(logits / true_temperature)).double()
    return logits, labels


def test_softmax_temperature_lowers_validation_nll_and_keeps_the_argmax():
    train_logits, train_labels = _toy_softmax(0, true_temperature=2.0)
    val_logits, val_labels = _toy_softmax(1, true_temperature=2.0)
    temperature = fit_temperature(train_logits, train_labels)
    assert 1.6 < temperature < 2.5  # recovers the over-confidence factor
    assert group_nll(val_logits, val_labels, temperature) < group_nll(val_logits, val_labels, 1.0) - 0.05
    scaled = scaled_logits({"attention": val_logits, "spatial": val_logits, "contacting": val_logits},
                           torch.tensor([temperature, 1.0, 1.0]))  # fmt: skip
    assert torch.equal(scaled["attention"].argmax(dim=1), val_logits.argmax(dim=1))


def test_sigmoid_temperature_sharpens_under_confident_scores_and_keeps_the_argmax():
    # Under-confident logits (as a focal loss leaves them): the fit picks T < 1.
    train_logits, train_labels = _toy_sigmoid(0, true_temperature=0.5)
    val_logits, val_labels = _toy_sigmoid(1, true_temperature=0.5)
    temperature = fit_temperature(train_logits, train_labels)
    assert 0.4 < temperature < 0.6
    assert group_nll(val_logits, val_labels, temperature) < group_nll(val_logits, val_labels, 1.0) - 0.02
    scaled = scaled_logits({"attention": val_logits[:, :3], "spatial": val_logits[:, :6], "contacting": val_logits},
                           torch.tensor([1.0, 1.0, temperature]))  # fmt: skip
    assert torch.equal(scaled["contacting"].argmax(dim=1), val_logits.argmax(dim=1))
    assert scaled["contacting"].max() > val_logits.max()


def test_fit_is_the_minimum_of_the_nll_and_empty_groups_keep_one():
    logits, labels = _toy_softmax(2, true_temperature=0.7, n=500)
    temperature = fit_temperature(logits, labels)
    best = group_nll(logits, labels, temperature)
    for factor in (0.9, 1.1):
        assert group_nll(logits, labels, temperature * factor) > best
    assert fit_temperature(torch.zeros(0, 3), torch.zeros(0, dtype=torch.long)) == 1.0
    assert math.isclose(group_nll(logits, labels, 1.0), float(torch.nn.functional.cross_entropy(logits, labels)))
