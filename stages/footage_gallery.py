"""DVC stage: `mosa predict` on synthetic videos from an unseen seed -> reports/footage/ (the report's gallery)."""

from pipeline.params import load_params
from pipeline.report.footage_gallery import run_footage_gallery_stage
from pipeline.user_errors import one_line_errors


@one_line_errors
def main() -> None:
    for folder in run_footage_gallery_stage(load_params()):
        print(f"wrote {folder}")


if __name__ == "__main__":
    main()
