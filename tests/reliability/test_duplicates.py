"""Duplicated ids and column names are exit 2 naming the file, the value and both its positions (issue 28, point
10, the readers of the census, multiome and paired families).

A gene id twice in a var table, a column name twice in obs, var, a metadata CSV or parquet, a barcode or a feature
id twice in a 10x matrix, a cell id twice in a Census collection: each used to be a traceback, a silent ingest (one
of two genes or columns quietly dropped or renamed) or an error naming one position only.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
from _census import (
    census_project,
    project,
    small_census,
    write_chunks,
    write_collection,
    write_h5ad,
)
from _cli import assert_refused, xmodal

from _files import small_multiome, write_10x

COUNTS, OBS, VAR = small_census()


def _refused(root: Path, dataset: str, *needle: str) -> None:
    assert_refused(xmodal(root, "ingest", "--dataset", dataset), needle=needle)
    assert not (root / "data" / "ingested" / dataset).exists()


def _repeat_column(path: Path, group: str, column: str) -> None:
    """List ``column`` of an anndata dataframe group twice (its ``column-order``), as a tool that writes the
    attribute itself might."""
    with h5py.File(path, "r+") as f:
        order = [c.decode() if isinstance(c, bytes) else str(c) for c in f[group].attrs["column-order"]]
        f[group].attrs["column-order"] = np.array([*order, column], dtype=object)


# ------------------------------------------------------------------------ census .h5ad
def test_a_gene_id_twice_in_the_var_of_an_h5ad_is_refused_with_both_rows(tmp_path: Path) -> None:
    var = VAR.copy()
    var.index = pd.Index([*VAR.index[:-1], VAR.index[2]], name=VAR.index.name)
    root = census_project(tmp_path, {"kind": "h5ad", "path": "c.h5ad"})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # anndata warns about the repeated names it writes
        path = write_h5ad(root / "c.h5ad", COUNTS, OBS, var)
    _refused(root, "c", str(path), f"gene id {VAR.index[2]!r} appears twice in var (rows 3 and 10)")


@pytest.mark.parametrize(("group", "column", "table"), [("obs", "sex", "obs"), ("var", "feature_name", "var")])
def test_a_column_twice_in_obs_or_var_of_an_h5ad_is_refused(tmp_path: Path, group: str, column: str,
                                                            table: str) -> None:
    root = census_project(tmp_path, {"kind": "h5ad", "path": "c.h5ad"})
    path = write_h5ad(root / "c.h5ad", COUNTS, OBS, VAR)
    _repeat_column(path, group, column)
    at = list((OBS if group == "obs" else VAR).columns).index(column) + 1
    _refused(root, "c", str(path), f"{table} has the column {column!r} twice (columns {at} and")


# ------------------------------------------------------------------------ census chunk export
def test_a_column_twice_in_a_metadata_csv_is_refused_not_renamed(tmp_path: Path) -> None:
    root = census_project(tmp_path, {"kind": "chunks", "path": "chunks"})
    folder = write_chunks(root / "chunks", COUNTS, OBS, VAR, rows=20)
    frame = pd.read_parquet(folder / "human_metadata_1.parquet")
    (folder / "human_metadata_1.parquet").unlink()
    text = frame.to_csv(index=False).splitlines()
    header = text[0].split(",")
    header[header.index("tissue")] = "sex"  # pandas would read the second one as "sex.1", silently
    (folder / "human_metadata_1.csv").write_text("\n".join([",".join(header), *text[1:]]) + "\n")
    _refused(root, "c", str(folder / "human_metadata_1.csv"), "the header has the column 'sex' twice")


def test_a_gene_twice_in_genes_csv_is_refused_with_both_lines(tmp_path: Path) -> None:
    root = census_project(tmp_path, {"kind": "chunks", "path": "chunks"})
    folder = write_chunks(root / "chunks", COUNTS, OBS, VAR, rows=20)
    genes = pd.read_csv(folder / "genes.csv")
    genes.loc[7, "feature_id"] = genes.loc[1, "feature_id"]
    genes.to_csv(folder / "genes.csv", index=False)
    _refused(root, "c", str(folder / "genes.csv"), f"gene {VAR.index[1]!r} appears twice (lines 3 and 9)")


# ------------------------------------------------------------------------ census collection (query source)
def test_a_gene_id_twice_in_a_census_collection_is_refused(tmp_path: Path) -> None:
    pytest.importorskip("tiledbsoma")
    var = VAR.copy()
    var.index = pd.Index([*VAR.index[:5], VAR.index[1], *VAR.index[6:]], name=VAR.index.name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        store = write_collection(tmp_path / "census", COUNTS, OBS, var)
    census_project(tmp_path, {"kind": "cellxgene_census", "uri": str(store)})
    _refused(tmp_path, "c", str(store), f"gene id {VAR.index[1]!r} appears twice (genes 2 and 6)")


# ------------------------------------------------------------------------ multiome 10x and paired .h5ad
def _tenx(tmp_path: Path, group: str, i: int, j: int) -> tuple[Path, Path]:
    path = write_10x(tmp_path / "matrix.h5", small_multiome())
    with h5py.File(path, "r+") as f:
        values = f[f"matrix/{group}"][()]
        values[j] = values[i]
        del f[f"matrix/{group}"]
        f[f"matrix/{group}"] = values
        if group == "features/id":  # the peak's name too, as Cell Ranger writes a peak's id and name alike
            names = f["matrix/features/name"][()]
            names[j] = names[i]
            del f["matrix/features/name"]
            f["matrix/features/name"] = names
    root = project(tmp_path, {"mo": {"family": "multiome", "source": {"kind": "files", "domains": [
        {"name": "d", "format": "10x_h5", "path": str(path)}]}}})
    return root, path


def test_a_peak_twice_in_a_10x_matrix_is_refused_with_both_positions(tmp_path: Path) -> None:
    root, path = _tenx(tmp_path, "features/id", -2, -1)
    with h5py.File(path, "r") as f:
        n = len(f["matrix/features/id"])
        peak = f["matrix/features/id"][-1].decode()
    _refused(root, "mo", str(path), f"feature id {peak!r} appears twice (features {n - 1} and {n})")


def test_a_barcode_twice_in_a_10x_matrix_is_refused_with_both_positions(tmp_path: Path) -> None:
    root, path = _tenx(tmp_path, "barcodes", 2, 3)
    _refused(root, "mo", str(path), "barcode 'd_00002' appears twice (barcodes 3 and 4)", "row 4")


def test_a_column_twice_in_the_obs_of_a_paired_h5ad_is_refused(tmp_path: Path) -> None:
    import anndata as ad
    import scipy.sparse as sp

    rng = np.random.default_rng(0)
    obs = pd.DataFrame({"label": ["x", "y"] * 20, "batch": ["b"] * 40}, index=[f"c{i}" for i in range(40)])
    for name, width in (("a", 6), ("b", 8)):
        ad.AnnData(X=sp.csr_matrix(rng.poisson(2.0, (40, width)).astype(np.float32)), obs=obs,
                   var=pd.DataFrame(index=[f"{name}{j}" for j in range(width)])).write_h5ad(tmp_path / f"{name}.h5ad")
    _repeat_column(tmp_path / "a.h5ad", "obs", "label")
    project(tmp_path, {"pa": {"family": "paired", "source": {"kind": "anndata", "path_a": "a.h5ad",
                                                             "path_b": "b.h5ad", "label_key": "label"}}})
    _refused(tmp_path, "pa", str(tmp_path / "a.h5ad"), "obs has the column 'label' twice (columns 1 and 3)")
