"""Synthetic Action Genome: the exact on-disk format, with something to learn.

The generator writes what a real AG download holds (both pickles with all
their keys, the raw class files with slash-less and underscore-less names,
``frame_list.txt`` and PNG frames), so every later stage runs the same code
path as on real AG. It is a controlled test of MOSA, preregistered in
docs/synthetic_benchmark.md; one module per job:

* :mod:`~pipeline.ag.synth.plan` — what each video shows (scripts, long
  tail, held-out combinations, pans) and its split;
* :mod:`~pipeline.ag.synth.trajectory` — where the person, each object and
  the camera are in every frame (the at-hand motion classes);
* :mod:`~pipeline.ag.synth.labels` — attention and spatial labels from the
  drawn scene;
* :mod:`~pipeline.ag.synth.paint` — appearance, paint order, rendered frames;
* :mod:`~pipeline.ag.synth.write` — annotation jitter, pickles, PNGs, atomic.

Everything is drawn from ``numpy`` generators seeded per video, so the
output is byte-identical for a fixed seed.
"""

from pipeline.ag.synth.labels import attention_label, spatial_labels
from pipeline.ag.synth.paint import scripted_frames
from pipeline.ag.synth.plan import HELD_OUT_COMBOS, planned_videos
from pipeline.ag.synth.write import run_synth_stage, write_synthetic_ag

__all__ = [
    "HELD_OUT_COMBOS",
    "attention_label",
    "planned_videos",
    "scripted_frames",
    "spatial_labels",
    "run_synth_stage",
    "write_synthetic_ag",
]
