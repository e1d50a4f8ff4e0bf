"""The caches of each data seed the ablation trains on.

The default data seed (``synth.seed`` in params.yaml) is the pipeline's own
data: its caches are what ``dvc repro`` builds. Every other data seed gets
its own synthetic root, index, detector, ROI cache and motion table under
``data/abl/d<seed>``, ``features/abl/d<seed>`` and ``models/abl/d<seed>``,
built by the same stage functions, with the seed's parameter file written
beside them (``features/abl/d<seed>/params.yaml``). The text embeddings do
not depend on the data and are shared.

A seed whose caches exist is reused only when its parameter file is the one
these params would write; otherwise the user is told to remove the folder.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

from pipeline.ablation.variants import apply_overrides
from pipeline.extraction.cache import CACHE_FILE
from pipeline.io import DataError, atomic_write_text
from pipeline.params import Params, parse_params


def data_name(seed: int) -> str:
    return f"d{seed}"


def seed_dir(seed: int) -> Path:
    return Path("features/abl") / data_name(seed)


def data_seed_overrides(seed: int, default_seed: int) -> list[str]:
    """The params overrides that point every data path of the pipeline at ``seed``'s own caches."""
    if seed == default_seed:
        return []
    name, features = data_name(seed), seed_dir(seed)
    return [
        f"synth.seed={seed}",
        f"synth.out_dir=data/abl/{name}",
        f"dataset.root=data/abl/{name}",
        f"dataset.index_dir={features}/index",
        f"extract.out_dir={features}/roi",
        f"extract.metrics_path={features}/extract.json",
        f"motion.out_path={features}/motion.parquet",
        f"detector.work_dir=models/abl/{name}",
        f"detector.metrics_path={features}/detector.json",
    ]


def default_caches_ready(params: Params) -> bool:
    """Whether the default data seed's caches (what the runs read) are all on disk."""
    needed = [
        Path(params.dataset.index_dir) / "relations.parquet",
        Path(params.extract.out_dir) / CACHE_FILE,
        Path(params.motion.out_path),
        Path(params.text.out_path),
    ]
    return all(path.exists() for path in needed)


def build_default_caches(params: Params, log=print) -> None:
    """``dvc repro`` of the stages the runs read, when any of their caches is missing."""
    if default_caches_ready(params):
        return
    log("the default caches are missing: dvc repro text motion")
    subprocess.run(["dvc", "repro", "text", "motion"], check=True)


# The params.yaml sections the caches of a data seed are built from (synth, index, detector, extract, motion).
CACHE_SECTIONS = ("seed", "synth", "dataset", "detector", "extract", "motion")


def cache_settings(params_text: str) -> dict:
    """The part of a params.yaml text that decides a data seed's caches: a model or training key does not."""
    return {key: value for key, value in (yaml.safe_load(params_text) or {}).items() if key in CACHE_SECTIONS}


def build_data_seed(settings: dict, seed: int, default_seed: int, log=print) -> Path:
    """Write (or reuse) the caches of one extra data seed; return its parameter file."""
    from pipeline.ag.reader import run_index_stage
    from pipeline.ag.synth import run_synth_stage
    from pipeline.detector.train import run_train_detector_stage
    from pipeline.extraction.driver import run_extract_stage
    from pipeline.motion import run_motion_stage

    if settings.get("dataset", {}).get("root") != settings.get("synth", {}).get("out_dir"):
        raise DataError(
            "params.yaml: extra data seeds need the synthetic dataset (dataset.root = synth.out_dir); "
            "on a real AG root run `mosa ablate --data-seeds` with the default seed only"
        )
    folder = seed_dir(seed)
    params_path = folder / "params.yaml"
    text = yaml.safe_dump(apply_overrides(settings, data_seed_overrides(seed, default_seed)), sort_keys=False)
    params = parse_params(yaml.safe_load(text))
    motion_path = Path(params.motion.out_path)
    if motion_path.exists():
        if not params_path.exists() or cache_settings(params_path.read_text()) != cache_settings(text):
            raise DataError(
                f"{folder}: built with other params than params.yaml now gives; "
                f"remove {folder}, data/abl/{data_name(seed)} and models/abl/{data_name(seed)} to rebuild"
            )
        log(f"{data_name(seed)}: reusing {folder}")
        return params_path
    log(f"{data_name(seed)}: building the synthetic root, index, detector, ROI cache and motion table")
    atomic_write_text(params_path, text)
    for stage in (run_synth_stage, run_index_stage, run_train_detector_stage, run_extract_stage, run_motion_stage):
        stage(params)
    return params_path
