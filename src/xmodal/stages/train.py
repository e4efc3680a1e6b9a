"""``train``: fit a registered method on the training split of a processed dataset."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xmodal._io import atomic_dir, prepare_output, remove_stale_in, update_json
from xmodal.config import Params, describe_settings
from xmodal.errors import ConfigError, TrainingDivergedError, reading
from xmodal.families import family_of
from xmodal.methods import get_method
from xmodal.methods._base import MODEL_JSON
from xmodal.stages._paths import ABLATION, checkpoint_dir, model_dir, processed_dir

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainResult:
    """The saved model folder and the model's fit summary."""

    output: Path
    info: dict[str, Any]


def load_training_data(params: Params, *, dataset: str, method: str, root: str | Path = ".") -> Any:
    """What ``method`` may see of ``data/processed/<dataset>``: the family's training data (never test cells).

    Raises
    ------
    ConfigError
        When the method does not work on the dataset's family.
    """
    spec = get_method(method)
    family = params.dataset(dataset).family
    if spec.family != family:
        raise ConfigError(f"method {method!r} works on family {spec.family!r}; dataset {dataset!r} is {family!r}")
    return family_of(params, dataset).training_data(processed_dir(root, dataset))


def training_kwargs(params: Params, *, dataset: str) -> dict[str, Any]:
    """Keyword arguments of ``fit`` that come from the dataset (its family says which)."""
    return family_of(params, dataset).fit_kwargs(params.dataset(dataset))


def _check_finite(saved: Path, *, spec: Any, model: Any, train: Any, family: Any) -> None:
    """Refuse a fitted model whose saved arrays, or the family's view of its outputs on training cells, are not
    finite.

    Raises
    ------
    TrainingDivergedError
        Naming the array (or modality), how many values are NaN/inf, and the parameter to change; the model
        folder being written is then removed.
    """
    from xmodal.methods._base import first_nonfinite

    found = first_nonfinite(saved)
    where = None if found is None else f"{found[1]:,} of the {found[2]:,} values of {found[0]} are NaN or infinite"
    if where is None:
        where = family.check_fitted(model, train)
    if where is not None:
        raise TrainingDivergedError(f"{spec.name}: the fitted model is not finite ({where}); it was not saved. "
                                    f"Fix: {spec.divergence_fix}")


