"""Action Genome: on-disk format reader, validator and synthetic generator."""
