"""Safe file primitives shared by every stage.

* :func:`atomic_path` / :func:`atomic_write_bytes` / :func:`atomic_write_json`:
  write to a temporary file in the destination folder, fsync, then rename, so
  a crash never leaves a half-written output where a later stage reads it.
* :func:`atomic_dir`: the same for a folder of many files (staged next to
  it, swapped in when complete).
* :func:`disk_full_as_error`: turns "no space left on device" into a
  :class:`DiskFullError` naming the folder and roughly how much space the
  step needs; :func:`atomic_path` applies it to every file it writes, and a
  stage writing many files wraps itself in it with its own estimate.
* :func:`read_parquet` (decoded by pyarrow, :func:`parquet_table`) / :func:`open_hdf5`: open a cache file written by an
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
import errno
import hashlib
import io
import json
import os
import pickle
import shutil
import struct
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any


class UnsafePickleError(pickle.UnpicklingError):
    """A pickle asked for a global outside the allow-list."""


class DataError(ValueError):
    """A one-line, user-facing error about input data (names the file or frame)."""


# What PIL raises for a damaged image file, besides OSError: SyntaxError for
# a broken PNG chunk, ValueError for a truncated header, struct.error for a
# short field. Catch them only around opening and decoding an image.
UNREADABLE_IMAGE_ERRORS = (OSError, SyntaxError, ValueError, struct.error)


class DiskFullError(DataError):
    """The disk filled up while writing an output; the message names the folder and the space needed."""


_DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
# Writers that drop the errno on the way up keep only the system's message:
# h5py ("errno = 28"), polars' ComputeError ("os error 28"), torch's zip
# writer (a RuntimeError).
_DISK_FULL_TEXTS = (os.strerror(errno.ENOSPC), os.strerror(errno.EDQUOT), "errno = 28", "os error 28")


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one, as under ``taskset``)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def is_disk_full(err: BaseException) -> bool:
    """Whether ``err`` is the system's "no space left on device" (or quota exceeded)."""
    if isinstance(err, DiskFullError):
        return True
    if isinstance(err, OSError) and err.errno is not None:
        return err.errno in _DISK_FULL_ERRNOS
    return any(text in str(err) for text in _DISK_FULL_TEXTS)


