"""Parameter models. Every model forbids unknown keys; field docs say what each key does."""

from __future__ import annotations

from os import PathLike
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    PlainValidator,
    Tag,
    field_validator,
    model_validator,
)

from xmodal._names import name_validator

Family = Literal["paired", "multiome"]

DatasetName = Annotated[str, AfterValidator(name_validator("dataset"))]
"""A dataset name: it becomes a folder under data/, models/ and reports/ (see :mod:`xmodal._names`)."""
DomainName = Annotated[str, AfterValidator(name_validator("domain"))]
"""A domain (cell line) name of a multiome dataset: it is stored as a column and group name."""
ModalityName = Annotated[str, AfterValidator(name_validator("modality"))]
"""A modality name of a paired dataset: it becomes the modality's group in data.h5mu."""


Kind = Literal["auto", "counts", "continuous"]
"""What a paired modality holds: ``counts`` (non-negative integers; anything else is refused at ingest, and
log1p applies), ``continuous``, or ``auto`` (counts when every value is a non-negative integer)."""


def _distinct_names(names: tuple[str, ...]) -> tuple[str, ...]:
    if len(set(names)) != len(names):
        raise ValueError(f"modality names must differ, got {list(names)}")
    return names


ModalityNames = Annotated[tuple[ModalityName, ModalityName], AfterValidator(_distinct_names)]


def _path_or_s3_uri(value: Any) -> Path | str:
    """Keep an ``s3://`` URI as str (``Path`` would collapse its ``//``); make anything else a Path."""
    if isinstance(value, str) and value.startswith("s3://"):
        return value
    if isinstance(value, str | PathLike):
        return Path(value)
    raise ValueError("expected a file path or an s3:// URI")


DataPath = Annotated[Path | str, PlainValidator(_path_or_s3_uri, json_schema_input_type=str)]
"""A data file: a local path (relative to the project root) or an ``s3://bucket/key`` URI."""


class StrictModel(BaseModel):
    """Base of every parameter model: unknown keys are errors, instances are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, allow_inf_nan=False)


# --------------------------------------------------------------------------------------------
# data sources of the ``paired`` family
# --------------------------------------------------------------------------------------------
class SyntheticPairedSource(StrictModel):
    """Synthetic paired data with planted ground truth (see :func:`xmodal.data.synthetic_paired`)."""

    kind: Literal["synthetic"] = "synthetic"
    n_cells: int = Field(1200, ge=20, description="cells in modality A (and B when paired)")
    n_cells_b: int | None = Field(None, ge=20, description="cells in B in unpaired mode")
    n_clusters: int = Field(6, ge=2, le=50, description="planted clusters (cell types)")
    latent_dim: int = Field(6, ge=2, description="dimension of the shared latent space")
    dim_a: int = Field(60, ge=2, description="features of modality A (morphology-like)")
    dim_b: int = Field(400, ge=2, description="features of modality B (expression-like counts)")
    noise: float = Field(0.2, ge=0, description="noise level relative to the signal")
    pairing: Literal["paired", "unpaired"] = Field(
        "paired", description="paired: every A cell has a known partner in B; unpaired: independent cells"
    )
    names: ModalityNames = ("morphology", "expression")
    seed: int = Field(0, description="the experiment: cell types, their geometry and both measurement maps")
    batch: int = Field(
        0, ge=0, description="which batch of the experiment: another batch draws new cells of the same cell types, "
        "measured through the same maps (cell ids get the suffix -<batch>)"
    )
    batch_effect: float = Field(
        0.0, ge=0, description="planted technical shift of this batch: per-feature offsets of this many feature SDs "
        "in A, per-gene log-rate offsets of this SD in B (0: none)"
    )


class SyntheticMultiomeSource(StrictModel):
    """Synthetic 10x-Multiome-like data with planted cell-cycle programs (see :func:`xmodal.data.synthetic_multiome`)."""

    kind: Literal["synthetic_multiome"] = "synthetic_multiome"
    n_cells: int = Field(1000, ge=30, description="cells per domain")
    domains: tuple[DomainName, ...] = Field(("source", "target"), min_length=1,
                                            description="domains (e.g. cell lines)")
    n_background_genes: int = Field(400, ge=0, description="genes outside the S and G2M programs")
    peaks_per_gene: int = Field(3, ge=1, description="peaks linked to each gene (near its TSS)")
    n_background_peaks: int = Field(1000, ge=0, description="peaks linked to no gene")
    phase_fractions: tuple[float, float, float] = Field(
        (0.55, 0.30, 0.15), description="share of G1, S and G2M cells")
    program_effect: float = Field(1.5, ge=0, description="log-rate increase of a program gene in its phase")
    accessibility_effect: float = Field(2.0, ge=0, description="logit increase of a program peak in its phase")
    domain_shift: float = Field(
        1.0, ge=0, description="planted shift of every domain after the first: per-peak logit and per-gene "
        "log-rate offsets of this SD, and a lower sequencing depth")
    program_shift: float = Field(
        0.0, ge=0, description="systematic shift of every domain after the first: logit offset of +this on the "
        "S-program peaks and −this on the G2/M-program peaks of all its cells (0: none)")
    seed: int = 0

    @model_validator(mode="after")
    def _fractions(self) -> SyntheticMultiomeSource:
        if any(f < 0 for f in self.phase_fractions) or abs(sum(self.phase_fractions) - 1.0) > 1e-6:
            raise ValueError("phase_fractions must be three non-negative shares summing to 1")
        if len(set(self.domains)) != len(self.domains):
            raise ValueError("domains must be distinct")
        return self


class Pbmc68kSource(StrictModel):
    """scanpy's bundled ``pbmc68k_reduced`` split into two disjoint gene panels (real cells, real labels)."""

    kind: Literal["pbmc68k_reduced"] = "pbmc68k_reduced"
    label_key: str = Field("bulk_labels", description="obs column used as the cell label")
    fraction_a: float = Field(0.5, gt=0, lt=1, description="share of genes given to panel A")
    names: ModalityNames = ("panel_a", "panel_b")
    seed: int = 0


