"""Static, self-contained HTML report of a pipeline run (metrics, long tail, curves, ablations, gallery)."""

from pipeline.report.page import build_report, run_report_stage

__all__ = ["build_report", "run_report_stage"]
