"""DVC stage: frames + detector -> features/roi/roi.h5 + metrics/extract.json.

Also runs as ``torchrun --nproc_per_node N stages/extract.py`` (videos split
over the ranks, rank 0 merges) and resumes from finished shards.
"""

from pipeline.errors import one_line_errors
from pipeline.extraction.driver import run_extract_stage
from pipeline.params import load_params


@one_line_errors
def main() -> None:
    run_extract_stage(load_params())


if __name__ == "__main__":
    main()
