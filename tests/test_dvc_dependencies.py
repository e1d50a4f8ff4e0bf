"""dvc.yaml cannot drift from the code: every stage declares what it imports and what it reads.

Three checks:

* **Imports.** For every stage, the ``pipeline`` modules its script imports
  (transitively, imports inside functions and package ``__init__`` files
  included, plus the modules a detector config loads through
  ``custom_imports``) must each be covered by a ``deps`` entry; a folder
  dependency covers its files.
* **Params.** A stage that declares a section by key declares every key of
  it, except the run-only keys of :data:`pipeline.params.RUN_ONLY_KEYS`, and
  never declares a run-only key (so changing a device or a thread count reruns
  nothing).
* **Reads.** Each stage runs, on a tiny dataset, in a folder that holds only
  its declared deps, ``params.yaml`` and nothing else of the project: the
  library code it may import is limited to its declared modules too. A stage
  that opens an undeclared file fails there. Stages that tolerate a missing
  input (motion without the ROI cache, the report without metrics) are
  checked by what they write.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
import yaml
from support.import_closure import import_closure
from support.tiny_detector import write_tiny_config

from pipeline.params import RUN_ONLY_KEYS, Params

REPO = Path(__file__).resolve().parents[1]


def resolved_stages(root: Path) -> list:
    """DVC's own reading of dvc.yaml (foreach expanded, ``${...}`` interpolated), in file order."""
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        return [
            {
                "name": stage.addressing,
                "cmd": stage.cmd,
                "deps": [dep.def_path for dep in stage.deps if not hasattr(dep, "params")],
                "params": [key for dep in stage.deps if hasattr(dep, "params") for key in dep.params],
                "outs": [out.def_path for out in stage.outs],
            }
            for stage in repo.index.stages
        ]


def covered(path: Path, deps: list[str]) -> bool:
    return any(path == Path(dep) or Path(dep) in path.parents for dep in deps)


def _config_literal(node: ast.expr):
    """A config value written as a literal or as ``dict(key=literal, ...)`` (mmengine's usual style)."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "dict":
        return {keyword.arg: _config_literal(keyword.value) for keyword in node.keywords}
    return ast.literal_eval(node)


def config_imports(config: Path, root: Path) -> set[Path]:
    """Files a detector config pulls in: its ``_base_`` configs and its ``custom_imports`` modules."""
    found: set[Path] = set()
    for node in ast.walk(ast.parse(config.read_text())):
        if not isinstance(node, ast.Assign) or not isinstance(node.targets[0], ast.Name):
            continue
        name = node.targets[0].id
        if name == "_base_":
            value = ast.literal_eval(node.value)
            for base in [value] if isinstance(value, str) else value:
                base_path = (config.parent / base).resolve()
                found.add(base_path.relative_to(root))
                found |= config_imports(base_path, root)
        elif name == "custom_imports":
            for module in _config_literal(node.value).get("imports", []):
                script = root.joinpath(*module.split(".")).with_suffix(".py")
                found.add(script.relative_to(root))
                found |= import_closure(script, root)
    return found


def script_of(cmd: str) -> Path:
    words = cmd.split()
    return Path(next(word for word in words if word.startswith("stages/") and word.endswith(".py")))


STAGES = resolved_stages(REPO)


@pytest.mark.parametrize("stage", STAGES, ids=[s["name"] for s in STAGES])
def test_every_imported_module_is_a_declared_dependency(stage):
    script = script_of(stage["cmd"])
    needed = {script} | import_closure(REPO / script, REPO)
    for dep in stage["deps"]:
        if dep.startswith("configs/") and dep.endswith(".py"):
            needed |= config_imports(REPO / dep, REPO)
    missing = sorted(str(path) for path in needed if not covered(path, stage["deps"]))
    assert not missing, f"{stage['name']}: add to its deps in dvc.yaml: {missing}"


def test_the_import_check_sees_a_planted_omission():
    stage = next(s for s in STAGES if s["name"] == "evaluate@predcls")
    script = script_of(stage["cmd"])
    needed = {script} | import_closure(REPO / script, REPO)
    deps = [dep for dep in stage["deps"] if dep != "pipeline/model"]
    assert Path("pipeline/model/mosa.py") in needed
    assert not covered(Path("pipeline/model/mosa.py"), deps)
    assert Path("pipeline/params.py") in needed and Path("pipeline/__init__.py") in needed


# The params sections each stage consumes in full: it must declare each of
# their keys that changes results (the whole section or key by key).
OWN_SECTIONS = {
    "synth": ["synth"],
    "index": ["dataset"],
    "train_detector": ["detector.train"],
    "extract": ["extract", "detector.postprocess"],
    "motion": ["motion"],
    "text": ["text"],
    "pack": [],  # key by key: it packs what every setting of model/train trains on
    "train": ["train", "model"],
    "evaluate": ["train", "model", "evaluate"],
    "search_index": ["search"],
    "report": ["report"],
    "footage_gallery": [],
    "probe": [],
}


# The list that fans train@/evaluate@ out: each of those stages' outputs do not
# depend on it, only the report's (which shows every mode) does.
FAN_OUT_KEYS = {"train.modes"}


def section_fields(dotted: str) -> set[str]:
    model = Params
    for part in dotted.split("."):
        model = model.model_fields[part].annotation
    return set(model.model_fields)


@pytest.mark.parametrize("stage", STAGES, ids=[s["name"] for s in STAGES])
def test_params_cover_what_a_stage_consumes_and_skip_run_only_keys(stage):
    declared = set(stage["params"])
    for key in declared:
        section, _, field = key.partition(".")
        assert section in Params.model_fields, f"{stage['name']}: unknown params key {key}"
        run_only = RUN_ONLY_KEYS.get(section, frozenset())
        assert not field or field.split(".")[0] not in run_only, f"{stage['name']}: {key} does not change outputs; do not declare it"
        assert field or not run_only, f"{stage['name']}: declare {section} by key: {sorted(run_only)} must not rerun it"
    for section in OWN_SECTIONS[stage["name"].split("@")[0]]:
        if section in declared or any(section.startswith(d + ".") for d in declared):
            continue
        top = section.split(".")[0]
        keys = {f"{section}.{field}" for field in section_fields(section) if field not in RUN_ONLY_KEYS.get(top, ())} - FAN_OUT_KEYS
        missing = sorted(k for k in keys if k not in declared)
        assert not missing, f"{stage['name']}: add to its params in dvc.yaml: {missing}"


def test_run_only_keys_exist():
    for section, keys in RUN_ONLY_KEYS.items():
        assert keys <= set(Params.model_fields[section].annotation.model_fields), section


# ------------------------------------------------------------------ reads


def tiny_params() -> dict:
    """The project's params.yaml shrunk to seconds per stage (same keys, smaller numbers)."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["synth"].update(videos=20, min_frames=3, max_frames=4, seed=1)
    params["detector"]["config"] = "configs/detector/tiny.py"
    # an untrained head scores every class near 1/37: keep its boxes so SGDet has pairs
    params["detector"]["postprocess"]["score_threshold"] = 0.0
    params["detector"]["train"].update(iterations=2, batch_size=2)
    params["model"].update(d_model=16, heads=2, mim_heads=2, temporal_layers=1)
    params["train"].update(epochs=1, batch_videos=2, modes=["predcls", "sgdet"])
    params["search"]["mode"] = "predcls"
    params["report"].update(gallery_mode="predcls", gallery_frames=1)
    return params


