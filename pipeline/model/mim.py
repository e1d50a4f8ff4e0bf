"""MIM: Motion-guided Interaction Module.

Each pair's motion embedding m_ti (from MFE) is the query; the spatial
relation features r_t. of the pairs in the same frame (the spatial encoder's
output) are the keys and values:

    a_ti = MultiHeadAttn(q = m_ti, k = v = r_t.)

Pre-norm (``model.pre_norm``, default). The two streams are different
quantities (an MLP embedding of four motion numbers, and a transformer
output), so each gets its own LayerNorm before the attention:

    h  = base + a_ti,   a_ti = MultiHeadAttn(q = LN_m(m_ti), k = v = LN_r(r_t.))
    r' = h + FFN(LN_h(h))

Post-norm (STTran's style, kept as a switch):

    h  = LN_h1(base + MultiHeadAttn(q = m_ti, k = v = r_t.))
    r' = LN_h2(h + FFN(h))

The post-norm block stalled training at the predicate priors on the
synthetic data.

``base`` is the residual branch (``model.mim_residual``, ours):

* ``both`` (default): base = r_ti + m_ti. The relation feature keeps the
  appearance on a direct path (r' replaces r before the temporal decoder),
  and the motion query reaches the output directly too.
* ``relation``: base = r_ti. Here motion enters *only* through the softmax
  weights, and the values are relation features: in a frame with a single
  pair the softmax is over one key, its weight is 1 whatever the query, and
  r' ignores the pair's motion entirely. Kept as a switch for comparison.
* ``motion``: base = m_ti (a textbook cross-attention block); the relation
  feature then survives only through the attention values.

In every case the keys and values are relation features only: another
pair's motion can change this pair's output only through later layers,
never inside one layer (tests/test_mim_motion.py checks both directions).
"""

from __future__ import annotations

from typing import Literal

from torch import Tensor, nn

from pipeline.model.batch import gather_padded, scatter_mean


class MotionInteractionLayer(nn.Module):
    def __init__(
        self,
        d_model: int,
        heads: int,
        dropout: float,
        residual: Literal["relation", "motion", "both"],
        pre_norm: bool = True,
    ) -> None:
        super().__init__()
        self.residual = residual
        self.pre_norm = pre_norm
        self.attention = nn.MultiheadAttention(d_model, heads, dropout=dropout, batch_first=True)
        if pre_norm:
            self.norm_motion = nn.LayerNorm(d_model)  # the query stream
            self.norm_relation = nn.LayerNorm(d_model)  # the key/value stream
        else:
            self.norm_attention = nn.LayerNorm(d_model)  # after the attention residual
        self.ffn = nn.Sequential(
            nn.Linear(d_model, 2 * d_model),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(2 * d_model, d_model),
        )
        self.norm_ffn = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, motion: Tensor, relation: Tensor, padding: Tensor) -> Tensor:
        """motion, relation: [F, P, d] per-frame padded; padding: [F, P]."""
        base = {"relation": relation, "motion": motion, "both": relation + motion}[self.residual]
        if self.pre_norm:
            query, keys = self.norm_motion(motion), self.norm_relation(relation)
            attended, _ = self.attention(
                query, keys, keys, key_padding_mask=padding, need_weights=False
            )
            hidden = base + self.dropout(attended)
            return hidden + self.dropout(self.ffn(self.norm_ffn(hidden)))
        attended, _ = self.attention(
            motion, relation, relation, key_padding_mask=padding, need_weights=False
        )
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
        residual: Literal["relation", "motion", "both"],
        pre_norm: bool = True,
    ) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            MotionInteractionLayer(d_model, heads, dropout, residual, pre_norm)
            for _ in range(layers)
        )

    def forward(self, motion: Tensor, relation: Tensor, frame_pairs: Tensor) -> Tensor:
        motion_padded, padding = gather_padded(motion, frame_pairs)
        relation_padded, _ = gather_padded(relation, frame_pairs)
        for layer in self.layers:
            relation_padded = layer(motion_padded, relation_padded, padding)
        return scatter_mean(relation_padded, frame_pairs, relation.shape[0])
