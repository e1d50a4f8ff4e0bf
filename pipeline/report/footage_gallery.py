"""The ``footage_gallery`` stage: ``mosa predict`` on synthetic videos from a seed the pipeline never saw.

The report's gallery of predicted scene graphs shows how the default
pipeline does on footage outside its train/val/test splits: the synthetic
generator is run with ``report.footage_seed`` (refused when it equals
``synth.seed``, whose videos the model was trained and tested on), and each
video goes through :func:`pipeline.predict_footage.predict_footage` exactly as a
user's footage would.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from pipeline.ag.synth import write_synthetic_ag
from pipeline.io import DataError
from pipeline.params import Params
from pipeline.predict_footage import predict_footage


def run_footage_gallery_stage(params: Params) -> list[Path]:
    """Write ``report.footage_dir/<video>/`` (graphs, overlays, predictions) per unseen video; return the folders."""
    settings = params.report
    if settings.footage_seed == params.synth.seed:
        raise DataError(
            f"report.footage_seed = {settings.footage_seed} equals synth.seed: those videos are the training data; pick another seed"
        )
    out = Path(settings.footage_dir)
    if out.exists():
        shutil.rmtree(out)
    source = out / "source"
    synth = params.synth.model_copy(
        update={
            "out_dir": str(source),
            "videos": settings.footage_videos,
            "seed": settings.footage_seed,
            "min_frames": 4,
        }
    )
    write_synthetic_ag(source, synth, progress=False)
    written = []
    for video in sorted((source / "frames").iterdir()):
        target = out / video.name.removesuffix(".mp4")
        predict_footage(video, target, params)
        written.append(target)
    return written
