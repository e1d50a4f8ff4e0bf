"""The contract every fuzz property asserts, and the junk values it feeds.

A reader given any file ends in a valid result or a :class:`DataError` /
:class:`ParamsError` whose message is one line naming the file. Any other
exception escapes the property and fails it with its traceback: that is the
bug the fuzz suite is looking for.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from pipeline.io import DataError
from pipeline.params import ParamsError


@contextlib.contextmanager
def one_line_error_or_result(*names: str | Path) -> Iterator[list[str]]:
    """Let the block finish, or accept a user error that is one line and names one of ``names``.

    Yields a list that holds the message when the block failed.
    """
    message: list[str] = []
    try:
        yield message
    except (DataError, ParamsError) as err:
        text = str(err)
        assert text and "\n" not in text, f"multi-line error: {text!r}"
        assert any(str(name) in text for name in names), f"error names none of {names}: {text}"
        message.append(text)


def flip_bit(data: bytes, position: int) -> bytes:
    position %= max(len(data), 1)
    if not data:
        return data
    return data[:position] + bytes([data[position] ^ (1 << (position % 8))]) + data[position + 1 :]


numbers = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-3, 3).map(np.int64),
    st.floats(-1e3, 1e3, width=32).map(np.float32),
)
scalars = st.one_of(st.none(), st.booleans(), numbers, st.text(max_size=8), st.binary(max_size=8))
arrays = hnp.arrays(
    dtype=st.sampled_from([np.float32, np.float64, np.int64, np.bool_, np.dtype("U3")]),
    shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=5),
)
# Any nesting of dicts, lists, tuples, numpy arrays, None, strings and numbers.
junk = st.recursive(
    st.one_of(scalars, arrays),
    lambda inner: st.one_of(
        st.lists(inner, max_size=5),
        st.lists(inner, max_size=5).map(tuple),
        st.dictionaries(st.one_of(st.text(max_size=6), st.integers(-2, 2)), inner, max_size=4),
    ),
    max_leaves=12,
)
