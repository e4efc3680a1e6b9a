"""Parameter models. Every model forbids unknown keys; field docs say what each key does."""

from __future__ import annotations

from os import PathLike
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    ValidationInfo,
    field_validator,
    model_validator,
)

from xmodal._names import name_validator

DatasetName = Annotated[str, AfterValidator(name_validator("dataset"))]
"""A dataset name: it becomes a folder under data/, models/ and reports/ (see :mod:`xmodal._names`)."""
RunName = Annotated[str, AfterValidator(name_validator("run"))]
"""A run name in ``runs``: it becomes part of DVC stage names (``train@<name>``)."""
DomainName = Annotated[str, AfterValidator(name_validator("domain"))]
"""A domain (cell line) name of a multiome dataset: it is stored as a column and group name."""
ModalityName = Annotated[str, AfterValidator(name_validator("modality"))]
"""A modality name of a paired dataset: it becomes the modality's group in data.h5mu."""


def distinct_names(names: tuple[str, ...]) -> tuple[str, ...]:
    """Refuse two equal modality names (they would be one group of ``data.h5mu``)."""
    if len(set(names)) != len(names):
        raise ValueError(f"modality names must differ, got {list(names)}")
    return names


def _path_or_s3_uri(value: Any) -> Path | str:
    """Keep an ``s3://`` URI as str (``Path`` would collapse its ``//``); make anything else a Path."""
    if isinstance(value, str) and value.startswith("s3://"):
        return value
    if isinstance(value, str | PathLike):
        return Path(value)
    raise ValueError("expected a file path or an s3:// URI")


DataPath = Annotated[Path | str, PlainValidator(_path_or_s3_uri, json_schema_input_type=str)]
"""A data file: a local path (relative to the project root) or an ``s3://bucket/key`` URI."""


MAX_SEED = 2**32 - 1
"""The largest seed: NumPy's legacy generator (and so scikit-learn) takes seeds in ``[0, 2**32)``."""


def _literal_words(annotation: Any) -> tuple[str, ...]:
    """The string values of every ``Literal`` in ``annotation`` (through unions and ``Annotated``)."""
    if get_origin(annotation) is Literal:
        return tuple(a for a in get_args(annotation) if isinstance(a, str))
    return tuple(word for arg in get_args(annotation) for word in _literal_words(arg))


def _accepts_none(annotation: Any) -> bool:
    return annotation is type(None) or any(_accepts_none(a) for a in get_args(annotation))


_BOOL_WORDS = (("yes", "no"), ("on", "off"), ("true", "false"))
_BOOL_TEXT = {word: value for pair in _BOOL_WORDS for word, value in zip(pair, (True, False), strict=True)}


def natural_word(value: Any, words: tuple[str, ...], *, none_allowed: bool) -> Any:
    """The spelling of ``value`` that a field taking the words ``words`` expects, or ``value`` unchanged.

    What users write for a word field: ``no``/``off``/``false`` read as a boolean (YAML 1.1, JSON) become the
    field's own word for it (``log1p: no`` is ``"no"``); another case or surrounding spaces (``Auto ``) become the
    field's spelling; ``null`` becomes ``"none"`` where the field has that word and no null.

    Examples
    --------
    >>> natural_word(False, ("auto", "yes", "no"), none_allowed=False)
    'no'
    >>> natural_word(" Auto", ("auto", "yes", "no"), none_allowed=False)
    'auto'
    """
    pair = next(((true, false) for true, false in _BOOL_WORDS if true in words and false in words), None)
    if pair is not None and isinstance(value, str) and value not in words and value.strip().casefold() in _BOOL_TEXT:
        value = _BOOL_TEXT[value.strip().casefold()]  # ``on`` for a yes/no field: the boolean YAML 1.1 meant
    if isinstance(value, bool):
        return value if pair is None else pair[0] if value else pair[1]
    if value is None and not none_allowed and "none" in words:
        return "none"
    if isinstance(value, str) and value not in words:
        matches = [w for w in words if w.casefold() == value.strip().casefold()]
        if len(matches) == 1:
            return matches[0]
    return value


