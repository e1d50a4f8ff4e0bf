"""Benchmark: training time of the default detector config against the previous default, in one run.

Both configs train for a few iterations on the synthetic train split (the
index and frames the ``index`` stage wrote) with the batch size from
params.yaml, alternating baseline and candidate so that load changes on a
shared machine hit both alike. The per-iteration ratio times the ratio of
the scheduled iteration counts is the ratio of full training times; it is
also turned into seconds from the baseline's full training time measured on
an idle machine (``--baseline-seconds``, default 335 s = 5 min 35 s).

    python benchmarks/bench_detector.py [--iterations 20] [--rounds 2] [--baseline-iterations 300]

What channels-last convolutions save (same network, same schedule):

    python benchmarks/bench_detector.py --baseline benchmarks/configs/detector_nchw.py \
        --baseline-batch 4 --baseline-iterations 1400
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO)]  # runnable without installing the package

from pipeline.detector.model import load_config, register_mmdet  # noqa: E402
from pipeline.detector.train import build_runner_config, write_coco_split  # noqa: E402
from pipeline.params import load_params  # noqa: E402

BASELINE = Path(__file__).resolve().parent / "configs" / "detector_previous_default.py"


def seconds_per_iteration(
    config: Path, iterations: int, batch_size: int, params, work: Path
) -> float:
    """Wall seconds per training iteration, the first 3 (warm-up) iterations excluded."""
    from mmengine.hooks import Hook
    from mmengine.runner import Runner

    train = params.detector.train.model_copy(
        update={"iterations": iterations + 3, "batch_size": batch_size}
    )
    detector = params.detector.model_copy(
        update={"config": str(config), "work_dir": str(work / config.stem), "train": train}
    )
    train_json = work / config.stem / "coco_train.json"
    write_coco_split(params.dataset.index_dir, "train", load_config(config), train_json)
    runner = Runner.from_cfg(
        build_runner_config(detector, params.dataset.root, train_json, train_json)
    )
    times: list[float] = []

    class Clock(Hook):
        def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
            self.start = time.perf_counter()

        def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
            times.append(time.perf_counter() - self.start)

    runner.register_hook(Clock())
    runner.train()
    return sum(times[3:]) / len(times[3:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--iterations", type=int, default=20, help="timed iterations per config and round"
    )
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--baseline", type=Path, default=BASELINE, help="the baseline config")
    parser.add_argument(
        "--baseline-iterations", type=int, default=300, help="the baseline's scheduled iterations"
    )
    parser.add_argument("--baseline-batch", type=int, default=8, help="the baseline's batch size")
    parser.add_argument(
        "--baseline-seconds", type=float, default=335.0, help="its full training time, idle machine"
    )
    args = parser.parse_args()
    params = load_params(REPO / "params.yaml")
    candidate = REPO / params.detector.config
    register_mmdet()
    baseline = args.baseline.resolve()
    per_iteration = {baseline: [], candidate: []}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.rounds):
            for config, batch in (
                (baseline, args.baseline_batch),
                (candidate, params.detector.train.batch_size),
            ):
                per_iteration[config].append(
                    seconds_per_iteration(config, args.iterations, batch, params, Path(tmp))
                )
    base = min(per_iteration[baseline])
    new = min(per_iteration[candidate])
    total_ratio = new * params.detector.train.iterations / (base * args.baseline_iterations)
    print(f"load average at the end: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    print(
        f"baseline  {baseline.name}: {base:.3f} s/iteration x {args.baseline_iterations} iterations"
    )
    print(
        f"candidate {candidate.name}: {new:.3f} s/iteration x {params.detector.train.iterations} iterations"
    )
    print(f"per-iteration ratio {new / base:.3f}; full-training ratio {total_ratio:.3f}")
    print(f"expected full training on an idle machine: {total_ratio * args.baseline_seconds:.0f} s "
          f"(baseline {args.baseline_seconds:.0f} s)")  # fmt: skip


if __name__ == "__main__":
    main()
