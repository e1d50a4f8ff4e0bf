"""Training data path alone: frames/s of ready-to-use batches, against a plain read of the same bytes.

Builds (or with ``--reuse`` reopens) an Action Genome-size cache with the
AG-scale synthesiser of ``ag_scale.py`` (2048-d float16 ROI and union
features, AG's video, frame and pair counts times ``--scale``), runs the
motion stage and packs one mode's train split, then measures in one run,
on the train split in the first epoch's shuffled order, without the model:

* storage limit: a plain sequential ``numpy`` read of the pack file's bytes;
* packed loader: the batches training gets (``VideoBatches`` over the pack,
  float32 tensors and index tables, as ``train_epoch`` consumes them);
* the packed loader with kernel read-ahead of the next batch (``PackedSplit.read_ahead``);
* ROI-cache loader (reference): the same over the HDF5 ROI cache (the path
  before packs), on the first ``--reference-videos`` videos only;

each with a cold page cache (``posix_fadvise(DONTNEED)`` on the files read;
dropping the system-wide cache needs root and disturbs other users) and a
warm one. Prints frames/s, MB/s and the loader / plain-read ratio (target:
>= 50 % and >= 20,000 frames/s warm).

    python benchmarks/bench_loader.py [--scale 0.1] [--out DIR] [--keep] [--reuse]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from ag_scale import FEATURE_DIM, TEXT_DIM, ag_index
from timing import timed

from pipeline.params import Params

TARGET_RATIO, TARGET_FRAMES = 0.5, 20_000
READ_BLOCK = 64 * 2**20


def prepare(root: Path, scale: float, seed: int, reuse: bool, mode: str = "predcls") -> Params:
    """Synthetic AG-size caches under ``root``, the motion table and the ``mode`` pack (kept when ``reuse``)."""
    import support_path  # noqa: F401  (tests/ on sys.path)
    from support.training_caches import synthetic_params, write_synthetic_caches

    from pipeline.motion import write_motion_table
    from pipeline.training.pack_stage import pack_mode

    if reuse and (root / "roi").is_dir():
        params = synthetic_params(root)
    else:
        frames, objects = ag_index(scale, seed)
        params, seconds = timed(lambda: write_synthetic_caches(
            root, feature_dim=FEATURE_DIM, text_dim=TEXT_DIM, seed=seed, index=(frames, objects), with_motion=False,
        ))  # fmt: skip
        print(
            f"synthesised {frames.height} frames, {frames['video'].n_unique()} videos in {seconds:.0f} s"
        )
    if not Path(params.motion.out_path).is_file():
        _, seconds = timed(
            lambda: write_motion_table(
                params.dataset.index_dir, params.extract.out_dir, params.motion
            )
        )
        print(f"motion stage {seconds:.1f} s")
    summary, seconds = timed(lambda: pack_mode(params, mode))
    print(f"pack {mode}: {summary} in {seconds:.1f} s")
    return params


def evict(paths: list[Path]) -> None:
    """Drop these files' pages from the page cache (the next read comes from the disk)."""
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def plain_read(path: Path) -> int:
    """Read the whole file sequentially into a numpy buffer; return the bytes read."""
    buffer = np.empty(READ_BLOCK, dtype=np.uint8)
    total = 0
    with open(path, "rb", buffering=0) as handle:
        while read := handle.readinto(memoryview(buffer)):
            total += read
    return total


def drain(batches) -> int:
    """Iterate the batches as training does (every tensor made); return the frame count."""
    frames = 0
    for batch, meta in batches:
        assert batch.subject_roi.dtype == torch.float32
        frames += len(meta.frames)
    return frames