class StrictModel(BaseModel):
    """Base of every parameter model: unknown keys are errors, instances are immutable.

    Two rules hold for every subclass: a field named ``seed`` or ``*_seed`` takes an integer in
    ``[0, 2**32)`` (:data:`MAX_SEED`); a field that takes words (``Literal["auto", "yes", "no"]``) takes them as a
    user naturally writes them (:func:`natural_word`).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _natural_words(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        out = dict(data)
        for name, info in cls.model_fields.items():
            words = _literal_words(info.annotation)
            if not words:
                continue
            for key in (name, info.alias):
                if key is not None and key in out:
                    out[key] = natural_word(out[key], words, none_allowed=_accepts_none(info.annotation))
        return out

    @field_validator("*", mode="after")
    @classmethod
    def _seed_range(cls, value: Any, info: ValidationInfo) -> Any:
        name = info.field_name or ""
        if (name == "seed" or name.endswith("_seed")) and isinstance(value, int) and not 0 <= value <= MAX_SEED:
            raise ValueError(f"seed {value} is {'negative' if value < 0 else 'too large'}: a seed is an integer from 0 "
                             f"to {MAX_SEED} (2**32 - 1)")
        return value


# --------------------------------------------------------------------------------------------
# stages
# --------------------------------------------------------------------------------------------
class SplitConfig(StrictModel):
    """``split``: the one evaluation protocol of every family (train / validation / test cells).

    Validation cells serve early stopping, model selection and ``xmodal tune``; test cells serve the headline
    figures, the gates and promotion only.
    """

    validation_fraction: float = Field(
        0.15, gt=0, lt=0.5, description="share of every stratum held out for early stopping, selection and tuning")
    test_fraction: float = Field(
        0.15, gt=0, lt=0.5, description="share held out for the headline, the gates and promotion only: never seen "
        "by training, early stopping or search")
    stratify: bool = Field(True, description="stratify by the cells' labels where the family has them (paired: "
                           "label; multiome: phase, always within each domain)")
    seed: int = Field(0, description="seeds the assignment")
    min_cells_per_split: int = Field(
        5, ge=1, description="fewest cells each split of each modality (or domain) must hold; fewer is an error at "
        "preprocess")
    min_cells_per_class: int = Field(
        3, ge=1, description="fewest cells a label (or phase, per domain) must have; a rarer class is an error at "
        "preprocess (merge or drop it, or lower this)")

    @model_validator(mode="after")
    def _shares(self) -> SplitConfig:
        if self.validation_fraction + self.test_fraction >= 0.8:
            raise ValueError("validation_fraction + test_fraction must leave at least 20 % of cells for training")
        return self


class EvaluateConfig(StrictModel):
    """Evaluation of an alignment on the held-out cells."""

    k: int = Field(5, ge=1, description="neighbours for kNN label transfer")
    top_k: tuple[int, ...] = Field((1, 5), description="k of top-k matching accuracy")
    neighborhood_k: tuple[int, ...] = Field(
        (5, 50), description="k of seed 000's kNN matching: the match lies among the partner's k nearest (L1)")
    embedding_plot: Literal["umap", "pca"] = "umap"
    max_plot_cells: int = Field(5000, ge=10)
    seed: int = 0


class TuneConfig(StrictModel):
    """``xmodal tune``: Optuna TPE search with a median pruner, judged on validation cells only."""

    trials: int = Field(50, ge=1, description="trials per `xmodal tune` call (the seed: 50)")
    timeout: float | None = Field(None, gt=0, description="stop starting trials after this many seconds")
    sampler_seed: int = Field(42, description="seed of the TPE sampler (the seed's 42)")
    startup_trials: int = Field(
        5, ge=0, description="median pruner: trials that always run to the end before pruning starts (the seed's "
        "30 with 20-epoch trials and warm-up 25 never pruned)")
    warmup_steps: int = Field(5, ge=0, description="median pruner: epochs of a trial before it can be pruned")
    interval_steps: int = Field(1, ge=1, description="median pruner: check every this many reported epochs")
    storage: str = Field("sqlite:///optuna.db", description="Optuna study storage (relative sqlite paths are "
                         "under the project root); studies are named xmodal-<method>-<dataset>")
    overrides: dict[str, dict[str, Any]] = Field(
        default_factory=lambda: {"dualdann": {"epochs": 20}},
        description="method → config overrides of every trial (e.g. fewer epochs than a full training)")


class GateBound(StrictModel):
    """A bound a metric must satisfy for promotion."""

    min: float | None = None
    max: float | None = None


class RegisterConfig(StrictModel):
    """MLflow tracking and the promotion rule."""

    tracking_uri: str = Field("sqlite:///mlflow.db", description="relative sqlite paths are under the project root")
    artifact_location: str = Field("mlartifacts", description="artifact root for new experiments")
    experiment: str = Field("xmodal", description="MLflow experiment name")
    live_training: bool = Field(
        True, description="`train` opens the MLflow run when training starts and logs each step's metrics while it "
        "runs (rank 0); `register` attaches the model to that run. false: the run is created at register time")
    model_name_template: str = Field("xmodal-{method}-{dataset}", description="registered model name")
    min_improvement: float = Field(
        0.0, ge=0, description="the challenger must beat the champion's primary metric by more than this"
    )
    gates: dict[str, dict[str, GateBound]] = Field(
        default_factory=dict, description="method → metric → bound; all must pass for promotion"
    )

    @field_validator("model_name_template")
    @classmethod
    def _template(cls, value: str) -> str:
        from xmodal._names import MAX_MODEL_NAME, name_problem

        try:
            example = value.format(method="gwot", dataset="pbmc68k")
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(f"template {value!r}: {exc!s} (use the fields {{method}} and {{dataset}})") from None
        problem = name_problem(example, max_length=MAX_MODEL_NAME)
        if problem:
            raise ValueError(f"template {value!r} gives names like {example!r}, which {problem}")
        return value


DriftStatTest = Literal["ks", "wasserstein", "psi", "anderson", "cramer_von_mises", "mannw", "t_test", "es", "ed",
                        "empirical_mmd", "kl_div", "jensenshannon", "hellinger"]
"""Evidently 0.7's per-column tests for numerical columns (p-value tests drift when score <= threshold,
distances when score >= threshold)."""


class MonitorConfig(StrictModel):
    """Drift of new data against the champion's training cells, on a projection fitted on those cells."""

    n_components: int = Field(
        20, ge=2, le=200, description="PCA components per modality the drift tests run on (fitted on the reference)"
    )
    fit_fraction: float = Field(
        0.5, ge=0.1, le=0.9, description="share of reference cells that fit the projection; the others are the "
        "reference sample of the tests, so both samples are projected out-of-sample (in-sample PCA scores are inflated)"
    )
    stattest: DriftStatTest = Field(
        "ks", description="Evidently per-column drift test; prefer a p-value test (ks, anderson, cramer_von_mises, "
        "mannw): distances (wasserstein, psi, ...) ignore sample size and flag resamples of a few hundred cells"
    )
    stattest_threshold: float | None = Field(
        0.05, gt=0, description="drift threshold of the test (a p-value for ks; a distance for wasserstein/psi); "
        "null: Evidently's default for the test"
    )
    retrain_share: float = Field(
        0.3, gt=0, le=1, description="retrain when the drifted share of the components of any modality is >= this"
    )
    min_cells: int = Field(20, ge=5, description="fewest cells per modality accepted in the reference and new data")
    max_cells: int = Field(2000, ge=20, description="seeded subsample cap per modality, for the reference and new data")
    seed: int = 0


