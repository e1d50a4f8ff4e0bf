"""DVC stage: metrics, curves, per-predicate recall, search metric and predictions -> one self-contained HTML page."""

from pipeline.params import load_params
from pipeline.report import run_report_stage
from pipeline.user_errors import one_line_errors


@one_line_errors
def main() -> None:
    print(f"wrote {run_report_stage(load_params())}")


if __name__ == "__main__":
    main()
