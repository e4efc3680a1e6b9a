"""Readers of the ``paired`` family: the seed-000 CSV set and AnnData files, with validation."""

from __future__ import annotations

import warnings
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from xmodal.errors import XmodalInputError
from xmodal.families.paired._config import AnnDataSource, CsvPairedSource
from xmodal.families.paired._data import PairedData
from xmodal.families.paired._readers import (
    CLUSTER_ID,
    read_paired_anndata,
    read_paired_csv,
    validate_paired,
)

N = 8
MORPH = ["soma_depth", "branch_count", "total_length", "max_radius"]
GENES = ["Pvalb", "Sst", "Vip", "Lamp5", "Gad1"]
FAMILIES = ["Pvalb", "Sst", "Vip", "Lamp5"]


def cell_ids(n: int = N) -> list[str]:
    return [f"cell_{i}" for i in range(n)]


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_seed_set(
    root: Path, *, n: int = N, b_header: bool = False, **source: object
) -> tuple[CsvPairedSource, dict[str, object]]:
    """Write a valid seed-000-style CSV set into ``root``; return its source and the truth.

    Paths in the source are relative to ``root``. The labels file lists the cells in reverse
    order and the cluster files list them shuffled, so that only matching by id is right.
    """
    rng = np.random.default_rng(0)
    ids = cell_ids(n)
    morph = np.round(rng.normal(size=(n, len(MORPH))), 4)
    expr = rng.poisson(3.0, size=(n, len(GENES))).astype(float)
    families = [FAMILIES[i % len(FAMILIES)] for i in range(n)]
    clusters_a = [f"Morph-{i % 3}" for i in range(n)]
    clusters_b = [f"cluster_{(i + 1) % 4}" for i in range(n)]
    corr = np.round(rng.uniform(-1, 1, size=(4, 3)), 3)

    write_lines(
        root / "morpho.csv",
        ["cell_id," + ",".join(MORPH)]
        + [f"{c}," + ",".join(map(str, row)) for c, row in zip(ids, morph, strict=True)],
    )
    expr_rows = [
        f"{c}," + ",".join(f"{v:g}" for v in row) for c, row in zip(ids, expr, strict=True)
    ]
    write_lines(root / "gex.csv", ([",".join(["", *GENES])] if b_header else []) + expr_rows)
    order = list(reversed(range(n)))
    write_lines(root / "families.csv", ["id,family"] + [f"{ids[i]},{families[i]}" for i in order])
    shuffled = list(rng.permutation(n))
    write_lines(
        root / "clusters_morpho.csv",
        ["id,cluster"] + [f"{ids[i]},{clusters_a[i]}" for i in shuffled],
    )
    write_lines(
        root / "clusters_gex.csv",
        ["id,cluster"] + [f"{ids[i]},{clusters_b[i]}" for i in shuffled],
    )
    write_lines(
        root / "corr.csv",
        [",Morph-0,Morph-1,Morph-2"]
        + [f"cluster_{k}," + ",".join(map(str, corr[k])) for k in range(4)],
    )
    fields: dict[str, object] = {
        "modality_a": "morpho.csv",
        "modality_b": "gex.csv",
        "labels": "families.csv",
        "clusters_a": "clusters_morpho.csv",
        "clusters_b": "clusters_gex.csv",
        "corr_matrix": "corr.csv",
    }
    fields.update(source)
    truth = {
        "ids": ids,
        "morph": morph,
        "expr": expr,
        "families": families,
        "clusters_a": clusters_a,
        "clusters_b": clusters_b,
        "corr": corr,
    }
    return CsvPairedSource(**fields), truth


def edit_line(path: Path, line: int, new: str | None) -> None:
    """Replace (or delete, ``new=None``) the 1-based ``line`` of ``path``."""
    lines = path.read_text(encoding="utf-8").splitlines()
    if new is None:
        del lines[line - 1]
    else:
        lines[line - 1] = new
    write_lines(path, lines)


