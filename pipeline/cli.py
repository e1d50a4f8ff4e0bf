"""The ``mosa`` command. Each subcommand is a thin wrapper over library code."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pipeline.errors import one_line_errors

app = typer.Typer(
    name="mosa",
    help="MOSA dynamic scene graph generation on Action Genome: a cached DVC pipeline.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

ParamsOption = Annotated[Path, typer.Option("--params", help="params.yaml to read settings from.")]


@app.command()
@one_line_errors
def synth(
    out: Annotated[Path, typer.Argument(help="Folder to write the synthetic Action Genome root into.")],
    videos: Annotated[int | None, typer.Option(help="Number of videos (default: synth.videos in params).")] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed (default: synth.seed in params).")] = None,
    params: ParamsOption = Path("params.yaml"),
) -> None:
    """Write a synthetic dataset in the exact Action Genome on-disk format."""
    from pipeline.ag.synth import write_synthetic_ag
    from pipeline.params import Params, load_params

    base = load_params(params).synth if params.is_file() else Params().synth
    overrides = {k: v for k, v in {"videos": videos, "seed": seed}.items() if v is not None}
    settings = type(base).model_validate({**base.model_dump(), **overrides})
    summary = write_synthetic_ag(out, settings)
    typer.echo(f"wrote {summary['videos']} videos, {summary['frames']} frames to {out}")


@app.command()
@one_line_errors
def validate(
    root: Annotated[Path, typer.Argument(help="Action Genome root (holds annotations/ and frames/).")],
    no_frames: Annotated[bool, typer.Option("--no-frames", help="Skip checking the PNG files.")] = False,
    max_per_kind: Annotated[int, typer.Option(help="Print at most this many problems of each kind.")] = 10,
) -> None:
    """Check a dataset root and report every problem found. Exit 1 on errors, 0 on warnings only."""
    from collections import Counter

    from pipeline.ag.validate import ERROR, validate_root

    problems = validate_root(root, check_frames=not no_frames)
    shown: Counter = Counter()
    for problem in problems:
        shown[problem.kind] += 1
        if shown[problem.kind] <= max_per_kind:
            typer.echo(str(problem))
    for kind, count in sorted(shown.items()):
        if count > max_per_kind:
            typer.echo(f"... {count - max_per_kind} more [{kind}] problems")
    errors = sum(p.severity == ERROR for p in problems)
    warnings = len(problems) - errors
    typer.echo(f"{root}: {errors} errors, {warnings} warnings")
    raise typer.Exit(1 if errors else 0)


@app.command()
@one_line_errors
def index(params: ParamsOption = Path("params.yaml")) -> None:
    """Build the normalised Parquet index (frames, objects, relations) and summary.json."""
    from pipeline.ag.reader import build_index, write_index
    from pipeline.params import load_params

    settings = load_params(params).dataset
    built = build_index(settings.root, settings.val_fraction, settings.split_seed, settings.small_box_side)
    summary = write_index(built, settings.index_dir)
    for split in ("train", "val", "test"):
        typer.echo(f"{split}: " + ", ".join(f"{k}={v}" for k, v in summary[split].items()))


@app.command("check-params")
@one_line_errors
def check_params(params: ParamsOption = Path("params.yaml")) -> None:
    """Validate params.yaml and print the parsed settings."""
    from pipeline.params import load_params

    typer.echo(load_params(params).model_dump_json(indent=2))


if __name__ == "__main__":
    app()
