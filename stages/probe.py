"""DVC stage: features/index + features/motion/motion.parquet -> metrics/probe.json (benchmark probes)."""

from pipeline.params import load_params
from pipeline.probe import run_probe, summary_line
from pipeline.user_errors import one_line_errors


@one_line_errors
def main() -> None:
    params = load_params()
    result = run_probe(
        params.dataset.index_dir, params.motion.out_path, "metrics/probe.json", params.motion.still_fraction
    )
    print(f"metrics/probe.json: {summary_line(result)}")


if __name__ == "__main__":
    main()
