"""``register``: log the trained model to MLflow, make it the ``challenger``, promote it if it earns it.

The stage sits outside ``dvc repro`` on purpose: it has a side effect (the registry) that DVC cannot cache.
It reads what ``train`` and ``evaluate`` wrote, so the MLflow run records exactly the model DVC tracks.

Promotion rule (all must hold):

1. every gate in ``register.gates.<method>`` passes on the challenger's metrics on the test cells
   of the registered model's own dataset (``--registered-as`` names it when the challenger was trained on
   other cells; a challenger that cannot be scored there is rejected). A gate on a classification metric that
   a constant prediction (every cell the same class) already passes on those cells is no evidence: the
   challenger must beat that prediction instead, which no model can on test cells of one class (the reason
   says so);
2. the challenger beats the current ``champion`` on the method's primary metric by more than
   ``register.min_improvement``, both scored here, by the same code, on the same test cells
   (each model through its own logged preprocessor, so a champion fitted on older preprocessing is
   still compared fairly). With no comparable champion, rule 1 alone decides.

Registering the same model bytes twice logs nothing new: the version carrying that model hash is reused.
Registry updates of one registered model are serialised by a file lock, so concurrent ``register`` runs
agree: one version per model hash, one champion, and ``decision.json`` records the aliases it left.
The MLflow run logs the settings the model was made with, as ``model.json`` and the data's
``schema.json`` recorded them (not today's ``params.yaml``).

No code from the artifact store runs here: both models are read from their *data* artifacts (model folder,
``preprocessor_<modality>`` folders) with xmodal's own loaders, once every file matches the hashes recorded on
the version at registration (``xmodal.model_sha256``, and the manifest ``xmodal.artifacts_sha256``); a file
that differs is a refusal naming it (exit 2), and the registry is left as it was. ``mlflow.pyfunc`` (and its
logged ``_pyfunc_entry.py``) is for serving only (:mod:`xmodal.tracking._artifacts`).
"""

from __future__ import annotations

import logging
import math
import tempfile
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from xmodal._io import atomic_file, prepare_output, read_json, write_json
from xmodal._names import MAX_MODEL_NAME, check_name
from xmodal.config import EvaluateConfig, GateBound, Params
from xmodal.errors import ConfigError, XmodalInputError, first_line, reading
from xmodal.families import family_of, load_preprocessor
from xmodal.methods import get_method
from xmodal.metrics import CLASSES, TRIVIAL
from xmodal.stages._paths import ingested_dir, model_dir, processed_dir, registry_dir, report_dir

log = logging.getLogger(__name__)

CHALLENGER = "challenger"
CHAMPION = "champion"
#: model-version tag holding :func:`xmodal.tracking.model_sha256` of the model folder
MODEL_HASH_TAG = "xmodal.model_sha256"
#: model-version tag holding the JSON manifest (artifact file → SHA-256) of the model and preprocessor folders
ARTIFACTS_TAG = "xmodal.artifacts_sha256"
DECISION_FILE = "decision.json"


@dataclass(frozen=True)
class GateResult:
    """One gate checked against one metric value.

    ``trivial`` is what a model that learned nothing scores on the same cells (the best constant prediction, for
    a classification metric, where higher is better; ``None`` where the family knows no baseline) and ``classes``
    the number of classes among them. ``informative`` is false when ``trivial`` already passes the configured
    bound: the gate then asks the model to beat ``trivial`` (strictly), which no model can on cells of one class.
    """

    metric: str
    value: float | None
    min: float | None
    max: float | None
    passed: bool
    trivial: float | None = None
    classes: int | None = None
    informative: bool = True


@dataclass(frozen=True)
class Decision:
    """The outcome of :func:`decide`: promote or not, and every reason."""

    promote: bool
    reasons: list[str]
    gates: list[GateResult] = field(default_factory=list)
    improvement: float | None = None


