"""The training pipeline: ingest → preprocess → ParallelFor over methods {train → evaluate} → register."""

# no `from __future__ import annotations`: KFP reads the pipeline function's real annotations

from typing import Any

from xmodal.config import Params, TaskResources
from xmodal.errors import ConfigError

PIPELINE_NAME = "xmodal-training"


def default_dataset(params: Params) -> str:
    """``pipeline.dataset``, else the dataset of the first entry of ``runs``."""
    if params.pipeline.dataset:
        params.dataset(params.pipeline.dataset)
        return params.pipeline.dataset
    for dataset, _ in params.run_pairs():
        return dataset
    raise ConfigError("pipeline.dataset: not set and params.runs lists no run")


def methods_for(params: Params, *, dataset: str) -> list[str]:
    """The methods ``runs`` trains on ``dataset``; for a dataset no run names (new cells of the same kind, e.g.
    the retraining pipeline's), those of the runs on datasets of its family, in order.

    Raises
    ------
    ConfigError
        When no run trains a method on the dataset or its family.
    """
    by_dataset: dict[str, list[str]] = {}
    by_family: dict[str, list[str]] = {}
    for run_dataset, method in params.run_pairs():
        by_dataset.setdefault(run_dataset, []).append(method)
        kin = by_family.setdefault(params.dataset(run_dataset).family, [])
        if method not in kin:
            kin.append(method)
    methods = by_dataset.get(dataset) or by_family.get(params.dataset(dataset).family, [])
    if not methods:
        raise ConfigError(f"runs: no run trains a method on {dataset!r} or on another dataset of its family "
                          f"{params.dataset(dataset).family!r}; add one (runs.<name>: {{dataset, method}})")
    return methods


def method_groups(params: Params, *, dataset: str) -> list[tuple[TaskResources, bool, list[str]]]:
    """The methods to train on ``dataset`` (:func:`methods_for`), grouped by identical train tasks (one ParallelFor
    each): ``(resources, distributed, methods)``.

    A ``ParallelFor`` runs one task spec for all its items, so methods that need other resources
    (a GPU, more memory) get their own loop, and so do the methods ``pipeline.distributed`` trains as a Kubeflow
    Trainer ``TrainJob`` (their task only stages the data, submits the job and waits: default resources).
    """
    groups: list[tuple[TaskResources, bool, list[str]]] = []
    for method in methods_for(params, dataset=dataset):
        distributed = method in params.pipeline.distributed
        res = params.pipeline.defaults if distributed else params.pipeline.resources.get(method,
                                                                                         params.pipeline.defaults)
        for known, kind, members in groups:
            if known == res and kind == distributed:
                members.append(method)
                break
        else:
            groups.append((res, distributed, [method]))
    return groups


def add_training_tasks(params: Params, *, dataset_name: str, params_text: Any, dataset: Any, source_root: Any,
                       registered_as: Any = "", reference_ingested: Any = None, reference_processed: Any = None,
                       prefix: str = "") -> Any:
    """Add ingest → preprocess → ParallelFor {train → evaluate} → register to the pipeline being defined.

    Parameters
    ----------
    params
        Parsed parameters (``pipeline:`` resources, ``runs`` methods).
    dataset_name
        The dataset the methods are chosen for now (the default of the pipeline parameter ``dataset``).
    params_text, dataset, source_root, registered_as
        Pipeline parameters (or values) the tasks receive.
    reference_ingested, reference_processed
        The registered dataset's ingested and processed folders (task outputs), when the models join another
        dataset's registered models: the register step judges the gates on its held-out cells.
    prefix
        Prepended to the tasks' display names.

    Returns
    -------
    kfp PipelineTask
        The register task.
    """
    from kfp import dsl

    from xmodal.components import evaluate, ingest, preprocess, register, train, train_distributed
    from xmodal.pipelines._platform import configure_task

    cfg = params.pipeline
    ing = configure_task(ingest(params_text=params_text, dataset=dataset, source_root=source_root),
                         cfg=cfg, name=f"{prefix}ingest")
    prep = configure_task(preprocess(params_text=params_text, dataset=dataset, ingested=ing.outputs["ingested"]),
                          cfg=cfg, name=f"{prefix}preprocess")
    references = {} if reference_ingested is None else {"reference_ingested": reference_ingested,
                                                        "reference_processed": reference_processed}
    reg = None
    for resources, distributed, methods in method_groups(params, dataset=dataset_name):
        with dsl.ParallelFor(items=methods, parallelism=cfg.parallelism) as method:
            component = train_distributed if distributed else train
            tr = configure_task(component(params_text=params_text, dataset=dataset, method=method,
                                          processed=prep.outputs["processed"]),
                                cfg=cfg, resources=resources,
                                name=f"{prefix}train{' (TrainJob)' if distributed else ''}")
            ev = configure_task(evaluate(params_text=params_text, dataset=dataset,
                                         processed=prep.outputs["processed"], model=tr.outputs["model"]),
                                cfg=cfg, name=f"{prefix}evaluate")
        reg = configure_task(register(params_text=params_text, dataset=dataset, ingested=ing.outputs["ingested"],
                                      processed=prep.outputs["processed"],
                                      models=dsl.Collected(tr.outputs["model"]),
                                      evaluations=dsl.Collected(ev.outputs["evaluation"]),
                                      registered_as=registered_as, **references),
                             cfg=cfg, name=f"{prefix}register")
        reg.set_caching_options(enable_caching=False)  # the registry is a side effect: never skip it
    return reg


def build_training_pipeline(params: Params, *, params_text: str, dataset: str | None = None) -> Any:
    """Build the training pipeline for one dataset.

    Parameters
    ----------
    params
        Parsed parameters: ``pipeline:`` gives resources, scheduling, secrets and caching; ``runs`` the methods.
    params_text
        The parameters as text (JSON or YAML): the default of the pipeline parameter ``params_text``, which
        every step parses (a run may pass another).
    dataset
        Default of the pipeline parameter ``dataset`` (see :func:`default_dataset`). The pipeline parameter
        ``registered_as`` (empty by default) makes the new versions join another dataset's registered models
        (their gates are then judged on that dataset's held-out cells, which this pipeline does not produce:
        the retraining pipeline passes them).

    Returns
    -------
    kfp GraphComponent
        Compile it with ``kfp.compiler.Compiler`` or call it under ``kfp.local``.
    """
    from kfp import dsl

    ds = dataset or default_dataset(params)
    method_groups(params, dataset=ds)  # fail early: a dataset without methods

    @dsl.pipeline(name=PIPELINE_NAME,
                  description="ingest → preprocess → (train → evaluate) per method → register in MLflow")
    def training(params_text: str = params_text, dataset: str = ds, source_root: str = "",
                 registered_as: str = "") -> None:
        add_training_tasks(params, dataset_name=ds, params_text=params_text, dataset=dataset,
                           source_root=source_root, registered_as=registered_as)

    return training
