"""MIM: Motion-guided Interaction Module.

Each pair's motion embedding m_ti queries the spatial relation features r_t.
of the pairs in the same frame:

    h  = LN(base + MultiHeadAttn(q = m_ti, k = v = r_t.))
    r' = LN(h + FFN(h))

``base`` is the residual branch: the query m_ti (a textbook cross-attention
block) or the relation feature r_ti (our default), which keeps the
appearance feature on a direct path when it replaces r before the temporal
decoder. With ``model.pre_norm`` (default) the LayerNorms move onto the
branch inputs instead, h = base + Attn(LN(m), LN(r)), r' = h + FFN(LN(h)):
the post-norm block stalled training at the predicate priors on the
synthetic data.
"""

from __future__ import annotations

from typing import Literal

from torch import Tensor, nn

from pipeline.model.batch import gather_padded, scatter_mean


class MotionInteractionLayer(nn.Module):
    def __init__(
        self, d_model: int, heads: int, dropout: float, residual: Literal["relation", "motion"], pre_norm: bool = True
    ) -> None:
        super().__init__()
        self.residual = residual
        self.pre_norm = pre_norm
        self.attention = nn.MultiheadAttention(d_model, heads, dropout=dropout, batch_first=True)
        self.norm_attention = nn.LayerNorm(d_model)
        self.ffn = nn.Sequential(
            nn.Linear(d_model, 2 * d_model), nn.ReLU(), nn.Dropout(dropout), nn.Linear(2 * d_model, d_model)
        )
        self.norm_ffn = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, motion: Tensor, relation: Tensor, padding: Tensor) -> Tensor:
        """motion, relation: [F, P, d] per-frame padded; padding: [F, P]."""
        base = relation if self.residual == "relation" else motion
        if self.pre_norm:
            query, keys = self.norm_attention(motion), self.norm_attention(relation)
            attended, _ = self.attention(query, keys, keys, key_padding_mask=padding, need_weights=False)
            hidden = base + self.dropout(attended)
            return hidden + self.dropout(self.ffn(self.norm_ffn(hidden)))
        attended, _ = self.attention(motion, relation, relation, key_padding_mask=padding, need_weights=False)
        hidden = self.norm_attention(base + self.dropout(attended))
        return self.norm_ffn(hidden + self.dropout(self.ffn(hidden)))


class MotionInteraction(nn.Module):
    """A stack of MIM layers; the motion queries stay fixed, the relation features update."""

    def __init__(
        self,
        d_model: int,
        heads: int,
        layers: int,
        dropout: float,
        residual: Literal["relation", "motion"],
        pre_norm: bool = True,
    ) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            MotionInteractionLayer(d_model, heads, dropout, residual, pre_norm) for _ in range(layers)
        )

    def forward(self, motion: Tensor, relation: Tensor, frame_pairs: Tensor) -> Tensor:
        motion_padded, padding = gather_padded(motion, frame_pairs)
        relation_padded, _ = gather_padded(relation, frame_pairs)
        for layer in self.layers:
            relation_padded = layer(motion_padded, relation_padded, padding)
        return scatter_mean(relation_padded, frame_pairs, relation.shape[0])