def decide(
    challenger: dict[str, float],
    champion: dict[str, float] | None,
    *,
    primary_metric: str,
    greater_is_better: bool,
    gates: dict[str, GateBound],
    min_improvement: float = 0.0,
    gate_metrics: dict[str, float] | None = None,
) -> Decision:
    """Apply the promotion rule to two sets of metrics (pure: no I/O).

    Parameters
    ----------
    challenger
        The new model's metrics on the held-out cells.
    champion
        The current champion's metrics on the *same* cells, or ``None`` when there is no comparable champion.
    primary_metric, greater_is_better
        The method's primary metric and its direction.
    gates
        Metric → bound; a missing or non-finite metric fails its gate.
    min_improvement
        The challenger must beat the champion by strictly more than this (in the metric's units).
    gate_metrics
        The metrics the gates are judged on (default: ``challenger``): the registered model's own dataset's
        held-out cells, when the challenger was trained on other cells. ``trivial/<metric>`` and
        ``classes/<metric>`` there (:func:`xmodal.metrics.trivial_scores`) give a metric's trivial baseline on
        those cells (a higher-is-better metric): where the baseline passes a gate too (cells of one class, or of
        one so common that always answering it clears the bar), the gate asks the challenger to beat the
        baseline, strictly (which no model can on cells of one class), and the reason says so.

    Returns
    -------
    Decision
        ``promote`` is true only if every gate passes (informatively) and the champion (if any) is beaten.

    Examples
    --------
    >>> decide({"foscttm": 0.10}, {"foscttm": 0.12}, primary_metric="foscttm", greater_is_better=False,
    ...        gates={}).promote
    True
    """
    reasons: list[str] = []
    results = []
    judged = challenger if gate_metrics is None else gate_metrics
    for metric, bound in sorted(gates.items()):
        value = _finite(judged.get(metric))
        trivial, classes = _finite(judged.get(f"{TRIVIAL}{metric}")), _finite(judged.get(f"{CLASSES}{metric}"))
        informative = trivial is None or not _within(trivial, bound)
        ok = value is not None and _within(value, bound) and (informative or value > trivial)
        n_classes = None if classes is None else int(classes)
        results.append(GateResult(metric, value, bound.min, bound.max, ok, trivial, n_classes, informative))
        rule = " and ".join(s for s in (f">= {bound.min}" if bound.min is not None else "",
                                        f"<= {bound.max}" if bound.max is not None else "") if s)
        shown = "missing" if value is None else f"{value:.4g}"
        reason = f"gate {metric} {rule}: {shown} → {'pass' if ok else 'FAIL'}"
        if not informative:
            reason += f" ({_uninformative(trivial, n_classes)})"
        reasons.append(reason)
    gates_ok = all(r.passed for r in results)

    new = challenger.get(primary_metric)
    if new is None or not math.isfinite(float(new)):
        return Decision(False, [*reasons, f"challenger has no finite {primary_metric}"], results)
    improvement = None
    beats = True
    if champion is None:
        reasons.append("no comparable champion: the gates alone decide")
    else:
        old = champion.get(primary_metric)
        if old is None or not math.isfinite(float(old)):
            reasons.append(f"champion has no finite {primary_metric}: the gates alone decide")
        else:
            improvement = (float(new) - float(old)) if greater_is_better else (float(old) - float(new))
            beats = improvement > min_improvement
            word = "higher" if greater_is_better else "lower"
            reasons.append(f"{primary_metric} ({word} is better): challenger {float(new):.4g} vs champion "
                           f"{float(old):.4g}, improvement {improvement:+.4g} "
                           f"{'>' if beats else '<='} required {min_improvement:g}")
    return Decision(gates_ok and beats, reasons, results, improvement)


def _finite(raw: Any) -> float | None:
    return None if raw is None or not math.isfinite(float(raw)) else float(raw)


def _within(value: float, bound: GateBound) -> bool:
    return (bound.min is None or value >= bound.min) and (bound.max is None or value <= bound.max)


