"""Fuzzing the Action Genome annotation pickles and class/frame-list text files.

The pickles are built from a clean three-frame video, then damaged: any
field, a whole entry or the whole file replaced by junk (any nesting of
dicts, lists, tuples, numpy arrays, None, strings and numbers), keys removed
or added. ``mosa validate`` must return its problem list and the reader an
index or a one-line error naming the file; a root the validator passes must
also read.
"""

from __future__ import annotations

import copy
import pickle
import tempfile
from pathlib import Path

import numpy as np
import pytest
from ag_fixtures import obj, person, video, write_root
from hypothesis import example, given
from hypothesis import strategies as st
from typer.testing import CliRunner

from fuzz.contract import junk, one_line_error_or_result
from pipeline.ag.layout import (
    FRAME_LIST_TXT,
    OBJECT_CLASSES_TXT,
    OBJECT_PKL,
    PERSON_PKL,
    RELATIONSHIP_CLASSES_TXT,
    read_object_classes,
    read_predicates,
)
from pipeline.ag.reader import load_action_genome
from pipeline.ag.validate import ERROR, Problem, validate_root
from pipeline.cli import app
from pipeline.constants import OBJECT_CLASSES, PREDICATES, raw_object_name, raw_predicate_name

KEYS = [f"FUZZ.mp4/{n:06d}.png" for n in (1, 2, 3, 4)]
PERSON_FIELDS = ["bbox", "bbox_score", "bbox_size", "bbox_mode", "keypoints", "keypoints_logits"]
RETYPES = ["str", "str_items", "nested", "scalar", "object_array", "empty"]
OBJECT_FIELDS = [
    "class",
    "bbox",
    "attention_relationship",
    "spatial_relationship",
    "contacting_relationship",
    "metadata",
    "visible",
]


def clean_pickles() -> tuple[dict, dict]:
    """Three good frames, one frame without a person box and an invisible object."""
    person_bbox, object_bbox = video("FUZZ", [1, 2, 3, 4])
    person_bbox[KEYS[3]] = person(box=None)
    object_bbox[KEYS[1]].append(obj(cls="book", visible=False))
    return person_bbox, object_bbox


# One damage: (target, frame, field, value). Targets: a person field, an
# object field, a whole entry, a missing or an extra key, the whole file.
damages = st.one_of(
    st.tuples(
        st.just("person_retype"),
        st.sampled_from(KEYS),
        st.sampled_from(PERSON_FIELDS),
        st.sampled_from(RETYPES),
    ),
    st.tuples(
        st.just("object_retype"),
        st.sampled_from(KEYS),
        st.sampled_from(OBJECT_FIELDS),
        st.sampled_from(RETYPES),
    ),
    st.tuples(st.just("person_field"), st.sampled_from(KEYS), st.sampled_from(PERSON_FIELDS), junk),
    st.tuples(st.just("object_field"), st.sampled_from(KEYS), st.sampled_from(OBJECT_FIELDS), junk),
    st.tuples(st.just("metadata_set"), st.sampled_from(KEYS), st.just("set"), junk),
    st.tuples(
        st.sampled_from(["person_entry", "object_entry", "object_list_item"]),
        st.sampled_from(KEYS),
        st.none(),
        junk,
    ),
    st.tuples(
        st.just("drop_person_key"), st.sampled_from(KEYS), st.sampled_from(PERSON_FIELDS), st.none()
    ),
    st.tuples(
        st.just("drop_object_key"), st.sampled_from(KEYS), st.sampled_from(OBJECT_FIELDS), st.none()
    ),
    st.tuples(
        st.sampled_from(["extra_person_key", "extra_object_key"]),
        st.sampled_from(KEYS),
        st.text(max_size=5),
        junk,
    ),
    st.tuples(
        st.sampled_from(["extra_frame_person", "extra_frame_object"]),
        st.one_of(junk, st.text()),
        st.none(),
        junk,
    ),
    st.tuples(st.sampled_from(["person_file", "object_file"]), st.none(), st.none(), junk),
)


def retyped(value, how: str):
    """``value`` in a plausible wrong type: the slips of a hand-edited or converted file."""
    items = list(value) if isinstance(value, (list, tuple, np.ndarray)) else [value]
    if how == "str":
        return str(value)
    if how == "str_items":
        return [str(item) for item in items]
    if how == "nested":
        return [items]
    if how == "scalar":
        return items[0] if items else None
    if how == "object_array":
        return np.array(items + [None], dtype=object)[:-1]
    return type(value)() if isinstance(value, (list, tuple, dict, str)) else []