def set_cell(path: Path, line: int, field: int, value: str) -> None:
    """Set the 0-based comma-separated ``field`` of 1-based ``line`` to ``value``."""
    lines = path.read_text(encoding="utf-8").splitlines()
    cells = lines[line - 1].split(",")
    cells[field] = value
    lines[line - 1] = ",".join(cells)
    write_lines(path, lines)


def raises_input_error(source: CsvPairedSource, root: Path) -> str:
    with pytest.raises(XmodalInputError) as info:
        read_paired_csv(source, root=root)
    message = str(info.value)
    assert "Fix:" in message
    assert "\n" not in message
    return message


# --------------------------------------------------------------------------------------------
# valid inputs
# --------------------------------------------------------------------------------------------
def test_valid_seed_set_reads_shapes_ids_and_values(tmp_path: Path) -> None:
    source, truth = write_seed_set(tmp_path)
    data = read_paired_csv(source, root=tmp_path)

    assert isinstance(data, PairedData)
    assert data.names == ("morphology", "expression")
    assert data.a.shape == (N, len(MORPH))
    assert data.b.shape == (N, len(GENES))
    assert list(data.a.obs_names) == truth["ids"]
    assert list(data.b.obs_names) == truth["ids"]
    assert list(data.a.var_names) == MORPH
    assert list(data.b.var_names) == [f"gene_{j}" for j in range(len(GENES))]
    assert data.a.X.dtype == np.float32
    assert data.b.X.dtype == np.float32
    assert isinstance(data.a.X, np.ndarray)
    np.testing.assert_allclose(data.a.X, truth["morph"], rtol=1e-6)
    np.testing.assert_allclose(data.b.X, truth["expr"])


def test_valid_seed_set_aligns_labels_clusters_and_pairing_by_id(tmp_path: Path) -> None:
    source, truth = write_seed_set(tmp_path)
    data = read_paired_csv(source, root=tmp_path)

    # the labels file is in reverse order: matched by id, not by position
    assert list(data.a.obs["label"]) == truth["families"]
    assert list(data.b.obs["label"]) == truth["families"]
    assert data.has_labels
    assert list(data.a.obs["cluster"]) == truth["clusters_a"]
    assert list(data.b.obs["cluster"]) == truth["clusters_b"]
    assert list(data.a.obs[CLUSTER_ID]) == [int(c.split("-")[1]) for c in truth["clusters_a"]]
    assert list(data.b.obs[CLUSTER_ID]) == [int(c.split("_")[1]) for c in truth["clusters_b"]]
    assert list(data.a.obs["match"]) == list(data.b.obs_names)
    assert list(data.b.obs["match"]) == list(data.a.obs_names)
    assert data.has_pairing
    ia, ib = data.true_pairs()
    np.testing.assert_array_equal(ia, np.arange(N))
    np.testing.assert_array_equal(ib, np.arange(N))


def test_valid_seed_set_reads_corr_matrix(tmp_path: Path) -> None:
    source, truth = write_seed_set(tmp_path)
    corr = read_paired_csv(source, root=tmp_path).corr_matrix

    assert corr is not None
    assert list(corr.index) == [f"cluster_{k}" for k in range(4)]
    assert list(corr.columns) == ["Morph-0", "Morph-1", "Morph-2"]
    np.testing.assert_allclose(corr.to_numpy(), truth["corr"])


def test_optional_files_may_be_left_out(tmp_path: Path) -> None:
    source, _ = write_seed_set(
        tmp_path, labels=None, clusters_a=None, clusters_b=None, corr_matrix=None
    )
    data = read_paired_csv(source, root=tmp_path)

    assert data.corr_matrix is None
    assert not data.has_labels
    assert "cluster" not in data.a.obs
    assert data.has_pairing


