"""DVC stage: trained head of one mode -> test predictions, AG metrics, per-predicate recall."""

import sys

from pipeline.cli import app

if __name__ == "__main__":
    app(["evaluate-model", *sys.argv[1:]], prog_name="mosa")
