"""Turning expected failures into one-line messages for stages and the CLI."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import TypeVar

from pipeline.io import DataError
from pipeline.params import ParamsError

F = TypeVar("F", bound=Callable)

# Errors a user can fix from the message alone; anything else is a bug and
# keeps its traceback.
USER_ERRORS = (ParamsError, DataError, FileNotFoundError)


def one_line_errors(func: F) -> F:
    """Print user errors as ``error: <message>`` and exit 2 instead of a traceback."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except USER_ERRORS as err:
            print(f"error: {err}", file=sys.stderr)
            raise SystemExit(2) from None

    return wrapper  # type: ignore[return-value]
