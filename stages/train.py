"""DVC stage: caches -> trained MOSA relation head of one mode (``python stages/train.py MODE``)."""

import sys

from pipeline.cli import app

if __name__ == "__main__":
    app(["train", *sys.argv[1:]], prog_name="mosa")
