"""The steps of ``benchmarks/device_check.sh``: one GPU check or measurement per call, one line each.

    python benchmarks/device_check.py {ops,extract,epoch,autocast} [--dry-run]

* ``ops``: mmcv's CUDA RoIAlign and NMS against their CPU results on random
  inputs (RoIAlign within an absolute tolerance, NMS keeping the same boxes,
  with and without STTran's +1 box offset);
* ``extract``: frames/s of the extract stage's per-batch work
  (:class:`~pipeline.extraction.forward.FrameExtractor`) with STTran's
  ResNet-101 C4 detector (random weights in jwyang's layout, converted as
  ``mosa import-detector sttran`` does) on synthetic 480x270 frames;
* ``epoch``: one PredCls training epoch on the GPU from the pack of an
  Action Genome-size synthetic cache at ``--scale`` (0.1: 758 train videos);
* ``autocast``: relation-head training steps with and without bf16 autocast.

``--dry-run`` imports what the step needs and prints what it would time,
without touching a GPU (so it runs anywhere). Exit status 1 when a check
fails, 2 when no CUDA device is visible.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import tempfile
import time
from pathlib import Path

import support_path  # noqa: F401  (tests/ on sys.path)
import torch
from timing import timed

ROOT = Path(__file__).resolve().parents[1]
ROI_ALIGN_TOLERANCE = 1e-4  # float32, 7x7 bins of bilinear samples
AG_FRAME = (270, 480)  # height, width of most AG frames


def sync() -> None:
    if torch.cuda.is_initialized():
        torch.cuda.synchronize()


def synchronized(func):
    """``(func(), seconds)`` with the GPU's queued work included."""

    def run():
        out = func()
        sync()
        return out

    sync()
    return timed(run)


def device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "the CPU"


def peak_memory(device: torch.device) -> str:
    if device.type != "cuda":
        return ""
    return f"; peak GPU memory {torch.cuda.max_memory_allocated(device) / 2**30:.1f} GiB"


def random_boxes(
    count: int, width: float, height: float, generator: torch.Generator
) -> torch.Tensor:
    corners = torch.rand(count, 2, generator=generator) * torch.tensor([width * 0.9, height * 0.9])
    sizes = (
        torch.rand(count, 2, generator=generator) * torch.tensor([width * 0.5, height * 0.5]) + 2.0
    )
    return torch.cat([corners, (corners + sizes).minimum(torch.tensor([width, height]))], dim=1)


def step_ops(args: argparse.Namespace) -> bool:
    from mmcv.ops import nms, roi_align

    what = (
        f"ops: RoIAlign ({args.rois} RoIs, 7x7, 256x38x67 maps) and NMS ({args.boxes} boxes, "
        f"IoU 0.7, offsets 0 and 1), CUDA against CPU, RoIAlign tolerance {ROI_ALIGN_TOLERANCE:g}"
    )
    if args.dry_run:
        print(f"would time {what}")
        return True
    g = torch.Generator().manual_seed(0)
    maps = torch.randn(2, 256, 38, 67, generator=g)  # C4 (stride 16) of a 600x1067 input
    boxes = random_boxes(args.rois, 1067.0, 600.0, g)
    rois = torch.cat([torch.randint(0, 2, (args.rois, 1), generator=g).float(), boxes], dim=1)
    align = lambda m, r: roi_align(m, r, (7, 7), 1 / 16, 0, "avg", True)  # noqa: E731
    cpu, cpu_s = timed(lambda: align(maps, rois))
    maps_gpu, rois_gpu = maps.to(args.device), rois.to(args.device)
    align(maps_gpu, rois_gpu)  # warm-up
    gpu, gpu_s = synchronized(lambda: align(maps_gpu, rois_gpu))
    error = (gpu.cpu() - cpu).abs().max().item()
    align_ok = error <= ROI_ALIGN_TOLERANCE

    nms_boxes = random_boxes(args.boxes, 1067.0, 600.0, g)
    scores = torch.rand(args.boxes, generator=g)
    same = []
    for offset in (0, 1):
        _, keep_cpu = nms(nms_boxes, scores, 0.7, offset=offset)
        _, keep_gpu = nms(nms_boxes.to(args.device), scores.to(args.device), 0.7, offset=offset)
        same.append((torch.equal(keep_cpu, keep_gpu.cpu()), len(keep_cpu), len(keep_gpu)))
    nms_ok = all(equal for equal, _, _ in same)
    kept = ", ".join(
        f"offset {o}: {c} vs {g_} kept{'' if e else ' DIFFERENT'}"
        for o, (e, c, g_) in enumerate(same)
    )
    print(
        f"ops: RoIAlign max |CUDA - CPU| {error:.2e} (tolerance {ROI_ALIGN_TOLERANCE:g}) "
        f"{'ok' if align_ok else 'FAILED'}, {cpu_s * 1e3:.0f} ms CPU / {gpu_s * 1e3:.2f} ms CUDA; "
        f"NMS {'same boxes' if nms_ok else 'FAILED'} ({kept})"
    )
    return align_ok and nms_ok