class TaskResources(StrictModel):
    """Kubernetes resources of one pipeline task (quantities as Kubernetes writes them: ``"2"``, ``"4G"``)."""

    cpu_request: str | None = "1"
    cpu_limit: str | None = "2"
    memory_request: str | None = "2G"
    memory_limit: str | None = "4G"
    accelerator_type: str = Field("nvidia.com/gpu", description="resource name of the accelerator")
    accelerator_count: int = Field(0, ge=0, description="> 0 puts the task on the GPU node pool with the GPU image")
    retries: int = Field(1, ge=0, description="retries of a failed task")


class Toleration(StrictModel):
    """A Kubernetes toleration for a tainted node pool."""

    key: str
    operator: Literal["Exists", "Equal"] = "Exists"
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = "NoSchedule"


class GpuPool(StrictModel):
    """How GPU tasks reach the GPU node pool."""

    node_selector: dict[str, str] = Field(default_factory=lambda: {"xmodal.io/pool": "gpu"})
    tolerations: list[Toleration] = Field(default_factory=lambda: [Toleration(key="nvidia.com/gpu")])


class DistributedTraining(StrictModel):
    """``pipeline.distributed.<method>``: train the method as a Kubeflow Trainer ``TrainJob`` (``torchrun`` running
    ``xmodal train`` on ``num_nodes`` nodes × processes per node), the data staged read-only through S3."""

    num_nodes: int = Field(2, ge=1, description="nodes (TrainJob spec.trainer.numNodes)")
    gpus_per_node: int = Field(1, ge=0, description="GPUs per node, one training process each (0: CPU nodes)")
    procs_per_node: int = Field(1, ge=1, description="processes per node on CPU nodes (gpus_per_node: 0)")
    cpu: str | None = Field("8", description="CPU request and limit per node")
    memory: str | None = Field("64G", description="memory request and limit per node")
    accelerator_type: str = Field("nvidia.com/gpu", description="resource name of the GPUs")
    runtime: str = Field("torch-distributed", description="the TrainingRuntime the job runs on")
    runtime_kind: Literal["ClusterTrainingRuntime", "TrainingRuntime"] = "ClusterTrainingRuntime"
    namespace: str | None = Field(None, description="where the TrainJob is created (default: the pipeline step's "
                                  "own namespace)")
    staging: str = Field("s3://xmodal/trainjobs", description="s3:// prefix where the step puts the processed data "
                         "and parameters for the nodes (read-only for them) and node 0 puts the model")
    image: str | None = Field(None, description="container image of the nodes (default: the project's GPU image, "
                              "or its CPU image on CPU nodes)")
    timeout: float = Field(86400.0, gt=0, description="seconds to wait for the job before deleting it")
    poll_seconds: float = Field(30.0, gt=0, description="seconds between two looks at the job's status")
    keep_staging: bool = Field(False, description="leave the staged data and model in S3 after the step")

    @field_validator("staging")
    @classmethod
    def _s3(cls, value: str) -> str:
        if not value.startswith("s3://") or len(value) <= len("s3://"):
            raise ValueError(f"{value!r} is not an s3:// prefix (e.g. s3://xmodal/trainjobs)")
        return value.rstrip("/")

    @property
    def procs(self) -> int:
        """Training processes per node."""
        return self.gpus_per_node or self.procs_per_node


