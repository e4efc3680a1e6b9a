"""``report``: collect every run's validation metrics into ``reports/summary.json`` and a table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from xmodal._io import atomic_file, read_json, write_json
from xmodal.config import Params
from xmodal.methods import get_method
from xmodal.stages._paths import registry_dir, report_dir, summary_file


def headline(metrics: dict[str, dict[str, float]]) -> dict[str, float]:
    """The split a run is judged on: ``test`` when there is one (``multiome``), else ``validation``."""
    return metrics.get("test") or metrics["validation"]


def run(params: Params, *, root: str | Path = ".") -> dict[str, Any]:
    """Write ``reports/summary.json`` for every (dataset, method) in ``params.runs``.

    Each run's headline metrics: its validation cells (``paired``) or its test cells (``multiome``,
    whose validation cells drove early stopping).

    Returns
    -------
    dict
        ``{"runs": [{"dataset", "method", "metrics", "registry"}...]}``; a run with no
        ``metrics.json`` yet is listed with ``"status": "not evaluated"``.
    """
    rows = []
    for group in params.runs.values():
        for dataset in group.datasets:
            for method in group.methods:
                metrics_file = report_dir(root, dataset, method) / "metrics.json"
                decision_file = registry_dir(root, dataset, method) / "decision.json"
                row: dict[str, Any] = {"dataset": dataset, "method": method}
                if metrics_file.is_file():
                    row["metrics"] = headline(read_json(metrics_file))
                    row["status"] = "evaluated"
                else:
                    row["status"] = "not evaluated"
                row["registry"] = read_json(decision_file) if decision_file.is_file() else None
                rows.append(row)
    summary = {"runs": rows}
    with atomic_file(summary_file(root)) as tmp:
        write_json(tmp, summary)
    return summary


def format_table(summary: dict[str, Any]) -> str:
    """Render the summary as a plain-text table (one line per run)."""
    lines = []
    for row in summary["runs"]:
        spec = get_method(row["method"])
        metrics = row.get("metrics") or {}
        cells = [f"{m}={metrics[m]:.3f}" for m in spec.summary_metrics if metrics.get(m) is not None]
        reg = row.get("registry") or {}
        decision = reg.get("decision", "not registered")
        if reg:
            champion = reg.get("champion_after")
            decision += f" v{reg['version']} (champion: {'v' + str(champion) if champion else 'none'})"
        lines.append(f"{row['dataset']:<20} {row['method']:<10} {'  '.join(cells) or row['status']:<80} {decision}")
    header = f"{'dataset':<20} {'method':<10} {'held-out metrics (paired: validation, multiome: test cells)':<80} registry"
    return "\n".join([header, "-" * len(header), *lines])
