"""ROI feature extraction (extract stage) and the HDF5 cache reader (`pipeline.extraction.cache`)."""
