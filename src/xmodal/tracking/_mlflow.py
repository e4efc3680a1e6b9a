"""Runs, logged models and registry aliases on an MLflow tracking server or sqlite file."""

from __future__ import annotations

import contextlib
import logging
import os
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from xmodal import __version__
from xmodal._env import temporary_env
from xmodal._locks import file_lock
from xmodal.tracking._artifacts import LoadedVersion

log = logging.getLogger(__name__)

#: the UI opens an experiment with this tag as model training (runs, metrics, models), not in the GenAI view
EXPERIMENT_KIND_TAG, EXPERIMENT_KIND = "mlflow.experimentKind", "custom_model_development"
#: batch size for ``log_batch`` (MLflow accepts at most 1000 metrics per call)
_BATCH = 1000
#: MLflow accepts at most 100 params per ``log_batch`` call
_PARAM_BATCH = 100
#: the packages a logged model needs besides xmodal itself (pinned to the running versions)
_PROGRESS_ENV = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"
_RUNTIME_PACKAGES = ("numpy", "scipy", "scikit-learn", "pandas", "anndata", "pot", "torch")


def resolve_tracking_uri(uri: str, *, root: str | Path = ".") -> str:
    """Turn the configured tracking URI into the one to use.

    ``MLFLOW_TRACKING_URI`` in the environment wins (a cluster points every step at its MLflow server
    that way). A relative ``sqlite:///file.db`` is made absolute under ``root`` so every stage, whatever
    its working directory, writes the same database.

    Examples
    --------
    >>> resolve_tracking_uri("http://mlflow:5000")
    'http://mlflow:5000'
    """
    from xmodal._uris import store_uri

    env = os.environ.get("MLFLOW_TRACKING_URI")
    source = "$MLFLOW_TRACKING_URI" if env else "register.tracking_uri"
    return store_uri(env or uri, root=root, source=source, schemes=_SCHEMES, what="an MLflow tracking store")


#: schemes of the tracking stores MLflow 3 opens
_SCHEMES = frozenset({"sqlite", "postgresql", "mysql", "mssql", "http", "https", "file", "databricks"})


def resolve_artifact_location(location: str, *, root: str | Path = ".") -> str:
    """A URI (``s3://…``, ``file://…``) is kept; a plain path is made an absolute ``file://`` URI under ``root``."""
    if "://" in location:
        return location
    return (Path(root) / location).resolve().as_uri()


def flatten_params(tree: Mapping[str, Any], *, prefix: str = "") -> dict[str, str]:
    """Flatten nested params to ``{"a.b.c": "value"}`` (lists joined by commas) for ``log_params``.

    Examples
    --------
    >>> flatten_params({"gwot": {"epsilon": 0.005, "top_k": [1, 5]}})
    {'gwot.epsilon': '0.005', 'gwot.top_k': '1,5'}
    """
    out: dict[str, str] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten_params(value, prefix=f"{name}."))
        elif isinstance(value, list | tuple):
            out[name] = ",".join(str(v) for v in value)
        else:
            out[name] = str(value)
    return out


@dataclass(frozen=True)
class ModelVersionRef:
    """One registered model version."""

    name: str
    version: str
    run_id: str | None
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def uri(self) -> str:
        """``models:/<name>/<version>``."""
        return f"models:/{self.name}/{self.version}"


