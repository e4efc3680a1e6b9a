"""Parameters of the ``census`` family: its four data sources, one dataset entry, and ``preprocess.census``."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field, field_validator, model_validator

from xmodal.config._models import DataPath, StrictModel

#: the fields seed 002 conditions on (``main.py``), less its duplicate ``dev_stage``; ``donor_id`` is a nuisance
SEED_FIELDS = ("cell_type", "disease", "development_stage", "sex", "self_reported_ethnicity", "tissue_general",
               "tissue", "assay")


def _distinct(values: tuple[str, ...]) -> tuple[str, ...]:
    seen = [v for i, v in enumerate(values) if v in values[:i]]
    if seen:
        raise ValueError(f"{seen[0]!r} is listed twice")
    return values


Fields = Annotated[tuple[str, ...], AfterValidator(_distinct)]


class SyntheticCensusSource(StrictModel):
    """A Census-shaped synthetic dataset with planted context effects (:func:`~xmodal.families.census.synthetic_census`)."""

    kind: Literal["synthetic_census"] = "synthetic_census"
    n_cells: int = Field(6000, ge=20, description="cells")
    n_genes: int = Field(2000, ge=10, description="genes")
    n_donors: int = Field(12, ge=2, description="donors (a nuisance effect; sex is a donor property)")
    interaction: float = Field(0.3, ge=0, description="SD of the planted cell_type × sex interaction on 5 % of genes")
    depth: float = Field(900.0, gt=0, description="median raw counts per cell")
    chunk_size: int = Field(2000, ge=1, description="cells per chunk written to the store")
    seed: int = Field(0, description="the experiment")


class CensusQuerySource(StrictModel):
    """A query through the ``cellxgene_census`` API against a Census release (or a Census-shaped collection)."""

    kind: Literal["cellxgene_census"] = "cellxgene_census"
    uri: str = Field(description="the collection's root: a local folder or s3:// URI of a Census release (never a "
                     "version name, which needs the network to resolve)")
    organism: str = Field("homo_sapiens", description="Census experiment: homo_sapiens or mus_musculus")
    obs_value_filter: str | None = Field(
        None, description="SOMA filter, e.g. \"tissue_general == 'blood' and is_primary_data == True\"")
    var_value_filter: str | None = Field(None, description="SOMA filter on genes, e.g. \"feature_id in [...]\"")
    chunk_size: int = Field(10_000, ge=1, description="cells read per block")

    @field_validator("uri")
    @classmethod
    def _not_a_version(cls, value: str) -> str:
        if value in {"stable", "latest"} or value[:4].isdigit():
            raise ValueError(f"{value!r} looks like a Census version name; give the release's URI (resolving a "
                             "version needs the network): e.g. s3://cellxgene-census-public-us-west-2/cell-census/"
                             "2025-01-30/soma/")
        return value


class ChunkExportSource(StrictModel):
    """Seed 002's export: ``*counts*.npz`` CSR chunks, each with a ``*metadata*`` table, and a gene list."""

    kind: Literal["chunks"] = "chunks"
    path: DataPath = Field(description="the chunk folder")
    trust_pickle: bool = Field(
        False, description="read .pkl metadata; loading a pickle runs whatever code it names, so only for files "
        "you made yourself (prefer .parquet or .csv)")


class H5adCensusSource(StrictModel):
    """One ``.h5ad`` of raw counts (cells × genes) with the metadata fields in ``obs``, read in row blocks."""

    kind: Literal["h5ad"] = "h5ad"
    path: DataPath = Field(description="the .h5ad file")
    layer: str | None = Field(None, description="layer holding raw counts (default X)")
    chunk_size: int = Field(10_000, ge=1, description="cells read per block")


CensusSource = Annotated[SyntheticCensusSource | CensusQuerySource | ChunkExportSource | H5adCensusSource,
                         Field(discriminator="kind")]


class CensusDatasetConfig(StrictModel):
    """One dataset of the ``census`` family: raw counts plus categorical metadata fields."""

    family: Literal["census"] = Field(description="the data family (xmodal.families): census")
    source: CensusSource = Field(default_factory=SyntheticCensusSource)
    fields: Fields = Field(SEED_FIELDS, min_length=1, description="metadata fields the model conditions on (a "
                           "field with one value is dropped with a warning)")
    holdout: list[dict[str, str]] = Field(
        default_factory=lambda: [{"cell_type": "T cell", "sex": "female"}, {"cell_type": "monocyte", "sex": "male"},
                                 {"cell_type": "B cell", "sex": "female"}],
        description="context combinations kept out of training and validation: each a {field: value} mapping; "
        "their cells are test cells, the targets of the counterfactual evaluation")
    counterfactual_field: str = Field(
        "sex", description="the field changed in the counterfactual evaluation: test cells that share every other "
        "value of a held-out combination are moved into it")
    description: str = ""

    @model_validator(mode="after")
    def _holdout_fields(self) -> CensusDatasetConfig:
        # values are matched by this key everywhere
        from xmodal.families.census._vocab import value_key

        seen: dict[tuple[tuple[str, str | None], ...], dict[str, str]] = {}
        for combo in self.holdout:
            if not combo:
                raise ValueError("a holdout combination is empty: give {field: value, ...}")
            unknown = [f for f in combo if f not in self.fields]
            if unknown:
                raise ValueError(f"holdout names field {unknown[0]!r}, which is not in `fields` ({', '.join(self.fields)})")
            null = [f for f, v in combo.items() if value_key(v) is None]
            if null:
                raise ValueError(f"holdout {combo}: {null[0]} = {combo[null[0]]!r} reads as no value (null-like); "
                                 "hold out combinations of real values")
            key = tuple(sorted((f, value_key(v)) for f, v in combo.items()))
            if key in seen:
                raise ValueError(f"holdout {combo} is {seen[key]} again (values are matched ignoring case, "
                                 "whitespace and Unicode form): list each combination once")
            seen[key] = combo
        if self.holdout and any(self.counterfactual_field not in c for c in self.holdout):
            raise ValueError(f"counterfactual_field {self.counterfactual_field!r} must be a field of every holdout "
                             "combination (the evaluation moves cells into the combination along it)")
        if self.counterfactual_field not in self.fields:
            raise ValueError(f"counterfactual_field {self.counterfactual_field!r} is not in `fields`")
        return self


class CensusPreprocessConfig(StrictModel):
    """``preprocess.census``: gene selection and the model's input space, fitted on training cells (streamed)."""

    n_top_genes: int | None = Field(2000, ge=2, description="keep the most variable genes of the training cells "
                                    "(log1p-normalised); null keeps every gene")
    target_sum: float = Field(1e4, gt=0, description="counts per cell after normalisation, before log1p")
    min_cells_per_gene: int = Field(1, ge=0, description="genes detected in fewer training cells are dropped")
    chunk_size: int = Field(2000, ge=1, description="cells per chunk of the processed store (the loader's unit)")


__all__ = ["SEED_FIELDS", "CensusDatasetConfig", "CensusPreprocessConfig", "CensusQuerySource", "CensusSource",
           "ChunkExportSource", "H5adCensusSource", "SyntheticCensusSource"]
