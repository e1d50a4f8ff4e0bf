"""The ``mosa`` command. Each subcommand is a thin wrapper over library code."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pipeline.evaluation.command import evaluate_command
from pipeline.user_errors import one_line_errors

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
    from pipeline.ag.reader import run_index_stage
    from pipeline.params import load_params

    run_index_stage(load_params(params))


@app.command("check-params")
@one_line_errors
def check_params(params: ParamsOption = Path("params.yaml")) -> None:
    """Validate params.yaml and print the parsed settings."""
    from pipeline.params import load_params

    typer.echo(load_params(params).model_dump_json(indent=2))



@app.command("train-detector")
@one_line_errors
def train_detector(params: ParamsOption = Path("params.yaml")) -> None:
    """Train the default detector on the train (+ val) frames and write its test mAP (no-op when detector.checkpoint is set)."""
    from pipeline.detector.train import run_train_detector_stage
    from pipeline.params import load_params

    run_train_detector_stage(load_params(params))


@app.command("import-detector")
@one_line_errors
def import_detector(
    kind: Annotated[str, typer.Argument(help="Source format: 'sttran' (STTran's faster_rcnn_ag.pth).")],
    path: Annotated[Path, typer.Argument(help="The checkpoint to convert.")],
    out: Annotated[Path, typer.Option("--out", help="Folder for the converted weights-only mmdet checkpoint.")],
) -> None:
    """Convert a published AG detector into an mmdet checkpoint and print the params.yaml lines that use it."""
    from pipeline.detector.import_sttran import import_sttran, params_lines
    from pipeline.io import DataError

    if kind != "sttran":
        raise DataError(f"{kind}: unknown detector format; the only one is 'sttran'")
    written = import_sttran(path, out)
    typer.echo(f"wrote {written}; set in params.yaml:\n")
    typer.echo(params_lines(written))


@app.command()
@one_line_errors
def extract(params: ParamsOption = Path("params.yaml")) -> None:
    """Run the detector once over all indexed frames into the HDF5 ROI cache (resumable; works under torchrun)."""
    from pipeline.extraction.driver import run_extract_stage
    from pipeline.params import load_params

    run_extract_stage(load_params(params))


@app.command()
@one_line_errors
def motion(params: ParamsOption = Path("params.yaml")) -> None:
    """Compute the MFE motion attributes of every gt (and, with an ROI cache, det) pair into Parquet."""
    from pipeline.motion import run_motion_stage
    from pipeline.params import load_params

    run_motion_stage(load_params(params))


@app.command()
@one_line_errors
def probe(
    params: ParamsOption = Path("params.yaml"),
    out: Annotated[Path, typer.Option(help="Where the probe metrics JSON goes.")] = Path("metrics/probe.json"),
) -> None:
    """Certify the benchmark: the preregistered probes P1-P7 (docs/synthetic_benchmark.md, section 3)."""
    from pipeline.params import load_params
    from pipeline.probe import run_probe, summary_line

    settings = load_params(params)
    result = run_probe(settings.dataset.index_dir, settings.motion.out_path, out, settings.motion.still_fraction)
    typer.echo(f"{out}: {summary_line(result)}")


@app.command()
@one_line_errors
def text(params: ParamsOption = Path("params.yaml")) -> None:
    """Encode the ASM prompts and class names with the frozen text encoder into HDF5."""
    from pipeline.params import load_params
    from pipeline.text import run_text_stage

    run_text_stage(load_params(params))


ModeArgument = Annotated[str, typer.Argument(help="predcls, sgcls or sgdet.")]


@app.command()
@one_line_errors
def train(mode: ModeArgument, params: ParamsOption = Path("params.yaml")) -> None:
    """Train the MOSA relation head for one mode on the cached features (resumes an interrupted run)."""
    from pipeline.params import load_params
    from pipeline.training.train_stage import run_train_stage

    run_train_stage(load_params(params), _checked_mode(mode))


@app.command()
@one_line_errors
def pack(mode: ModeArgument, params: ParamsOption = Path("params.yaml")) -> None:
    """Pack one mode's train and val pairs for fast training reads (keeps complete, intact parts)."""
    from pipeline.params import load_params
    from pipeline.training.pack_stage import run_pack_stage

    run_pack_stage(load_params(params), _checked_mode(mode))


@app.command("evaluate-model")
@one_line_errors
def evaluate_model(mode: ModeArgument, params: ParamsOption = Path("params.yaml")) -> None:
    """Predict the test split with the trained head, write the predictions and AG metrics."""
    from pipeline.params import load_params
    from pipeline.training.evaluate_stage import run_evaluate_stage

    run_evaluate_stage(load_params(params), _checked_mode(mode))


