"""``evaluate``: the family's metrics of a trained model on every split (test is the headline), and its plots."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from xmodal._io import atomic_dir, prepare_output
from xmodal.config import Params
from xmodal.families import family_of
from xmodal.stages._paths import model_dir, processed_dir, report_dir

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvaluateResult:
    """Output folder and the metrics (``{"test": {...}, "validation": {...}, "train": {...}}``)."""

    output: Path
    metrics: dict[str, dict[str, float]]


def run(params: Params, *, dataset: str, method: str, root: str | Path = ".") -> EvaluateResult:
    """Score ``models/<dataset>/<method>`` on the train, validation and test cells of ``data/processed/<dataset>``.

    Writes ``reports/<dataset>/<method>/metrics.json`` (one entry per split; ``test`` is the headline) and
    the family's plots in ``reports/<dataset>/<method>/plots/``, atomically.
    """
    family = family_of(params, dataset)
    out = prepare_output(report_dir(root, dataset, method))
    with atomic_dir(out) as tmp:
        evaluation = family.evaluate(model_dir(root, dataset, method), processed_dir(root, dataset), out=tmp,
                                     cfg=params.evaluate, title=f"{method} on {dataset}")
    log.info("evaluate %s/%s (test cells): %s", dataset, method, evaluation.summary)
    return EvaluateResult(output=out, metrics=evaluation.metrics)


def confusion(params: Params, *, dataset: str, method: str, root: str | Path = ".") -> tuple[list[str], list[list[int]]]:
    """The family's confusion matrix on the test cells: ``(categories, matrix)``, both empty without labels."""
    return family_of(params, dataset).confusion(model_dir(root, dataset, method), processed_dir(root, dataset),
                                                cfg=params.evaluate)
