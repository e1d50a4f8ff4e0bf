"""Two extraction ranks never write the same shard.

``tests/test_extract_processes.py`` shows that ``torchrun`` with two ranks
gives the same cache as one process; that cannot tell whether both ranks
wrote some shard (the bytes would agree). Here the two ranks run one after
the other in this process, with the all-reduce barrier replaced by nothing,
and every shard write is recorded.
"""

from __future__ import annotations

from collections import Counter

from support.tiny_detector import write_random_checkpoint, write_tiny_config, write_tiny_dataset

from pipeline.detector.model import load_detector
from pipeline.extraction import driver
from pipeline.extraction.cache import RoiCache
from pipeline.extraction.frame_records import load_frame_records
from pipeline.params import DetectionPostprocessParams, ExtractParams


def test_two_ranks_write_disjoint_shards_that_together_cover_every_video(tmp_path, monkeypatch):
    write_tiny_dataset(tmp_path / "ag", tmp_path / "index", videos=4, frames_per_video=2)
    config = write_tiny_config(tmp_path / "tiny.py")
    detector = load_detector(config, write_random_checkpoint(config, tmp_path / "tiny.pth"))
    records = load_frame_records(tmp_path / "index", tmp_path / "ag")
    params = ExtractParams(out_dir=str(tmp_path / "roi"), videos_per_shard=1, batch_frames=2, decode_workers=0)

    writes: list[tuple[int, int]] = []  # (rank, shard index)
    write_shard, running = driver.write_shard, {"rank": -1}

    def recording_write_shard(parts_dir, shard, *args, **kwargs):
        writes.append((running["rank"], shard.index))
        return write_shard(parts_dir, shard, *args, **kwargs)

    monkeypatch.setattr(driver, "write_shard", recording_write_shard)
    monkeypatch.setattr(driver, "_sum_over_ranks", lambda value, device: value)
    for rank in (1, 0):  # rank 0 merges, so it runs last
        running["rank"] = rank
        driver.extract_cache(detector, records, params, DetectionPostprocessParams(), rank, 2)

    assert Counter(index for _, index in writes) == Counter(range(4)), "each shard written exactly once"
    assert {index for r, index in writes if r == 0} == {0, 2}
    assert {index for r, index in writes if r == 1} == {1, 3}
    with RoiCache(tmp_path / "roi") as roi:
        assert roi.videos() == sorted(records)
    assert not (tmp_path / "roi.parts").exists()