@pytest.mark.parametrize(
    ("written_with_header", "mode", "expected_vars"),
    [
        (True, "auto", GENES),
        (False, "auto", [f"gene_{j}" for j in range(len(GENES))]),
        (True, "yes", GENES),
        (False, "no", [f"gene_{j}" for j in range(len(GENES))]),
    ],
)
def test_expression_header_detection(
    tmp_path: Path, written_with_header: bool, mode: str, expected_vars: list[str]
) -> None:
    source, truth = write_seed_set(tmp_path, b_header=written_with_header)
    source = source.model_copy(update={"b_header": mode})
    data = read_paired_csv(source, root=tmp_path)

    assert list(data.b.var_names) == expected_vars
    assert data.b.n_obs == N
    np.testing.assert_allclose(data.b.X, truth["expr"])


def test_gw_distance_matrix_with_numeric_cell_ids_as_header(tmp_path: Path) -> None:
    ids = [str(100 + i) for i in range(6)]
    rng = np.random.default_rng(1)
    pts = rng.normal(size=(6, 2))
    dist = np.round(np.linalg.norm(pts[:, None] - pts[None], axis=-1), 4)
    write_lines(
        tmp_path / "gw_dist.csv",
        ["id," + ",".join(ids)]
        + [f"{c}," + ",".join(map(str, r)) for c, r in zip(ids, dist, strict=True)],
    )
    write_lines(tmp_path / "gex.csv", [f"{c},1,2,3" for c in ids])
    source = CsvPairedSource(modality_a=Path("gw_dist.csv"), modality_b=Path("gex.csv"))
    data = read_paired_csv(source, root=tmp_path)

    assert data.a.shape == (6, 6)
    assert list(data.a.var_names) == ids
    np.testing.assert_allclose(data.a.X, dist, rtol=1e-6)


def test_absolute_paths_ignore_root(tmp_path: Path) -> None:
    source, _ = write_seed_set(tmp_path)
    absolute = source.model_copy(
        update={name: tmp_path / getattr(source, name) for name in ("modality_a", "modality_b")}
    )
    absolute = absolute.model_copy(
        update={"labels": None, "clusters_a": None, "clusters_b": None, "corr_matrix": None}
    )
    data = read_paired_csv(absolute, root=tmp_path / "elsewhere")

    assert data.a.n_obs == N


def test_unpaired_allows_different_counts_and_sets_no_match(tmp_path: Path) -> None:
    source, truth = write_seed_set(
        tmp_path, paired=False, labels=None, clusters_b=None, corr_matrix=None
    )
    edit_line(tmp_path / "gex.csv", N, None)  # drop the last expression cell
    data = read_paired_csv(source, root=tmp_path)

    assert data.a.n_obs == N
    assert data.b.n_obs == N - 1
    assert "match" not in data.a.obs
    assert not data.has_pairing
    assert list(data.a.obs["cluster"]) == truth["clusters_a"]


def test_unpaired_labels_cover_both_modalities(tmp_path: Path) -> None:
    source, truth = write_seed_set(tmp_path, paired=False, clusters_b=None)
    ids_b = [f"rna_{i}" for i in range(5)]
    write_lines(tmp_path / "gex.csv", [f"{c},1,2,3,4,5" for c in ids_b])
    labels = tmp_path / "families.csv"
    lines = labels.read_text().splitlines() + [f"{c},Vip" for c in ids_b]
    write_lines(labels, lines)
    data = read_paired_csv(source, root=tmp_path)

    assert list(data.a.obs["label"]) == truth["families"]
    assert list(data.b.obs["label"]) == ["Vip"] * 5


def test_paired_rows_with_different_id_schemes_pair_by_position(tmp_path: Path) -> None:
    source, _ = write_seed_set(tmp_path, labels=None, clusters_b=None)
    write_lines(tmp_path / "gex.csv", [f"SRR{i},1,2,3,4,5" for i in range(N)])
    data = read_paired_csv(source, root=tmp_path)

    assert list(data.a.obs["match"]) == [f"SRR{i}" for i in range(N)]
    assert list(data.b.obs["match"]) == cell_ids()


