"""Benchmark: vectorised evaluator vs the straightforward per-frame oracle.

Random problem of Action Genome test size (50,000 frames, about 3 predicted
pairs each); both evaluators run each constraint on the same data in this
process, and their frame recalls must agree exactly.

    python benchmarks/bench_evaluator.py [--frames 50000] [--pairs 3] [--seed 0]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]  # runnable without installing the package

from evaluation_oracle import evaluate_oracle, random_problem  # noqa: E402
from timing import timed  # noqa: E402

from pipeline.evaluation import evaluate  # noqa: E402
from pipeline.params import EvaluateParams  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=50_000)
    parser.add_argument("--pairs", type=float, default=3.0, help="mean predicted pairs per frame")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    (gt, pred), gen_s = timed(lambda: random_problem(np.random.default_rng(args.seed), args.frames, args.pairs))
    print(f"{gt.num_frames} frames, {len(pred)} pairs, {gt.num_triplets} ground-truth triplets (generated in {gen_s:.1f} s)")
    settings = EvaluateParams()
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs (wall-clock times below)")
    print("fast: first call (cold) and best of 3 (warm); oracle: one run. Speed-up uses the warm time.")
    print(f"{'constraint':<11}{'fast cold s':>12}{'fast warm s':>12}{'oracle s':>10}{'speed-up':>10}{'R@20 %':>9}{'max |diff|':>12}")
    totals = np.zeros(3)
    for constraint in ("with", "semi", "no"):
        runs = [timed(lambda c=constraint: evaluate(gt, pred, settings, constraints=(c,))[c]) for _ in range(3)]
        fast, cold_s, warm_s = runs[0][0], runs[0][1], min(t for _, t in runs)
        oracle, oracle_s = timed(lambda c=constraint: evaluate_oracle(gt, pred, c, settings))
        diff = float(np.abs(fast.frame_recall - oracle["frame_recall"]).max())
        diff = max(diff, float(np.abs(fast.predicate_hits - oracle["predicate_hits"]).max()))
        totals += (cold_s, warm_s, oracle_s)
        print(
            f"{constraint:<11}{cold_s:>12.3f}{warm_s:>12.3f}{oracle_s:>10.2f}{oracle_s / warm_s:>9.1f}x"
            f"{fast.metrics()['R@20']:>9.2f}{diff:>12.1e}"
        )
    print(f"{'sum':<11}{totals[0]:>12.3f}{totals[1]:>12.3f}{totals[2]:>10.2f}{totals[2] / totals[1]:>9.1f}x")
    _, all_s = timed(lambda: evaluate(gt, pred, settings))
    print(f"all three constraints in one call (matching shared): {all_s:.3f} s")


if __name__ == "__main__":
    main()
