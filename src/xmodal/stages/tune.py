"""``tune``: hyper-parameter search with Optuna, judged on validation cells only.

Each trial draws a configuration from the method's search space (its registry entry names it; for
``dualdann`` seed 001's Optuna ranges), trains on the training cells with ``tune.overrides`` applied
on top (e.g. fewer epochs; an overridden key is held fixed even if the space draws it) and reports the validation metric the model selects on after every validation,
so the median pruner can stop hopeless trials early. The objective is the best validation value of
the trial. **Test cells never reach the search**: they are dropped before the data reach the model.

The study lives in a database (``tune.storage``, default ``sqlite:///optuna.db`` in the project), so a
search can be continued or inspected (``optuna-dashboard``); every trial is also a nested MLflow run
under one parent run per search. The best configuration is written to
``reports/tune/<dataset>/<method>/best_params.json`` (with ``trials.csv`` and ``tune_history.png``),
which ``xmodal train --best-params`` consumes.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xmodal._io import atomic_dir, prepare_output, read_json, write_json
from xmodal.config import Params
from xmodal.errors import ConfigError, XmodalInputError
from xmodal.methods import get_method
from xmodal.stages._paths import tune_dir

log = logging.getLogger(__name__)
BEST_PARAMS = "best_params.json"


@dataclass(frozen=True)
class TuneResult:
    """Where the search wrote its results, and the best trial."""

    output: Path
    best_value: float
    best_params: dict[str, Any]
    n_trials: int
    n_pruned: int


def _storage(uri: str, root: str | Path) -> str:
    """A relative ``sqlite:///`` path is taken from the project root; the scheme must be one Optuna opens."""
    from xmodal._uris import store_uri

    return store_uri(uri, root=root, source="tune.storage", schemes={"sqlite", "postgresql", "mysql"},
                     what="an Optuna storage")


def run(params: Params, *, dataset: str, method: str, root: str | Path = ".", trials: int | None = None,
        timeout: float | None = None) -> TuneResult:
    """Search ``method``'s hyper-parameters on ``data/processed/<dataset>`` (validation cells only).

    Parameters
    ----------
    params
        ``params.tune`` (trials, sampler seed, pruner, storage, per-method overrides) and the method's
        own section (the starting configuration).
    dataset, method
        Names in ``params.yaml`` and the method registry (the method must define a search space).
    root
        Project root.
    trials, timeout
        Override ``tune.trials`` / ``tune.timeout`` (seconds).

    Returns
    -------
    TuneResult
        ``best_params.json`` and a summary of the search.
    """
    import optuna

    from xmodal.stages.train import load_training_data, training_kwargs

    spec = get_method(method)
    if spec.search_space is None:
        raise ConfigError(f"method {method!r} has no search space; tuning works for "
                          f"{sorted(m for m, s in _methods().items() if s.search_space)}")
    cfg = params.tune
    out = prepare_output(tune_dir(root, dataset, method))
    data = load_training_data(params, dataset=dataset, method=method, root=root)
    space = spec.search_space_fn()
    base = params.method(method).model_dump()
    fixed = cfg.overrides.get(method, {})
    config_cls = spec.config_cls()
    key = f"val_{base.get('selection_metric', 'macro_f1')}"
    study_name = f"xmodal-{method}-{dataset}"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        study_name=study_name, storage=_storage(cfg.storage, root), direction="maximize", load_if_exists=True,
        sampler=optuna.samplers.TPESampler(seed=cfg.sampler_seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=cfg.startup_trials, n_warmup_steps=cfg.warmup_steps,
                                           interval_steps=cfg.interval_steps))
    runs = _TrialRuns(params, root=root, name=f"tune-{method}-{dataset}", tags={
        "xmodal.method": method, "xmodal.dataset": dataset, "xmodal.optuna_study": study_name})

    def objective(trial: optuna.Trial) -> float:
        drawn = space(trial)
        used = {k: fixed.get(k, v) for k, v in drawn.items()}  # tune.overrides hold a drawn value fixed
        trial.set_user_attr("used", used)
        try:
            config = config_cls.model_validate({**base, **drawn, **fixed})
        except ValueError as exc:
            raise ConfigError(f"tune: trial {trial.number} drew an invalid configuration: {exc}") from exc
        child = runs.start_trial(trial.number, used)
        seen: list[float] = []

        def report(epoch: int, record: dict[str, float]) -> None:
            if key in record:
                seen.append(record[key])
                runs.log(child, key, record[key], step=epoch)
                trial.report(record[key], epoch)
                if trial.should_prune():
                    raise optuna.TrialPruned(f"{key} {record[key]:.3f} at epoch {epoch}")

        try:
            model = spec.model_cls()(config).fit(data, seed=params.seed, callback=report,
                                                 **training_kwargs(params, dataset=dataset))
        except optuna.TrialPruned:
            runs.end(child, status="KILLED", value=max(seen, default=math.nan))
            raise
        except BaseException:
            runs.end(child, status="FAILED", value=math.nan)
            raise
        value = float(model.info[f"best_{key}"])
        runs.end(child, status="FINISHED", value=value)
        return value

    study.optimize(objective, n_trials=trials or cfg.trials, timeout=timeout or cfg.timeout, catch=())
    states = [t.state for t in study.trials]
    pruned = sum(s == optuna.trial.TrialState.PRUNED for s in states)
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not complete:
        raise XmodalInputError(f"tune: none of the {len(states)} trials completed", fix="run more trials, or "
                               "start pruning later (tune.warmup_steps / tune.startup_trials)")
    best = study.best_trial
    summary = {"method": method, "dataset": dataset, "metric": key, "best_value": best.value,
               "best_trial": best.number, "params": best.user_attrs["used"], "overrides": fixed,
               "n_trials": len(states), "n_complete": len(complete), "n_pruned": pruned, "study": study_name,
               "storage": cfg.storage, "mlflow_parent_run": runs.parent_id}
    with atomic_dir(out) as tmp:
        write_json(tmp / BEST_PARAMS, summary)
        frame = study.trials_dataframe(attrs=("number", "value", "state", "params"))
        frame.to_csv(tmp / "trials.csv", index=False)
        _plot_history(study, tmp / "tune_history.png", metric=key)
    runs.finish(best.user_attrs["used"], best.value)
    log.info("tune %s/%s: best %s %.4f (trial %d of %d, %d pruned) → %s", dataset, method, key, best.value,
             best.number, len(states), pruned, out / BEST_PARAMS)
    return TuneResult(output=out / BEST_PARAMS, best_value=float(best.value), best_params=dict(best.user_attrs["used"]),
                      n_trials=len(states), n_pruned=pruned)