class CsvPairedSource(StrictModel):
    """The seed-000 CSV set: morphology, expression, labels, cluster labels, correlation matrix."""

    kind: Literal["csv"] = "csv"
    modality_a: DataPath = Field(description="morphology CSV: header row, id column, numeric features")
    modality_b: DataPath = Field(description="expression CSV: id column then genes; header optional")
    b_header: Literal["auto", "yes", "no"] = Field("auto", description="does modality_b have a header row")
    labels: DataPath | None = Field(None, description="RNA-family labels CSV: id column, label column")
    clusters_a: DataPath | None = Field(None, description="morphology cluster labels CSV")
    clusters_b: DataPath | None = Field(None, description="expression cluster labels CSV")
    corr_matrix: DataPath | None = Field(None, description="cluster correlation matrix (B clusters × A clusters)")
    paired: bool = Field(True, description="row i of A and row i of B are the same cell (known pairing)")
    names: ModalityNames = ("morphology", "expression")
    kinds: tuple[Kind, Kind] = Field(("auto", "auto"), description="what A and B hold: counts, continuous or auto")


class AnnDataSource(StrictModel):
    """An ``.h5mu`` with two modalities, or two ``.h5ad`` files."""

    kind: Literal["anndata"] = "anndata"
    path: DataPath | None = Field(None, description=".h5mu file holding both modalities")
    path_a: DataPath | None = Field(None, description=".h5ad of modality A (with path_b)")
    path_b: DataPath | None = Field(None, description=".h5ad of modality B (with path_a)")
    modalities: tuple[str, str] | None = Field(None, description="which two modalities of the .h5mu")
    label_key: str | None = Field(None, description="obs column holding cell labels")
    match_key: str | None = Field(None, description="obs column of A naming the partner cell in B")
    kinds: tuple[Kind, Kind] = Field(("auto", "auto"), description="what A and B hold: counts, continuous or auto")

    @model_validator(mode="after")
    def _one_layout(self) -> AnnDataSource:
        if (self.path is None) == (self.path_a is None and self.path_b is None):
            raise ValueError("give either `path` (.h5mu) or both `path_a` and `path_b` (.h5ad)")
        if self.path is None and (self.path_a is None or self.path_b is None):
            raise ValueError("`path_a` and `path_b` must be given together")
        return self