def human_size(n_bytes: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n_bytes < 1000:
            return f"{n_bytes:.0f} {unit}"
        n_bytes /= 1000
    return f"{n_bytes:.1f} TB"


def _free_bytes(folder: Path) -> int | None:
    for candidate in (folder, *folder.parents):
        if candidate.exists():
            return shutil.disk_usage(candidate).free
    return None


@contextlib.contextmanager
def disk_full_as_error(folder: str | Path, needed_bytes: int | Callable[[], int]) -> Iterator[None]:
    """Turn a full disk inside the block into a :class:`DiskFullError` about ``folder``.

    ``needed_bytes`` (or a callable giving it when the disk fills, so it can
    extrapolate from what was written) is the rough size of the whole output.
    An inner :class:`DiskFullError` is restated with this block's folder and
    estimate, so a stage reports its own output, not one file of it. Cleaning
    up is the caller's job (:func:`atomic_path` removes its temporary file).
    """
    try:
        yield
    except Exception as err:  # only a full disk is converted; anything else propagates as it was
        if not is_disk_full(err):
            raise
        folder = Path(folder)
        needed = needed_bytes() if callable(needed_bytes) else needed_bytes
        free = _free_bytes(folder)
        have = "" if free is None else f"{human_size(free)} free; "
        need = f"this output needs about {human_size(needed)} or more" if needed > 0 else "this output needs more"
        raise DiskFullError(
            f"{folder}: no space left on device ({have}{need}); free some space or write it to another disk, then rerun"
        ) from None


@contextlib.contextmanager
def atomic_path(dest: str | Path, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path next to ``dest``; rename it onto ``dest`` on success.

    On an exception the temporary file is removed and ``dest`` is untouched.
    A full disk becomes a :class:`DiskFullError` naming the folder; the space
    needed is estimated as the larger of what was written before the disk
    filled and the previous ``dest``.
    """
    dest = Path(dest)
    written = [0]  # bytes in the temporary file when it was removed

    def needed() -> int:
        return max(written[0], dest.stat().st_size if dest.is_file() else 0)

    with disk_full_as_error(dest.parent, needed):
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
                written[0] = tmp.stat().st_size
                tmp.unlink()


@contextlib.contextmanager
def atomic_dir(dest: str | Path) -> Iterator[Path]:
    """Yield an empty staging folder next to ``dest``; it replaces ``dest`` on success.

    On an exception (a full disk included) the staging folder is removed and
    ``dest`` is untouched. A staging folder left by a killed run is cleared
    first.
    """
    dest = Path(dest)
    staging = dest.with_name(f".{dest.name}.partial")
    if staging.exists():
        shutil.rmtree(staging)
    try:
        staging.mkdir(parents=True)
        yield staging
        if dest.exists():
            shutil.rmtree(dest)
        staging.rename(dest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def tree_size(folder: str | Path) -> int:
    """Bytes in the files under ``folder`` (0 if it does not exist)."""
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file())


def atomic_write_bytes(dest: str | Path, data: bytes) -> None:
    with atomic_path(dest) as tmp:
        tmp.write_bytes(data)


def atomic_torch_save(obj: Any, dest: str | Path, suffix: str = "") -> None:
    """``torch.save`` through :func:`atomic_path`, serialised in memory first:
    torch's file writer reports a full disk as an iostream error without the
    errno, where a plain write keeps it."""
    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    with atomic_path(dest, suffix=suffix) as tmp:
        tmp.write_bytes(buffer.getbuffer())


def atomic_write_text(dest: str | Path, text: str) -> None:
    atomic_write_bytes(dest, text.encode())


def atomic_write_json(dest: str | Path, obj: Any) -> None:
    atomic_write_text(dest, json.dumps(obj, indent=2, sort_keys=True) + "\n")


class ParquetError(Exception):
    """A Parquet file that cannot be decoded (the message is pyarrow's, first line)."""


def parquet_table(path: str | Path, columns: list[str] | None = None):
    """A Parquet file as a polars DataFrame, decoded by pyarrow.

    polars' own reader can panic (printing a Rust backtrace) or abort the
    process on a damaged file, where pyarrow checks the sizes and offsets
    it reads and raises; the validated table converts to polars without a
    copy.
    """
    import polars as pl
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path, columns=columns)
        # full validation also checks the UTF-8 of string columns, which
        # polars would otherwise trust (and panic on)
        table.validate(full=True)
        # the same for the schema's key-value metadata, which nothing here reads
        table = pa.Table.from_arrays(table.columns, names=table.column_names)
    except (pa.ArrowException, OSError, ValueError) as err:
        raise ParquetError(str(err).splitlines()[0] if str(err) else type(err).__name__) from None
    return pl.from_arrow(table)


def read_parquet(path: str | Path, stage: str, schema: dict | None = None):
    """A Parquet file written by ``stage`` as a polars DataFrame; a missing or damaged file names ``stage`` to rerun.

    With ``schema`` ({column: polars type}) the table is checked and returned
    with exactly those columns in that order and type; a missing column or
    one that does not cast (a file from an older version, or a damaged
    footer) is a :class:`DataError` too.
    """

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: missing; run the {stage} stage first (dvc repro {stage})")
    rerun = f"rerun the {stage} stage (dvc repro {stage})"
    try:
        table = parquet_table(path)
    except ParquetError as err:
        raise DataError(f"{path}: not a readable Parquet file ({err}); {rerun}") from None
    if schema is None:
        return table
    missing = [name for name in schema if name not in table.columns]
    if missing:
        raise DataError(f"{path}: no column(s) {', '.join(missing)} (an older format, or damaged); {rerun}")
    for name, dtype in schema.items():
        if table.schema[name] != dtype:
            raise DataError(f"{path}: column '{name}' is {table.schema[name]}, expected {dtype} (an older format, or damaged); {rerun}")
    return table.select(list(schema))


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


def sha256_file(path: str | Path, chunk_bytes: int = 1 << 22) -> str:
    """Hex SHA-256 of a file's bytes, read in chunks (checkpoints and caches are gigabytes)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk_bytes):
            digest.update(block)
    return digest.hexdigest()
