"""MFE: Motion Feature Extractor.

The motion attributes a_ti of pair i at frame t (distance, velocity,
persistence, direction consistency, optional extras; computed once by the
motion stage) are standardised with training-split statistics and embedded:

    m_ti = W_2 ReLU(W_1 (a_ti - mu) / sigma)
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class MotionFeatureExtractor(nn.Module):
    def __init__(self, num_attributes: int, d_model: int) -> None:
        super().__init__()
        # Buffers so the statistics travel with the weights in checkpoints.
        self.register_buffer("mean", torch.zeros(num_attributes))
        self.register_buffer("std", torch.ones(num_attributes))
        self.mlp = nn.Sequential(
            nn.Linear(num_attributes, d_model), nn.ReLU(), nn.Linear(d_model, d_model)
        )

    def set_normalization(self, mean: Tensor, std: Tensor) -> None:
        """Store per-attribute statistics; near-constant attributes keep unit scale."""
        self.mean.copy_(mean)
        self.std.copy_(torch.where(std > 1e-6, std, torch.ones_like(std)))

    def forward(self, attributes: Tensor) -> Tensor:
        return self.mlp((attributes - self.mean) / self.std)
