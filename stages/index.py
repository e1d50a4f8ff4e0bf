"""DVC stage: Action Genome root -> features/index/ (Parquet tables + summary.json)."""

from pipeline.cli import index

if __name__ == "__main__":
    index()
