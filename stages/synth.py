"""DVC stage: write the synthetic Action Genome root (skipped for a real AG root)."""

from pipeline.ag.synth import write_synthetic_ag
from pipeline.params import load_params
from pipeline.user_errors import one_line_errors


@one_line_errors
def main() -> None:
    params = load_params()
    write_synthetic_ag(params.synth.out_dir, params.synth)


if __name__ == "__main__":
    main()