def damage(person_bbox: dict, object_bbox: dict, how) -> tuple[object, object]:
    target, key, field, value = how
    if target == "person_retype":
        person_bbox[key][field] = retyped(person_bbox[key][field], value)
    elif target == "object_retype":
        object_bbox[key][0][field] = retyped(object_bbox[key][0][field], value)
    elif target == "person_field":
        person_bbox[key][field] = value
    elif target == "object_field":
        object_bbox[key][0][field] = value
    elif target == "metadata_set":
        object_bbox[key][0]["metadata"]["set"] = value
    elif target == "person_entry":
        person_bbox[key] = value
    elif target == "object_entry":
        object_bbox[key] = value
    elif target == "object_list_item":
        object_bbox[key][0] = value
    elif target == "drop_person_key":
        person_bbox[key].pop(field, None)
    elif target == "drop_object_key":
        object_bbox[key][0].pop(field, None)
    elif target == "extra_person_key":
        person_bbox[KEYS[0]][key] = value
    elif target == "extra_object_key":
        object_bbox[KEYS[0]][0][key] = value
    elif target == "extra_frame_person":
        person_bbox[key] = value
    elif target == "extra_frame_object":
        object_bbox[key] = value
    elif target == "person_file":
        return value, object_bbox
    elif target == "object_file":
        return person_bbox, value
    return person_bbox, object_bbox


def write_pickles(root: Path, person_bbox, object_bbox) -> None:
    (root / PERSON_PKL).write_bytes(pickle.dumps(person_bbox, protocol=4))
    (root / OBJECT_PKL).write_bytes(pickle.dumps(object_bbox, protocol=4))


@pytest.fixture(scope="module")
def clean_root(tmp_path_factory) -> Path:
    return write_root(tmp_path_factory.mktemp("ag"), *clean_pickles(), frames=False)


def assert_problem_list(problems) -> list[Problem]:
    for problem in problems:
        assert isinstance(problem, Problem)
        assert "\n" not in str(problem), str(problem)
    return problems


def check_contract(root: Path, person_bbox, object_bbox) -> None:
    write_pickles(root, person_bbox, object_bbox)
    problems = assert_problem_list(validate_root(root, check_frames=False))
    with one_line_error_or_result(root) as failed:
        load_action_genome(root)
    if not any(p.severity == ERROR for p in problems):
        assert not failed, f"the validator passed a root the reader refuses: {failed}"


def test_the_clean_fixture_reads(clean_root):
    assert [p.kind for p in validate_root(clean_root, check_frames=False)] == ["no_person_box"]
    assert load_action_genome(clean_root).frames.height == 3


@given(st.lists(damages, min_size=1, max_size=3))
# the issue's regression cases: a list instead of a dict, a string person bbox
@example([("person_file", None, None, [1, "a"])])
@example([("person_field", KEYS[0], "bbox", "10, 20, 60, 200")])
def test_damaged_pickles_give_problems_or_a_one_line_error(clean_root, how):
    person_bbox, object_bbox = clean_pickles()
    for step in how:
        try:
            person_bbox, object_bbox = damage(person_bbox, object_bbox, step)
        except (KeyError, IndexError, TypeError, AttributeError):
            pass  # an earlier step already replaced the container this one edits
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        (root / "annotations").mkdir()
        for rel in (OBJECT_CLASSES_TXT, RELATIONSHIP_CLASSES_TXT, FRAME_LIST_TXT):
            (root / rel).write_bytes((clean_root / rel).read_bytes())
        check_contract(root, person_bbox, object_bbox)


def test_validate_command_lists_the_issue_cases_without_a_traceback(tmp_path):
    person_bbox, object_bbox = clean_pickles()
    root = write_root(tmp_path / "ag", person_bbox, object_bbox, frames=False)
    cases = {
        "list": ([1, "a"], object_bbox, "holds a list, expected a dict keyed by frame"),
        "string bbox": (
            {**person_bbox, KEYS[0]: {**person_bbox[KEYS[0]], "bbox": "1, 2, 3, 4"}},
            object_bbox,
            "is not an (N, 4) array",
        ),
    }
    for name, (person_data, object_data, expected) in cases.items():
        write_pickles(root, person_data, object_data)
        result = CliRunner().invoke(app, ["validate", "--no-frames", str(root)])
        assert (
            result.exit_code == 1
            and result.exception is None
            or isinstance(result.exception, SystemExit)
        ), name
        assert expected in result.output and "Traceback" not in result.output, result.output
        index = CliRunner().invoke(app, ["index", "--params", str(_params_for(tmp_path, root))])
        assert index.exit_code == 2 and isinstance(index.exception, SystemExit), (
            name,
            index.output,
        )
        assert len(index.output.strip().splitlines()) == 1 and str(root) in index.output