def test_cluster_file_with_row_index_is_matched_by_position(tmp_path: Path) -> None:
    source, _ = write_seed_set(tmp_path)
    write_lines(tmp_path / "clusters_morpho.csv", [",x"] + [f"{i},Morph-{7 - i}" for i in range(N)])
    data = read_paired_csv(source, root=tmp_path)

    assert list(data.a.obs[CLUSTER_ID]) == [7 - i for i in range(N)]


def test_blank_lines_are_skipped_but_counted(tmp_path: Path) -> None:
    source, truth = write_seed_set(tmp_path)
    path = tmp_path / "morpho.csv"
    lines = path.read_text().splitlines()
    write_lines(path, [*lines[:3], "", *lines[3:]])
    data = read_paired_csv(source, root=tmp_path)
    assert data.a.n_obs == N

    set_cell(path, 6, 2, "abc")  # line 6 is the 4th data row (cell_3) after the blank line 4
    message = raises_input_error(source, tmp_path)
    assert "row 6" in message
    assert "column 'branch_count'" in message


# --------------------------------------------------------------------------------------------
# 1. mismatched cell counts (and cell order) when paired
# --------------------------------------------------------------------------------------------
def test_paired_count_mismatch_names_both_files_and_counts(tmp_path: Path) -> None:
    source, _ = write_seed_set(tmp_path)
    edit_line(tmp_path / "gex.csv", N, None)
    message = raises_input_error(source, tmp_path)

    assert "morpho.csv" in message
    assert "gex.csv" in message
    assert f"has {N} cells" in message
    assert f"has {N - 1}" in message


def test_paired_rows_in_different_order_name_the_first_mismatching_row(tmp_path: Path) -> None:
    source, _ = write_seed_set(tmp_path)
    path = tmp_path / "gex.csv"
    lines = path.read_text().splitlines()
    lines[2], lines[3] = lines[3], lines[2]  # swap cell_2 and cell_3 (lines 3 and 4)
    write_lines(path, lines)
    message = raises_input_error(source, tmp_path)

    assert "gex.csv: row 3" in message
    assert "'cell_3'" in message
    assert "'cell_2'" in message


# --------------------------------------------------------------------------------------------
# 2. duplicate ids
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("file", "line", "first_line"),
    [("morpho.csv", 5, 2), ("gex.csv", 4, 1), ("families.csv", 3, 2), ("clusters_gex.csv", 6, 2)],
)
def test_duplicate_ids_name_the_id_and_both_rows(
    tmp_path: Path, file: str, line: int, first_line: int
) -> None:
    source, _ = write_seed_set(tmp_path)
    path = tmp_path / file
    first_id = path.read_text().splitlines()[first_line - 1].split(",")[0]
    set_cell(path, line, 0, first_id)
    message = raises_input_error(source, tmp_path)

    assert file in message
    assert f"row {line}" in message
    assert f"duplicate cell id {first_id!r}" in message
    assert f"lines {first_line} and {line}" in message


def test_duplicate_feature_column_names(tmp_path: Path) -> None:
    source, _ = write_seed_set(tmp_path)
    edit_line(tmp_path / "morpho.csv", 1, "cell_id,soma_depth,branch_count,soma_depth,max_radius")
    message = raises_input_error(source, tmp_path)

    assert "morpho.csv: row 1, column 'soma_depth'" in message
    assert "duplicate column name" in message


# --------------------------------------------------------------------------------------------
# 3. NaN / inf / missing values
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("nan", "is NaN"),
        ("NaN", "is NaN"),
        ("NA", "is NaN"),
        ("inf", "infinite"),
        ("-Infinity", "infinite"),
        ("1e999", "infinite"),
        ("", "empty cell"),
    ],
)
def test_nan_or_inf_in_morphology_names_row_and_column(
    tmp_path: Path, value: str, problem: str
) -> None:
    source, _ = write_seed_set(tmp_path)
    set_cell(tmp_path / "morpho.csv", 4, 2, value)  # cell_2, branch_count
    message = raises_input_error(source, tmp_path)

    assert message.startswith(str(tmp_path / "morpho.csv"))
    assert "row 4, column 'branch_count'" in message
    assert problem in message