PairedSource = Annotated[
    SyntheticPairedSource | Pbmc68kSource | CsvPairedSource | AnnDataSource,
    Field(discriminator="kind"),
]


class DatasetConfig(StrictModel):
    """One dataset of the ``paired`` family: two modalities of the same (or comparable) cells."""

    family: Literal["paired"] = "paired"
    source: PairedSource = Field(default_factory=SyntheticPairedSource)
    description: str = ""


# --------------------------------------------------------------------------------------------
# data sources of the ``multiome`` family
# --------------------------------------------------------------------------------------------
class MultiomeDomainFiles(StrictModel):
    """The files of one domain (e.g. one cell line) of a Multiome dataset."""

    name: DomainName = Field(description="the domain's name (e.g. the cell line), unique in the dataset")
    format: Literal["10x_h5", "csv", "h5mu"] = Field(
        description="10x_h5: Cell Ranger ARC filtered_feature_bc_matrix.h5 (path); csv: the seed's tables (rna, atac); "
        "h5mu: modalities rna and atac (path)")
    path: DataPath | None = Field(None, description="10x_h5 / h5mu: the file")
    rna: DataPath | None = Field(None, description="csv: cells × genes, header row, cell id column first")
    atac: DataPath | None = Field(None, description="csv: cells × peaks named chr:start-end, same cells as rna")
    labels: DataPath | None = Field(
        None, description="optional CSV: cell id column and a `phase` column (G1/S/G2M); without it phases are "
        "scored from the S and G2/M genes at ingest")

    @model_validator(mode="after")
    def _files(self) -> MultiomeDomainFiles:
        need = ("rna", "atac") if self.format == "csv" else ("path",)
        missing = [f for f in need if getattr(self, f) is None]
        if missing:
            raise ValueError(f"format {self.format} needs {' and '.join(missing)}")
        return self


class MultiomeFilesSource(StrictModel):
    """A Multiome dataset from files: one entry per domain; later domains' peaks are mapped onto the first's."""

    kind: Literal["files"] = "files"
    domains: list[MultiomeDomainFiles] = Field(min_length=1, description="the domains, the reference (first) first")
    peak_min_overlap: float = Field(
        0.5, gt=0, le=1, description="a peak of a later domain feeds a reference peak when they overlap by this "
        "share of the shorter one (unmatched reference peaks are zero)")
    cell_ids: Literal["auto", "prefix", "as_is"] = Field(
        "auto", description="cell ids must be unique across domains (10x barcodes repeat between runs): auto writes "
        "every id as <domain>:<id> when some id repeats, prefix always does, as_is refuses a repeated id")

    @model_validator(mode="after")
    def _distinct(self) -> MultiomeFilesSource:
        names = [d.name for d in self.domains]
        if len(set(names)) != len(names):
            raise ValueError(f"domain names must be distinct, got {names}")
        return self


MultiomeSource = Annotated[SyntheticMultiomeSource | MultiomeFilesSource, Field(discriminator="kind")]


class MultiomeDatasetConfig(StrictModel):
    """One dataset of the ``multiome`` family: RNA and ATAC of the same cells, in a source and a target domain."""

    family: Literal["multiome"] = "multiome"
    source: MultiomeSource = Field(default_factory=SyntheticMultiomeSource)
    source_domain: DomainName | None = Field(None, description="the labelled domain training starts from (default: the first)")
    target_domain: DomainName | None = Field(
        None, description="the domain adapted to, whose test cells are the headline (default: the second, else the "
        "source domain itself)")
    description: str = ""


def _family(value: Any) -> str:
    return str(value.get("family", "paired") if isinstance(value, dict) else getattr(value, "family", "paired"))


AnyDatasetConfig = Annotated[
    Annotated[DatasetConfig, Tag("paired")] | Annotated[MultiomeDatasetConfig, Tag("multiome")],
    Discriminator(_family),
]


