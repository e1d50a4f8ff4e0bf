"""DVC stage: write the synthetic Action Genome root (skipped for a real AG root)."""

from pipeline.ag.synth import run_synth_stage
from pipeline.params import load_params
from pipeline.user_errors import one_line_errors


@one_line_errors
def main() -> None:
    run_synth_stage(load_params())


if __name__ == "__main__":
    main()
