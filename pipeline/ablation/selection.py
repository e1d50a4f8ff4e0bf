"""Validation-only choice of the relation token's appearance (preregistered in docs/model_selection.md).

Usage::

    mosa select-appearance            # 5 candidates x training seeds 0,1,2, data seed 0, PredCls
    mosa select-appearance --seeds 0  # a smaller grid (the rule then reads one seed)
    mosa select-appearance --data-seeds 0,1,2 --out-dir ablations/selection_v2  # section 6: three data seeds

The candidates are ablation variants, run by the ablation's own runner
(:func:`~pipeline.ablation.runner.run_paired_ablation`: same budget, resumed
from ``runs.json``). The rule reads only the **validation** metrics of each
run's last epoch; the test statistics the runner also keeps are not read here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

from pipeline.ablation.variants import Variant
from pipeline.io import atomic_write_json, atomic_write_text

# Section 2 of docs/model_selection.md, in its order of departure from the paper (ties go to the earlier).
# Each sets both keys, so a candidate means the same whatever params.yaml's default is.
ALL_STREAMS = "model.token_appearance=[subject_roi,object_roi,union]"
CANDIDATES: tuple[Variant, ...] = (
    Variant("paper", "A paper: subject_roi, object_roi, union", (ALL_STREAMS, "model.appearance_dropout=0")),
    Variant("dropout-0.5", "B appearance dropout 0.5", (ALL_STREAMS, "model.appearance_dropout=0.5")),
    Variant("dropout-0.8", "C appearance dropout 0.8", (ALL_STREAMS, "model.appearance_dropout=0.8")),
    Variant("object-only", "D object_roi only", ("model.token_appearance=[object_roi]", "model.appearance_dropout=0")),
    Variant("none", "E no appearance", ("model.token_appearance=[]", "model.appearance_dropout=0")),
)
MOTION, RECALL, MEAN_RECALL = "motion macro recall", "R@20", "mR@20"
# Section 3's rule (validation means, percent points).
MAX_MEAN_RECALL_LOSS = 2.0
MAX_RECALL_LOSS = 1.0
TIE_MARGIN = 1.0
MIN_MOTION_GAIN = 3.0


def validation_means(runs: Mapping[str, dict]) -> dict[str, dict[str, float]]:
    """Per candidate: the mean over its runs (data seeds x training seeds) of the last epoch's validation metrics.

    Every run weighs the same, so with the same training seeds per data seed each data seed does too.
    ``runs`` names the (data seed, training seed) runs read.
    """
    by_name: dict[str, list[dict]] = {}
    for record in runs.values():
        by_name.setdefault(record["variant"], []).append(record)
    means = {}
    for candidate in CANDIDATES:
        records = sorted(by_name.get(candidate.name, []), key=lambda r: (r.get("data", "d0"), r["seed"]))
        if not records:
            continue
        last = [r["curve"][-1] for r in records]
        means[candidate.name] = {
            **{m: sum(epoch[m] for epoch in last) / len(last) for m in (MOTION, RECALL, MEAN_RECALL)},
            "seeds": [r["seed"] for r in records],
            "runs": [f"{r.get('data', 'd0')}/s{r['seed']}" for r in records],
            "per_seed_motion": [epoch[MOTION] for epoch in last],
        }
    return means


def choose(means: Mapping[str, Mapping[str, float]]) -> tuple[str, str]:
    """The candidate section 3 picks, and why (one line)."""
    seeds = {tuple(m["runs"]) for m in means.values()}
    if len(means) != len(CANDIDATES) or len(seeds) != 1:
        raise ValueError(f"the rule needs every candidate on the same seeds; have {dict((k, v['runs']) for k, v in means.items())}")
    paper = means[CANDIDATES[0].name]
    eligible = [
        c.name
        for c in CANDIDATES
        if means[c.name][MEAN_RECALL] >= paper[MEAN_RECALL] - MAX_MEAN_RECALL_LOSS
        and means[c.name][RECALL] >= paper[RECALL] - MAX_RECALL_LOSS
    ]
    best = max(means[name][MOTION] for name in eligible)
    chosen = next(name for name in eligible if means[name][MOTION] >= best - TIE_MARGIN)
    gain = means[chosen][MOTION] - paper[MOTION]
    if gain < MIN_MOTION_GAIN:
        return CANDIDATES[0].name, f"{chosen} gains {gain:+.1f} motion points (< {MIN_MOTION_GAIN}): the paper's token stays"
    return chosen, f"{chosen}: validation motion {gain:+.1f} over the paper's token; eligible: {', '.join(eligible)}"


def markdown_table(means: Mapping[str, Mapping[str, float]], chosen: str, reason: str) -> str:
    paper = means[CANDIDATES[0].name]
    lines = [
        "| candidate | val motion macro recall (per seed) | Δ | val R@20 | Δ | val mR@20 | Δ |",
        "|---|---|---|---|---|---|---|",
    ]
    for candidate in CANDIDATES:
        m = means[candidate.name]
        per_seed = ", ".join(f"{v:.1f}" for v in m["per_seed_motion"])
        cells = [f"{m[k]:.1f} | {m[k] - paper[k]:+.1f}" for k in (RECALL, MEAN_RECALL)]
        mark = " **(chosen)**" if candidate.name == chosen else ""
        lines.append(f"| {candidate.label}{mark} | {m[MOTION]:.1f} ({per_seed}) | {m[MOTION] - paper[MOTION]:+.1f} | {' | '.join(cells)} |")
    return "\n".join(lines) + f"\n\nRule (docs/model_selection.md, section 3): {reason}\n"


def run_selection(
    params_path: Path, out_dir: Path, train_seeds: Sequence[int], data_seeds: Sequence[int] = (0,), log=print
) -> Path:
    """Run every candidate (resumed from ``out_dir/runs.json``), apply the rule, write selection.{json,md}."""
    from pipeline.ablation.runner import prepare_data_seeds, run_paired_ablation
    from pipeline.params import load_params

    params = load_params(params_path)
    out_dir.mkdir(parents=True, exist_ok=True)
    data_overrides = prepare_data_seeds(params_path, out_dir, data_seeds, log=log)
    runs_path = out_dir / "runs.json"
    run_paired_ablation(
        params_path, data_overrides, train_seeds, params.train.epochs, "predcls", runs_path, CANDIDATES, log
    )
    means = validation_means(json.loads(runs_path.read_text()))
    chosen, reason = choose(means)
    atomic_write_json(out_dir / "selection.json", {"chosen": chosen, "reason": reason, "validation": means})
    chosen_overrides = next(c.overrides for c in CANDIDATES if c.name == chosen)
    log(f"chosen: {chosen} ({' '.join(chosen_overrides)})")
    table_path = out_dir / "selection.md"
    atomic_write_text(table_path, markdown_table(means, chosen, reason))
    return table_path
