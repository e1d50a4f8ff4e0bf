"""DVC stage: features/index + features/motion/motion.parquet -> metrics/probe.json (benchmark probes)."""

from pipeline.params import load_params
from pipeline.probe import run_probe_stage
from pipeline.user_errors import one_line_errors


@one_line_errors
def main() -> None:
    run_probe_stage(load_params())


if __name__ == "__main__":
    main()