def test_nan_in_headerless_expression_names_column_position(tmp_path: Path) -> None:
    source, _ = write_seed_set(tmp_path)
    set_cell(tmp_path / "gex.csv", 3, 4, "nan")  # third cell, fourth gene = file column 5
    set_cell(tmp_path / "gex.csv", 5, 1, "inf")  # later: must not be the one reported
    message = raises_input_error(source, tmp_path)

    assert "gex.csv: row 3, column 5" in message
    assert "is NaN" in message


def test_first_bad_value_is_reported_in_row_major_order(tmp_path: Path) -> None:
    source, _ = write_seed_set(tmp_path)
    set_cell(tmp_path / "morpho.csv", 6, 1, "inf")
    set_cell(tmp_path / "morpho.csv", 5, 4, "nan")
    message = raises_input_error(source, tmp_path)

    assert "row 5, column 'max_radius'" in message


def test_nan_in_corr_matrix(tmp_path: Path) -> None:
    source, _ = write_seed_set(tmp_path)
    set_cell(tmp_path / "corr.csv", 3, 2, "NaN")
    message = raises_input_error(source, tmp_path)

    assert "corr.csv: row 3, column 'Morph-1'" in message


# --------------------------------------------------------------------------------------------
# 4. non-numeric values
# --------------------------------------------------------------------------------------------
def test_non_numeric_value_names_column_row_and_value(tmp_path: Path) -> None:
    source, _ = write_seed_set(tmp_path)
    set_cell(tmp_path / "morpho.csv", 7, 3, "abc")  # cell_5, total_length
    message = raises_input_error(source, tmp_path)

    assert "morpho.csv: row 7, column 'total_length'" in message
    assert "non-numeric value 'abc'" in message


def test_non_numeric_value_in_expression_with_header(tmp_path: Path) -> None:
    source, _ = write_seed_set(tmp_path, b_header=True)
    set_cell(tmp_path / "gex.csv", 2, 5, "1,5".replace(",", ";"))
    message = raises_input_error(source, tmp_path)

    assert "gex.csv: row 2, column 'Gad1'" in message
    assert "'1;5'" in message


def test_row_with_too_many_fields(tmp_path: Path) -> None:
    source, _ = write_seed_set(tmp_path)
    path = tmp_path / "morpho.csv"
    edit_line(path, 5, path.read_text().splitlines()[4] + ",9")
    message = raises_input_error(source, tmp_path)

    assert "morpho.csv: row 5" in message
    assert "fields" in message


# --------------------------------------------------------------------------------------------
# 5. empty files
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("file", ["morpho.csv", "gex.csv", "families.csv", "corr.csv"])
def test_zero_byte_file_is_empty(tmp_path: Path, file: str) -> None:
    source, _ = write_seed_set(tmp_path)
    (tmp_path / file).write_bytes(b"")
    message = raises_input_error(source, tmp_path)

    assert file in message
    assert "empty file" in message


@pytest.mark.parametrize(
    ("file", "header"),
    [
        ("morpho.csv", "cell_id," + ",".join(MORPH)),
        ("clusters_morpho.csv", "id,cluster"),
        ("corr.csv", ",Morph-0,Morph-1,Morph-2"),
    ],
)
def test_header_only_file_is_empty(tmp_path: Path, file: str, header: str) -> None:
    source, _ = write_seed_set(tmp_path)
    write_lines(tmp_path / file, [header])
    message = raises_input_error(source, tmp_path)

    assert file in message
    assert "empty file (header only, no data rows)" in message


def test_file_with_only_an_id_column_has_no_features(tmp_path: Path) -> None:
    source, _ = write_seed_set(tmp_path)
    write_lines(tmp_path / "gex.csv", cell_ids())
    message = raises_input_error(source, tmp_path)

    assert "gex.csv" in message
    assert "no feature columns" in message


