"""Relation-head training step throughput: CPU vs CUDA, in one run.

Random R101-sized inputs (2048-d ROI and union features, 384-d text), the
default `model` settings from params.yaml, batches of whole videos. Prints
frames/s on each available device and the ratio to the CPU, so the numbers
are comparable only within one run on one machine.

    python benchmarks/bench_head_device.py [--videos 4] [--frames 24] [--steps 20]
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import support_path  # noqa: F401  (tests/ on sys.path)
import torch
from support.model_inputs import random_batch, random_spec

from pipeline.constants import NUM_PREDICATES
from pipeline.loss import RelationLoss
from pipeline.model.mosa import MOSA
from pipeline.params import Params


def _to(batch, device):
    return dataclasses.replace(
        batch, **{f.name: getattr(batch, f.name).to(device) for f in dataclasses.fields(batch) if isinstance(getattr(batch, f.name), torch.Tensor)}
    )


def frames_per_second(device: str, videos: int, frames: int, steps: int) -> float:
    params = Params()
    spec = random_spec(roi_dim=2048, union_dim=2048, text_dim=384, motion_dim=len(params.model.mfe_attributes))
    torch.manual_seed(0)
    model = MOSA(params.model, spec, classify_objects=False).to(device)
    counts = torch.randint(5, 500, (NUM_PREDICATES,), generator=torch.Generator().manual_seed(0)).numpy()
    loss_fn = RelationLoss(params.model.loss, counts).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    batch = _to(random_batch(spec, frames_per_video=(frames,) * videos, num_attributes=len(params.model.mfe_attributes),
                             window=params.model.temporal_window), device)  # fmt: skip
    for step in range(steps + 3):  # 3 warm-up steps
        if step == 3:
            if device == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
        losses = loss_fn(model(batch), batch)
        optimizer.zero_grad()
        losses["total"].backward()
        optimizer.step()
    if device == "cuda":
        torch.cuda.synchronize()
    return steps * videos * frames / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=4)
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    results = {d: frames_per_second(d, args.videos, args.frames, args.steps) for d in devices}
    name = torch.cuda.get_device_name(0) if "cuda" in results else "no CUDA device"
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, {name}")
    for device, fps in results.items():
        print(f"{device:>5}: {fps:10.1f} frames/s  ({fps / results['cpu']:.1f}x CPU)")


if __name__ == "__main__":
    main()
