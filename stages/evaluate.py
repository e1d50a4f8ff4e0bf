"""DVC stage: trained head of one mode -> test predictions (+ relation embeddings), AG metrics, per-predicate recall."""

import sys

from pipeline.params import load_params
from pipeline.training.evaluate_stage import run_evaluate_stage
from pipeline.user_errors import one_line_errors


@one_line_errors
def main(mode: str) -> None:
    run_evaluate_stage(load_params(), mode)


if __name__ == "__main__":
    main(*sys.argv[1:2] or [""])
