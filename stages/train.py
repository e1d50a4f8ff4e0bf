"""DVC stage: caches -> trained MOSA relation head of one mode (``python stages/train.py MODE``).

Also runs under ``torchrun`` (DDP, one rank per process).
"""

import sys

from pipeline.params import load_params
from pipeline.training.train_stage import run_train_stage
from pipeline.user_errors import one_line_errors


@one_line_errors
def main(mode: str) -> None:
    run_train_stage(load_params(), mode)


if __name__ == "__main__":
    main(*sys.argv[1:2] or [""])
