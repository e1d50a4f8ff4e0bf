"""DVC stage: caches -> one mode's train/val training pack (``python stages/pack.py MODE``)."""

import sys

from pipeline.cli import app

if __name__ == "__main__":
    app(["pack", *sys.argv[1:]], prog_name="mosa")