def copy_path(src_root: Path, dst_root: Path, relative: str) -> None:
    src, dst = src_root / relative, dst_root / relative
    if not src.exists():
        return  # the stage will fail on it, which is the finding
    dst.parent.mkdir(parents=True, exist_ok=True)
    if src.is_dir():
        shutil.copytree(src, dst, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
    else:
        shutil.copy2(src, dst)


@pytest.mark.slow
def test_each_stage_runs_with_only_its_declared_inputs(tmp_path):
    work = tmp_path / "work"  # accumulates every stage's outputs
    for name in ("dvc.yaml", ".dvcignore", "stages", "pipeline", "configs", "ablations", "tests/data"):
        copy_path(REPO, work, name)
    subprocess.run(["git", "init", "-q"], cwd=work, check=True)
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=work, check=True)
    tiny = write_tiny_config(tmp_path / "tiny_with_base.py")
    from mmengine.config import Config

    Config.fromfile(str(tiny)).dump(str(work / "configs" / "detector" / "tiny.py"))  # self-contained
    (work / "params.yaml").write_text(yaml.safe_dump(tiny_params()))

    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "RANK", "WORLD_SIZE")}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", OMP_NUM_THREADS="1")
    for stage in resolved_stages(work):
        # Run from another folder, DVC names stages "<path>/dvc.yaml:<name>"; a ":" in
        # PYTHONPATH would split it, and the stage would import an installed copy of the code.
        sandbox = tmp_path / "sandbox" / stage["name"].rsplit(":", 1)[-1].replace("@", "_")
        sandbox.mkdir(parents=True)
        shutil.copy2(work / "params.yaml", sandbox / "params.yaml")
        for dep in stage["deps"]:
            copy_path(work, sandbox, dep)
        (sandbox / "pipeline").mkdir(exist_ok=True)  # the package root even if nothing is declared
        run = subprocess.run(
            [sys.executable, *stage["cmd"].split()[1:]],
            cwd=sandbox,
            env={**env, "PYTHONPATH": str(sandbox)},
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert run.returncode == 0, f"{stage['name']} failed with only its declared deps:\n{run.stderr[-3000:]}"
        for out in stage["outs"]:
            copy_path(sandbox, work, out)

    motion = pl.read_parquet(work / "features" / "motion" / "motion.parquet")
    assert motion.height > 0 and motion["source"].n_unique() == 2, "motion did not see the ROI cache's detections"
    report = (work / "reports" / "report.html").read_text()
    assert 'class="note missing"' not in report, "the report missed an input it should have declared"


def test_the_library_never_imports_tests_or_stages():
    offenders = []
    for path in sorted((REPO / "pipeline").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            offenders += [f"{path.relative_to(REPO)}: {n}" for n in names if n.split(".")[0] in {"tests", "support", "stages", "benchmarks"}]
    assert not offenders, offenders
