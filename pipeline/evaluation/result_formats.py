"""Turning recall results into the JSON document, DVC plot records and a text table."""

from __future__ import annotations

import math

from pipeline.constants import PREDICATES, predicate_group
from pipeline.evaluation.evaluator import ConstraintResult


def _percent(value: float) -> float | None:
    return None if math.isnan(value) else 100.0 * value


def per_predicate(result: ConstraintResult) -> dict[str, dict]:
    """``{predicate: {"group", "gt_count", "R@10", ...}}``, recall in percent, None without GT."""
    table = {
        name: {"group": predicate_group(i), "gt_count": int(result.predicate_counts[i])}
        for i, name in enumerate(PREDICATES)
    }
    for k in result.ks:
        for name, recall in zip(PREDICATES, result.predicate_recall(k), strict=True):
            table[name][f"R@{k}"] = _percent(float(recall))
    return table


def results_json(results: dict[str, ConstraintResult]) -> dict:
    """``{"with": {"R@10": ..., "mR@10": ...}, ..., "per_predicate": {"with": {...}}}`` in percent."""
    out: dict = {constraint: result.metrics() for constraint, result in results.items()}
    out["per_predicate"] = {constraint: per_predicate(result) for constraint, result in results.items()}
    return out


def per_predicate_records(results: dict[str, ConstraintResult]) -> list[dict]:
    """Flat rows (one per constraint and predicate) for a DVC plot of per-predicate recall."""
    rows = []
    for constraint, result in results.items():
        for name, entry in per_predicate(result).items():
            rows.append({"constraint": constraint, "predicate": name, **entry})
    return rows


def format_table(results: dict[str, ConstraintResult], with_predicates: bool = False) -> str:
    """A plain-text summary table (percent), optionally followed by per-predicate recall."""
    first = next(iter(results.values()))
    columns = [f"R@{k}" for k in first.ks] + [f"mR@{k}" for k in first.ks]
    lines = [f"{'constraint':<11}" + "".join(f"{c:>8}" for c in columns)]
    for constraint, result in results.items():
        metrics = result.metrics()
        lines.append(f"{constraint:<11}" + "".join(f"{metrics[c]:>8.2f}" for c in columns))
    if with_predicates:
        for constraint, result in results.items():
            lines.append("")
            lines.append(f"per-predicate recall, {constraint} constraint")
            lines.append(f"{'predicate':<21}{'GT':>8}" + "".join(f"{f'R@{k}':>8}" for k in result.ks))
            for name, entry in per_predicate(result).items():
                cells = "".join(
                    f"{'-':>8}" if entry[f"R@{k}"] is None else f"{entry[f'R@{k}']:>8.2f}" for k in result.ks
                )
                lines.append(f"{name:<21}{entry['gt_count']:>8}" + cells)
    return "\n".join(lines)
