"""The stages over artifact folders: what a Kubeflow component calls (one call per component).

A pipeline step gets its inputs as separate folders (KFP artifacts) rather than one project tree.
Each function here lays those folders out as a scratch project root (symbolic links, nothing copied),
runs the ordinary stage on it, and copies the stage's output folder to the output artifact path.
Parameters travel as text (one line of JSON as ``xmodal pipeline`` compiles them in, or the YAML of a
``params.yaml``), so a compiled pipeline carries them and a run can override them.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

from xmodal.config import Params, params_from_dict
from xmodal.errors import XmodalInputError
from xmodal.methods._base import read_model_meta
from xmodal.stages._kfp_task import kfp_task
from xmodal.stages._paths import ingested_dir, model_dir, processed_dir, report_dir

log = logging.getLogger(__name__)


class MetricsLogger(Protocol):
    """What KFP's ``Metrics`` artifact offers (``log_metric``)."""

    def log_metric(self, metric: str, value: float) -> None:
        """Record one scalar."""


class ConfusionLogger(Protocol):
    """What KFP's ``ClassificationMetrics`` artifact offers (``log_confusion_matrix``)."""

    def log_confusion_matrix(self, categories: list[str], matrix: list[list[int]]) -> None:
        """Record a confusion matrix (rows: true class, columns: predicted class)."""


def parse_params(params_text: str) -> Params:
    """Validate parameters carried as text by a pipeline parameter: JSON (what ``xmodal pipeline`` compiles
    in) or the YAML of a ``params.yaml``."""
    from xmodal.config._load import parse_yaml

    try:
        raw = json.loads(params_text)
    except ValueError:
        raw = parse_yaml(params_text, source="params_text") or {}
    if not isinstance(raw, dict):
        raise XmodalInputError("pipeline parameter params_text is not a YAML mapping",
                               fix="pass the text of params.yaml")
    return params_from_dict(raw, source="params_text")


def step_params(params_text: str) -> Params:
    """:func:`parse_params`, then this process's numerical libraries set to ``params.threads`` threads.

    A pipeline step is one process running one stage: the setting holds for the rest of it, whatever the
    container's environment says (see :func:`xmodal._threads.pinned_threads`).
    """
    from xmodal._threads import set_threads

    params = parse_params(params_text)
    set_threads(params.threads)
    return params


@contextmanager
def _scratch_root(links: Callable[[Path], Mapping[Path, str | Path]] | None = None) -> Iterator[Path]:
    """A temporary project root in which each path ``links(root)`` returns (built by :mod:`xmodal.stages._paths`,
    so every name in it is checked) is a link to an input folder."""
    root = Path(tempfile.mkdtemp(prefix="xmodal-step-"))
    try:
        for dest, target in (links(root) if links else {}).items():
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(Path(target).resolve(), dest, target_is_directory=True)
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _export(folder: Path, output: str | Path) -> None:
    """Copy a stage's output folder to an artifact path (created if needed)."""
    Path(output).mkdir(parents=True, exist_ok=True)
    shutil.copytree(folder, output, dirs_exist_ok=True)


@kfp_task
def ingest_step(params_text: str, *, dataset: str, output: str | Path, source_root: str | Path = "") -> dict[str, Any]:
    """Ingest ``dataset`` into the folder ``output`` (``data.h5mu`` + ``schema.json``).

    ``source_root`` resolves relative source paths (the project checkout when run locally); ``s3://``
    sources and the embedded datasets need none.

    Returns
    -------
    dict
        The schema (shapes and content hashes).
    """
    from xmodal.stages import ingest

    params = step_params(params_text)
    with _scratch_root() as root:
        result = ingest.run(params, dataset=dataset, root=root, source_root=source_root or Path.cwd())
        _export(result.output, output)
    return result.schema


@kfp_task
def preprocess_step(params_text: str, *, dataset: str, ingested: str | Path, output: str | Path) -> dict[str, Any]:
    """Split and preprocess the ingested folder ``ingested`` into ``output``; returns the split sizes."""
    from xmodal.stages import preprocess

    params = step_params(params_text)
    with _scratch_root(lambda root: {ingested_dir(root, dataset): ingested}) as root:
        result = preprocess.run(params, dataset=dataset, root=root)
        _export(result.output, output)
    return {"n_train": result.n_train, "n_validation": result.n_validation, "n_test": result.n_test}


