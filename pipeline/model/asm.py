"""ASM: Action Semantic Matching.

The relation feature is projected into the frozen text space and compared
with one prompt embedding z_p per predicate p (per (predicate, object class)
in the paper's pair-prompt mode):

    s_p = < proj(r) / |proj(r)| , z_p > / tau

tau is learnable (stored as log tau; 1/tau is clamped at 100, as CLIP's
logit scale). The s_p are added to each group's classifier logits with
weight lambda. On their own they are trained by the alignment loss
(pipeline/loss.py): by default a cross-entropy over the prompts of each
predicate group, -log softmax_g(s)_y, so tau is the temperature of that
contrast between the prompts. The evaluate stage also scores s alone
("ASM alone", pipeline/training/evaluate_stage.py).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# CLIP clamps its logit scale at 100 so a shrinking tau cannot blow up logits.
MAX_LOGIT_SCALE = 100.0


class ActionSemanticMatching(nn.Module):
    def __init__(self, d_model: int, prompt_embeddings: Tensor, tau_init: float) -> None:
        """prompt_embeddings: [P, D] (one prompt per predicate) or [C, P, D] (per object class)."""
        super().__init__()
        prompts = prompt_embeddings.float()
        if prompts.dim() == 2:
            prompts = prompts.unsqueeze(0)
        self.per_object = prompts.shape[0] > 1
        self.register_buffer("prompts", F.normalize(prompts, dim=-1))  # frozen text side
        self.proj = nn.Linear(d_model, prompts.shape[-1])
        self.log_tau = nn.Parameter(torch.tensor(math.log(tau_init)))

    def embed(self, relation: Tensor) -> Tensor:
        """[N, d] relation features -> [N, D] unit vectors in the text space (what relation search indexes)."""
        return F.normalize(self.proj(relation), dim=-1)

    def forward(self, relation: Tensor, object_label: Tensor) -> Tensor:
        """[N, d] relation features and [N] object classes -> [N, P] similarity logits."""
        return self.similarity(self.embed(relation), object_label)

    def similarity(self, query: Tensor, object_label: Tensor) -> Tensor:
        """[N, D] embeddings (from :meth:`embed`) and [N] object classes -> [N, P] logits s_p."""
        prompts = self.prompts[object_label] if self.per_object else self.prompts[0].expand(query.shape[0], -1, -1)
        scale = torch.exp(-self.log_tau).clamp(max=MAX_LOGIT_SCALE)
        return scale * torch.einsum("nd,npd->np", query, prompts)