@app.command()
@one_line_errors
def ablate(
    seeds: Annotated[str, typer.Option(help="Comma-separated training seeds.")] = "0,1,2,3,4",
    data_seeds: Annotated[str, typer.Option(help="Comma-separated data seeds (synth.seed); each extra one gets its own caches.")] = "0,1,2",
    epochs: Annotated[int | None, typer.Option(help="Epochs every variant trains, last one kept (default train.epochs).")] = None,
    mode: Annotated[str, typer.Option(help="The mode every run trains and tests.")] = "predcls",
    variants: Annotated[str | None, typer.Option(help="Comma-separated variant names (default: every row).")] = None,
    set_param: Annotated[list[str] | None, typer.Option("--set-param", "-S", help="Extra override for every run.")] = None,
    out_dir: Annotated[Path | None, typer.Option(help="Output folder (default report.ablation_dir).")] = None,
    params: ParamsOption = Path("params.yaml"),
) -> None:
    """The paired ablation end to end: data seeds' caches, every (variant, seed) run, the tables.

    Resumes from <out-dir>/runs.json; each run there records the `dvc exp run` command that repeats it.
    """
    from pipeline.ablation.runner import run_ablation
    from pipeline.ablation.variants import chosen_variants
    from pipeline.params import load_params

    settings = load_params(params)
    table = run_ablation(
        params,
        out_dir or Path(settings.report.ablation_dir),
        [int(s) for s in seeds.split(",")],
        [int(s) for s in data_seeds.split(",")],
        epochs or settings.train.epochs,
        _checked_mode(mode),
        chosen_variants(variants.split(",") if variants else None),
        set_param or [],
        typer.echo,
    )
    typer.echo(table.read_text())


@app.command("select-appearance")
@one_line_errors
def select_appearance(
    seeds: Annotated[str, typer.Option(help="Comma-separated training seeds.")] = "0,1,2",
    data_seeds: Annotated[str, typer.Option(help="Comma-separated data seeds (synth.seed); each extra one gets its own caches.")] = "0",
    out_dir: Annotated[Path, typer.Option(help="Output folder: runs.json (resumed), selection.json and .md.")] = Path(
        "ablations/selection"
    ),
    params: ParamsOption = Path("params.yaml"),
) -> None:
    """The relation token's appearance, chosen on validation by the rule of docs/model_selection.md (PredCls)."""
    from pipeline.ablation.selection import run_selection

    train_seeds, data = ([int(s) for s in value.split(",")] for value in (seeds, data_seeds))
    typer.echo(run_selection(params, out_dir, train_seeds, data, typer.echo).read_text())


@app.command("attention-probe")
@one_line_errors
def attention_probe_command(params: ParamsOption = Path("params.yaml")) -> None:
    """Can attention be read from the cached features? A linear probe on the person's ROI feature and the object's side."""
    from pipeline.attention_probe import attention_probe
    from pipeline.params import load_params

    settings = load_params(params)
    result = attention_probe(settings.dataset.index_dir, settings.extract.out_dir)
    scores = ", ".join(f"{name} {value:.3f}" for name, value in result["balanced_accuracy"].items())
    typer.echo(f"attention probe, test balanced accuracy (chance {result['chance']:.2f}): {scores}; "
               f"pairs fit {result['pairs']['fit']}, test {result['pairs']['test']}")  # fmt: skip


@app.command("ablation-table")
@one_line_errors
def ablation_table(
    runs: Annotated[Path | None, typer.Option(help="runs.json of `mosa ablate` (default <out-dir>/runs.json).")] = None,
    out_dir: Annotated[Path | None, typer.Option(help="Folder for the markdown and CSV tables (default report.ablation_dir).")] = None,
    params: ParamsOption = Path("params.yaml"),
) -> None:
    """Render the paired ablation table again from its runs (means, paired differences, intervals, power)."""
    from pipeline.ablation.tables import write_paired_tables
    from pipeline.params import load_params

    folder = out_dir or Path(load_params(params).report.ablation_dir)
    runs_path = runs or folder / "runs.json"
    if not runs_path.is_file():
        raise FileNotFoundError(f"{runs_path}: no ablation runs; run `mosa ablate` first")
    typer.echo(write_paired_tables(runs_path, folder).read_text())