def _uninformative(trivial: float, n_classes: int | None) -> str:
    """Why a gate that a constant prediction passes was judged against that prediction instead."""
    if n_classes == 1:
        return (f"it cannot fail on these test cells: they hold one class, so a constant prediction scores "
                f"{trivial:.4g} too and no model can beat it; a gate that a model which learned nothing passes is no "
                "evidence: give the test split cells of at least two classes")
    held = f"{n_classes} classes" if n_classes else "their classes"
    return (f"on these test cells ({held}) a constant prediction, every cell the most common class, scores "
            f"{trivial:.4g}, which passes the bound too: the model must beat that")


def _measured(metrics: dict[str, float]) -> dict[str, float]:
    """The metrics without the trivial baselines the gates read (``trivial/…``, ``classes/…``: in the gates)."""
    return {k: v for k, v in metrics.items() if not k.startswith((TRIVIAL, CLASSES))}


@dataclass(frozen=True)
class RegisterResult:
    """Where the decision went and what it says."""

    output: Path
    decision: dict[str, Any]


def model_name(params: Params, *, dataset: str, method: str) -> str:
    """The registered model name from ``register.model_name_template``.

    Raises
    ------
    ConfigError
        An unknown template field, or a name that breaks :data:`xmodal._names.NAME_RULE`.
    """
    check_name(dataset, what="dataset", where="register")
    try:
        name = params.registry.model_name_template.format(method=method, dataset=dataset)
    except (KeyError, IndexError, ValueError) as exc:
        raise ConfigError(f"register.model_name_template: {exc!s} (use the fields {{method}} and {{dataset}})") from exc
    return check_name(name, what="registered model", where="register.model_name_template",
                      max_length=MAX_MODEL_NAME)


def holdout(params: Params, root: str | Path, *, dataset: str) -> Any:
    """The test cells of ``dataset`` in their *ingested* (raw) features, with the processed ``obs``.

    Each model is scored on these cells after its own preprocessor, so models fitted on different
    preprocessing are compared on exactly the same cells. The dataset's family reads them.
    """
    return family_of(params, dataset).holdout(ingested_dir(root, dataset), processed_dir(root, dataset))


def score(loaded: Any, cells: Any, *, family: Any, cfg: EvaluateConfig) -> dict[str, float]:
    """Score a loaded model (``.model`` and ``.preprocessors``: :class:`~xmodal.tracking._artifacts.LoadedVersion`)
    on raw :func:`holdout` cells with the family's metrics."""
    return family.score(loaded.model, loaded.preprocessors, cells, cfg=cfg)


def _check_evaluation_is_current(mdir: Path, pdir: Path, metrics_file: Path, cells: Any, *, family: Any,
                                 cfg: EvaluateConfig, metric: str) -> None:
    """Refuse to log a ``metrics.json`` that does not belong to the model now in ``models/`` (stale outputs)."""
    from types import SimpleNamespace

    from xmodal.methods import load_model
    from xmodal.stages.report import headline

    local = SimpleNamespace(model=load_model(mdir), preprocessors={
        p.name.removeprefix("preprocessor_"): load_preprocessor(p) for p in sorted(pdir.glob("preprocessor_*"))})
    now = score(local, cells, family=family, cfg=cfg).get(metric)
    recorded = headline(read_json(metrics_file)).get(metric)
    if now is not None and (recorded is None or not math.isclose(now, recorded, rel_tol=1e-5, abs_tol=1e-6)):
        raise XmodalInputError(f"metrics.json says held-out {metric} = {recorded}, but the model in {mdir} "
                               f"scores {now:.6g} on the same cells: the evaluation is stale", path=metrics_file,
                               fix="run `dvc repro` (or `xmodal evaluate`) so the report matches the model")


