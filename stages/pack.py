"""DVC stage: caches -> one mode's train/val training pack (``python stages/pack.py MODE``)."""

import sys

from pipeline.params import load_params
from pipeline.training.pack_stage import run_pack_stage
from pipeline.user_errors import one_line_errors


@one_line_errors
def main(mode: str) -> None:
    run_pack_stage(load_params(), mode)


if __name__ == "__main__":
    main(*sys.argv[1:2] or [""])
