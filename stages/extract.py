"""DVC stage: frames + detector -> features/roi/roi.h5 + metrics/extract.json.

Also runs as ``torchrun --nproc_per_node N stages/extract.py [--params PATH]``
(videos split over the ranks, rank 0 merges) and resumes from finished shards.
"""

import argparse

from pipeline.extraction.driver import run_extract_stage
from pipeline.params import load_params
from pipeline.user_errors import one_line_errors


@one_line_errors
def main(params_path: str) -> None:
    run_extract_stage(load_params(params_path))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml", help="settings file (default: params.yaml)")
    main(parser.parse_args().params)