def step_extract(args: argparse.Namespace) -> bool:
    import cv2
    import numpy as np
    from mmengine.dataset import Compose
    from support import sttran_oracle

    from pipeline.detector.import_sttran import STTRAN_CONFIG, STTRAN_POSTPROCESS, import_sttran
    from pipeline.detector.model import load_detector
    from pipeline.extraction.forward import FrameExtractor
    from pipeline.extraction.frame_records import FrameRecord
    from pipeline.params import DetectionPostprocessParams

    what = (
        f"extract: STTran R101-C4 (random weights), {args.frames} synthetic 480x270 frames "
        f"(resized to 1067x600), batches of {args.batch}, FrameExtractor on {args.device}"
    )
    if args.dry_run:
        print(f"would time {what}")
        return True
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        jwyang = folder / "faster_rcnn_ag.pth"
        state = sttran_oracle.random_jwyang_state(seed=0, stage_blocks=(3, 4, 23, 3))
        torch.save({"model": state, "pooling_mode": "align"}, jwyang)
        checkpoint = import_sttran(jwyang, folder / "sttran", ROOT / STTRAN_CONFIG)
        detector = load_detector(ROOT / STTRAN_CONFIG, checkpoint, args.device)
        height, width = AG_FRAME
        records = []
        for i in range(args.frames):
            small = rng.integers(0, 256, size=(height // 8, width // 8, 3)).astype(np.uint8)
            path = folder / f"{i:06d}.png"
            cv2.imwrite(str(path), cv2.resize(small, (width, height)))
            corners = rng.uniform(0, 1, (6, 4)) * [width, height, width, height]
            low, high = (
                np.minimum(corners[:, :2], corners[:, 2:]),
                np.maximum(corners[:, :2], corners[:, 2:]),
            )
            boxes = np.concatenate([low, high + 4], axis=1)
            labels = np.concatenate([[0], rng.integers(1, 36, 5)]).astype(np.int16)
            records.append(FrameRecord(frame=f"synth.mp4/{i:06d}.png", video="synth.mp4", frame_number=i,
                                       width=width, height=height, path=path, gt_boxes=boxes,
                                       gt_labels=labels, gt_small=np.zeros(6, bool)))  # fmt: skip
        pipeline = Compose(detector.cfg.test_pipeline)
        items, decode_s = timed(
            lambda: [
                pipeline({"img_path": str(r.path), "img_id": i}) for i, r in enumerate(records)
            ]
        )
        extractor = FrameExtractor(
            detector, DetectionPostprocessParams(**STTRAN_POSTPROCESS), args.device
        )
        extractor(
            items[: args.batch], records[: args.batch]
        )  # warm-up (cuDNN picks its algorithms)

        def run():
            done = []
            for start in range(0, len(items), args.batch):
                done += extractor(
                    items[start : start + args.batch], records[start : start + args.batch]
                )
            return done

        results, seconds = synchronized(run)
    finite = all(
        np.isfinite(r.gt_features).all() and np.isfinite(r.det_features).all() for r in results
    )
    dets = sum(len(r.det_boxes) for r in results)
    print(
        f"extract: {len(results) / seconds:.1f} frames/s on {device_name(args.device)} "
        f"({len(results)} frames in {seconds:.1f} s, batch {args.batch}, {dets} detections, "
        f"features {'finite' if finite else 'NOT FINITE'}); decoding alone {args.frames / decode_s:.0f} frames/s "
        f"(1 CPU thread, excluded){peak_memory(args.device)}"
    )
    return finite and len(results) == args.frames


def step_epoch(args: argparse.Namespace) -> bool:
    from bench_loader import prepare

    from pipeline.distributed import Ranks
    from pipeline.training.mode_data import open_mode
    from pipeline.training.train_stage import build_training
    from pipeline.training.trainer import train_epoch

    what = (
        f"epoch: synthesise an AG-size cache at scale {args.scale}, motion stage, PredCls pack "
        f"(CPU, printed apart), then one PredCls training epoch from the pack on {args.device}"
    )
    if args.dry_run:
        print(f"would time {what}")
        return True
    device = args.device
    with tempfile.TemporaryDirectory(prefix="device_check_") as tmp:
        params, prepare_s = timed(lambda: prepare(Path(tmp), args.scale, seed=0, reuse=False))
        with open_mode(params, "predcls", packed=True) as data:
            model, loss_fn = build_training(params, data)
            model, loss_fn = model.to(device), loss_fn.to(device)
            optimizer = torch.optim.AdamW(model.parameters(), lr=params.train.lr)
            batches = data.batches(params, "train", shuffle=True, pin_memory=device.type == "cuda")
            batches.set_epoch(0)
            ranks = Ranks(rank=0, world_size=1, device=device)
            (losses, frames), seconds = synchronized(
                lambda: train_epoch(
                    model, loss_fn, optimizer, batches, params.train.grad_clip, ranks=ranks
                )
            )
    loss = losses.get("total", math.nan)
    print(
        f"epoch: PredCls at scale {args.scale}: {frames} frames, {len(batches)} batches in {seconds:.1f} s "
        f"= {frames / seconds:,.0f} frames/s on {device_name(device)} (first epoch, warm-up included), mean loss {loss:.4f}; "
        f"cache + pack prepared on the CPU in {prepare_s:.0f} s"
    )
    return math.isfinite(loss) and frames > 0


def step_autocast(args: argparse.Namespace) -> bool:
    from support.model_inputs import random_batch, random_spec

    from pipeline.constants import NUM_PREDICATES
    from pipeline.loss import RelationLoss
    from pipeline.model.mosa import MOSA
    from pipeline.params import Params

    what = (
        f"autocast: relation-head training steps (R101-sized 2048-d inputs, {args.videos} videos x "
        f"{args.video_frames} frames, {args.steps} steps) in float32 and under bf16 autocast, on {args.device}"
    )
    if args.dry_run:
        print(f"would time {what}")
        return True
    params = Params()
    spec = random_spec(
        roi_dim=2048, union_dim=2048, text_dim=384, motion_dim=len(params.model.mfe_attributes)
    )
    counts = torch.randint(
        5, 500, (NUM_PREDICATES,), generator=torch.Generator().manual_seed(0)
    ).numpy()
    batch = random_batch(spec, frames_per_video=(args.video_frames,) * args.videos,
                         num_attributes=len(params.model.mfe_attributes), window=params.model.temporal_window)  # fmt: skip
    batch = dataclasses.replace(batch, **{
        f.name: getattr(batch, f.name).to(args.device) for f in dataclasses.fields(batch) if isinstance(getattr(batch, f.name), torch.Tensor)
    })  # fmt: skip

    def run(bf16: bool) -> tuple[float, float]:
        torch.manual_seed(0)
        model = MOSA(params.model, spec, classify_objects=False).to(args.device)
        loss_fn = RelationLoss(params.model.loss, counts).to(args.device)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
        first, start = math.nan, 0.0
        for step in range(args.steps + 3):  # 3 warm-up steps
            if step == 3:
                sync()
                start = time.perf_counter()
            with torch.autocast(args.device.type, dtype=torch.bfloat16, enabled=bf16):
                losses = loss_fn(model(batch), batch)
            if step == 0:
                first = float(losses["total"].detach())
            optimizer.zero_grad()
            losses["total"].backward()
            optimizer.step()
        sync()
        return args.steps * args.videos * args.video_frames / (time.perf_counter() - start), first

    (fp32, loss32), (bf16, loss16) = run(False), run(True)
    gap = abs(loss16 - loss32) / max(abs(loss32), 1e-12)
    ok = math.isfinite(loss16) and gap < 0.05
    print(
        f"autocast: relation head {fp32:,.0f} frames/s float32, {bf16:,.0f} frames/s bf16 autocast "
        f"({bf16 / fp32:.2f}x); first-step loss {loss32:.4f} vs {loss16:.4f} "
        f"({gap:.1%} apart, {'ok' if ok else 'FAILED: over 5%'})"
    )
    return ok


STEPS = {"ops": step_ops, "extract": step_extract, "epoch": step_epoch, "autocast": step_autocast}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("step", choices=sorted(STEPS))
    parser.add_argument(
        "--dry-run", action="store_true", help="print what would be timed; no GPU needed"
    )
    parser.add_argument(
        "--device", default="cuda", help="cuda, or cpu to try a step's code on a small size"
    )
    parser.add_argument("--rois", type=int, default=1000, help="ops: RoIs")
    parser.add_argument(
        "--boxes", type=int, default=6000, help="ops: NMS input boxes (the RPN's pre-NMS count)"
    )
    parser.add_argument("--frames", type=int, default=200, help="extract: synthetic frames")
    parser.add_argument(
        "--batch", type=int, default=8, help="extract: frames per batch (extract.batch_frames)"
    )
    parser.add_argument(
        "--scale", type=float, default=0.1, help="epoch: fraction of Action Genome's size"
    )
    parser.add_argument("--videos", type=int, default=4, help="autocast: videos per batch")
    parser.add_argument("--video-frames", type=int, default=24, help="autocast: frames per video")
    parser.add_argument("--steps", type=int, default=20, help="autocast: timed steps")
    args = parser.parse_args()
    args.device = torch.device(args.device)
    if not args.dry_run and args.device.type == "cuda" and not torch.cuda.is_available():
        print(
            f"{args.step}: no CUDA device visible (torch {torch.__version__}, CUDA {torch.version.cuda})"
        )
        return 2
    return 0 if STEPS[args.step](args) else 1


if __name__ == "__main__":
    sys.exit(main())