class PipelineConfig(StrictModel):
    """Kubeflow pipeline settings (resources, scheduling, secrets); the steps themselves read the rest."""

    dataset: DatasetName | None = Field(None, description="default dataset of the compiled pipelines (first of runs)")
    new_dataset: DatasetName | None = Field(None, description="default new data of the retraining pipeline")
    caching: bool = Field(True, description="KFP execution caching of every task")
    parallelism: int = Field(2, ge=1, description="methods trained at once within one ParallelFor")
    config_map: str = Field("xmodal-config", description="ConfigMap exported as env to every task")
    config_map_keys: list[str] = Field(
        default_factory=lambda: ["MLFLOW_TRACKING_URI", "MLFLOW_S3_ENDPOINT_URL", "AWS_ENDPOINT_URL"])
    s3_secret: str = Field("xmodal-s3-credentials", description="Secret with the S3 keys, exported as env")
    s3_secret_keys: list[str] = Field(default_factory=lambda: ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"])
    mlflow_secret: str = Field("xmodal-mlflow-credentials",
                               description="Secret with MLflow client credentials (optional), exported as env")
    mlflow_secret_keys: list[str] = Field(
        default_factory=lambda: ["MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"])
    defaults: TaskResources = Field(default_factory=TaskResources, description="every task without its own entry")
    resources: dict[str, TaskResources] = Field(default_factory=dict, description="method → its train task")
    gpu_pool: GpuPool = Field(default_factory=GpuPool)
    schedule: str = Field("0 0 3 * * *", description="6-field cron (seconds first) for `pipeline submit --recurring`")
    distributed: dict[str, DistributedTraining] = Field(
        default_factory=dict, description="method → train it as a Kubeflow Trainer TrainJob across nodes (else an "
        "ordinary pipeline task)")


class RunConfig(StrictModel):
    """One entry of ``runs``: ``dvc repro`` trains and evaluates ``method`` on ``dataset``."""

    dataset: DatasetName = Field(description="a dataset of `datasets`")
    method: str = Field(description="a registered method that works on the dataset's family")


class Params(StrictModel):
    """The whole of ``params.yaml``."""

    seed: int = 0
    threads: int = Field(
        1, ge=1, le=4096, description="threads of every numerical library (BLAS, OpenMP, torch, numba) in every "
        "stage, whatever OMP_NUM_THREADS says: outputs are byte-identical between runs with the same count, so "
        "the committed dvc.lock stays valid; more threads are faster on a large machine and give other bytes")
    datasets: dict[DatasetName, Any] = Field(
        default_factory=dict, description="name → dataset (its `family` says which config validates it); names "
        "follow xmodal._names.NAME_RULE")
    split: SplitConfig = Field(default_factory=SplitConfig)
    preprocess: dict[str, Any] = Field(
        default_factory=dict, description="family → its preprocessing settings (the family's preprocess config)")
    methods: dict[str, Any] = Field(default_factory=dict)
    evaluate: EvaluateConfig = Field(default_factory=EvaluateConfig)
    tune: TuneConfig = Field(default_factory=TuneConfig)
    registry: RegisterConfig = Field(default_factory=RegisterConfig, alias="register")
    monitor: MonitorConfig = Field(default_factory=MonitorConfig)
    runs: dict[RunName, RunConfig] = Field(
        default_factory=dict, description="run name → (dataset, method): one DVC train and evaluate stage each "
        "(train@<name>, evaluate@<name>)")
    pipeline: PipelineConfig = Field(default_factory=PipelineConfig)

    @field_validator("datasets")
    @classmethod
    def _distinct_datasets(cls, datasets: dict[str, Any]) -> dict[str, Any]:
        seen: dict[str, str] = {}
        for name in datasets:
            other = seen.setdefault(name.lower(), name)
            if other != name:
                raise ValueError(f"datasets {other!r} and {name!r} differ only in case; on a case-insensitive file "
                                 "system they would write the same folders: rename one")
        return datasets

    def dataset(self, name: str) -> Any:
        """Return the dataset config ``name`` (its family's config class) or raise a :class:`ConfigError` listing
        the known ones."""
        from xmodal.errors import ConfigError

        if name not in self.datasets:
            raise ConfigError(f"datasets.{name}: no such dataset in params (known: {sorted(self.datasets)})")
        return self.datasets[name]

    def method(self, name: str) -> Any:
        """Return the validated config of method ``name`` (its defaults if params has no section)."""
        from xmodal.errors import ConfigError
        from xmodal.methods import get_method

        spec = get_method(name)
        if name in self.methods:
            return self.methods[name]
        try:
            return spec.config_cls()()
        except Exception as exc:  # pragma: no cover - defaults always validate
            raise ConfigError(f"methods.{name}: {exc}") from exc

    def preprocess_config(self, family: str) -> Any:
        """Return the validated ``preprocess.<family>`` (the family's defaults if params has no section)."""
        from xmodal.families import get_family

        spec = get_family(family)
        if family in self.preprocess:
            return self.preprocess[family]
        return spec.preprocess_config_cls()()

    def run_pairs(self) -> list[tuple[str, str]]:
        """``(dataset, method)`` of every entry of ``runs``, in order."""
        return [(run.dataset, run.method) for run in self.runs.values()]


def changed_settings(config: BaseModel) -> dict[str, tuple[Any, Any]]:
    """The settings of ``config`` that differ from its class's defaults: name → (value, default).

    Parameters
    ----------
    config
        A validated parameter model (e.g. a method's config).

    Examples
    --------
    >>> changed_settings(SplitConfig(seed=3))
    {'seed': (3, 0)}
    """
    now = config.model_dump(mode="json")
    defaults = type(config).model_construct().model_dump(mode="json")
    return {key: (value, defaults.get(key)) for key, value in now.items() if value != defaults.get(key)}


def describe_settings(config: BaseModel, *, what: str) -> str:
    """One line for the log: the settings of ``config`` that differ from the defaults, and the fields that won over a
    preset (a config with ``preset_overridden``)."""
    changed = changed_settings(config)
    text = (f"{what}: settings that differ from the defaults: "
            + ", ".join(f"{k}={v!r} (default {d!r})" for k, (v, d) in changed.items()) if changed
            else f"{what}: every setting at its default")
    overridden = getattr(config, "preset_overridden", None) or {}
    if overridden:
        text += (f"; preset {getattr(config, 'preset', '?')!r} is overridden by fields set in params: "
                 + ", ".join(f"{k}={v!r} (preset {p!r})" for k, (v, p) in overridden.items()))
    return text
