"""The mmdet detector: config + weights-only checkpoints, training (train_detector stage), AG post-processing."""
