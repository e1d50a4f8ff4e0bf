"""DVC stage: trained head of one mode -> test predictions, AG metrics, per-predicate recall."""

import sys

from pipeline.cli import app

if __name__ == "__main__":
    app(["evaluate", *sys.argv[1:]])
