import os
import pickle

import numpy as np
import pytest

from pipeline.io import DataError, atomic_path, atomic_write_json, safe_load_pickle


class _Payload:
    """Unpickling this calls os.system: the restricted unpickler must never run it."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_code_execution_payload_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "person_bbox.pkl"
    path.write_bytes(pickle.dumps({"a.mp4/000001.png": _Payload(marker)}))
    with pytest.raises(DataError, match=r"unsafe pickle, refused global '(posix|os)\.system'"):
        safe_load_pickle(path)
    assert not marker.exists()


def test_eval_payload_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (eval, ("1+1",))

    path = tmp_path / "x.pkl"
    path.write_bytes(pickle.dumps([Evil()]))
    with pytest.raises(DataError, match="builtins.eval"):
        safe_load_pickle(path)


def test_numpy_and_builtin_containers_load(tmp_path):
    data = {"k": {"bbox": np.arange(8, dtype=np.float32).reshape(2, 4), "size": (3, 4), "s": {"x"}, "f": 1.5}}
    path = tmp_path / "ok.pkl"
    path.write_bytes(pickle.dumps(data, protocol=2))
    back = safe_load_pickle(path)
    assert np.array_equal(back["k"]["bbox"], data["k"]["bbox"]) and back["k"]["size"] == (3, 4)


@pytest.mark.parametrize("content", [b"", b"not a pickle at all", pickle.dumps({"a": list(range(100))})[:20]])
def test_truncated_or_garbage_pickle_names_the_file(tmp_path, content):
    path = tmp_path / "object_bbox_and_relationship.pkl"
    path.write_bytes(content)
    with pytest.raises(DataError, match="object_bbox_and_relationship.pkl: not a readable pickle"):
        safe_load_pickle(path)


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    dest = tmp_path / "out.json"
    atomic_write_json(dest, {"good": 1})
    with pytest.raises(RuntimeError), atomic_path(dest) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash")
    assert dest.read_text().strip().startswith("{") and '"good": 1' in dest.read_text()
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]
