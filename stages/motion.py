"""DVC stage: features/index (+ the SGDet detections of features/roi when present) -> features/motion/motion.parquet."""

from pipeline.motion.table import run_motion_stage
from pipeline.params import load_params
from pipeline.user_errors import one_line_errors


@one_line_errors
def main() -> None:
    params = load_params()
    run_motion_stage(params)


if __name__ == "__main__":
    main()
