"""STTran's two transformers: pairs within a frame, then frames within a window.

Spatial encoder (per frame t, over its pairs i):

    r_t = TransformerEncoder([x_t1, ..., x_tn])

Temporal decoder (per sliding window of w consecutive frames, stride 1):

    r'_ti = mean over windows containing t of TransformerLayers(r_ti + p(pos(t)))

p is a learned frame-position embedding (the frame's index inside the
window). Layers are pre-norm by default (``model.pre_norm``): STTran's
post-norm stack, trained without warm-up at our learning rate, collapsed to
predicting the predicate priors on the synthetic data. STTran calls its self-attention stack over the window a decoder;
it has no cross-attention input, so it is built from encoder layers here.
"""

from __future__ import annotations

from torch import Tensor, nn

from pipeline.model.batch import gather_padded, scatter_mean


def _layer_stack(d_model: int, heads: int, layers: int, dropout: float, pre_norm: bool) -> nn.TransformerEncoder:
    layer = nn.TransformerEncoderLayer(
        d_model, heads, dim_feedforward=2 * d_model, dropout=dropout, batch_first=True, norm_first=pre_norm
    )
    # Pre-norm stacks end with their own LayerNorm. Nested tensors change
    # numerics between the train and eval paths; keep one path.
    final_norm = nn.LayerNorm(d_model) if pre_norm else None
    return nn.TransformerEncoder(layer, layers, norm=final_norm, enable_nested_tensor=False)


class SpatialEncoder(nn.Module):
    """Self-attention over the pairs of each frame."""

    def __init__(self, d_model: int, heads: int, layers: int, dropout: float, pre_norm: bool = True) -> None:
        super().__init__()
        self.layers = _layer_stack(d_model, heads, layers, dropout, pre_norm)

    def forward(self, relation: Tensor, frame_pairs: Tensor) -> Tensor:
        padded, padding = gather_padded(relation, frame_pairs)
        out = self.layers(padded, src_key_padding_mask=padding)
        return scatter_mean(out, frame_pairs, relation.shape[0])


class TemporalDecoder(nn.Module):
    """Self-attention over the pairs of a sliding window of frames."""

    def __init__(
        self, d_model: int, heads: int, layers: int, window: int, dropout: float, pre_norm: bool = True
    ) -> None:
        super().__init__()
        self.frame_position = nn.Embedding(window, d_model)
        self.layers = _layer_stack(d_model, heads, layers, dropout, pre_norm)

    def forward(self, relation: Tensor, window_pairs: Tensor, window_position: Tensor) -> Tensor:
        padded, padding = gather_padded(relation, window_pairs)
        padded = padded + self.frame_position(window_position)
        out = self.layers(padded, src_key_padding_mask=padding)
        return scatter_mean(out, window_pairs, relation.shape[0])
