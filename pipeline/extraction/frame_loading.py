"""Reading frames for the detector: batches and decoding in DataLoader workers.

Frames are decoded with the detector config's ``test_pipeline`` in worker
processes while the main process runs the detector. A frame that is missing
or cannot be decoded comes back as an error string, so the driver can stop
with one line (or skip the frame) instead of a worker traceback.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch

from pipeline.extraction.frame_records import FrameRecord
from pipeline.extraction.shards import Shard
from pipeline.params import ExtractParams


def frame_batches(
    shard_frames: Sequence[int], batch_frames: int, sizes: Sequence | None = None
) -> list[list[int]]:
    """Consecutive batches within one shard: a shard is always computed the same way.

    With ``sizes`` (per frame index), a batch never mixes frame sizes: padding
    a smaller frame to the batch's largest would enlarge its feature map and
    anchor grid, which STTran (one video, one size per batch) never does.
    """
    batches: list[list[int]] = []
    for frame in shard_frames:
        fits = batches and len(batches[-1]) < batch_frames
        if fits and (sizes is None or sizes[frame] == sizes[batches[-1][0]]):
            batches[-1].append(frame)
        else:
            batches.append([frame])
    return batches


class FrameDataset(torch.utils.data.Dataset):
    """Decodes frames with the detector config's ``test_pipeline``; errors are returned, not raised.

    Returning the error lets the main process stop with a one-line message
    (or skip the frame) instead of a worker traceback.
    """

    def __init__(self, records: Sequence[FrameRecord], test_pipeline):
        from mmengine.dataset import Compose

        from pipeline.detector.model import register_mmdet

        register_mmdet()
        self.records = list(records)
        self.pipeline = Compose(test_pipeline)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict:
        record = self.records[index]
        if not record.path.is_file():
            return {"index": index, "error": f"{record.path}: frame {record.frame} is missing"}
        try:
            packed = self.pipeline({"img_path": str(record.path), "img_id": index})
        except Exception as err:  # any decoder failure means the same thing to the user
            return {
                "index": index,
                "error": f"{record.path}: frame {record.frame} cannot be decoded ({err})",
            }
        return {
            "index": index,
            "inputs": packed["inputs"],
            "data_samples": packed["data_samples"],
            "error": None,
        }


def _collate(items: list[dict]) -> list[dict]:
    return items


def iterate_batches(
    shards: Sequence[Shard], extract: ExtractParams, test_pipeline
) -> Iterator[tuple[Shard, list[dict], list[FrameRecord]]]:
    """Decoded batches, shard by shard, decoded ahead in worker processes."""
    records = [record for shard in shards for record in shard.records]
    sizes = [(record.width, record.height) for record in records]
    batches, owner, start = [], [], 0
    for shard in shards:
        frames = range(start, start + len(shard.records))
        for batch in frame_batches(frames, extract.batch_frames, sizes):
            batches.append(batch)
            owner.append(shard)
        start += len(shard.records)
    if not batches:
        return
    loader = torch.utils.data.DataLoader(
        FrameDataset(records, test_pipeline),
        batch_sampler=batches,
        num_workers=extract.decode_workers,
        collate_fn=_collate,
    )
    for shard, items in zip(owner, loader, strict=True):
        yield shard, items, [records[item["index"]] for item in items]