@kfp_task
def train_step(params_text: str, *, dataset: str, method: str, processed: str | Path,
               output: str | Path) -> dict[str, Any]:
    """Fit ``method`` on the processed folder ``processed``; the model folder goes to ``output``.

    Returns
    -------
    dict
        ``{"method", "dataset", ...fit info}``, suitable as artifact metadata.
    """
    from xmodal.stages import train

    params = step_params(params_text)
    with _scratch_root(lambda root: {processed_dir(root, dataset): processed}) as root:
        result = train.run(params, dataset=dataset, method=method, root=root)
        _export(result.output, output)
    scalars = {k: v for k, v in result.info.items() if isinstance(v, int | float | str)}
    return {"method": method, "dataset": dataset, **scalars}


@kfp_task
def train_distributed_step(params_text: str, *, dataset: str, method: str, processed: str | Path,
                  output: str | Path) -> dict[str, Any]:
    """Fit ``method`` across nodes as a Kubeflow Trainer ``TrainJob`` (``pipeline.distributed.<method>``); the
    model folder node 0 saved goes to ``output`` (see :mod:`xmodal.stages.trainjob`).

    Returns
    -------
    dict
        ``{"method", "dataset", "trainjob", ...fit info}``.
    """
    from xmodal.stages.trainjob import run_trainjob

    params = step_params(params_text)
    info = run_trainjob(params, params_text=params_text, dataset=dataset, method=method, processed=processed,
                        output=output)
    return {"method": method, "dataset": dataset, **info}


@kfp_task
def evaluate_step(
    params_text: str,
    *,
    dataset: str,
    processed: str | Path,
    model: str | Path,
    output: str | Path,
    metrics: MetricsLogger | None = None,
    confusion: ConfusionLogger | None = None,
    html: str | Path | None = None,
) -> dict[str, float]:
    """Evaluate the model folder ``model`` on the held-out cells; the report folder goes to ``output``.

    Parameters
    ----------
    metrics
        Receives every finite test-split metric (the Kubeflow UI lists them).
    confusion
        Receives the family's confusion matrix on the test cells, when the data are labelled.
    html
        A self-contained HTML page (metrics table + embedded plots) is written here.

    Returns
    -------
    dict
        The headline metrics: the test cells'.
    """
    from xmodal.stages import evaluate

    params = step_params(params_text)
    method = read_model_meta(model)["method"]
    with _scratch_root(lambda root: {processed_dir(root, dataset): processed,
                                     model_dir(root, dataset, method): model}) as root:
        result = evaluate.run(params, dataset=dataset, method=method, root=root)
        _export(result.output, output)
        if confusion is not None:
            categories, matrix = evaluate.confusion(params, dataset=dataset, method=method, root=root)
            if categories:
                confusion.log_confusion_matrix(categories, matrix)
    from xmodal.stages.report import headline

    test = headline(result.metrics)
    if metrics is not None:
        for key, value in sorted(test.items()):
            if isinstance(value, int | float) and value == value:
                metrics.log_metric(key, float(value))
    if html is not None:
        _write_html(Path(output), Path(html), title=f"{method} on {dataset}", metrics=test)
    return test