# --------------------------------------------------------------------------------------------
# 6. misaligned label / cluster files
# --------------------------------------------------------------------------------------------
def test_off_by_one_cluster_file_is_an_error_not_a_shift(tmp_path: Path) -> None:
    """Seed-000 quirk 4: a cluster file one row short must never be shifted into place."""
    source, _ = write_seed_set(tmp_path)
    edit_line(tmp_path / "clusters_morpho.csv", 2, None)
    message = raises_input_error(source, tmp_path)

    assert "clusters_morpho.csv" in message
    assert "morpho.csv" in message
    assert f"expected {N} data rows" in message
    assert f"found {N - 1}" in message
    assert "first cell without a row" in message


def test_headerless_single_column_cluster_file_is_an_error(tmp_path: Path) -> None:
    source, _ = write_seed_set(tmp_path)
    write_lines(tmp_path / "clusters_gex.csv", [f"cluster_{i % 4}" for i in range(N)])
    message = raises_input_error(source, tmp_path)

    assert "clusters_gex.csv" in message
    assert f"expected {N} data rows" in message
    assert f"found {N - 1}" in message


def test_labels_missing_an_id_names_the_first_missing_id(tmp_path: Path) -> None:
    source, _ = write_seed_set(tmp_path)
    path = tmp_path / "families.csv"
    lines = path.read_text().splitlines()
    lines[1] = lines[1].replace("cell_7", "cell_99")  # reversed order: line 2 is cell_7
    write_lines(path, lines)
    message = raises_input_error(source, tmp_path)

    assert "families.csv" in message
    assert "'cell_7'" in message
    assert "line 9 of morpho.csv" in message


def test_labels_with_foreign_ids_are_an_error(tmp_path: Path) -> None:
    source, _ = write_seed_set(tmp_path)
    write_lines(tmp_path / "families.csv", ["id,family"] + [f"x{i},Vip" for i in range(N)])
    message = raises_input_error(source, tmp_path)

    assert "families.csv" in message
    assert "match none of the cell ids" in message


def test_labels_with_an_extra_row(tmp_path: Path) -> None:
    source, _ = write_seed_set(tmp_path)
    path = tmp_path / "families.csv"
    write_lines(path, [*path.read_text().splitlines(), "cell_42,Vip"])
    message = raises_input_error(source, tmp_path)

    assert f"expected {N} data rows" in message
    assert f"found {N + 1}" in message
    assert "'cell_42'" in message


# --------------------------------------------------------------------------------------------
# 7. missing header on modality A
# --------------------------------------------------------------------------------------------
def test_morphology_without_header_is_an_error(tmp_path: Path) -> None:
    source, _ = write_seed_set(tmp_path)
    edit_line(tmp_path / "morpho.csv", 1, None)
    message = raises_input_error(source, tmp_path)

    assert "morpho.csv: row 1" in message
    assert "modality_a needs a header row with feature names" in message
    assert "add a header row" in message


# --------------------------------------------------------------------------------------------
# 8. missing files
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "field", ["modality_a", "modality_b", "labels", "clusters_a", "clusters_b", "corr_matrix"]
)
def test_missing_file_is_reported(tmp_path: Path, field: str) -> None:
    source, _ = write_seed_set(tmp_path)
    source = source.model_copy(update={field: Path("nope") / f"{field}.csv"})
    message = raises_input_error(source, tmp_path)

    assert f"{field}.csv" in message
    assert "file not found" in message
    assert f"source.{field}" in message


# --------------------------------------------------------------------------------------------
# validate_paired
# --------------------------------------------------------------------------------------------
def make_pair(n: int = 5) -> PairedData:
    rng = np.random.default_rng(2)
    a = ad.AnnData(rng.normal(size=(n, 3)).astype(np.float32))
    b = ad.AnnData(rng.normal(size=(n, 4)).astype(np.float32))
    a.obs_names = [f"a{i}" for i in range(n)]
    b.obs_names = [f"b{i}" for i in range(n)]
    a.var_names = ["f0", "f1", "f2"]
    b.var_names = ["g0", "g1", "g2", "g3"]
    return PairedData(a=a, b=b, names=("morphology", "expression"))


