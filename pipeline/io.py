"""Safe file primitives shared by every stage.

* :func:`atomic_path` / :func:`atomic_write_bytes` / :func:`atomic_write_json`:
  write to a temporary file in the destination folder, fsync, then rename, so
  a crash never leaves a half-written output where a later stage reads it.
* :func:`read_parquet` / :func:`open_hdf5`: open a cache file written by an
  earlier stage, turning a missing or damaged file into a :class:`DataError`
  that names it and the stage to rerun. Parquet and HDF5 both record their
  own length (a Parquet footer, the HDF5 superblock's end-of-file address),
  so a truncated file is detected on opening rather than read.
* :func:`safe_load_pickle`: a restricted unpickler for annotation files that
  come from the internet. Only builtin containers/scalars and numpy arrays and
  dtypes are allowed; any other global (``os.system``, ``builtins.eval``, ...)
  is refused before it can run.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import pickle
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


class UnsafePickleError(pickle.UnpicklingError):
    """A pickle asked for a global outside the allow-list."""


class DataError(ValueError):
    """A one-line, user-facing error about input data (names the file or frame)."""


@contextlib.contextmanager
def atomic_path(dest: str | Path, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path next to ``dest``; rename it onto ``dest`` on success.

    On an exception the temporary file is removed and ``dest`` is untouched.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=suffix + ".tmp", dir=dest.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    # mkstemp creates 0600; outputs should get the usual umask-based mode.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    try:
        yield tmp
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write_bytes(dest: str | Path, data: bytes) -> None:
    with atomic_path(dest) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(dest: str | Path, text: str) -> None:
    atomic_write_bytes(dest, text.encode())


def atomic_write_json(dest: str | Path, obj: Any) -> None:
    atomic_write_text(dest, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def read_parquet(path: str | Path, stage: str, **kwargs: Any):
    """``polars.read_parquet(path, **kwargs)``; a missing or damaged file names ``stage`` to rerun."""
    import polars as pl

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: missing; run the {stage} stage first (dvc repro {stage})")
    try:
        return pl.read_parquet(path, **kwargs)
    except (pl.exceptions.PolarsError, OSError) as err:
        raise DataError(f"{path}: not a readable Parquet file ({type(err).__name__}); rerun the {stage} stage (dvc repro {stage})") from None


def open_hdf5(path: str | Path, stage: str):
    """``h5py.File(path, "r")``; a missing or damaged file names ``stage`` to rerun."""
    import h5py

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: missing; run the {stage} stage first (dvc repro {stage})")
    try:
        return h5py.File(path, "r")
    except OSError as err:
        raise DataError(f"{path}: not a readable HDF5 file ({err}); rerun the {stage} stage (dvc repro {stage})") from None


# (module, name) pairs a legitimate AG pickle may reference. numpy moved its
# internals from numpy.core to numpy._core in 2.0; pickles from either era load.
_ALLOWED_GLOBALS: frozenset[tuple[str, str]] = frozenset(
    {
        ("builtins", name)
        for name in ("dict", "list", "tuple", "set", "frozenset", "int", "float", "str", "bytes", "bool", "complex", "slice")
    }
    | {("collections", "OrderedDict"), ("collections", "defaultdict")}
    # protocol <= 2 pickles store bytes as latin-1 text re-encoded by this; it
    # only converts str to bytes.
    | {("_codecs", "encode")}
    | {
        (module, name)
        for module in ("numpy.core.multiarray", "numpy._core.multiarray")
        for name in ("_reconstruct", "scalar")
    }
    | {("numpy", "ndarray"), ("numpy", "dtype")}
    | {("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer")}
)


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if module == "__builtin__":  # Python 2 era pickles (protocol <= 2)
            module = "builtins"
        if (module, name) in _ALLOWED_GLOBALS:
            return super().find_class(module, name)
        if module == "numpy" and name.endswith("DType") or module == "numpy.dtypes":
            # numpy>=1.25 pickles dtypes as numpy.dtypes.Float32DType etc.
            return super().find_class(module, name)
        raise UnsafePickleError(f"refused global '{module}.{name}' (only builtin containers and numpy arrays are allowed)")


def safe_load_pickle(path: str | Path) -> Any:
    """Load a pickle through the allow-list; raise :class:`DataError` naming the file."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise DataError(f"{path}: cannot read ({err.strerror})") from None
    try:
        return _RestrictedUnpickler(io.BytesIO(data), encoding="latin1").load()
    except UnsafePickleError as err:
        raise DataError(f"{path}: unsafe pickle, {err}; refusing to load it") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as err:
        raise DataError(f"{path}: not a readable pickle ({type(err).__name__}: {err}); re-download the annotation file") from None
