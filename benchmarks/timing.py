"""Shared by the benchmark scripts (each runs with this folder on sys.path)."""

from __future__ import annotations

import time


def timed(func):
    """``(func(), seconds)``, wall clock."""
    start = time.perf_counter()
    out = func()
    return out, time.perf_counter() - start
