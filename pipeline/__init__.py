"""MOSA on Action Genome: cached DVC pipeline library."""

__version__ = "0.1.0"