class Tracker:
    """A tracking store plus its model registry, used by the ``register`` stage.

    Parameters
    ----------
    tracking_uri
        Already resolved (see :func:`resolve_tracking_uri`); also used as the registry URI.
    experiment
        Experiment name; created on first use with ``artifact_location``.
    artifact_location
        Artifact root for a new experiment (``file://…`` or ``s3://…``).
    """

    def __init__(self, tracking_uri: str, *, experiment: str, artifact_location: str) -> None:
        from mlflow import MlflowClient
        from mlflow.exceptions import MlflowException

        self.tracking_uri = tracking_uri
        self.experiment = experiment
        self.artifact_location = artifact_location
        lock = store_lock(tracking_uri)
        # a fresh sqlite store is created (schema migrations) by the first client: one process at a time
        with file_lock(lock, what="the MLflow store's schema") if lock else contextlib.nullcontext():
            try:
                self.client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
                self.client.search_registered_models(max_results=1)  # the registry's tables too
            except MlflowException as exc:
                from xmodal.errors import ConfigError, first_line

                raise ConfigError(f"cannot open the MLflow store {tracking_uri!r}: {first_line(exc)}") from None

    @contextmanager
    def registry_lock(self, name: str, *, root: str | Path) -> Iterator[None]:
        """Serialise every registry update of registered model ``name`` (one version per model hash, one
        champion): an sqlite store is locked as a whole (it has one writer anyway); another store per model,
        through a lock file under ``reports/registry/.locks`` of the project ``root``."""
        lock = store_lock(self.tracking_uri)
        if lock is None:
            folder = Path(root) / "reports" / "registry" / ".locks"
            if folder.is_symlink():
                from xmodal.errors import ConfigError

                raise ConfigError(f"{folder}: a symbolic link; xmodal keeps its registry locks in the project and "
                                  "never writes through a link there: remove it")
            lock = folder / f"{name}.lock"
        with file_lock(lock, what=f"the registry of {name}"):
            yield

    @contextmanager
    def active(self) -> Iterator[None]:
        """Point MLflow's fluent API (``log_model``, ``load_model``) at this store, restoring it afterwards."""
        with _pointed_at(self.tracking_uri):
            yield

    def experiment_id(self) -> str:
        """The experiment's id, creating it if needed (another process creating it at once is fine)."""
        from mlflow.exceptions import MlflowException

        found = self.client.get_experiment_by_name(self.experiment)
        if found is not None:
            if found.tags.get(EXPERIMENT_KIND_TAG) is None:
                self.client.set_experiment_tag(found.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
            return found.experiment_id
        try:
            return self.client.create_experiment(self.experiment, artifact_location=self.artifact_location,
                                                 tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND})
        except MlflowException:
            found = self.client.get_experiment_by_name(self.experiment)
            if found is None:
                raise
            return found.experiment_id

    # ------------------------------------------------------------------ registry
    def versions(self, name: str) -> list[ModelVersionRef]:
        """Every version of registered model ``name`` (empty if it does not exist), oldest first."""
        found = self.client.search_model_versions(f"name = '{name}'")
        refs = [ModelVersionRef(name, str(v.version), v.run_id, dict(v.tags or {})) for v in found]
        return sorted(refs, key=lambda r: int(r.version))

    def find_version(self, name: str, *, tag: str, value: str) -> ModelVersionRef | None:
        """The oldest version of ``name`` whose tag ``tag`` equals ``value``, or ``None``."""
        matches = [v for v in self.versions(name) if v.tags.get(tag) == value]
        return matches[0] if matches else None

    def find_version_by_run_tag(self, name: str, *, tag: str, value: str) -> ModelVersionRef | None:
        """The oldest version of ``name`` whose *run* carries tag ``tag`` = ``value`` (``None`` if none)."""
        from mlflow.exceptions import MlflowException

        for ref in self.versions(name):
            if ref.run_id is None or tag in ref.tags:
                continue
            try:
                run = self.client.get_run(ref.run_id)
            except MlflowException:
                continue
            if run.data.tags.get(tag) == value:
                return ref
        return None

    def run_tag(self, ref: ModelVersionRef, tag: str) -> str | None:
        """Tag ``tag`` of the run that logged ``ref`` (``None`` when it has no run or no such tag)."""
        from mlflow.exceptions import MlflowException

        if ref.run_id is None:
            return None
        try:
            return self.client.get_run(ref.run_id).data.tags.get(tag)
        except MlflowException:
            return None

    def find_training_run(self, *, tag: str, value: str) -> str | None:
        """The id of the oldest run opened by ``train`` (:class:`~xmodal.tracking._live.TrainingRun`) tagged
        ``tag`` = ``value`` and holding no logged model yet; ``None`` if there is none."""
        from xmodal.tracking._live import TRAINING_RUN_TAG

        runs = self.client.search_runs([self.experiment_id()],
                                       filter_string=f"tags.`{tag}` = '{value}' and tags.`{TRAINING_RUN_TAG}` = 'true'",
                                       order_by=["attributes.start_time ASC"], max_results=20)
        for run in runs:
            if not run.outputs or not run.outputs.model_outputs:
                return run.info.run_id
        return None

    def aliases(self, name: str) -> dict[str, str]:
        """Alias → version of registered model ``name`` (empty when it does not exist)."""
        from mlflow.exceptions import MlflowException

        try:
            found = self.client.get_registered_model(name)
        except MlflowException:
            return {}
        return {str(k): str(v) for k, v in (found.aliases or {}).items()}

    def delete_version(self, ref: ModelVersionRef) -> None:
        """Delete one registered version (its run and artifacts stay)."""
        self.client.delete_model_version(ref.name, ref.version)

    def alias(self, name: str, alias: str) -> ModelVersionRef | None:
        """The version that ``name@alias`` points to, or ``None`` when the model or alias does not exist."""
        from mlflow.exceptions import MlflowException

        try:
            v = self.client.get_model_version_by_alias(name, alias)
        except MlflowException:
            return None
        return ModelVersionRef(name, str(v.version), v.run_id, dict(v.tags or {}))

    def set_alias(self, ref: ModelVersionRef, alias: str) -> None:
        """Point ``name@alias`` at ``ref``."""
        self.client.set_registered_model_alias(ref.name, alias, ref.version)

    def set_tags(self, ref: ModelVersionRef, tags: Mapping[str, str]) -> None:
        """Set tags on a model version."""
        for key, value in tags.items():
            self.client.set_model_version_tag(ref.name, ref.version, key, value)

    def artifacts_uri(self, ref: ModelVersionRef) -> str:
        """Where the data artifacts of a version lie in the artifact store: its logged model's ``artifacts/``."""
        return f"{self.client.get_model_version_download_uri(ref.name, ref.version).rstrip('/')}/artifacts"

    def load_checked(self, ref: ModelVersionRef, *, dst: Path, manifest: Mapping[str, str] | None,
                     model_sha256: str | None) -> LoadedVersion:
        """Download a version's data artifacts into ``dst``, check them against the recorded hashes and load them
        with xmodal's own loaders; nothing of the logged model is imported or run (no ``mlflow.pyfunc``).

        Parameters
        ----------
        ref
            The version.
        dst
            An empty folder that outlives the returned models (they may read their files lazily).
        manifest, model_sha256
            What was recorded at registration (see :mod:`xmodal.tracking._artifacts`).

        Returns
        -------
        LoadedVersion
            ``.model``, ``.preprocessors`` and the artifacts no recorded hash covered.

        Raises
        ------
        XmodalInputError
            The artifacts cannot be downloaded, or differ from what was registered (the file is named).
        """
        import mlflow
        from mlflow.exceptions import MlflowException

        from xmodal.errors import XmodalInputError
        from xmodal.tracking._artifacts import load_checked

        where = self.artifacts_uri(ref)
        try:
            with self.active():
                local = mlflow.artifacts.download_artifacts(artifact_uri=where, dst_path=str(dst),
                                                            tracking_uri=self.tracking_uri)
        except (MlflowException, OSError) as exc:
            text = " ".join(str(exc).split())  # MLflow lists each failed file on a line of its own
            raise XmodalInputError(f"its artifacts cannot be read ({type(exc).__name__}: {text[:400]})",
                                   path=where, fix="restore the version's artifacts, or remove the alias") from None
        return load_checked(Path(local), manifest=manifest, model_sha256=model_sha256, where=where)

    # ------------------------------------------------------------------ runs
    def log_model_run(
        self,
        *,
        run_name: str,
        registered_name: str,
        model_dir: Path,
        preprocessors: Mapping[str, Path],
        params: Mapping[str, str],
        history: Sequence[Mapping[str, float]],
        metrics: Mapping[str, float],
        artifacts_dir: Path | None,
        tags: Mapping[str, str],
        run_id: str | None = None,
        version_tags: Mapping[str, str] | None = None,
    ) -> ModelVersionRef:
        """Log one training run with its model and register the model as a new version.

        With ``run_id`` (the run ``train`` opened and logged live), the model, the final metrics, the params it
        lacks and the artifacts are attached to that run; its history is already there.

        Parameters
        ----------
        run_name, registered_name
            MLflow run name and registered model name.
        model_dir
            Saved model folder (``models/<dataset>/<method>``).
        preprocessors
            Modality → saved preprocessor folder; logged with the model so that it accepts raw features.
        params
            Flat params (see :func:`flatten_params`).
        history
            Per-step training records (``{"step": int, <metric>: float, ...}``), logged as ``train/<metric>``.
        metrics
            Final metrics (e.g. ``validation/foscttm``).
        artifacts_dir
            Folder of plots and JSON to log under ``evaluation/``.
        tags
            Run and model-version tags (lineage).
        run_id
            An existing run to attach the model to (see above).
        version_tags
            Tags of the model version only (too long for a run tag: the artifacts' manifest).

        Returns
        -------
        ModelVersionRef
            The new registered version.
        """
        import mlflow
        from mlflow.entities import Metric, Param

        from xmodal.tracking._pyfunc import MODEL_ARTIFACT, PREPROCESSOR_ARTIFACT

        artifacts = {MODEL_ARTIFACT: str(model_dir)}
        artifacts.update({PREPROCESSOR_ARTIFACT.format(modality=m): str(p) for m, p in preprocessors.items()})
        with self.active():
            known: dict[str, str] = {}
            trained_until: int | None = None  # a training run keeps its own end: the UI shows the training's time
            if run_id is None:
                run_id = self.client.create_run(self.experiment_id(), run_name=run_name, tags=dict(tags)).info.run_id
            else:
                existing = self.client.get_run(run_id)
                known, trained_until = dict(existing.data.params), existing.info.end_time
                for k, v in tags.items():
                    self.client.set_tag(run_id, k, v)
                history = []  # logged live while training ran
            try:
                now = int(time.time() * 1000)
                step_metrics = [Metric(f"train/{k}", float(v), now, int(rec.get("step", i)))
                                for i, rec in enumerate(history) for k, v in rec.items() if k != "step"]
                step_metrics += [Metric(k, float(v), now, 0) for k, v in metrics.items()]
                for start in range(0, len(step_metrics), _BATCH):
                    self.client.log_batch(run_id, metrics=step_metrics[start:start + _BATCH])
                differs = sorted(k for k, v in params.items() if k in known and known[k] != v)
                if differs:
                    log.warning("run %s was logged with other values of %s while training; keeping those", run_id,
                                ", ".join(differs[:5]))
                plist = [Param(k, v) for k, v in params.items() if k not in known]
                for start in range(0, len(plist), _PARAM_BATCH):
                    self.client.log_batch(run_id, params=plist[start:start + _PARAM_BATCH])
                if artifacts_dir is not None and artifacts_dir.is_dir():
                    self.client.log_artifacts(run_id, str(artifacts_dir), "evaluation")
                with mlflow.start_run(run_id=run_id):
                    info = mlflow.pyfunc.log_model(
                        name="model",
                        python_model=str(Path(__file__).with_name("_pyfunc_entry.py")),
                        artifacts=artifacts,
                        signature=_signature(),
                        pip_requirements=_requirements(),
                        registered_model_name=registered_name,
                        await_registration_for=60,
                    )
                if trained_until is not None:
                    self.client.set_terminated(run_id, status="FINISHED", end_time=trained_until)
            except BaseException:
                self.client.set_terminated(run_id, status="FAILED", end_time=trained_until)
                raise
        ref = ModelVersionRef(registered_name, str(info.registered_model_version), run_id,
                              {**tags, **(version_tags or {})})
        self.set_tags(ref, {**tags, **(version_tags or {})})
        log.info("logged run %s and registered %s version %s", run_id, registered_name, ref.version)
        return ref

    def log_artifact(self, run_id: str, path: Path, *, artifact_path: str) -> None:
        """Attach a file to a (possibly finished) run."""
        self.client.log_artifact(run_id, str(path), artifact_path)


