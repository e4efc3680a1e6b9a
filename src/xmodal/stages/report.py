"""``report``: collect every run's test-split metrics into ``reports/summary.json`` and one table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from xmodal._io import atomic_file, read_json, write_json
from xmodal.config import Params
from xmodal.families._base import HEADLINE
from xmodal.methods import get_method
from xmodal.stages._paths import registry_dir, report_dir, summary_file

#: version of the ``reports/summary.json`` layout (one layout for every family)
SUMMARY_VERSION = 2


def headline(metrics: dict[str, dict[str, float]]) -> dict[str, float]:
    """The metrics a run is judged on: its test cells (never seen by training, early stopping or search)."""
    return metrics[HEADLINE]


def run(params: Params, *, root: str | Path = ".") -> dict[str, Any]:
    """Write ``reports/summary.json`` for every entry of ``params.runs``.

    Returns
    -------
    dict
        ``{"version", "split": "test", "runs": [row...]}``. Every row has the same keys: ``run``, ``dataset``,
        ``family``, ``method``, ``status`` (``evaluated`` / ``not evaluated``), ``primary_metric``,
        ``greater_is_better``, ``metrics`` (the test split's; ``{}`` when not evaluated) and ``registry`` (the
        last promotion decision, or ``None``).
    """
    rows = []
    for name, entry in params.runs.items():
        dataset, method = entry.dataset, entry.method
        spec = get_method(method)
        metrics_file = report_dir(root, dataset, method) / "metrics.json"
        decision_file = registry_dir(root, dataset, method) / "decision.json"
        evaluated = metrics_file.is_file()
        rows.append({
            "run": name, "dataset": dataset, "family": params.dataset(dataset).family, "method": method,
            "status": "evaluated" if evaluated else "not evaluated",
            "primary_metric": spec.primary_metric, "greater_is_better": spec.greater_is_better,
            "metrics": headline(read_json(metrics_file)) if evaluated else {},
            "registry": read_json(decision_file) if decision_file.is_file() else None,
        })
    summary = {"version": SUMMARY_VERSION, "split": HEADLINE, "runs": rows}
    with atomic_file(summary_file(root)) as tmp:
        write_json(tmp, summary)
    return summary


def format_table(summary: dict[str, Any]) -> str:
    """Render the summary as one plain-text table: one line per run, its primary metric first."""
    lines = []
    for row in summary["runs"]:
        spec = get_method(row["method"])
        metrics = row.get("metrics") or {}
        shown = [row["primary_metric"], *(m for m in spec.summary_metrics if m != row["primary_metric"])]
        cells = [f"{m}={metrics[m]:.3f}" for m in shown if metrics.get(m) is not None]
        reg = row.get("registry") or {}
        decision = reg.get("decision", "not registered")
        if reg:
            champion = reg.get("champion_after")
            decision += f" v{reg['version']} (champion: {'v' + str(champion) if champion else 'none'})"
        lines.append(f"{row['dataset']:<20} {row['family']:<9} {row['method']:<10} "
                     f"{'  '.join(cells) or row['status']:<80} {decision}")
    header = (f"{'dataset':<20} {'family':<9} {'method':<10} "
              f"{'test-split metrics (primary first; the headline, gates and promotion)':<80} registry")
    return "\n".join([header, "-" * len(header), *lines])