def _params_for(tmp_path: Path, root: Path) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(f"dataset:\n  root: {root}\n  index_dir: {tmp_path / 'index'}\n")
    return path


# ------------------------------------------------------------------ text files

OBJECT_LINES = [raw_object_name(n) for n in OBJECT_CLASSES[1:]]
PREDICATE_LINES = [raw_predicate_name(n) for n in PREDICATES]


def _edited(lines: list[str]):
    """The official lines with names dropped, repeated, swapped, added or garbled."""
    edit = st.one_of(
        st.tuples(st.just("drop"), st.integers(0, 99), st.none()),
        st.tuples(st.just("repeat"), st.integers(0, 99), st.none()),
        st.tuples(st.just("swap"), st.integers(0, 99), st.none()),
        st.tuples(st.just("insert"), st.integers(0, 99), st.text(max_size=12)),
        st.tuples(st.just("replace"), st.integers(0, 99), st.text(max_size=12)),
    )

    def apply(edits) -> list[str]:
        out = list(lines)
        for kind, at, text in edits:
            i = at % max(len(out), 1)
            if kind == "drop" and out:
                out.pop(i)
            elif kind == "repeat" and out:
                out.insert(i, out[i])
            elif kind == "swap" and len(out) > 1:
                out[i], out[i - 1] = out[i - 1], out[i]
            elif kind in ("insert", "replace"):
                if kind == "replace" and out:
                    out.pop(i)
                out.insert(i, text)
        return out

    return st.lists(edit, max_size=3).map(apply)


def _encoded(lines_strategy):
    encodings = st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "latin-1", "cp1252"])
    endings = st.sampled_from(["\n", "\r\n", "\r"])
    return st.tuples(lines_strategy, encodings, endings).map(
        lambda t: t[2].join(t[0]).encode(t[1], errors="replace")
    )


text_files = st.one_of(
    st.just(b""),
    st.binary(max_size=200),
    _encoded(_edited(OBJECT_LINES)),
    _encoded(_edited(PREDICATE_LINES)),
)


@given(text_files, st.sampled_from([OBJECT_CLASSES_TXT, RELATIONSHIP_CLASSES_TXT, FRAME_LIST_TXT]))
@example(b"\xff\xfe" + "bag\n".encode("utf-16-le"), OBJECT_CLASSES_TXT)
def test_class_and_frame_list_files(clean_root, data, rel):
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        (root / "annotations").mkdir()
        for other in (
            PERSON_PKL,
            OBJECT_PKL,
            OBJECT_CLASSES_TXT,
            RELATIONSHIP_CLASSES_TXT,
            FRAME_LIST_TXT,
        ):
            (root / other).write_bytes((clean_root / other).read_bytes())
        (root / rel).write_bytes(data)
        for read, expected in (
            (read_object_classes, ["__background__", *OBJECT_CLASSES[1:]]),
            (read_predicates, list(PREDICATES)),
        ):
            with one_line_error_or_result(root / rel) as failed:
                names = read(root)
            if not failed:
                assert names == expected
        problems = assert_problem_list(validate_root(root, check_frames=False))
        with one_line_error_or_result(root) as failed:
            load_action_genome(root)
        if not any(p.severity == ERROR for p in problems):
            assert not failed


def test_numpy_scalars_and_arrays_where_the_format_has_python_values_still_read(tmp_path):
    """Not every odd type is an error: the official pickles mix numpy and Python values."""
    person_bbox, object_bbox = clean_pickles()
    person_bbox[KEYS[0]]["bbox_size"] = np.array([320, 240])
    object_bbox[KEYS[0]][0]["bbox"] = np.array([100.0, 50.0, 30.0, 40.0], np.float32)
    object_bbox[KEYS[0]][0]["visible"] = np.bool_(True)
    root = write_root(tmp_path / "ag", copy.deepcopy(person_bbox), object_bbox, frames=False)
    assert [p.kind for p in validate_root(root, check_frames=False)] == ["no_person_box"]
    assert load_action_genome(root).frames.height == 3
