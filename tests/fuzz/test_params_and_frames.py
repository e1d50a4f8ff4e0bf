"""Fuzzing ``params.yaml`` and the PNG frames.

params.yaml: random YAML documents, random bytes, and the default settings
with one key at a time given a value of the wrong type. Frames: truncated,
zero-byte, bit-flipped, wrong-mode and wrong-size PNGs, read by
``mosa validate`` (a problem list) and by the frame loader of ``mosa show``
and the report (an RGB image or a one-line error naming the file).
"""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

import pytest
import yaml
from ag_fixtures import video, write_root
from hypothesis import example, given
from hypothesis import strategies as st
from PIL import Image

from fuzz.contract import flip_bit, one_line_error_or_result
from pipeline.ag.validate import ERROR, validate_root
from pipeline.params import Params, load_params
from pipeline.viz.drawing import load_frame

yaml_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=10)),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=10,
)
DEFAULTS = Params().model_dump()
KEY_PATHS = [
    (section,) if not isinstance(value, dict) else (section, key)
    for section, value in DEFAULTS.items()
    for key in (value if isinstance(value, dict) else [None])
]
KEY_PATHS = [tuple(p for p in path if p is not None) for path in KEY_PATHS]


def _with_value(path: tuple[str, ...], value) -> dict:
    data = {section: dict(v) if isinstance(v, dict) else v for section, v in DEFAULTS.items()}
    target = data
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    return data


params_files = st.one_of(
    st.binary(max_size=120),
    st.text(max_size=120).map(str.encode),
    yaml_values.map(lambda v: yaml.safe_dump(v).encode()),
    st.tuples(st.sampled_from(KEY_PATHS), yaml_values).map(
        lambda t: yaml.safe_dump(_with_value(*t)).encode()
    ),
)


@given(params_files)
@example(b"\xff\xfe\x00")  # not UTF-8
@example(b"[" * 2000)  # deeper than the YAML parser's stack
def test_params_yaml_loads_or_fails_in_one_line(data):
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "params.yaml"
        path.write_bytes(data)
        with one_line_error_or_result(path):
            assert isinstance(load_params(path), Params)


@pytest.mark.parametrize("path", KEY_PATHS, ids=".".join)
def test_a_wrong_type_at_every_key_names_the_key(tmp_path, path):
    file = tmp_path / "params.yaml"
    file.write_text(yaml.safe_dump(_with_value(path, {"not": ["a", "setting"]})))
    with one_line_error_or_result(file) as failed:
        load_params(file)
    assert failed and ".".join(path) in failed[0]


# ----------------------------------------------------------------------- frames

SIZE = (320, 240)
MODES = ["1", "L", "LA", "P", "RGB", "RGBA", "I;16"]


def png_bytes(mode: str, size: tuple[int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size).save(buffer, format="PNG")
    return buffer.getvalue()


frame_files = st.one_of(
    st.just(b""),
    st.binary(max_size=64),
    st.tuples(st.sampled_from(MODES), st.sampled_from([SIZE, (64, 48), (1, 1)])).map(
        lambda t: png_bytes(*t)
    ),
    st.tuples(st.integers(0, 10**6), st.sampled_from(MODES)).map(
        lambda t: png_bytes(t[1], SIZE)[: t[0] % len(png_bytes(t[1], SIZE))]
    ),
    st.tuples(st.integers(0, 10**6), st.sampled_from(MODES)).map(
        lambda t: flip_bit(png_bytes(t[1], SIZE), t[0])
    ),
)


@pytest.fixture(scope="module")
def frame_root(tmp_path_factory) -> Path:
    return write_root(tmp_path_factory.mktemp("ag"), *video("PNG", [1, 2, 3]), frames=True)


@given(frame_files)
@example(b"")
def test_damaged_frames_are_listed_or_refused_in_one_line(frame_root, data):
    key = "PNG.mp4/000002.png"
    path = frame_root / "frames" / key
    good = path.read_bytes()
    try:
        path.write_bytes(data)
        problems = validate_root(frame_root, check_frames=True)
        assert all("\n" not in str(p) for p in problems)
        with one_line_error_or_result(path) as failed:
            image = load_frame(frame_root, key)
        if not failed:
            assert image.mode == "RGB"
        readable_right_size = False
        if not failed:
            readable_right_size = image.size == SIZE
        if not readable_right_size:
            assert any(p.severity == ERROR and str(path) in p.where for p in problems), problems
    finally:
        path.write_bytes(good)