def run(params: Params, *, dataset: str, method: str, root: str | Path = ".", resume: bool = False) -> TrainResult:
    """Fit ``method`` on the training cells of ``data/processed/<dataset>`` and save it.

    Parameters
    ----------
    params
        ``params.methods[method]`` holds the hyper-parameters; ``params.seed`` seeds the fit.
    dataset, method
        Names in ``params.yaml`` and the method registry.
    root
        Project root; the model goes to ``models/<dataset>/<method>``.
    resume
        Continue from ``checkpoints/<dataset>/<method>/checkpoint.pt`` (methods whose registry
        entry is ``resumable``; they write that checkpoint while training).

    Returns
    -------
    TrainResult
        Output folder and fit summary. Test cells are never passed to the fit; what else it sees is the
        family's :meth:`~xmodal.families._base.Family.training_data`. A
        method with an ``ablation`` in its registry entry also gets that baseline, fitted with the same
        settings, in ``ablation/`` of the model folder.
    """
    from xmodal.train import global_rank

    spec = get_method(method)
    if resume and not spec.resumable:
        raise ConfigError(f"method {method!r} does not checkpoint its training; run without --resume")
    config = params.method(method)
    log.info("train %s/%s: %s", dataset, method, describe_settings(config, what=f"methods.{method}"))
    writer = global_rank() == 0  # under DDP every rank trains; rank 0 alone writes
    out = model_dir(root, dataset, method)
    # written in place: refused when it (or a folder between it and checkpoints/) is a link, before anything else
    ckpt = checkpoint_dir(root, dataset, method) if spec.resumable else None
    if ckpt is not None:
        from xmodal.train import check_checkpoint_place

        check_checkpoint_place(ckpt, resume=resume, what=method)
    if writer:
        out = prepare_output(out)
        if ckpt is not None:  # a checkpoint being written when the last run was killed
            remove_stale_in(ckpt)
    train = load_training_data(params, dataset=dataset, method=method, root=root)
    fit_kw = training_kwargs(params, dataset=dataset)
    resume_kw = {"checkpoint_dir": ckpt, "resume": resume} if ckpt is not None else {}
    live = _open_live_run(params, dataset=dataset, method=method, root=root) if writer and spec.resumable else None
    live_kw = {"live": live} if live is not None else {}
    log.info("train %s/%s: fitting%s", dataset, method, " (resuming from the checkpoint)" if resume else "")
    try:
        with reading(family_of(params, dataset).data_path(processed_dir(root, dataset))):
            model = spec.model_cls()(config).fit(train, seed=params.seed, **fit_kw, **resume_kw, **live_kw)
            ablation = None
            if spec.ablation:
                log.info("train %s/%s: the ablation (%s) with the same settings", dataset, method, spec.ablation)
                ablation = spec.model_cls()(config.model_copy(update=spec.ablation)).fit(train, seed=params.seed,
                                                                                         **fit_kw)
        if not writer:
            log.info("train %s/%s: rank %d done (rank 0 saves the model)", dataset, method, global_rank())
            return TrainResult(output=out, info=dict(model.info))
        trained = {"seed": params.seed, "dataset": dataset, **{k: v for k, v in fit_kw.items() if v is not None}}
        with atomic_dir(out) as tmp:
            model.save(tmp)
            update_json(tmp / MODEL_JSON, trained=trained)  # what the registry logs as the run's settings
            if ablation is not None:
                ablation.save(tmp / ABLATION)
                update_json(tmp / ABLATION / MODEL_JSON, trained=trained)
            _check_finite(tmp, spec=spec, model=model, train=train, family=family_of(params, dataset))
    except BaseException:
        if live is not None:
            _close_quietly(live, status="KILLED")
        raise
    if live is not None:
        from xmodal.stages.register import MODEL_HASH_TAG
        from xmodal.tracking import model_sha256

        _close_quietly(live, status="FINISHED", tags={MODEL_HASH_TAG: model_sha256(out)})
    log.info("train %s/%s → %s", dataset, method, out)
    return TrainResult(output=out, info=dict(model.info))


def _open_live_run(params: Params, *, dataset: str, method: str, root: str | Path) -> Any:
    """The MLflow run that records this training while it runs, or ``None`` (``register.live_training: false``,
    or the store cannot be opened: training goes on, logged, and ``register`` creates the run later)."""
    cfg = params.registry
    if not cfg.live_training:
        return None
    from xmodal.stages.register import settings_from_params
    from xmodal.tracking import Tracker, flatten_params, lineage_tags, resolve_tracking_uri
    from xmodal.tracking._live import TrainingRun, dataset_inputs
    from xmodal.tracking._mlflow import resolve_artifact_location

    settings = settings_from_params(params, dataset=dataset, method=method)
    try:
        tracker = Tracker(resolve_tracking_uri(cfg.tracking_uri, root=root), experiment=cfg.experiment,
                          artifact_location=resolve_artifact_location(cfg.artifact_location, root=root))
        return TrainingRun(tracker, run_name=f"{method}-{dataset}", params=flatten_params(settings),
                           inputs=dataset_inputs(processed_dir(root, dataset), dataset=dataset),
                           tags={**lineage_tags(root, dataset=dataset), "xmodal.method": method})
    except Exception as exc:  # noqa: BLE001 - a tracking store being down must not stop a training
        from xmodal.errors import first_line

        log.warning("train %s/%s: no live MLflow run (%s: %s); register will log one", dataset, method,
                    type(exc).__name__, first_line(exc, limit=200))
        return None


def _close_quietly(live: Any, *, status: str, tags: dict[str, str] | None = None) -> None:
    try:
        live.finish(status=status, tags=tags)
    except Exception as exc:  # noqa: BLE001 - the model is saved; the run's closing is bookkeeping
        log.warning("could not close the MLflow run %s (%s)", getattr(live, "run_id", "?"), exc)
