"""Compile, run locally (``kfp.local``) and submit (``kfp.Client``) the pipelines."""

from __future__ import annotations

import json
import logging
import os
import re
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xmodal._env import temporary_env
from xmodal.config import Params
from xmodal.errors import ConfigError, PipelineRunError

log = logging.getLogger(__name__)

#: the pipelines ``xmodal pipeline`` knows, by name
PIPELINES = ("training", "retraining")


def params_to_text(params: Params) -> str:
    """The validated parameters as one line of JSON: the compiled default of the ``params_text`` parameter.

    One line, because KFP copies parameter defaults verbatim into the YAML comment header of the package.
    """
    return json.dumps(params.model_dump(mode="json", by_alias=True), sort_keys=True)


def build(name: str, params: Params, *, dataset: str | None = None, new_dataset: str | None = None) -> Any:
    """The pipeline called ``name`` (see :data:`PIPELINES`) built from ``params``."""
    params_text = params_to_text(params)
    if name == "training":
        from xmodal.pipelines.training import build_training_pipeline

        return build_training_pipeline(params, params_text=params_text, dataset=dataset)
    if name == "retraining":
        from xmodal.pipelines.retraining import build_retraining_pipeline

        return build_retraining_pipeline(params, params_text=params_text, dataset=dataset, new_dataset=new_dataset)
    raise ConfigError(f"unknown pipeline {name!r} (known: {', '.join(PIPELINES)})")


def compile_pipeline(name: str, params: Params, *, output: str | Path, dataset: str | None = None,
                     new_dataset: str | None = None) -> Path:
    """Compile pipeline ``name`` to the IR YAML file ``output`` (deterministic: same inputs, same bytes)."""
    from kfp import compiler

    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.stem}.tmp.yaml")
    compiler.Compiler().compile(build(name, params, dataset=dataset, new_dataset=new_dataset), str(tmp))
    tmp.replace(output)
    log.info("compiled %s → %s", name, output)
    return output


@dataclass(frozen=True)
class LocalRun:
    """Outcome of a local pipeline run: this run's folder, its registry decisions and drift reports."""

    pipeline_root: Path
    seconds: float
    decisions: list[Path]
    run_dir: Path | None = None
    drift: list[Path] = field(default_factory=list)


def run_local(name: str, params: Params, *, root: str | Path = ".", dataset: str | None = None,
              new_dataset: str | None = None) -> LocalRun:
    """Execute pipeline ``name`` on this machine with ``kfp.local.SubprocessRunner(use_venv=False)``.

    Every task runs in a subprocess of this Python environment. Artifacts go under
    ``<root>/.kfp-local/``; relative dataset paths resolve against ``root``; MLflow is the project's
    store (``register.tracking_uri`` resolved under ``root``, unless ``MLFLOW_TRACKING_URI`` is set) and
    artifact root (``register.artifact_location`` resolved under ``root``). Retries are off: a failed task
    fails the run at once with :class:`~xmodal.errors.PipelineRunError`.
    """
    from kfp import local

    from xmodal.tracking import resolve_tracking_uri
    from xmodal.tracking._lineage import COMMIT_ENV, _git
    from xmodal.tracking._mlflow import resolve_artifact_location

    root = Path(root).resolve()
    # each step works in a scratch root: pin the MLflow artifact root to the project's
    registry = params.registry.model_copy(
        update={"artifact_location": resolve_artifact_location(params.registry.artifact_location, root=root)})
    # kfp.local honours retries (30 s back-off each); here a failure is not a flaky node, so fail at once
    cfg = params.pipeline
    no_retry = {"retries": 0}
    pipeline_cfg = cfg.model_copy(update={"defaults": cfg.defaults.model_copy(update=no_retry), "resources": {
        method: res.model_copy(update=no_retry) for method, res in cfg.resources.items()}})
    params = params.model_copy(update={"registry": registry, "pipeline": pipeline_cfg})
    pipeline_root = root / ".kfp-local"
    pipeline_root.mkdir(parents=True, exist_ok=True)
    earlier = set(pipeline_root.iterdir())
    env = {"MLFLOW_TRACKING_URI": resolve_tracking_uri(params.registry.tracking_uri, root=root)}
    commit = _git(root, "rev-parse", "HEAD")
    if commit:
        env[COMMIT_ENV] = commit
    started = time.time()
    with temporary_env(env), warnings.catch_warnings():
        # the components name the project image; locally they run in this environment, which has xmodal
        warnings.filterwarnings("ignore", message=".*custom or non-Python base image", category=RuntimeWarning)
        local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(pipeline_root),
                   raise_on_error=True)
        pipeline = build(name, params, dataset=dataset, new_dataset=new_dataset)
        try:
            pipeline(source_root=str(root))
        except RuntimeError as exc:  # kfp.local: "Pipeline 'x' finished with status FAILURE. Inner task failed: 'y'."
            text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))
            if "finished with status FAILURE" not in text:
                raise
            failed = re.search(r"Inner task failed: '([^']+)'", text)
            raise PipelineRunError(
                f"the local {name} pipeline failed in task {failed.group(1) if failed else '?'!r}; the task's output "
                f"above says why (artifacts of the run under {pipeline_root})") from None
    seconds = time.time() - started
    # kfp.local gives every run a folder of its own under the pipeline root
    run_dir = next((p for p in sorted(pipeline_root.iterdir()) if p not in earlier and p.is_dir()), None)
    decisions = sorted(p for p in run_dir.rglob("decisions") if p.is_file()) if run_dir else []
    drift = sorted(run_dir.rglob("drift.json")) if run_dir else []
    log.info("local %s pipeline finished in %.1f s", name, seconds)
    return LocalRun(pipeline_root=pipeline_root, seconds=seconds, decisions=decisions, run_dir=run_dir, drift=drift)


