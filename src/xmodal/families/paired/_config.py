"""Parameters of the ``paired`` family: its data sources, one dataset entry, and ``preprocess.paired``."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field, model_validator

from xmodal.config._models import DataPath, ModalityName, StrictModel, distinct_names

ModalityNames = Annotated[tuple[ModalityName, ModalityName], AfterValidator(distinct_names)]

Kind = Literal["auto", "counts", "continuous"]
"""What a paired modality holds: ``counts`` (non-negative integers; anything else is refused at ingest, and
log1p applies), ``continuous``, or ``auto`` (counts when every value is a non-negative integer)."""


class SyntheticPairedSource(StrictModel):
    """Synthetic paired data with planted ground truth (see :func:`xmodal.families.paired.synthetic_paired`)."""

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


class MultiomicSimSource(StrictModel):
    """A SNARE-seq-like simulated RNA + ATAC experiment (see :func:`xmodal.families.paired.simulated_multiome`)."""

    kind: Literal["simulated_multiome"] = "simulated_multiome"
    n_cells: int = Field(1000, ge=20, description="cells, measured in both modalities")
    n_types: int = Field(6, ge=2, le=50, description="cell types, of unequal sizes")
    min_type_fraction: float = Field(0.03, ge=0, lt=0.5, description="share of the rarest cell type, at least")
    latent_dim: int = Field(8, ge=2, description="dimension of the cell state")
    separation: float = Field(1.6, gt=0, description="spread of the cell-type centres (larger: types more distinct)")
    hidden: int = Field(24, ge=2, description="width of the random networks that read the state out")
    n_genes: int = Field(2000, ge=10, description="RNA genes")
    n_peaks: int = Field(6000, ge=10, description="ATAC peaks")
    rna_depth: float = Field(2000.0, gt=0, description="median RNA counts per cell")
    rna_dispersion: float = Field(4.0, gt=0, description="negative-binomial theta (smaller: noisier)")
    features: Literal["counts", "reduced"] = Field(
        "counts", description="counts: genes and peaks; reduced: RNA log-CPM PCs and ATAC topic proportions, the "
        "low-dimensional features published paired datasets ship")
    n_rna_pcs: int = Field(10, ge=2, description="RNA PCs in features: reduced")
    n_topics: int = Field(19, ge=2, description="ATAC topics in features: reduced")
    names: ModalityNames = ("atac", "rna")
    seed: int = Field(0, description="the experiment")


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
    SyntheticPairedSource | MultiomicSimSource | Pbmc68kSource | CsvPairedSource | AnnDataSource,
    Field(discriminator="kind"),
]


class PairedDatasetConfig(StrictModel):
    """One dataset of the ``paired`` family: two modalities of the same (or comparable) cells."""

    family: Literal["paired"] = Field(description="the data family (xmodal.families): paired")
    source: PairedSource = Field(default_factory=SyntheticPairedSource)
    description: str = ""


class PairedPreprocessConfig(StrictModel):
    """``preprocess.paired``: per-modality preprocessing, every statistic fitted on the training cells only."""

    log1p: Literal["auto", "yes", "no"] = Field(
        "auto", description="log1p-transform a modality; auto: when it looks like counts"
    )
    n_top_features: int | None = Field(2000, ge=2, description="keep the most variable features")
    scale: bool | Literal["auto"] = Field(
        "auto", description="z-score each feature; auto: only when PCA runs (more features than n_pcs), so "
        "low-dimensional features that are already an embedding (PCs, topic proportions) keep their scales")
    n_pcs: int | None = Field(30, ge=2, description="PCA per modality; null keeps the features")
    min_features: int = Field(
        2, ge=1, description="fewest features of a modality that must vary over the training cells after "
        "preprocessing (constant features are dropped)")
    seed: int = Field(0, description="seeds the PCA")


__all__ = ["AnnDataSource", "CsvPairedSource", "Kind", "MultiomicSimSource", "PairedDatasetConfig", "PairedPreprocessConfig", "PairedSource",
           "Pbmc68kSource", "SyntheticPairedSource"]
