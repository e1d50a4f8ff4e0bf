"""DVC stage: frames + detector -> features/roi/roi.h5 + metrics/extract.json.

Also runs as ``torchrun --nproc_per_node N stages/extract.py`` (videos split
over the ranks, rank 0 merges) and resumes from finished shards.
"""

import typer

from pipeline.cli import extract

if __name__ == "__main__":
    typer.run(extract)
