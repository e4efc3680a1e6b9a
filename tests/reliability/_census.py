"""Census inputs a user might give, written small: a project with one census dataset, an ``.h5ad``, a chunk
export, and a Census-shaped SOMA collection read through the real ``cellxgene_census`` API."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp
from _cli import write_params

FIELDS = ["cell_type", "sex"]


def project(root: Path, datasets: dict[str, Any], **sections: Any) -> Path:
    """``root`` with a params.yaml of ``datasets`` and ``sections`` only: every other key keeps its default, so
    the project reads the same with any version of xmodal's parameters."""
    root.mkdir(parents=True, exist_ok=True)
    write_params(root, {"seed": 0, "datasets": datasets, **sections})
    return root


def census_project(root: Path, source: dict[str, Any], **dataset: Any) -> Path:
    """``root`` with a params.yaml holding dataset ``c`` (census, ``source``, no held-out combination)."""
    return project(root, {"c": {"family": "census", "source": source, "fields": FIELDS, "holdout": [], **dataset}},
                   preprocess={"census": {"n_top_genes": 8, "chunk_size": 25}})


def small_census(n_cells: int = 40, n_genes: int = 10, seed: int = 2) -> tuple[sp.csr_matrix, pd.DataFrame,
                                                                                 pd.DataFrame]:
    """Raw counts (float32 CSR), obs (indexed by cell id) and var (indexed by feature_id) of a synthetic census."""
    from xmodal.families.census._synthetic import synthetic_census

    sim = synthetic_census(n_cells=n_cells, n_genes=n_genes, seed=seed)
    return sim.counts, sim.obs, sim.var


def write_h5ad(path: Path, counts: Any, obs: pd.DataFrame, var: pd.DataFrame) -> Path:
    ad.AnnData(X=counts, obs=obs, var=var).write_h5ad(path)
    return path


def write_chunks(folder: Path, counts: sp.csr_matrix, obs: pd.DataFrame, var: pd.DataFrame, *, rows: int = 20
                 ) -> Path:
    """Seed 002's export: ``human_counts_<k>.npz`` + ``human_metadata_<k>.parquet`` and ``genes.csv``."""
    folder.mkdir(parents=True, exist_ok=True)
    var.reset_index().to_csv(folder / "genes.csv", index=False)
    for k, s in enumerate(range(0, counts.shape[0], rows)):
        sp.save_npz(folder / f"human_counts_{k}.npz", sp.csr_matrix(counts[s:s + rows]))
        obs.iloc[s:s + rows].reset_index().to_parquet(folder / f"human_metadata_{k}.parquet")
    return folder


def write_collection(root: Path, counts: Any, obs: pd.DataFrame, var: pd.DataFrame, *, layer: str = "raw") -> Path:
    """A Census-shaped collection (census_info + census_data/homo_sapiens), X under ``layer``."""
    import pyarrow as pa
    import tiledbsoma
    import tiledbsoma.io

    tiledbsoma.Collection.create(str(root)).close()
    with tiledbsoma.Collection.open(str(root), "w") as census:
        info = census.add_new_collection("census_info")
        schema = pa.schema([("soma_joinid", pa.int64()), ("label", pa.large_string()), ("value", pa.large_string())])
        summary = info.add_new_dataframe("summary", schema=schema, domain=[(0, 0)])
        summary.write(pa.table({"soma_joinid": [0], "label": ["census_schema_version"], "value": ["2.1.0"]}))
        data = census.add_new_collection("census_data")
        frame = obs.reset_index().rename(columns={obs.index.name or "index": "observation_joinid"})
        genes = var.reset_index().rename(columns={var.index.name or "index": "feature_id"})
        adata = ad.AnnData(X=counts, obs=frame.set_index(np.asarray(frame["observation_joinid"], dtype=str)),
                           var=genes.set_index(np.asarray(genes["feature_id"], dtype=str)))
        uri = f"{root}/census_data/homo_sapiens"
        tiledbsoma.io.from_anndata(uri, adata, measurement_name="RNA", X_layer_name=layer, var_id_name="feature_id",
                                   obs_id_name="observation_joinid")
        data.set("homo_sapiens", tiledbsoma.Experiment.open(uri), use_relative_uri=True)
    return root


def fragment_files(array: Path) -> list[Path]:
    """The files of a TileDB array's fragments (largest first)."""
    return sorted((p for p in (array / "__fragments").glob("*/*") if p.is_file()), key=lambda p: -p.stat().st_size)
