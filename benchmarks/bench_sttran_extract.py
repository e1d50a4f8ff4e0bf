"""Cost of extraction with STTran's ResNet-101 C4 detector, on CPU, against the synthetic default.

Random weights in jwyang's key layout (full ResNet-101 depth) go through
``mosa import-detector sttran``'s conversion into
``configs/detector/faster_rcnn_r101_c4_sttran_ag.py``. AG-sized frames
(480x270, resized to 1067x600 as STTran does) are run in batches of
same-size frames through what the extract stage runs per batch: backbone,
RPN (6000 -> 100 proposals), layer4 on the proposals, STTran's
post-processing, and layer4 on ground-truth and union boxes. Printed:
frames/s per batch size, peak RSS, and the ratio to the synthetic default
detector (R18-FPN at 256x192) measured in the same run.

    OMP_NUM_THREADS=2 python benchmarks/bench_sttran_extract.py [--frames 8] [--batches 1 4]

``--save-jwyang PATH`` only writes such a random full-depth checkpoint in
jwyang's layout (for trying ``mosa import-detector sttran`` and ``dvc repro``
without the real weights) and exits.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
from pathlib import Path

import cv2
import numpy as np
import support_path  # noqa: F401  (tests/ on sys.path)
import torch
from support import sttran_oracle
from support.tiny_detector import write_random_checkpoint
from timing import timed

from pipeline.detector.import_sttran import STTRAN_CONFIG, import_sttran
from pipeline.detector.model import box_features, decode_and_detect, load_detector
from pipeline.detector.postprocess import postprocess_detections
from pipeline.params import DetectionPostprocessParams

ROOT = Path(__file__).resolve().parents[1]
SYNTH_CONFIG = ROOT / "configs/detector/faster_rcnn_r18_synth.py"
AG_FRAME = (270, 480)  # height, width of most AG frames
SYNTH_FRAME = (192, 256)
GT_BOXES = 6  # person + objects per AG frame, about the AG mean


def write_frames(folder: Path, count: int, size: tuple[int, int]) -> list[Path]:
    rng = np.random.default_rng(0)
    paths = []
    for i in range(count):
        small = rng.integers(0, 256, size=(size[0] // 8, size[1] // 8, 3)).astype(np.uint8)
        path = folder / f"frame_{size[0]}_{i:03d}.png"
        cv2.imwrite(str(path), cv2.resize(small, (size[1], size[0])))
        paths.append(path)
    return paths


@torch.no_grad()
def run_batch(detector, pipeline, paths, post, rng):
    model = detector.model
    feats, raw, samples = decode_and_detect(detector, paths, pipeline)
    rois = []
    for i, (result, sample) in enumerate(zip(raw, samples, strict=True)):
        postprocess_detections(result.bboxes, result.scores, detector.ag_labels, post)
        height, width = sample.metainfo["img_shape"]
        corners = torch.as_tensor(rng.uniform(0, 1, (GT_BOXES, 4)), dtype=torch.float32)
        boxes = torch.cat(
            [corners[:, :2].minimum(corners[:, 2:]), corners[:, :2].maximum(corners[:, 2:])], 1
        )
        boxes = boxes * torch.tensor([width, height, width, height])
        unions = torch.cat(
            [boxes[:1, :2].minimum(boxes[1:, :2]), boxes[:1, 2:].maximum(boxes[1:, 2:])], 1
        )
        both = torch.cat([boxes, unions])
        rois.append(torch.cat([torch.full((len(both), 1), float(i)), both], 1))
    box_features(model, feats, torch.cat(rois))


def frames_per_second(detector, paths, batch, post, repeats=1):
    from mmengine.dataset import Compose

    pipeline = Compose(detector.cfg.test_pipeline)
    rng = np.random.default_rng(1)
    run_batch(detector, pipeline, paths[:batch], post, rng)  # warm-up
    seconds = 0.0
    for _ in range(repeats):
        for start in range(0, len(paths) - batch + 1, batch):
            _, took = timed(
                lambda s=start: run_batch(detector, pipeline, paths[s : s + batch], post, rng)
            )
            seconds += took
    done = repeats * (len(paths) // batch) * batch
    return done / seconds


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--save-jwyang", type=Path, default=None)
    args = parser.parse_args()
    if args.save_jwyang is not None:
        args.save_jwyang.parent.mkdir(parents=True, exist_ok=True)
        state = sttran_oracle.random_jwyang_state(seed=0, stage_blocks=(3, 4, 23, 3))
        torch.save({"model": state, "pooling_mode": "align"}, args.save_jwyang)
        print(f"wrote {args.save_jwyang}")
        return
    print(f"torch threads: {torch.get_num_threads()}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        synth_ckpt = folder / "synth.pth"
        write_random_checkpoint(SYNTH_CONFIG, synth_ckpt)
        synth = load_detector(SYNTH_CONFIG, synth_ckpt)
        synth_paths = write_frames(folder, args.frames, SYNTH_FRAME)
        baseline = frames_per_second(synth, synth_paths, 1, DetectionPostprocessParams())
        rss_before = peak_rss_mb()
        print(
            f"synthetic default (R18-FPN, 256x192), batch 1: {baseline:.2f} frames/s; peak RSS {rss_before:.0f} MB"
        )

        jw_path = folder / "faster_rcnn_ag.pth"
        state = sttran_oracle.random_jwyang_state(seed=0, stage_blocks=(3, 4, 23, 3))
        torch.save({"model": state, "pooling_mode": "align"}, jw_path)
        _, import_s = timed(lambda: import_sttran(jw_path, folder / "sttran", ROOT / STTRAN_CONFIG))
        print(f"import-detector sttran (R101, random weights): {import_s:.1f} s")
        sttran = load_detector(ROOT / STTRAN_CONFIG, folder / "sttran" / "faster_rcnn_ag_mmdet.pth")
        post = DetectionPostprocessParams(
            nms_offset=1,
            max_objects=None,
            person_fallback=False,
            det_features="proposal",
            det_labels="renormalised",
        )
        ag_paths = write_frames(folder, args.frames, AG_FRAME)
        for batch in args.batches:
            fps = frames_per_second(sttran, ag_paths, batch, post)
            print(
                f"STTran R101-C4 (480x270 -> 1067x600), batch {batch}: {fps:.3f} frames/s "
                f"({baseline / fps:.1f}x slower than the synthetic default); peak RSS {peak_rss_mb():.0f} MB"
            )


if __name__ == "__main__":
    main()
