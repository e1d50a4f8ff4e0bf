"""Every DVC stage script is thin: it loads params and calls one ``run_<stage>_stage`` of the library.

Each of those functions takes the parsed params (and the mode, for the
per-mode stages) and nothing else a stage script would have to pick apart.
"""

from __future__ import annotations

import ast
import importlib
import inspect
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = sorted((REPO / "stages").glob("*.py"))
PER_MODE = {"train", "evaluate", "pack"}


def stage_calls(script: Path) -> list[tuple[str, str]]:
    """(module, function) of every ``run_*_stage`` a stage script imports."""
    found = []
    for node in ast.walk(ast.parse(script.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("pipeline"):
            found += [(node.module, a.name) for a in node.names if a.name.startswith("run_") and a.name.endswith("_stage")]
    return found


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.stem)
def test_stage_script_calls_one_run_stage_function_of_params(script):
    calls = stage_calls(script)
    assert len(calls) == 1, f"{script.name}: imports {calls}; a stage calls exactly one run_<stage>_stage"
    module, name = calls[0]
    assert name == f"run_{script.stem}_stage", f"{script.name}: calls {name}"
    parameters = list(inspect.signature(getattr(importlib.import_module(module), name)).parameters.values())
    required = [p.name for p in parameters if p.default is inspect.Parameter.empty]
    assert required == (["params", "mode"] if script.stem in PER_MODE else ["params"]), f"{module}.{name}{required}"
    assert parameters[0].annotation in ("Params", "'Params'"), f"{module}.{name}: takes the parsed Params"
