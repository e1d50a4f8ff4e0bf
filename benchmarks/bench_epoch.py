"""A whole PredCls training epoch at Action Genome scale: loader time, compute time and overhead, in one run.

On the caches of ``bench_loader.py`` (AG's sizes times ``--scale``, packed),
measures on the train split, in the first epoch's order and from the same
initial model:

1. loader only: every batch assembled from the pack, no model;
2. compute only: forward, loss, backward and optimiser step on the same
   batches, assembled beforehand ``--chunk`` batches at a time (not timed);
3. the epoch as training runs it (``train_epoch`` over the packed batches,
   with ``train.prefetch_batches`` batches prefetched by a thread);

and prints each time, frames/s and the epoch / (loader + compute) ratio
(target <= 1.3). Steps 2 and 3 must give the same mean loss: prefetching
changes no result.

    python benchmarks/bench_epoch.py [--scale 0.1] [--out DIR --keep --reuse] [--threads 0] [--videos N]
"""

from __future__ import annotations

import argparse
import copy
import os
import shutil
import tempfile
from pathlib import Path

import torch
from bench_loader import add_cache_arguments, drain, prepare
from timing import timed

TARGET_RATIO = 1.3


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_cache_arguments(parser)
    parser.add_argument("--threads", type=int, default=0, help="train.threads (0: all cores)")
    parser.add_argument("--videos", type=int, help="train on this many videos of the epoch only")
    parser.add_argument(
        "--chunk", type=int, default=32, help="batches held in memory at a time for compute-only"
    )
    args = parser.parse_args()
    from pipeline.training.mode_data import open_mode
    from pipeline.training.train_stage import build_training, set_threads
    from pipeline.training.trainer import train_epoch

    root = args.out or Path(tempfile.mkdtemp(prefix="bench_epoch_"))
    root.mkdir(parents=True, exist_ok=True)
    try:
        params = prepare(root, args.scale, args.seed, args.reuse)
        params = params.model_copy(
            update={"train": params.train.model_copy(update={"threads": args.threads})}
        )
        threads = set_threads(params.train.threads)
        with open_mode(params, "predcls", packed=True) as data:
            model, loss_fn = build_training(params, data)
            initial = copy.deepcopy(model.state_dict())
            batches = data.batches(params, "train", shuffle=True)
            if args.videos:
                batches.videos = batches.videos[: args.videos]
            batches.set_epoch(0)
            print(f"load average {os.getloadavg()[0]:.2f}, {os.cpu_count()} cores, torch threads {threads}, "
                  f"{len(batches.videos)} videos, {len(batches)} batches, prefetch {batches.prefetch}")  # fmt: skip

            def fresh() -> tuple[torch.nn.Module, torch.optim.Optimizer]:
                model.load_state_dict(initial)
                torch.manual_seed(params.train.seed)
                return model, torch.optim.AdamW(model.parameters(), lr=params.train.lr)

            prefetch, batches.prefetch = batches.prefetch, 0
            drain(batches)  # warm the page cache: both timed runs read from RAM
            # Warm up the model's kernels (first calls allocate and pick algorithms).
            warm_up = [item for _, item in zip(range(2), batches, strict=False)]
            warm_model, warm_optimizer = fresh()
            train_epoch(warm_model, loss_fn, warm_optimizer, warm_up, params.train.grad_clip)
            frames, loader_seconds = timed(lambda: drain(batches))

            compute_seconds, compute_losses, steps = 0.0, [], iter(batches)
            trained, optimizer = fresh()
            while chunk := [item for _, item in zip(range(args.chunk), steps, strict=False)]:
                (losses, _), seconds = timed(
                    lambda chunk=chunk: train_epoch(
                        trained, loss_fn, optimizer, chunk, params.train.grad_clip
                    )
                )
                compute_seconds += seconds
                compute_losses.append((losses.get("total", 0.0), len(chunk)))

            batches.prefetch = prefetch
            trained, optimizer = fresh()
            (losses, epoch_frames), epoch_seconds = timed(
                lambda: train_epoch(trained, loss_fn, optimizer, batches, params.train.grad_clip)
            )
        assert epoch_frames == frames
        compute_loss = sum(loss * n for loss, n in compute_losses) / sum(
            n for _, n in compute_losses
        )
        ratio = epoch_seconds / (loader_seconds + compute_seconds)
        print(f"\n{'part':<24} {'seconds':>8} {'frames/s':>10}")
        for name, seconds in (("loader only", loader_seconds), ("compute only", compute_seconds),
                              ("loader + compute", loader_seconds + compute_seconds), ("whole epoch", epoch_seconds)):  # fmt: skip
            print(f"{name:<24} {seconds:8.2f} {frames / seconds:10,.0f}")
        print(f"overhead (epoch - compute): {epoch_seconds - compute_seconds:.2f} s, "
              f"{(epoch_seconds - compute_seconds) / epoch_seconds:.0%} of the epoch")  # fmt: skip
        print(
            f"epoch / (loader + compute) = {ratio:.2f} (target <= {TARGET_RATIO}: {'ok' if ratio <= TARGET_RATIO else 'MISSED'})"
        )
        print(
            f"mean loss: compute-only {compute_loss:.6f}, whole epoch {losses.get('total', 0.0):.6f}"
        )
        print(f"{frames} frames; load average after: {os.getloadavg()[0]:.2f}")
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