def submit(name: str, params: Params, *, host: str, experiment: str = "xmodal",
           dataset: str | None = None, new_dataset: str | None = None, recurring: bool = False,
           cron: str | None = None,
           namespace: str | None = None, service_account: str | None = None, token: str | None = None,
           wait: bool = False, timeout: int = 3600) -> dict[str, Any]:
    """Upload pipeline ``name`` to a Kubeflow Pipelines host and start a run (or a recurring run).

    Parameters
    ----------
    host
        KFP API endpoint, e.g. ``https://kubeflow.example.org/pipeline``.
    recurring, cron
        Create a recurring run on ``cron`` (6 fields, seconds first; default ``pipeline.schedule``)
        instead of one run.
    token
        Bearer token (default: ``$KFP_TOKEN`` if set).

    Returns
    -------
    dict
        ``{"kind": "run"|"recurring_run", "id": ..., "experiment_id": ..., "state": ...}``.
    """
    import tempfile

    import kfp

    client = kfp.Client(host=host, existing_token=token or os.environ.get("KFP_TOKEN") or None,
                        **({"namespace": namespace} if namespace else {}))
    with tempfile.TemporaryDirectory() as tmp:
        package = compile_pipeline(name, params, output=Path(tmp) / f"{name}.yaml", dataset=dataset,
                                   new_dataset=new_dataset)
        run_name = f"xmodal-{name}-{time.strftime('%Y%m%d-%H%M%S')}"
        if recurring:
            exp = client.create_experiment(name=experiment)
            job = client.create_recurring_run(
                experiment_id=exp.experiment_id, job_name=run_name, cron_expression=cron or params.pipeline.schedule,
                pipeline_package_path=str(package), enable_caching=params.pipeline.caching,
                service_account=service_account)
            return {"kind": "recurring_run", "id": job.recurring_run_id, "experiment_id": exp.experiment_id}
        result = client.create_run_from_pipeline_package(
            str(package), arguments={}, run_name=run_name, experiment_name=experiment,
            enable_caching=params.pipeline.caching, service_account=service_account)
    out: dict[str, Any] = {"kind": "run", "id": result.run_id}
    if wait:
        detail = client.wait_for_run_completion(result.run_id, timeout=timeout)
        out["state"] = str(getattr(detail, "state", ""))
    return out
