"""The ablation workflow: a queued grid of ``dvc exp run`` variants, and the table of their results.

``mosa ablate`` queues one DVC experiment per (variant, seed), named
``<variant>-s<seed>``, and runs the queue. Each experiment reruns only the
stages its overrides touch (train/evaluate for ``model.*``; motion or text
too for ``motion.*``/``text.*`` variants). ``mosa ablation-table`` reads
``dvc exp show --json`` and renders mean and spread over seeds per variant.
"""

from __future__ import annotations

import copy
import json
import math
import re
import subprocess
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import yaml

from pipeline.io import DataError, atomic_write_text


@dataclass(frozen=True)
class Variant:
    name: str  # experiment-name prefix (a valid git ref component)
    label: str  # row label in the table
    overrides: tuple[str, ...]  # ``dvc exp run -S`` arguments


# Every switch MOSA.md asks for. "baseline" is everything off: the STTran-style head.
CORE_VARIANTS: tuple[Variant, ...] = (
    Variant("full", "MOSA (full)", ()),
    Variant(
        "baseline",
        "baseline (MOSA components off, gamma kept)",
        ("model.mfe=false", "model.mim=false", "model.asm=false", "model.loss.category_weighted=false"),
    ),
    Variant("no-focal", "gamma = 0", ("model.loss.gamma=0",)),
    Variant("no-mfe", "w/o MFE (and so MIM)", ("model.mfe=false",)),
    Variant("no-mim", "w/o MIM", ("model.mim=false",)),
    Variant("no-asm", "w/o ASM", ("model.asm=false",)),
    Variant("no-weighted-loss", "w/o category weights", ("model.loss.category_weighted=false",)),
)
EXTENDED_VARIANTS: tuple[Variant, ...] = (
    Variant("no-temporal", "w/o temporal decoder", ("model.temporal=false",)),
    Variant(
        "mfe-all-attributes",
        "MFE + dx,dy, log area ratio, scale change",
        ("model.mfe_attributes=[distance,velocity,persistence,direction_consistency,"
         "relative_displacement,log_area_ratio,scale_change]",),
    ),  # fmt: skip
    Variant("window-k2", "persistence window K = 2", ("motion.window_k=2",)),
    Variant("window-k8", "persistence window K = 8", ("motion.window_k=8",)),
    Variant("asm-predicate-prompts", "ASM per-predicate prompts", ("text.prompt_mode=predicate",)),
    Variant("asm-lambda-0.5", "ASM lambda = 0.5", ("model.asm_lambda=0.5",)),
)
GRIDS: dict[str, tuple[Variant, ...]] = {"core": CORE_VARIANTS, "all": CORE_VARIANTS + EXTENDED_VARIANTS}
EXPERIMENT_NAME = re.compile(r"^(?P<variant>.+)-s(?P<seed>\d+)$")


def apply_overrides(settings: dict, overrides: Sequence[str]) -> dict:
    """``settings`` (a params.yaml mapping) with ``key.path=value`` overrides applied, as ``dvc exp run -S`` would.

    Values are parsed as YAML (``false``, ``0``, ``[a,b]``), like DVC does.
    """
    out = copy.deepcopy(settings)
    for override in overrides:
        key, _, value = override.partition("=")
        node = out
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = yaml.safe_load(value)
    return out


def queue_commands(
    variants: Sequence[Variant], seeds: Sequence[int], modes: Sequence[str], extra: Sequence[str] = ()
) -> list[list[str]]:
    """One ``dvc exp run --queue`` command line per (variant, seed)."""
    commands = []
    for variant in variants:
        for seed in seeds:
            sets = [f"train.seed={seed}", f"train.modes=[{','.join(modes)}]", *variant.overrides, *extra]
            command = ["dvc", "exp", "run", "--queue", "--name", f"{variant.name}-s{seed}"]
            for override in sets:
                command += ["--set-param", override]
            commands.append(command)
    return commands


def run_ablation(commands: Iterable[list[str]], jobs: int, run: bool = True) -> None:
    """Queue the experiments, then run the whole queue (blocking) unless ``run`` is False."""
    for command in commands:
        subprocess.run(command, check=True)
    if run:
        subprocess.run(["dvc", "exp", "run", "--run-all", "--jobs", str(jobs)], check=True)


