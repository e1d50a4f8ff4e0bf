"""``mosa evaluate``: score any model's predictions file against Action Genome."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pipeline.user_errors import one_line_errors

CONSTRAINT_CHOICES = ("with", "semi", "no", "all")


@one_line_errors
def evaluate_command(
    ag_root: Annotated[Path, typer.Option("--ag-root", help="Action Genome root; only annotations/ is read.")],
    predictions: Annotated[Path, typer.Option("--predictions", help="Predictions Parquet file (docs/predictions_format.md).")],
    mode: Annotated[str, typer.Option("--mode", help="predcls, sgcls or sgdet (sgcls/sgdet drop small ground-truth boxes).")],
    split: Annotated[str, typer.Option("--split", help="test, val or train (val carved from train as in params).")] = "test",
    constraint: Annotated[str, typer.Option("--constraint", help="with, semi, no or all.")] = "all",
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write the results (percent) as JSON here.")] = None,
    per_predicate: Annotated[bool, typer.Option("--per-predicate", help="Also print recall per predicate.")] = False,
    params: Annotated[Path, typer.Option("--params", help="params.yaml for evaluate/dataset settings (defaults if absent).")] = Path(
        "params.yaml"
    ),
) -> None:
    """Evaluate a predictions file: R@10/20/50/100 and mR@K for the with/semi/no constraints."""
    from pipeline.constants import MODES
    from pipeline.evaluation.from_files import evaluate_predictions_file, load_ground_truth
    from pipeline.evaluation.result_formats import format_table, results_json
    from pipeline.io import atomic_write_json
    from pipeline.params import Params, load_params

    if mode not in MODES:
        raise typer.BadParameter(f"must be one of {', '.join(MODES)}, got {mode!r}", param_hint="--mode")
    if split not in ("train", "val", "test"):
        raise typer.BadParameter(f"must be train, val or test, got {split!r}", param_hint="--split")
    if constraint not in CONSTRAINT_CHOICES:
        raise typer.BadParameter(f"must be one of {', '.join(CONSTRAINT_CHOICES)}, got {constraint!r}", param_hint="--constraint")
    settings = load_params(params) if params.is_file() else Params()
    constraints = ("with", "semi", "no") if constraint == "all" else (constraint,)

    truth = load_ground_truth(ag_root, split, mode, settings.dataset)
    results = evaluate_predictions_file(predictions, truth, settings.evaluate, constraints)
    typer.echo(f"{mode}, {split} split: {truth.num_frames} frames, {truth.num_triplets} ground-truth triplets (percent)")
    typer.echo(format_table(results, with_predicates=per_predicate))
    if json_out is not None:
        atomic_write_json(json_out, results_json(results))
        typer.echo(f"wrote {json_out}")
