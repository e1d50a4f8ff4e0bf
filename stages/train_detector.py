"""DVC stage: train the default detector -> models/detector/ + metrics/detector.json.

Only writes its metrics file when ``detector.checkpoint`` is set.
"""

import typer

from pipeline.cli import train_detector

if __name__ == "__main__":
    typer.run(train_detector)