# --------------------------------------------------------------------------- table


@dataclass(frozen=True)
class ExperimentResult:
    variant: str
    seed: int
    metrics: dict[str, float]


def _experiments(node: object) -> Iterator[dict]:
    """Every experiment record (``{"name", "data"}``) anywhere in ``dvc exp show --json`` output."""
    if isinstance(node, dict):
        if node.get("name") and isinstance(node.get("data"), dict) and "metrics" in node["data"]:
            yield node
        for value in node.values():
            yield from _experiments(value)
    elif isinstance(node, list):
        for value in node:
            yield from _experiments(value)


def collect_results(exp_show: object, mode: str, constraint: str) -> list[ExperimentResult]:
    """Results of the experiments named ``<variant>-s<seed>`` that have ``metrics/<mode>.json``."""
    metrics_file = f"metrics/{mode}.json"
    results: dict[str, ExperimentResult] = {}
    for record in _experiments(exp_show):
        match = EXPERIMENT_NAME.match(record["name"])
        entry = record["data"]["metrics"].get(metrics_file, {})
        values = entry.get("data", {}).get(constraint) if isinstance(entry, dict) else None
        if match and values:
            results[record["name"]] = ExperimentResult(match["variant"], int(match["seed"]), dict(values))
    return list(results.values())


def ablation_table(results: Sequence[ExperimentResult], metric_names: Sequence[str], variants: Sequence[Variant]) -> pl.DataFrame:
    """Mean and sample standard deviation over seeds, one row per variant (in ``variants`` order)."""
    if not results:
        raise DataError(
            "no finished ablation experiments found in `dvc exp show` (run `mosa ablate` first; "
            "names must look like <variant>-s<seed>)"
        )
    order = {v.name: i for i, v in enumerate(variants)}
    labels = {v.name: v.label for v in variants}
    rows = []
    for name in sorted({r.variant for r in results}, key=lambda n: (order.get(n, len(order)), n)):
        runs = sorted((r for r in results if r.variant == name), key=lambda r: r.seed)
        row: dict[str, object] = {"variant": name, "label": labels.get(name, name), "seeds": len(runs)}
        for metric in metric_names:
            values = [r.metrics[metric] for r in runs if metric in r.metrics]
            mean = sum(values) / len(values) if values else math.nan
            spread = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else math.nan
            row[f"{metric} mean"], row[f"{metric} std"] = mean, spread
        rows.append(row)
    return pl.DataFrame(rows)


def render_markdown(table: pl.DataFrame, metric_names: Sequence[str], title: str) -> str:
    header = ["Variant", "seeds", *metric_names]
    lines = [f"**{title}** (mean ± std over seeds, percent)", "", "| " + " | ".join(header) + " |",
             "|" + "|".join(["---", "---:", *["---:"] * len(metric_names)]) + "|"]  # fmt: skip
    for row in table.iter_rows(named=True):
        cells = [row["label"], str(row["seeds"])]
        for metric in metric_names:
            mean, spread = row[f"{metric} mean"], row[f"{metric} std"]
            cells.append(f"{mean:.2f}" + ("" if math.isnan(spread) else f" ± {spread:.2f}"))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def read_exp_show(path: Path | None = None) -> object:
    """``dvc exp show --json`` of the current repository, or a saved copy of it."""
    if path is not None:
        return json.loads(Path(path).read_text())
    completed = subprocess.run(["dvc", "exp", "show", "--json"], check=True, capture_output=True, text=True)
    return json.loads(completed.stdout)


def write_ablation_table(
    exp_show: object, out_dir: Path, mode: str, constraint: str, metric_names: Sequence[str]
) -> pl.DataFrame:
    """Write ``ablation_<mode>_<constraint>.md`` and ``.csv`` into ``out_dir``; return the table."""
    table = ablation_table(collect_results(exp_show, mode, constraint), metric_names, GRIDS["all"])
    stem = out_dir / f"ablation_{mode}_{constraint}"
    title = f"{mode}, {constraint} constraint"
    atomic_write_text(stem.with_suffix(".md"), render_markdown(table, metric_names, title))
    atomic_write_text(stem.with_suffix(".csv"), table.write_csv(float_precision=4))
    return table
