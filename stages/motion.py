"""DVC stage: features/index (+ the SGDet detections of features/roi when present) -> features/motion/motion.parquet."""

from pipeline.cli import motion

if __name__ == "__main__":
    motion()
