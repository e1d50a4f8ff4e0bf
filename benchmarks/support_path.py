"""Puts ``tests/`` on ``sys.path`` so benchmarks can use the builders in ``tests/support``.

The library never imports test code; benchmarks are the one other user of
those builders, and import this module first.
"""

import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1] / "tests"
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))
