"""Turning expected failures into one-line messages for stages and the CLI."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from pipeline.io import DataError, is_disk_full
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
        except OSError as err:
            # Stages report a full disk through pipeline.io with their folder
            # and size; this catches a library writing on its own (dvclive).
            if not is_disk_full(err):
                raise
            where = Path(err.filename).parent if err.filename else Path.cwd()
            print(
                f"error: {where}: no space left on device; free some space, then rerun",
                file=sys.stderr,
            )
            raise SystemExit(2) from None

    return wrapper  # type: ignore[return-value]