def add_cache_arguments(parser: argparse.ArgumentParser) -> None:
    """Where the AG-scale caches live and how they are built; shared with bench_epoch.py."""
    parser.add_argument(
        "--scale", type=float, default=0.1, help="fraction of AG's video and frame counts"
    )
    parser.add_argument(
        "--out", type=Path, help="where to write the caches (default: a new temporary folder)"
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the caches instead of deleting them"
    )
    parser.add_argument(
        "--reuse", action="store_true", help="reuse caches under --out (same --scale and --seed)"
    )
    parser.add_argument("--seed", type=int, default=0)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_cache_arguments(parser)
    parser.add_argument("--mode", default="predcls", choices=["predcls", "sgcls", "sgdet"])
    parser.add_argument(
        "--reference-videos", type=int, default=300, help="videos read through the ROI cache"
    )
    parser.add_argument("--repeats", type=int, default=5, help="warm measurements (median)")
    parser.add_argument("--cold-repeats", type=int, default=3, help="cold measurements (median)")
    parser.add_argument(
        "--prefetch", type=int, default=0, help="batches prefetched by a thread in the packed runs"
    )
    args = parser.parse_args()
    from pipeline.training.data import VideoBatches
    from pipeline.training.mode_data import open_mode
    from pipeline.training.pack import pack_path

    torch.set_num_threads(1)
    root = args.out or Path(tempfile.mkdtemp(prefix="bench_loader_"))
    root.mkdir(parents=True, exist_ok=True)
    try:
        params = prepare(root, args.scale, args.seed, args.reuse, args.mode)
        params = params.model_copy(
            update={"train": params.train.model_copy(update={"prefetch_batches": args.prefetch})}
        )
        pack_file = pack_path(params.train.pack_dir, args.mode, "train")
        roi_file = Path(params.extract.out_dir) / "roi.h5"
        writable = os.access("/proc/sys/vm/drop_caches", os.W_OK)
        print(f"pack {pack_file.stat().st_size / 1e9:.2f} GB, ROI cache {roi_file.stat().st_size / 1e9:.2f} GB; "
              f"/proc/sys/vm/drop_caches {'writable' if writable else 'not writable'} (cold = fadvise DONTNEED)")  # fmt: skip
        print(
            f"load average {os.getloadavg()[0]:.2f}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}"
        )

        rows = []
        with open_mode(params, args.mode, packed=True) as data:
            frames_in_split = len(data.packed.splits["train"].frames)
            bytes_per_frame = pack_file.stat().st_size / frames_in_split

            def plain() -> tuple[float, float]:
                size, seconds = timed(lambda: plain_read(pack_file))
                return size / bytes_per_frame / seconds, size / seconds

            def packed(reopen: bool, read_ahead: bool = False) -> tuple[float, float]:
                """Frames/s and pack bytes/s of one epoch; ``reopen`` counts opening the pack too."""
                started = time.perf_counter()
                source = open_mode(params, args.mode, packed=True) if reopen else data
                source.packed.splits["train"].read_ahead = read_ahead
                batches = source.batches(params, "train", shuffle=True)
                frames = drain(batches)
                seconds = time.perf_counter() - started
                if reopen:
                    source.source.cache.close()
                return frames / seconds, frames * bytes_per_frame / seconds

            cold = []
            for _ in range(args.cold_repeats):
                cold.append([])
                for measure in (
                    plain,
                    lambda: packed(True),
                    lambda: packed(True, read_ahead=True),
                ):
                    evict([pack_file])
                    cold[-1].append(measure())
            for i, name in enumerate(("plain read", "packed loader", "packed, read-ahead")):
                rows.append((f"{name} (cold)", *np.median([c[i] for c in cold], axis=0)))
            # Warm: median of interleaved repeats (the machine is shared; load varies).
            warm = [
                (plain(), packed(reopen=False), packed(reopen=False, read_ahead=True))
                for _ in range(args.repeats)
            ]
            for i, name in enumerate(("plain read", "packed loader", "packed, read-ahead")):
                rows.append((f"{name} (warm)", *np.median([w[i] for w in warm], axis=0)))
            # The path before packs, on a part of the split (it is much slower).
            data.cached.budget = 0  # every epoch reads the groups again, as at AG scale
            reference = VideoBatches(
                data.cached, data.source.videos("train")[: args.reference_videos],
                params.train.batch_videos, params.model.temporal_window,
                with_object_dist=args.mode == "sgdet", shuffle=True, seed=params.train.seed,
            )  # fmt: skip
            evict([roi_file])
            frames, seconds = timed(lambda: drain(reference))
            rows.append(
                ("ROI-cache loader (cold)", frames / seconds, frames * bytes_per_frame / seconds)
            )
            frames, seconds = timed(lambda: drain(reference))
            rows.append(
                ("ROI-cache loader (warm)", frames / seconds, frames * bytes_per_frame / seconds)
            )

        plain_rate = {
            cache: next(r[1] for r in rows if r[0] == f"plain read ({cache})")
            for cache in ("cold", "warm")
        }
        print(
            f"\n{args.mode} train split: {frames_in_split} frames, {bytes_per_frame / 1e3:.1f} kB/frame in the pack"
        )
        print(f"{'path':<26} {'frames/s':>10} {'MB/s':>8} {'vs plain read':>14}")
        for name, rate, byte_rate in rows:
            cache = "cold" if "cold" in name else "warm"
            print(
                f"{name:<26} {rate:10,.0f} {byte_rate / 1e6:8.0f} {rate / plain_rate[cache]:13.0%}"
            )
        for cache in ("cold", "warm"):
            rate = next(r[1] for r in rows if r[0] == f"packed loader ({cache})")
            checks = [f"{rate / plain_rate[cache]:.0%} of plain read (target >= {TARGET_RATIO:.0%}: "
                      f"{'ok' if rate >= TARGET_RATIO * plain_rate[cache] else 'MISSED'})"]  # fmt: skip
            if cache == "warm":
                checks.append(
                    f"{rate:,.0f} frames/s (target >= {TARGET_FRAMES:,}: {'ok' if rate >= TARGET_FRAMES else 'MISSED'})"
                )
            reference = next(r[1] for r in rows if r[0] == f"ROI-cache loader ({cache})")
            checks.append(f"{rate / reference:.1f}x the ROI-cache loader")
            print(f"packed loader, {cache}: " + "; ".join(checks))
        print(f"load average after: {os.getloadavg()[0]:.2f}")
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
