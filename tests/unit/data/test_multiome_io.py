"""Multiome readers (10x ARC h5, the seed's CSV set), validation errors, h5mu round trip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from _files import write_10x
from xmodal.errors import XmodalInputError
from xmodal.families.multiome._data import MultiomeData, synthetic_multiome
from xmodal.families.multiome._io import (
    concat_domains,
    read_10x_multiome,
    read_multiome,
    read_multiome_csv,
    validate_multiome,
    write_multiome,
)


@pytest.fixture(scope="module")
def small() -> MultiomeData:
    d = synthetic_multiome(n_cells=40, n_background_genes=10, n_background_peaks=20, domains=("reh",), seed=1)
    return MultiomeData(rna=d.rna[:, :30].copy(), atac=d.atac[:, :50].copy())


def test_read_10x_arc_matrix(small: MultiomeData, tmp_path: Path) -> None:
    path = tmp_path / "filtered_feature_bc_matrix.h5"
    write_10x(path, small)
    data = read_10x_multiome(path, domain="sup")
    assert data.rna.shape == small.rna.shape
    assert data.atac.shape == small.atac.shape
    assert (data.atac.X != small.atac.X).nnz == 0
    assert (data.rna.X != small.rna.X).nnz == 0
    assert list(data.atac.var_names) == list(small.atac.var_names)
    assert data.domains == ["sup"]
    write_10x(tmp_path / "gex_only.h5", small, with_peaks=False)
    with pytest.raises(XmodalInputError, match="no 'Peaks' features"):
        read_10x_multiome(tmp_path / "gex_only.h5", domain="x")
    (tmp_path / "junk.h5").write_bytes(b"not hdf5")
    with pytest.raises(XmodalInputError, match="junk.h5: format 10x_h5 expects a Cell Ranger ARC matrix, but the file is not an HDF5 file"):
        read_10x_multiome(tmp_path / "junk.h5", domain="x")


def _write_csvs(tmp_path: Path, data: MultiomeData) -> tuple[Path, Path, Path]:
    rna = pd.DataFrame(data.rna.X.toarray(), index=data.rna.obs_names, columns=data.rna.var_names)
    atac = pd.DataFrame(data.atac.X.toarray(), index=data.atac.obs_names, columns=data.atac.var_names)
    paths = (tmp_path / "rna.csv", tmp_path / "atac.csv", tmp_path / "labels.csv")
    rna.to_csv(paths[0])
    atac.iloc[::-1].to_csv(paths[1])  # another cell order: rows are matched by id
    data.rna.obs[["phase"]].to_csv(paths[2])
    return paths


def test_read_csv_set_matches_cells_by_id(small: MultiomeData, tmp_path: Path) -> None:
    rna, atac, labels = _write_csvs(tmp_path, small)
    data = read_multiome_csv(rna, atac, labels=labels, domain="reh")
    np.testing.assert_array_equal(data.atac.X.toarray(), small.atac.X.toarray())
    assert list(data.rna.obs["phase"].astype(str)) == list(small.rna.obs["phase"].astype(str))
    assert "phase" not in read_multiome_csv(rna, atac, domain="reh").rna.obs


@pytest.mark.parametrize(("edit", "message", "where"), [
    ("dup", "duplicate cell id", "row"),
    ("only", "rna lacks 1 cell that atac", None),
    ("peak", "is not `chr:start-end`", "column"),
    ("nan", "NaN", "row"),
    ("phase", "unknown phase 'M'", "row"),
])
def test_csv_errors_name_the_place(small: MultiomeData, tmp_path: Path, edit: str, message: str,
                                   where: str | None) -> None:
    rna, atac, labels = _write_csvs(tmp_path, small)
    if edit == "dup":
        lines = rna.read_text().splitlines()
        rna.write_text("\n".join([*lines, lines[1]]) + "\n")
    elif edit == "only":
        lines = atac.read_text().splitlines()
        atac.write_text("\n".join([*lines, "extra_cell" + lines[1][lines[1].index(","):]]) + "\n")
    elif edit == "peak":
        lines = atac.read_text().splitlines()
        atac.write_text("\n".join([lines[0].replace(small.atac.var_names[2], "peak_three"), *lines[1:]]) + "\n")
    elif edit == "nan":
        lines = rna.read_text().splitlines()
        cells = lines[3].split(",")
        cells[4] = "NaN"
        rna.write_text("\n".join([*lines[:3], ",".join(cells), *lines[4:]]) + "\n")
    elif edit == "phase":
        frame = pd.read_csv(labels, index_col=0)
        frame.iloc[5, 0] = "M"
        frame.to_csv(labels)
    with pytest.raises(XmodalInputError, match=message) as err:
        read_multiome_csv(rna, atac, labels=labels, domain="reh")
    if where == "row":
        assert err.value.row is not None
    if where == "column":
        assert err.value.column == 3
    assert err.value.fix


def test_validation_rejects_negative_counts(small: MultiomeData) -> None:
    atac = small.atac.copy()
    x = atac.X.toarray()
    x[3, 7] = -1.0
    atac.X = sp.csr_matrix(x)
    with pytest.raises(XmodalInputError, match="not a non-negative count") as err:
        validate_multiome(MultiomeData(rna=small.rna, atac=atac))
    assert err.value.row == 4
    assert err.value.column == small.atac.var_names[7]


def test_h5mu_round_trip_and_domains(tmp_path: Path) -> None:
    data = synthetic_multiome(n_cells=60, n_background_genes=20, n_background_peaks=40, seed=0)
    schema = write_multiome(data, tmp_path / "d")
    assert schema["family"] == "multiome"
    assert schema["domains"] == ["source", "target"]
    assert sum(schema["phases"].values()) == 120
    back = read_multiome(tmp_path / "d")
    assert (back.atac.X != data.atac.X).nnz == 0
    assert back.domains == data.domains
    assert write_multiome(back, tmp_path / "e")["modalities"] == schema["modalities"]  # stable hashes
    both = concat_domains([data.domain("target"), data.domain("source")])
    assert both.domains == ["target", "source"]
    with pytest.raises(XmodalInputError, match="repeat"):
        concat_domains([data.domain("source"), data.domain("source")])
    fewer = MultiomeData(rna=data.domain("target").rna, atac=data.domain("target").atac[:, :10].copy())
    with pytest.raises(XmodalInputError, match="other atac features"):
        concat_domains([data.domain("source"), fewer])
    from xmodal.families.paired._data import write_paired
    from xmodal.families.paired._synthetic import synthetic_paired

    write_paired(synthetic_paired(n_cells=30), tmp_path / "p")
    with pytest.raises(XmodalInputError, match="not a `multiome` family file"):
        read_multiome(tmp_path / "p")