@kfp_task
def register_step(
    params_text: str,
    *,
    dataset: str,
    ingested: str | Path,
    processed: str | Path,
    models: Sequence[str | Path],
    evaluations: Sequence[str | Path],
    output: str | Path | None = None,
    registered_as: str = "",
    reference_ingested: str | Path | None = None,
    reference_processed: str | Path | None = None,
) -> list[dict[str, Any]]:
    """Register every (model, evaluation) pair of one dataset; decisions as JSON/Markdown in ``output``.

    The tracking store comes from ``register.tracking_uri`` or ``MLFLOW_TRACKING_URI`` (a cluster sets the
    latter from the ``xmodal-config`` ConfigMap). ``models[i]`` and ``evaluations[i]`` must belong together;
    each model folder names its method. ``registered_as`` names the dataset whose registered models the
    versions join (empty: ``dataset``), see :func:`xmodal.stages.register.run`; its ingested and processed
    folders (``reference_ingested``, ``reference_processed``) hold the held-out cells its gates are judged on
    (without them such a version is rejected).
    """
    from xmodal.stages import register

    if len(models) != len(evaluations):
        raise XmodalInputError(f"{len(models)} models but {len(evaluations)} evaluations",
                               fix="pass one evaluation folder per model")
    params = step_params(params_text)
    decisions = []
    for model, evaluation in zip(models, evaluations, strict=True):
        method = read_model_meta(model)["method"]
        def links(root: Path, method: str = method, model: str | Path = model,
                  evaluation: str | Path = evaluation) -> dict[Path, str | Path]:
            found = {ingested_dir(root, dataset): ingested, processed_dir(root, dataset): processed,
                     model_dir(root, dataset, method): model, report_dir(root, dataset, method): evaluation}
            if registered_as and registered_as != dataset and reference_ingested and reference_processed:
                found |= {ingested_dir(root, registered_as): reference_ingested,
                          processed_dir(root, registered_as): reference_processed}
            return found

        with _scratch_root(links) as root:
            decisions.append(register.run(params, dataset=dataset, method=method, root=root,
                                          registered_as=registered_as or None).decision)
    if output is not None:
        _write_decisions(Path(output), decisions)
    return decisions


@kfp_task
def monitor_step(
    params_text: str,
    *,
    dataset: str,
    ingested: str | Path,
    processed: str | Path,
    new: str | Path,
    output: str | Path,
    metrics: MetricsLogger | None = None,
    html: str | Path | None = None,
) -> bool:
    """Drift of the folder ``new`` against the training cells of ``dataset``; the report folder goes to ``output``.

    Parameters
    ----------
    metrics
        Receives ``drifted_share_<modality>`` per modality.
    html
        A copy of the Evidently report.

    Returns
    -------
    bool
        Whether to retrain.
    """
    from xmodal.stages import monitor

    params = step_params(params_text)
    with _scratch_root(lambda root: {ingested_dir(root, dataset): ingested,
                                     processed_dir(root, dataset): processed}) as root:
        result = monitor.run(params, dataset=dataset, new=Path(new).resolve(), root=root)
        _export(result.output, output)
    if metrics is not None:
        for name, drift in sorted(result.modalities.items()):
            metrics.log_metric(f"drifted_share_{name}", float(drift.drifted_share))
    report = Path(output) / "drift.html"
    if html is not None and report.is_file():
        Path(html).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(report, html)
    return bool(result.retrain)


def _write_decisions(output: Path, decisions: list[dict[str, Any]]) -> None:
    lines = ["| dataset | method | model | version | decision | champion | reasons |",
             "|---|---|---|---|---|---|---|"]
    for d in decisions:
        lines.append(f"| {d['dataset']} | {d['method']} | {d['model_name']} | {d['version']} | **{d['decision']}** | "
                     f"{d['champion_after'] or '—'} | {'; '.join(d['reasons'])} |")
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text("# Registry decisions\n\n" + "\n".join(lines) + "\n")


def _write_html(report: Path, html: Path, *, title: str, metrics: Mapping[str, float]) -> None:
    rows = "".join(f"<tr><td>{k}</td><td>{v:.4g}</td></tr>" for k, v in sorted(metrics.items())
                   if isinstance(v, int | float))
    images = "".join(
        f'<h2>{png.stem}</h2><img alt="{png.stem}" src="data:image/png;base64,'
        f'{base64.b64encode(png.read_bytes()).decode()}"/>' for png in sorted(report.glob("**/*.png")))
    html.parent.mkdir(parents=True, exist_ok=True)
    html.write_text(f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title></head><body>"
                    f"<h1>{title}</h1><h2>test-split metrics</h2><table>{rows}</table>{images}</body></html>")


__all__ = ["evaluate_step", "ingest_step", "monitor_step", "parse_params", "preprocess_step", "register_step",
           "step_params",
           "train_step"]
