"""DVC stage: prompt templates + frozen text encoder -> features/text/text.h5."""

from pipeline.cli import text

if __name__ == "__main__":
    text()