def test_validate_paired_accepts_valid_data() -> None:
    data = make_pair()
    assert validate_paired(data) is None


def test_validate_paired_reports_nan_with_row_column_and_file() -> None:
    data = make_pair()
    data.b.X[3, 2] = np.nan
    with pytest.raises(XmodalInputError) as info:
        validate_paired(data, source_paths=("a.h5ad", "b.h5ad"))
    message = str(info.value)
    assert message.startswith("b.h5ad: row 4, column 'g2'")
    assert "'b3'" in message
    assert "Fix:" in message


def test_validate_paired_reports_inf_in_sparse_x() -> None:
    data = make_pair()
    x = data.a.X.copy()
    x[1, 0] = np.inf
    x[4, 2] = np.nan
    data.a.X = sp.csr_matrix(x)
    with pytest.raises(XmodalInputError, match=r"row 2, column 'f0'.*infinite"):
        validate_paired(data)


def test_validate_paired_reports_duplicate_ids() -> None:
    data = make_pair()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data.a.obs_names = ["a0", "a1", "a2", "a1", "a4"]
    with pytest.raises(XmodalInputError, match=r"row 4: .*duplicate cell id 'a1' \(rows 2 and 4\)"):
        validate_paired(data)


def test_validate_paired_reports_empty_modality() -> None:
    data = make_pair()
    empty = PairedData(a=data.a[:, []].copy(), b=data.b, names=data.names)
    with pytest.raises(XmodalInputError, match=r"empty modality \(no features"):
        validate_paired(empty, source_paths=("a.csv", "b.csv"))


# --------------------------------------------------------------------------------------------
# AnnData
# --------------------------------------------------------------------------------------------
def anndata_pair(n: int = 6) -> tuple[ad.AnnData, ad.AnnData]:
    rng = np.random.default_rng(3)
    a = ad.AnnData(
        X=rng.normal(size=(n, 3)).astype(np.float64),
        obs=pd.DataFrame(
            {
                "celltype": pd.Categorical([FAMILIES[i % 4] for i in range(n)]),
                "partner": [f"r{n - 1 - i}" for i in range(n)],
            },
            index=[f"m{i}" for i in range(n)],
        ),
        var=pd.DataFrame(index=["f0", "f1", "f2"]),
    )
    counts = rng.poisson(2.0, size=(n, 5)).astype(np.float32)
    b = ad.AnnData(
        X=sp.csr_matrix(counts),
        obs=pd.DataFrame(
            {"celltype": [FAMILIES[(n - 1 - i) % 4] for i in range(n)]},
            index=[f"r{i}" for i in range(n)],
        ),
        var=pd.DataFrame(index=GENES),
    )
    return a, b


def check_anndata_result(data: PairedData, a: ad.AnnData, b: ad.AnnData) -> None:
    assert isinstance(data.a.X, np.ndarray)
    assert isinstance(data.b.X, np.ndarray)
    assert data.a.X.dtype == np.float32
    assert data.b.X.dtype == np.float32
    np.testing.assert_allclose(data.a.X, a.X, rtol=1e-6)
    np.testing.assert_allclose(data.b.X, b.X.toarray())
    assert list(data.a.obs["label"]) == list(a.obs["celltype"].astype(str))
    assert list(data.b.obs["label"]) == list(b.obs["celltype"].astype(str))
    assert list(data.a.obs["match"]) == list(a.obs["partner"])
    n = a.n_obs
    assert list(data.b.obs["match"]) == [f"m{n - 1 - i}" for i in range(n)]
    ia, ib = data.true_pairs()
    # partners share their label
    np.testing.assert_array_equal(
        data.a.obs["label"].to_numpy()[ia], data.b.obs["label"].to_numpy()[ib]
    )
    assert len(ia) == n