# --------------------------------------------------------------------------------------------
# stages
# --------------------------------------------------------------------------------------------
class MultiomePreprocessConfig(StrictModel):
    """Preprocessing of the ``multiome`` family (seed 001), every statistic fitted on training cells only."""

    validation_fraction: float = Field(
        0.15, gt=0, lt=0.5, description="share of every domain and phase held out for early stopping and search")
    test_fraction: float = Field(
        0.15, gt=0, lt=0.5, description="share held out for the final report only: never seen by training, "
        "early stopping or search")
    normalize: Literal["auto", "yes", "no"] = Field(
        "auto", description="CPM → log1p → L2 per cell for both modalities; auto skips data that look normalised "
        "(max < 20 and non-integer, the seed's rule)")
    min_peak_fraction: float = Field(0.05, ge=0, lt=1, description="keep peaks open in at least this share of "
                                     "training cells")
    n_top_genes: int | None = Field(2000, ge=10, description="keep the most variable genes (training cells); "
                                    "null keeps all")
    peak_impute: Literal["zero", "learned"] = Field(
        "zero", description="reference peaks a domain did not measure (no peak overlapping them): zero (the "
        "seed's default) or learned — predicted from its measured peaks by a low-rank ridge map fitted on the "
        "training cells of domains that measured both")
    peak_mapper_rank: int = Field(256, ge=1, description="learned: width of the mapper's SVD adapter")
    peak_mapper_alpha: float = Field(1.0, gt=0, description="learned: ridge penalty, relative to the mean score "
                                     "variance")
    seed: int = 0

    @model_validator(mode="after")
    def _shares(self) -> MultiomePreprocessConfig:
        if self.validation_fraction + self.test_fraction >= 0.8:
            raise ValueError("validation_fraction + test_fraction must leave at least 20 % of cells for training")
        return self


class PreprocessConfig(StrictModel):
    """Per-modality preprocessing, every statistic fitted on the training split only."""

    validation_fraction: float = Field(0.2, ge=0.05, le=0.5, description="share of cells held out")
    stratify: bool = Field(True, description="stratify the split by label when labels exist")
    log1p: Literal["auto", "yes", "no"] = Field(
        "auto", description="log1p-transform a modality; auto: when it looks like counts"
    )
    n_top_features: int | None = Field(2000, ge=2, description="keep the most variable features")
    scale: bool = Field(True, description="z-score each feature")
    n_pcs: int | None = Field(30, ge=2, description="PCA per modality; null keeps the features")
    seed: int = 0
    min_cells_per_split: int = Field(
        5, ge=1, description="fewest cells each split (train, validation, test) of each modality (paired) or "
        "domain (multiome) must hold; fewer is an error at preprocess")
    min_cells_per_class: int = Field(
        3, ge=1, description="fewest cells a label (paired) or phase (multiome, per domain) must have; a rarer "
        "class is an error at preprocess (merge or drop it, or lower this)")
    min_features: int = Field(
        2, ge=1, description="fewest features of a modality that must vary over the training cells after "
        "preprocessing (constant features are dropped)")
    multiome: MultiomePreprocessConfig = Field(
        default_factory=MultiomePreprocessConfig, description="the multiome family's own preprocessing")


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


class RunGroup(StrictModel):
    """Which methods ``dvc repro`` runs on which datasets of one family."""

    datasets: list[DatasetName]
    methods: list[str]


class Params(StrictModel):
    """The whole of ``params.yaml``."""

    seed: int = 0
    datasets: dict[DatasetName, AnyDatasetConfig] = Field(
        default_factory=dict, description="name → dataset; names follow xmodal._names.NAME_RULE")
    preprocess: PreprocessConfig = Field(default_factory=PreprocessConfig)
    methods: dict[str, Any] = Field(default_factory=dict)
    evaluate: EvaluateConfig = Field(default_factory=EvaluateConfig)
    tune: TuneConfig = Field(default_factory=TuneConfig)
    registry: RegisterConfig = Field(default_factory=RegisterConfig, alias="register")
    monitor: MonitorConfig = Field(default_factory=MonitorConfig)
    runs: dict[str, RunGroup] = Field(default_factory=dict)
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

    def dataset(self, name: str) -> DatasetConfig:
        """Return the dataset config ``name`` or raise a :class:`ConfigError` listing the known ones."""
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
