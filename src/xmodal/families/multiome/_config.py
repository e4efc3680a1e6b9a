"""Parameters of the ``multiome`` family: its data sources, one dataset entry, and ``preprocess.multiome``."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from xmodal.config._models import DataPath, DomainName, StrictModel


class SyntheticMultiomeSource(StrictModel):
    """Synthetic 10x-Multiome-like data with planted cell-cycle programs (see :func:`xmodal.families.multiome.synthetic_multiome`)."""

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

    family: Literal["multiome"] = Field(description="the data family (xmodal.families): multiome")
    source: MultiomeSource = Field(default_factory=SyntheticMultiomeSource)
    source_domain: DomainName | None = Field(None, description="the labelled domain training starts from (default: the first)")
    target_domain: DomainName | None = Field(
        None, description="the domain adapted to, whose test cells are the headline (default: the second, else the "
        "source domain itself)")
    description: str = ""


class MultiomePreprocessConfig(StrictModel):
    """``preprocess.multiome`` (seed 001): feature selection and normalisation, fitted on training cells only."""

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
    min_features: int = Field(
        2, ge=1, description="fewest kept features of a modality that must vary over the training cells")
    seed: int = Field(0, description="seeds the learned peak mapper")


__all__ = ["MultiomeDatasetConfig", "MultiomeDomainFiles", "MultiomeFilesSource", "MultiomePreprocessConfig",
           "MultiomeSource", "SyntheticMultiomeSource"]
