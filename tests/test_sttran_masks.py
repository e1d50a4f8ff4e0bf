"""STTran's soft union masks (``lib/draw_rectangles/draw_rectangles.pyx``) from boxes."""

from __future__ import annotations

import numpy as np
import torch

from pipeline.model.tokens import soft_box_masks


def draw_union_boxes_reference(pairs: np.ndarray, size: int) -> np.ndarray:
    """The Cython loop of draw_rectangles.pyx, cell by cell, in float32."""
    out = np.zeros((len(pairs), 2, size, size), dtype=np.float32)

    def clip01(v):
        return min(max(v, np.float32(0)), np.float32(1))

    for n, p in enumerate(pairs.astype(np.float32)):
        ux1, uy1 = min(p[0], p[4]), min(p[1], p[5])
        w, h = max(p[2], p[6]) - ux1, max(p[3], p[7]) - uy1
        for i in range(2):
            x1 = (p[4 * i] - ux1) * size / w
            y1 = (p[4 * i + 1] - uy1) * size / h
            x2 = (p[4 * i + 2] - ux1) * size / w
            y2 = (p[4 * i + 3] - uy1) * size / h
            for j in range(size):
                y_contrib = clip01(j + 1 - y1) * clip01(y2 - j)
                for k in range(size):
                    out[n, i, j, k] = clip01(k + 1 - x1) * clip01(x2 - k) * y_contrib
    return out


def test_sttran_soft_masks_match_draw_union_boxes():
    rng = np.random.default_rng(0)
    corners = rng.uniform(0, 400, size=(12, 2, 4)).astype(np.float32)
    boxes = np.concatenate(
        [
            np.minimum(corners[..., :2], corners[..., 2:]),
            np.maximum(corners[..., :2], corners[..., 2:]),
        ],
        -1,
    )
    pairs = boxes.reshape(12, 8)
    expected = draw_union_boxes_reference(pairs, 27) - 0.5
    got = soft_box_masks(torch.from_numpy(pairs[:, :4]), torch.from_numpy(pairs[:, 4:]), size=27)
    np.testing.assert_allclose(got.numpy(), expected, atol=2e-6)
    # Soft: partial cells exist, unlike the 0/1 masks.
    assert ((got > -0.5) & (got < 0.5)).any()
