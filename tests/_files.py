"""Input files a user might give, written from small synthetic data: 10x ARC matrices, CSV sets, labels.

Importable from any test module (``tests/`` is on ``sys.path`` for its ``conftest.py``): ``from _files import ...``.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import scipy.sparse as sp


def small_multiome(seed: int = 1, n_cells: int = 60):
    """One domain of synthetic Multiome data (counts), small enough to write in a moment."""
    from xmodal.families.multiome._data import synthetic_multiome

    return synthetic_multiome(n_cells=n_cells, n_background_genes=10, n_background_peaks=40, domains=("d",),
                              seed=seed)


def write_10x(path: Path, data, *, barcodes: list[str] | None = None, with_peaks: bool = True) -> Path:
    """A Cell Ranger ARC-style ``filtered_feature_bc_matrix.h5`` (features × barcodes, CSC by barcode); without
    ``with_peaks`` a gene-expression-only matrix."""
    x = sp.hstack([data.rna.X, data.atac.X]).tocsr() if with_peaks else sp.csr_matrix(data.rna.X)
    names = list(data.rna.var_names) + (list(data.atac.var_names) if with_peaks else [])
    kinds = ["Gene Expression"] * data.rna.n_vars + (["Peaks"] * data.atac.n_vars if with_peaks else [])
    with h5py.File(path, "w") as f:
        m = f.create_group("matrix")
        m["barcodes"] = np.array(barcodes or list(data.rna.obs_names), dtype="S")
        m["data"] = x.data.astype(np.int32)
        m["indices"] = x.indices.astype(np.int64)
        m["indptr"] = x.indptr.astype(np.int64)
        m["shape"] = np.array([len(names), data.rna.n_obs], dtype=np.int32)
        feats = m.create_group("features")
        feats["id"] = np.array(names, dtype="S")
        feats["name"] = np.array(names, dtype="S")
        feats["feature_type"] = np.array(kinds, dtype="S")
        feats["genome"] = np.array(["GRCh38"] * len(names), dtype="S")
        feats["_all_tag_keys"] = np.array([b"genome"])
    return path


def write_labels(path: Path, ids: list[str], phases: list[str]) -> Path:
    pd.DataFrame({"cell": ids, "phase": phases}).to_csv(path, index=False)
    return path


def write_multiome_csv(folder: Path, data) -> tuple[Path, Path]:
    """The seed's CSV pair: cells × genes and cells × peaks, id column first."""
    folder.mkdir(parents=True, exist_ok=True)
    rna = pd.DataFrame(data.rna.X.toarray(), index=data.rna.obs_names, columns=data.rna.var_names)
    atac = pd.DataFrame(data.atac.X.toarray(), index=data.atac.obs_names, columns=data.atac.var_names)
    rna.to_csv(folder / "rna.csv", index_label="cell")
    atac.to_csv(folder / "atac.csv", index_label="cell")
    return folder / "rna.csv", folder / "atac.csv"


def write_paired_csv(folder: Path, a: np.ndarray, b: np.ndarray, *, labels: list[str] | None = None,
                     ids: list[str] | None = None) -> dict[str, str]:
    """The seed-000 CSV pair (and labels): returns the ``source`` fields of a ``csv`` dataset."""
    folder.mkdir(parents=True, exist_ok=True)
    ids = ids or [f"c{i}" for i in range(len(a))]
    pd.DataFrame(a, index=ids, columns=[f"m{j}" for j in range(a.shape[1])]).to_csv(folder / "a.csv",
                                                                                     index_label="cell")
    pd.DataFrame(b, index=ids, columns=[f"g{j}" for j in range(b.shape[1])]).to_csv(folder / "b.csv",
                                                                                     index_label="cell")
    source = {"kind": "csv", "modality_a": str(folder / "a.csv"), "modality_b": str(folder / "b.csv")}
    if labels is not None:
        pd.DataFrame({"cell": ids, "type": labels}).to_csv(folder / "labels.csv", index=False)
        source["labels"] = str(folder / "labels.csv")
    return source