def _checked_mode(mode: str) -> str:
    from pipeline.constants import MODES

    if mode not in MODES:
        raise typer.BadParameter(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    return mode


# Defined beside the evaluator so researchers can reuse it on any codebase's predictions.
app.command("evaluate")(evaluate_command)

@app.command()
@one_line_errors
def search(
    query: Annotated[str | None, typer.Argument(help="Free text, e.g. 'person drinking from a cup'.")] = None,
    k: Annotated[int, typer.Option("-k", "--k", min=1, help="Number of hits.")] = 10,
    like: Annotated[str | None, typer.Option(help="Query by example: FRAME_KEY:OBJECT_CLASS of an indexed test pair.")] = None,
    sheet: Annotated[Path | None, typer.Option(help="Also draw the hits as a contact sheet PNG here.")] = None,
    params: ParamsOption = Path("params.yaml"),
) -> None:
    """Find test-split relations by text (read as a relation, ranked by its predicted probability) or by example (ASM embedding neighbours)."""
    from pipeline.params import load_params
    from pipeline.search import read_relation_index, search_like, search_relation

    if (query is None) == (like is None):
        raise typer.BadParameter("give either a text query or --like FRAME_KEY:OBJECT_CLASS")
    settings = load_params(params)
    index = read_relation_index(settings.search.out_dir, settings.search.nprobe)
    if like is None:
        hits, reading = search_relation(index, query, k, settings.text)
        typer.echo(f"read as: {reading}; score = probability of that relation")
    else:
        hits = search_like(index, like, k)
    typer.echo(f"{'rank':>4}  score  frame  object  predicted triplets (with constraint)")
    for hit in hits:
        typer.echo(hit.line())
    if sheet is not None:
        from pipeline.viz.drawing import save_png
        from pipeline.viz.show import hits_sheet

        save_png(hits_sheet(settings.dataset.root, hits, index.table), sheet)
        typer.echo(f"contact sheet: {sheet}")


@app.command()
@one_line_errors
def show(
    key: Annotated[str, typer.Argument(help="A frame key (001YG.mp4/000089.png) or a video (001YG.mp4).")],
    out: Annotated[Path | None, typer.Option(help="PNG to write (default: show_<key>.png).")] = None,
    mode: Annotated[str, typer.Option(help="Whose test predictions to draw.")] = "predcls",
    predictions: Annotated[Path | None, typer.Option(help="Predictions Parquet instead of the mode's evaluate output.")] = None,
    min_score: Annotated[float, typer.Option(min=0.0, max=1.0, help="Draw detections with object score >= this (then class-aware NMS).")] = 0.3,
    params: ParamsOption = Path("params.yaml"),
) -> None:
    """Draw a frame (boxes, predicted vs annotated triplets) or a video's predicate timeline as a PNG."""
    from pipeline.params import load_params
    from pipeline.viz.drawing import save_png
    from pipeline.viz.show import is_video_key, read_mode_predictions, show_frame, show_video

    settings = load_params(params)
    table = read_mode_predictions(_checked_mode(mode), predictions)
    out = out or Path("show_" + key.strip("/").replace("/", "_").replace(".mp4", "").removesuffix(".png") + ".png")
    image = show_video(settings, key.strip("/"), table) if is_video_key(key) else show_frame(settings, key.strip("/"), table, min_score)
    typer.echo(f"wrote {save_png(image, out)}")


@app.command()
@one_line_errors
def predict(
    source: Annotated[Path, typer.Argument(help="A folder of frames (PNG/JPEG) or a video file.")],
    out: Annotated[Path | None, typer.Option(help="Output folder (default: predict/<video>).")] = None,
    every: Annotated[int, typer.Option(min=1, help="Keep every N-th frame of a video (AG samples sparse frames).")] = 1,
    overlays: Annotated[bool, typer.Option(help="Also write an overlay PNG per frame.")] = True,
    min_score: Annotated[float, typer.Option(min=0.0, max=1.0, help="Graphs/overlays keep detections with object score >= this (then class-aware NMS).")] = 0.3,
    params: ParamsOption = Path("params.yaml"),
) -> None:
    """Scene graphs for new footage: detector, features, motion and the trained SGDet head."""
    from pipeline.params import load_params
    from pipeline.predict_footage import footage_video_name, predict_footage, summary_counts

    out = out or Path("predict") / footage_video_name(source).removesuffix(".mp4")
    summary = predict_footage(source, out, load_params(params), every=every, overlays=overlays, min_score=min_score)
    typer.echo(f"{summary.video}: {summary.frames} frames, {summary.pairs} person-object pairs")
    typer.echo(f"graphs: {summary.graphs_dir}/  overlays: {summary.overlays_dir if overlays else '-'}")
    common = list(summary_counts(summary.graphs_dir).items())[:8]
    typer.echo("most frequent predicted predicates: " + ", ".join(f"{name} {count}" for name, count in common))


@app.command()
@one_line_errors
def report(
    screenshot: Annotated[Path | None, typer.Option(help="Also open it in headless Chromium and save a screenshot.")] = None,
    params: ParamsOption = Path("params.yaml"),
) -> None:
    """Write the static HTML report (metrics, long tail, curves, ablations, search, best/worst frames)."""
    from pipeline.params import load_params
    from pipeline.report import run_report_stage

    path = run_report_stage(load_params(params))
    typer.echo(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB, self-contained)")
    if screenshot is not None:
        from pipeline.report.browser import render_page

        rendered = render_page(path, screenshot)
        typer.echo(f"screenshot: {rendered.screenshot}; console messages: {len(rendered.console)}")
        for message in rendered.console:
            typer.echo(f"  console: {message}")


if __name__ == "__main__":
    app()
