"""DVC stage: features/index + features/motion/motion.parquet -> metrics/probe.json (benchmark probes)."""

from pipeline.cli import probe

if __name__ == "__main__":
    probe()
