"""DVC stage: features/index + features/motion/motion.parquet -> metrics/probe.json (benchmark probes)."""

from pipeline.errors import one_line_errors
from pipeline.params import load_params
from pipeline.probe import run_probe


@one_line_errors
def main() -> None:
    params = load_params()
    result = run_probe(params.dataset.index_dir, params.motion.out_path, "metrics/probe.json")
    print(
        f"metrics/probe.json: motion {result['motion']['balanced_accuracy']:.3f}, "
        f"geometry {result['geometry']['balanced_accuracy']:.3f} (chance {result['chance']:.3f}), "
        f"passed={result['passed']}"
    )


if __name__ == "__main__":
    main()