def best_params_overrides(path: str | Path, *, method: str) -> list[str]:
    """``methods.<method>.<key>=<value>`` overrides from a ``best_params.json`` written by :func:`run`.

    Raises
    ------
    XmodalInputError
        When the file is missing, not a tuning result, or belongs to another method.
    """
    import json

    path = Path(path)
    if not path.is_file():
        raise XmodalInputError("best-params file not found", path=path,
                               fix=f"run `xmodal tune --dataset <dataset> --method {method}` first")
    try:
        found = read_json(path)
    except ValueError as exc:
        raise XmodalInputError(f"not JSON ({exc})", path=path,
                               fix="give the best_params.json `xmodal tune` wrote") from None
    if not isinstance(found, dict) or "params" not in found or "method" not in found:
        raise XmodalInputError("not a tuning result (no `method`/`params`)", path=path,
                               fix="give the best_params.json `xmodal tune` wrote")
    if found["method"] != method:
        raise XmodalInputError(f"these are {found['method']!r} parameters, not {method!r}", path=path,
                               fix=f"use the best_params.json of {method}")
    return [f"methods.{method}.{k}={json.dumps(v)}" for k, v in sorted(found["params"].items())]


def _methods() -> dict[str, Any]:
    from xmodal.methods import METHODS

    return METHODS


class _TrialRuns:
    """One MLflow parent run per search and a nested child run per trial."""

    def __init__(self, params: Params, *, root: str | Path, name: str, tags: dict[str, str]) -> None:
        from xmodal.tracking import Tracker, resolve_tracking_uri
        from xmodal.tracking._mlflow import resolve_artifact_location

        cfg = params.registry
        self.tracker = Tracker(resolve_tracking_uri(cfg.tracking_uri, root=root), experiment=cfg.experiment,
                               artifact_location=resolve_artifact_location(cfg.artifact_location, root=root))
        self.client = self.tracker.client
        self.experiment = self.tracker.experiment_id()
        self.tags = tags
        self.parent_id = self.client.create_run(self.experiment, run_name=name, tags=tags).info.run_id

    def start_trial(self, number: int, drawn: dict[str, Any]) -> str:
        run = self.client.create_run(self.experiment, run_name=f"trial-{number}",
                                     tags={**self.tags, "mlflow.parentRunId": self.parent_id,
                                           "xmodal.trial": str(number)})
        for k, v in sorted(drawn.items()):
            self.client.log_param(run.info.run_id, k, v)
        return run.info.run_id

    def log(self, run_id: str, key: str, value: float, *, step: int) -> None:
        self.client.log_metric(run_id, key, float(value), step=step)

    def end(self, run_id: str, *, status: str, value: float) -> None:
        if math.isfinite(value):
            self.client.log_metric(run_id, "objective", float(value))
        self.client.set_terminated(run_id, status=status)

    def finish(self, best: dict[str, Any], value: float) -> None:
        for k, v in sorted(best.items()):
            self.client.log_param(self.parent_id, f"best.{k}", v)
        self.client.log_metric(self.parent_id, "best_objective", float(value))
        self.client.set_terminated(self.parent_id, status="FINISHED")


def _plot_history(study: Any, path: Path, *, metric: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import optuna

    fig, ax = plt.subplots(figsize=(7, 4))
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    pruned = [t for t in study.trials if t.state == optuna.trial.TrialState.PRUNED]
    ax.scatter([t.number for t in done], [t.value for t in done], s=18, label="complete")
    last = [(t.number, max(t.intermediate_values.values())) for t in pruned if t.intermediate_values]
    if last:
        ax.scatter(*zip(*last, strict=True), s=18, marker="x", color="grey", label="pruned (best reported)")
    if done:
        order = sorted(done, key=lambda t: t.number)
        best = [max(t.value for t in order[: i + 1]) for i in range(len(order))]
        ax.step([t.number for t in order], best, where="post", color="C1", label="best so far")
    ax.set_xlabel("trial")
    ax.set_ylabel(f"{metric} (target-domain validation)")
    ax.set_title("hyper-parameter search")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


__all__ = ["TuneResult", "best_params_overrides", "run", "tune_dir"]