def run(params: Params, *, dataset: str, method: str, root: str | Path = ".",
        registered_as: str | None = None) -> RegisterResult:
    """Register ``models/<dataset>/<method>`` in MLflow and decide whether it becomes the champion.

    Parameters
    ----------
    params
        ``params.registry`` (``register:`` in params.yaml) holds the store, the gates and ``min_improvement``.
    dataset, method
        The run to register; ``train`` and ``evaluate`` must have run.
    root
        Project root.
    registered_as
        The dataset whose registered model this version joins (default: ``dataset``). A model retrained on
        new cells (the retraining pipeline) joins the champion's model: it is compared with that champion on
        the new held-out cells, and its gates are judged on the registered dataset's own held-out cells
        (``data/ingested`` and ``data/processed`` of ``registered_as`` must be under ``root``); a model that
        cannot be scored there is rejected. The MLflow run still records ``dataset`` as its training data.

    Returns
    -------
    RegisterResult
        ``reports/registry/<dataset>/<method>/decision.json`` and its content: ``decision``
        (``promoted`` / ``rejected`` / ``kept``), ``reasons``, gate results, both models' metrics, versions and
        the registry's aliases after the decision.

    Notes
    -----
    Every registry update of one registered model runs under a lock (:meth:`Tracker.registry_lock`), so two
    ``register`` processes at once create one version per model hash and agree on the champion; the same
    model bytes registered again reuse their version.
    """
    from xmodal.tracking import Tracker, model_sha256, resolve_tracking_uri
    from xmodal.tracking._mlflow import resolve_artifact_location

    spec = get_method(method)
    cfg = params.registry
    mdir, rdir = model_dir(root, dataset, method), report_dir(root, dataset, method)
    out = prepare_output(registry_dir(root, dataset, method) / DECISION_FILE)
    metrics_file = rdir / "metrics.json"
    if not (mdir / "model.json").is_file() or not metrics_file.is_file():
        raise XmodalInputError(f"no trained and evaluated {method!r} model for {dataset!r}", path=mdir,
                               fix=f"run `dvc repro` (or `xmodal train` and `xmodal evaluate`) for {dataset}/{method}")
    registry_dataset = check_name(registered_as or dataset, what="dataset", where="--registered-as")
    name = model_name(params, dataset=registry_dataset, method=method)
    family = family_of(params, dataset)
    cells = holdout(params, root, dataset=dataset)
    with reading(family.data_path(ingested_dir(root, dataset))):
        _check_evaluation_is_current(mdir, processed_dir(root, dataset), metrics_file, cells, family=family,
                                     cfg=params.evaluate, metric=spec.primary_metric)
    gate_cells: Any = cells
    gate_family = family
    gate_problem = None
    if registry_dataset != dataset:
        try:
            gate_family = family_of(params, registry_dataset)
            gate_cells = holdout(params, root, dataset=registry_dataset)
        except (XmodalInputError, ConfigError) as exc:
            gate_cells, gate_problem = None, f"the held-out cells of {registry_dataset!r} cannot be read ({exc})"
    digest = model_sha256(mdir)
    tracker = Tracker(resolve_tracking_uri(cfg.tracking_uri, root=root), experiment=cfg.experiment,
                      artifact_location=resolve_artifact_location(cfg.artifact_location, root=root))
    with tracker.registry_lock(name, root=root), tempfile.TemporaryDirectory(prefix="xmodal-register-") as tmp:
        # the champion first: a refusal (its artifacts differ from what was registered) leaves the registry as it was
        champion = tracker.alias(name, CHAMPION)
        existing = tracker.find_version(name, tag=MODEL_HASH_TAG, value=digest)
        champion_metrics: dict[str, float] | None = None
        notes: list[str] = []
        if champion is not None and (existing is None or champion.version != existing.version):
            champion_model = _load_version(tracker, champion, dst=Path(tmp) / "champion",
                                           what=f"the champion, version {champion.version} of {name}")
            notes += _unverified_note(champion_model, what=f"champion version {champion.version}")
            try:
                champion_metrics = score(champion_model, cells, family=family, cfg=params.evaluate)
            except XmodalInputError as exc:
                notes.append(f"champion version {champion.version} cannot score these cells ({exc}); "
                             "it is not comparable")
        ref = _version_of(tracker, params, name=name, digest=digest, dataset=dataset, method=method, root=root)
        loaded = _load_version(tracker, ref, dst=Path(tmp) / "challenger",
                               what=f"the challenger, version {ref.version} of {name}",
                               local=_local_manifest(root, dataset=dataset, method=method), digest=digest)
        notes += _unverified_note(loaded, what=f"challenger version {ref.version}")
        with reading(family.data_path(ingested_dir(root, dataset))):
            challenger_metrics = score(loaded, cells, family=family, cfg=params.evaluate)
        gate_metrics = challenger_metrics
        if gate_cells is not None and registry_dataset != dataset:
            try:
                with reading(gate_family.data_path(ingested_dir(root, registry_dataset))):
                    gate_metrics = score(loaded, gate_cells, family=gate_family, cfg=params.evaluate)
            except XmodalInputError as exc:
                gate_problem = f"the challenger cannot score the held-out cells of {registry_dataset!r} ({exc})"
        if registry_dataset != dataset and gate_problem is None:
            notes.append(f"gates judged on the held-out cells of {registry_dataset!r} (the registered model's "
                         f"dataset); the comparison with the champion on those of {dataset!r}")
        already = champion is not None and champion.version == ref.version
        verdict = decide(challenger_metrics, None if already else champion_metrics,
                         primary_metric=spec.primary_metric, greater_is_better=spec.greater_is_better,
                         gates=cfg.gates.get(method, {}), min_improvement=cfg.min_improvement,
                         gate_metrics=gate_metrics)
        if gate_problem is not None:
            verdict = replace(verdict, promote=False, reasons=[f"{gate_problem}: the gates cannot be judged, so the "
                                                               "challenger is rejected", *verdict.reasons])
        if already:
            verdict = replace(verdict, promote=False,
                              reasons=["this model is already the champion", *verdict.reasons[:len(verdict.gates)]])
            outcome = "kept"
        else:
            outcome = "promoted" if verdict.promote else "rejected"
        tracker.set_alias(ref, CHALLENGER)
        if outcome == "promoted":
            tracker.set_alias(ref, CHAMPION)
        tracker.set_tags(ref, {"xmodal.validation_status": "failed" if outcome == "rejected" else "passed"})
        aliases = tracker.aliases(name)
        decision = {
            "dataset": dataset,
            "method": method,
            "registered_as": registry_dataset,
            "model_name": name,
            "version": ref.version,
            "run_id": ref.run_id,
            "model_sha256": digest,
            "decision": outcome,
            "reasons": notes + verdict.reasons,
            "primary_metric": {"name": spec.primary_metric, "greater_is_better": spec.greater_is_better,
                               "min_improvement": cfg.min_improvement, "improvement": verdict.improvement},
            "gates": [vars(g) for g in verdict.gates],
            "gates_judged_on": registry_dataset,
            "challenger": {"version": ref.version, "metrics": _measured(challenger_metrics),
                           **({"gate_metrics": _measured(gate_metrics)} if gate_metrics is not challenger_metrics
                              else {})},
            "champion_before": None if champion is None else {
                "version": champion.version, "metrics": None if champion_metrics is None else _measured(champion_metrics)},
            "champion_after": aliases.get(CHAMPION),
            "aliases": aliases,
            "tracking_uri": tracker.tracking_uri,
            "decided_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        with atomic_file(out) as tmp:
            write_json(tmp, decision)
        if ref.run_id:
            tracker.log_artifact(ref.run_id, out, artifact_path=f"registry/v{ref.version}")
    log.info("register %s/%s: version %s %s (%s)", dataset, method, ref.version, outcome, "; ".join(decision["reasons"]))
    return RegisterResult(output=out, decision=decision)


def _preprocessor_dirs(root: str | Path, *, dataset: str) -> dict[str, Path]:
    """Modality → the ``preprocessor_<modality>`` folder of ``data/processed/<dataset>`` (resolved: a pipeline step
    links its inputs in, and MLflow refuses paths that leave the folder)."""
    return {p.name.removeprefix("preprocessor_"): p.resolve()
            for p in sorted(processed_dir(root, dataset).glob("preprocessor_*")) if p.is_dir()}


def _local_manifest(root: str | Path, *, dataset: str, method: str) -> dict[str, str]:
    """The artifact manifest of the model and preprocessors in the project, as ``register`` logs them."""
    from xmodal.tracking._artifacts import artifact_manifest

    return artifact_manifest(model_dir(root, dataset, method).resolve(), _preprocessor_dirs(root, dataset=dataset))


def _load_version(tracker: Any, ref: Any, *, dst: Path, what: str, local: dict[str, str] | None = None,
                  digest: str | None = None) -> Any:
    """A registered version, read from its data artifacts once they match the hashes recorded at registration.

    Never through ``mlflow.pyfunc`` (it would import the ``_pyfunc_entry.py`` of the artifact store). The
    champion is checked against its version's tags (its run's model hash where the version lacks it). The
    challenger passes ``local``, the manifest of the project's own files, and ``digest``: used, and recorded on
    the version, when the version has no manifest yet (a ``register`` killed before tagging, or a version
    registered before manifests were recorded).

    Raises
    ------
    XmodalInputError
        Naming ``what`` and the artifact that differs (or cannot be read); nothing was promoted.
    """
    from xmodal.tracking._artifacts import decode_manifest, encode_manifest

    recorded = ref.tags.get(ARTIFACTS_TAG)
    digest = digest or ref.tags.get(MODEL_HASH_TAG) or tracker.run_tag(ref, MODEL_HASH_TAG)
    try:
        manifest = local if recorded is None else decode_manifest(recorded, where=f"{ref.uri} (model version tags)")
        loaded = tracker.load_checked(ref, dst=dst, manifest=manifest, model_sha256=digest)
    except XmodalInputError as exc:
        raise XmodalInputError(f"{what}, cannot be loaded: {exc.problem}; it was not compared, nothing was promoted",
                               path=exc.path, fix=exc.fix) from None
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:  # a loader's own failure
        raise XmodalInputError(f"{what} cannot be loaded ({type(exc).__name__}: {first_line(exc)}); it was not "
                               "compared, nothing was promoted", path=tracker.tracking_uri,
                               fix=f"restore its artifacts, or remove the alias (MlflowClient().delete_registered_"
                               f"model_alias({ref.name!r}, 'champion')) to let the gates alone decide") from None
    if recorded is None and local is not None:
        tracker.set_tags(ref, {ARTIFACTS_TAG: encode_manifest(local)})
    return loaded


def _unverified_note(loaded: Any, *, what: str) -> list[str]:
    """A reason line for artifacts no recorded hash covered (empty when every file was checked)."""
    if not loaded.unverified:
        return []
    return [f"{what}: {', '.join(loaded.unverified)} registered before xmodal recorded their hashes, so they were "
            "read unchecked (as data, by xmodal's safe loaders)"]


def _version_of(tracker: Any, params: Params, *, name: str, digest: str, dataset: str, method: str,
                root: str | Path) -> Any:
    """The registered version holding the model with hash ``digest``: the existing one, else a new one.

    Call with the registry lock held. Where another machine registered the same bytes at the same moment (a
    store the lock cannot cover), the older version is kept and the newer one deleted.
    """
    from xmodal.tracking import flatten_params, lineage_tags
    from xmodal.tracking._artifacts import encode_manifest

    spec = get_method(method)
    found = tracker.find_version(name, tag=MODEL_HASH_TAG, value=digest)
    if found is None:  # a register killed between creating the version and tagging it: its run has the tag
        found = tracker.find_version_by_run_tag(name, tag=MODEL_HASH_TAG, value=digest)
        if found is not None:
            tracker.set_tags(found, {MODEL_HASH_TAG: digest})
    if found is not None:
        log.info("register %s/%s: this model is already version %s of %s; nothing new logged",
                 dataset, method, found.version, name)
        return found
    mdir, rdir = model_dir(root, dataset, method), report_dir(root, dataset, method)
    evaluation = read_json(rdir / "metrics.json")
    history_file = mdir / "history.json"
    live_run = tracker.find_training_run(tag=MODEL_HASH_TAG, value=digest)
    if live_run is not None:
        log.info("register %s/%s: attaching the model to its training run %s", dataset, method, live_run)
    ref = tracker.log_model_run(
        run_id=live_run,
        run_name=f"{method}-{dataset}",
        registered_name=name,
        # resolved: a pipeline step links its inputs in, and MLflow refuses paths that leave the folder
        model_dir=mdir.resolve(),
        preprocessors=_preprocessor_dirs(root, dataset=dataset),
        params=flatten_params(trained_settings(params, root=root, dataset=dataset, method=method)),
        history=read_json(history_file) if history_file.is_file() else [],
        metrics={f"{split}/{k}": float(v) for split, values in evaluation.items() for k, v in values.items()
                 if isinstance(v, int | float) and math.isfinite(float(v))},
        artifacts_dir=rdir.resolve(),
        tags={**lineage_tags(root, dataset=dataset), MODEL_HASH_TAG: digest,
              "xmodal.method": method, "xmodal.primary_metric": spec.primary_metric},
        version_tags={ARTIFACTS_TAG: encode_manifest(_local_manifest(root, dataset=dataset, method=method))},
    )
    same = [v for v in tracker.versions(name) if v.tags.get(MODEL_HASH_TAG) == digest]
    if same and same[0].version != ref.version:
        log.warning("register %s: version %s holds the same model as version %s (registered at once elsewhere); "
                    "keeping version %s", name, ref.version, same[0].version, same[0].version)
        tracker.delete_version(ref)
        return same[0]
    return ref


def settings_from_params(params: Params, *, dataset: str, method: str) -> dict[str, Any]:
    """The settings ``params`` give a model of ``method`` on ``dataset``: method, seed, dataset, preprocess, split."""
    family = params.dataset(dataset).family
    return {"method": params.method(method).model_dump(mode="json"), "seed": params.seed,
            "dataset": params.dataset(dataset).model_dump(mode="json"),
            "preprocess": params.preprocess_config(family).model_dump(mode="json"),
            "split": params.split.model_dump(mode="json")}


def trained_settings(params: Params, *, root: str | Path, dataset: str, method: str) -> dict[str, Any]:
    """The settings the model in ``models/<dataset>/<method>`` was made with, as the files record them.

    ``method`` and ``seed`` come from its ``model.json``, ``dataset`` from ``data/ingested/<dataset>/schema.json``,
    ``preprocess`` from ``data/processed/<dataset>/schema.json`` (what each stage wrote when it ran), and
    ``evaluate`` from ``params`` (the registry scores with those now). Outputs written before the stages
    recorded their settings fall back to ``params`` for the missing part (logged).
    """
    meta = read_json(model_dir(root, dataset, method) / "model.json")
    recorded = {"ingested": ingested_dir(root, dataset), "processed": processed_dir(root, dataset)}
    settings = {}
    for stage, folder in recorded.items():
        schema = folder / "schema.json"
        settings[stage] = (read_json(schema).get("settings") or {}) if schema.is_file() else {}
    trained = meta.get("trained") or {}
    out = {"method": meta.get("config"), "seed": trained.get("seed"),
           "dataset": settings["ingested"].get("dataset"), "preprocess": settings["processed"].get("preprocess"),
           "split": settings["processed"].get("split"),
           "evaluate": params.evaluate.model_dump(mode="json")}
    current = settings_from_params(params, dataset=dataset, method=method)
    missing = [key for key in current if out[key] is None]
    if missing:
        log.warning("register %s/%s: the outputs do not record %s; logging today's params for them",
                    dataset, method, ", ".join(missing))
        out.update({key: current[key] for key in missing})
    return out
