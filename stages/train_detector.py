"""DVC stage: train the default detector -> models/detector/ + metrics/detector.json.

Only writes its metrics file when ``detector.checkpoint`` is set.
"""

from pipeline.detector.train import run_train_detector_stage
from pipeline.params import load_params
from pipeline.user_errors import one_line_errors


@one_line_errors
def main() -> None:
    params = load_params()
    run_train_detector_stage(params)


if __name__ == "__main__":
    main()
