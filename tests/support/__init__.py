"""Builders of tiny detectors, datasets, caches and model inputs shared by tests and benchmarks."""
