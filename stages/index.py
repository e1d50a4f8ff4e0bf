"""DVC stage: Action Genome root -> features/index/ (Parquet tables + summary.json)."""

from pipeline.ag.reader import run_index_stage
from pipeline.errors import one_line_errors
from pipeline.params import load_params


@one_line_errors
def main() -> None:
    run_index_stage(load_params().dataset)


if __name__ == "__main__":
    main()
