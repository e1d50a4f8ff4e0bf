"""DVC stage: prompt templates + frozen text encoder -> features/text/text.h5."""

from pipeline.params import load_params
from pipeline.text.embed import run_text_stage
from pipeline.user_errors import one_line_errors


@one_line_errors
def main() -> None:
    run_text_stage(load_params())


if __name__ == "__main__":
    main()
