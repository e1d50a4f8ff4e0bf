"""Random, correctly shaped model inputs for unit tests and benchmarks."""

from __future__ import annotations

import torch

from pipeline.constants import NUM_OBJECT_CLASSES, NUM_PREDICATES, PERSON_INDEX
from pipeline.model.batch import RelationBatch, pad_groups, window_tables
from pipeline.model.mosa import FeatureSpec


def random_spec(
    roi_dim: int = 12, union_dim: int = 10, text_dim: int = 16, per_object_prompts: bool = True, motion_dim: int = 4, seed: int = 0
) -> FeatureSpec:
    g = torch.Generator().manual_seed(seed)
    prompts_shape = (NUM_OBJECT_CLASSES, NUM_PREDICATES, text_dim) if per_object_prompts else (NUM_PREDICATES, text_dim)
    return FeatureSpec(
        roi_dim=roi_dim,
        union_dim=union_dim,
        class_embeddings=torch.nn.functional.normalize(torch.randn(NUM_OBJECT_CLASSES, text_dim, generator=g), dim=-1),
        prompt_embeddings=torch.nn.functional.normalize(torch.randn(*prompts_shape, generator=g), dim=-1),
        motion_dim=motion_dim,
    )


def random_batch(
    spec: FeatureSpec,
    frames_per_video: tuple[int, ...] = (3, 1, 4),
    max_pairs: int = 3,
    num_attributes: int = 4,
    window: int = 2,
    seed: int = 0,
) -> RelationBatch:
    """Videos of the given lengths, 1..max_pairs pairs per frame, random features and targets."""
    g = torch.Generator().manual_seed(seed)
    frame_pairs: list[list[int]] = []
    video_frames: list[list[int]] = []
    rows = 0
    for length in frames_per_video:
        video_frames.append(list(range(len(frame_pairs), len(frame_pairs) + length)))
        for _ in range(length):
            count = int(torch.randint(1, max_pairs + 1, (1,), generator=g))
            frame_pairs.append(list(range(rows, rows + count)))
            rows += count
    n = rows

    def boxes() -> torch.Tensor:
        corner = torch.rand(n, 2, generator=g) * 0.6
        return torch.cat([corner, corner + 0.1 + torch.rand(n, 2, generator=g) * 0.3], dim=1)

    window_pairs, window_position = window_tables(frame_pairs, video_frames, window)
    object_label = torch.randint(PERSON_INDEX + 1, NUM_OBJECT_CLASSES, (n,), generator=g)
    return RelationBatch(
        subject_roi=torch.randn(n, spec.roi_dim, generator=g),
        object_roi=torch.randn(n, spec.roi_dim, generator=g),
        union=torch.randn(n, spec.union_dim, generator=g),
        subject_box=boxes(),
        object_box=boxes(),
        motion=torch.randn(n, num_attributes, generator=g),
        frame_pairs=pad_groups(frame_pairs),
        window_pairs=window_pairs,
        window_position=window_position,
        object_label=object_label,
        object_dist=torch.softmax(torch.randn(n, NUM_OBJECT_CLASSES, generator=g), dim=-1),
        target_object=object_label,
        target_attention=torch.randint(0, 3, (n,), generator=g),
        target_spatial=(torch.rand(n, 6, generator=g) < 0.3).float(),
        target_contacting=(torch.rand(n, 17, generator=g) < 0.2).float(),
        has_relation=torch.ones(n, dtype=torch.bool),
    )