def store_lock(tracking_uri: str) -> Path | None:
    """The lock file of an sqlite store (``<db>.lock`` beside it), or ``None`` for other stores."""
    from xmodal._uris import SQLITE

    if tracking_uri.startswith(SQLITE):
        db = Path(tracking_uri[len(SQLITE):])
        return db.with_name(db.name + ".lock")
    return None


def load_registered(model_uri: str, *, tracking_uri: str | None = None) -> Any:
    """Load an xmodal model from MLflow (``models:/name@champion``, ``models:/name/3``, ``runs:/…``).

    This goes through ``mlflow.pyfunc.load_model``, which imports the ``_pyfunc_entry.py`` logged with the
    model: use it (and ``mlflow models serve``) only on a store whose artifacts you trust as you trust code.
    ``register`` never calls it (see :meth:`Tracker.load_checked`).

    Returns
    -------
    XmodalPyfunc
        Unwrapped: ``.model`` is the model as its own class (e.g. :class:`~xmodal.methods.gwot.GWOT`),
        ``.preprocessors`` the logged per-modality preprocessors, ``.predict`` the pyfunc entry point.
    """
    import mlflow

    with _pointed_at(tracking_uri):
        return mlflow.pyfunc.load_model(model_uri).unwrap_python_model()


@contextmanager
def _pointed_at(tracking_uri: str | None) -> Iterator[None]:
    """Set MLflow's global tracking/registry URI (if given) and silence its download bars; restore all after.

    ``mlflow.set_tracking_uri`` also exports ``MLFLOW_TRACKING_URI`` (for subprocesses), which
    :func:`resolve_tracking_uri` honours, so the environment is put back exactly as it was.
    """
    import mlflow

    saved = {name: os.environ.get(name) for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    with temporary_env({**saved, _PROGRESS_ENV: "false"}):
        if tracking_uri is not None:
            mlflow.set_tracking_uri(tracking_uri)
            mlflow.set_registry_uri(tracking_uri)
        try:
            with warnings.catch_warnings():
                # our signature is explicit (inputs differ per modality), so this hint does not apply
                warnings.filterwarnings("ignore", message=".*input example was not provided", category=UserWarning)
                yield
        finally:
            if tracking_uri is not None:
                mlflow.set_tracking_uri(saved["MLFLOW_TRACKING_URI"])  # None resets to MLflow's default
                mlflow.set_registry_uri(saved["MLFLOW_REGISTRY_URI"])


def _signature() -> Any:
    import numpy as np
    from mlflow.models.signature import ModelSignature
    from mlflow.types.schema import ParamSchema, ParamSpec, Schema, TensorSpec

    return ModelSignature(
        inputs=None,
        outputs=Schema([TensorSpec(np.dtype("float64"), (-1, -1), name="embedding")]),
        params=ParamSchema([ParamSpec("modality", "string", "a"), ParamSpec("input", "string", "processed"),
                            ParamSpec("domain", "string", ""), ParamSpec("set", "string", "")]),
    )


def _requirements() -> list[str]:
    """Pinned runtime packages of a logged model; local version labels (``2.13.0+cpu``) are dropped, as
    package indexes other than the build's own do not serve them."""
    reqs = [f"xmodal=={__version__}"]
    for package in _RUNTIME_PACKAGES:
        try:
            reqs.append(f"{package}=={metadata.version(package).split('+')[0]}")
        except metadata.PackageNotFoundError:
            reqs.append(package)
    return reqs