def test_anndata_round_trip_from_h5mu(tmp_path: Path) -> None:
    import mudata as md

    a, b = anndata_pair()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        extra = a.copy()
        extra.var_names = ["e0", "e1", "e2"]
        md.MuData({"morph": a, "rna": b, "extra": extra}).write(tmp_path / "pair.h5mu")
    source = AnnDataSource(
        path=Path("pair.h5mu"),
        modalities=("morph", "rna"),
        label_key="celltype",
        match_key="partner",
    )
    data = read_paired_anndata(source, root=tmp_path)

    assert data.names == ("morph", "rna")
    check_anndata_result(data, a, b)


def test_anndata_round_trip_from_two_h5ad(tmp_path: Path) -> None:
    a, b = anndata_pair()
    a.write_h5ad(tmp_path / "morph.h5ad")
    b.write_h5ad(tmp_path / "rna.h5ad")
    source = AnnDataSource(
        path_a=Path("morph.h5ad"),
        path_b=Path("rna.h5ad"),
        label_key="celltype",
        match_key="partner",
    )
    data = read_paired_anndata(source, root=tmp_path)

    assert data.names == ("morph", "rna")
    check_anndata_result(data, a, b)


def test_anndata_labels_propagate_to_partners(tmp_path: Path) -> None:
    a, b = anndata_pair()
    del b.obs["celltype"]
    a.write_h5ad(tmp_path / "morph.h5ad")
    b.write_h5ad(tmp_path / "rna.h5ad")
    source = AnnDataSource(
        path_a=Path("morph.h5ad"),
        path_b=Path("rna.h5ad"),
        label_key="celltype",
        match_key="partner",
    )
    data = read_paired_anndata(source, root=tmp_path)

    ia, ib = data.true_pairs()
    assert data.has_labels
    np.testing.assert_array_equal(
        data.a.obs["label"].to_numpy()[ia], data.b.obs["label"].to_numpy()[ib]
    )


def test_anndata_errors(tmp_path: Path) -> None:
    a, b = anndata_pair()
    a.write_h5ad(tmp_path / "morph.h5ad")
    b.write_h5ad(tmp_path / "rna.h5ad")

    missing = AnnDataSource(path_a=Path("morph.h5ad"), path_b=Path("gone.h5ad"))
    with pytest.raises(XmodalInputError, match=r"gone\.h5ad: path_b: file not found\. Fix:"):
        read_paired_anndata(missing, root=tmp_path)

    bad_label = AnnDataSource(path_a=Path("morph.h5ad"), path_b=Path("rna.h5ad"), label_key="nope")
    with pytest.raises(XmodalInputError, match=r"morph\.h5ad: column 'nope': .*label_key.*Fix:"):
        read_paired_anndata(bad_label, root=tmp_path)

    a.obs["partner"] = ["r0", "zz", "r2", "r3", "r4", "r5"]
    a.write_h5ad(tmp_path / "morph.h5ad")
    bad_match = AnnDataSource(
        path_a=Path("morph.h5ad"), path_b=Path("rna.h5ad"), match_key="partner"
    )
    with pytest.raises(XmodalInputError, match=r"row 2, column 'partner'.*'zz'.*Fix:"):
        read_paired_anndata(bad_match, root=tmp_path)

    (tmp_path / "junk.h5ad").write_text("not hdf5")
    junk = AnnDataSource(path_a=Path("junk.h5ad"), path_b=Path("rna.h5ad"))
    with pytest.raises(XmodalInputError, match=r"junk\.h5ad: path_a: expected an \.h5ad \(AnnData: one modality\), but the file is not an HDF5 file"):
        read_paired_anndata(junk, root=tmp_path)


def test_anndata_nan_is_rejected(tmp_path: Path) -> None:
    a, b = anndata_pair()
    a.X[2, 1] = np.nan
    a.write_h5ad(tmp_path / "morph.h5ad")
    b.write_h5ad(tmp_path / "rna.h5ad")
    source = AnnDataSource(path_a=Path("morph.h5ad"), path_b=Path("rna.h5ad"))
    with pytest.raises(XmodalInputError, match=r"morph\.h5ad: row 3, column 'f1'.*NaN.*Fix:"):
        read_paired_anndata(source, root=tmp_path)
