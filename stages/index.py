"""DVC stage: Action Genome root -> features/index/ (Parquet tables + summary.json)."""

from pipeline.ag.reader import run_index_stage
from pipeline.params import load_params
from pipeline.user_errors import one_line_errors


@one_line_errors
def main() -> None:
    run_index_stage(load_params())


if __name__ == "__main__":
    main()
