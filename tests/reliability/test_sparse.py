"""Every sparse matrix is checked before use, from every reader (issue 28, point 4).

A corrupt matrix — an ``indptr`` that decreases or points beyond the stored entries, an index beyond the shape, a
position stored twice, complex or text values, a value float32 cannot hold — is exit 2 with one message naming
the file and the first bad position, and nothing written: never garbage values read from memory, never a
segfault (a 10x ``.h5`` or ``.h5ad`` with an index beyond the shape crashed the process before), never a value
silently changed on the way to float32. Readers: the census ``.h5ad`` and ``.npz`` chunk sources, the 10x
``.h5`` and ``.h5mu`` of the multiome family, the ``.h5ad``/``.h5mu`` of the paired family.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from _census import census_project, project, small_census, write_chunks, write_h5ad
from _cli import assert_refused, xmodal

from _files import small_multiome, write_10x

COUNTS, OBS, VAR = small_census()
CELLS, GENES = list(OBS.index), list(VAR.index)


def _rewrite(path: Path, key: str, change: Callable[[np.ndarray], np.ndarray]) -> None:
    """Replace dataset ``key`` of an HDF5 file by ``change`` of its content (any dtype)."""
    with h5py.File(path, "r+") as f:
        value = change(f[key][()].copy())
        del f[key]
        f[key] = value


def _set(i: int, value: object) -> Callable[[np.ndarray], np.ndarray]:
    def change(a: np.ndarray) -> np.ndarray:
        a[i] = value
        return a
    return change


def _decreasing(a: np.ndarray) -> np.ndarray:
    a[5] = a[7] + 3  # row 6 starts after row 7 ends
    return a


def _beyond(a: np.ndarray) -> np.ndarray:
    a[-1] += 1000
    return a


def _as(dtype: object, at: int | None = None, value: object = None) -> Callable[[np.ndarray], np.ndarray]:
    def change(a: np.ndarray) -> np.ndarray:
        a = a.astype(dtype)
        if at is not None:
            a[at] = value
        return a
    return change


def _stored_twice(a: np.ndarray) -> np.ndarray:
    a[1] = a[0]  # cell 1's second entry names the gene of its first
    return a


def _ingested(root: Path, name: str) -> bool:
    return (root / "data" / "ingested" / name).exists()


# ---------------------------------------------------------------------------------- census: .h5ad source
# (key, change, what the message must name); the first row's first entries are stored entries 1, 2, ...
H5AD_CASES = {
    "indptr decreases": ("X/indptr", _decreasing, ("row 6", "index pointer (indptr) decreases", repr(CELLS[5]))),
    "indptr beyond the entries": ("X/indptr", _beyond, ("indptr) ends at", "entries are stored")),
    "index beyond the shape": ("X/indices", _set(3, 10**6), ("row 1", "gene index 1000000", "outside the 10 genes",
                                                              repr(CELLS[0]))),
    "position stored twice": ("X/indices", _stored_twice, ("row 1", "stored twice", repr(CELLS[0]))),
    "complex values": ("X/data", _as(np.complex64), ("complex numbers",)),
    "text values": ("X/data", _as("S4"), ("bytes (text)",)),
    "count float32 cannot hold": ("X/data", _as(np.int64, 2, 16777217),
                                  ("16777217", "2^24", "16777216", repr(CELLS[0]), "row 1")),
    "count that underflows": ("X/data", _as(np.float64, 2, 1e-50), ("1e-50", "not an integer", repr(CELLS[0]))),
}


@pytest.mark.parametrize("case", list(H5AD_CASES))
def test_a_corrupt_h5ad_of_the_census_source_is_refused_at_its_first_bad_position(tmp_path: Path, case: str) -> None:
    key, change, needle = H5AD_CASES[case]
    root = census_project(tmp_path, {"kind": "h5ad", "path": "c.h5ad", "chunk_size": 16})
    path = write_h5ad(root / "c.h5ad", COUNTS, OBS, VAR)
    _rewrite(path, key, change)
    assert_refused(xmodal(root, "ingest", "--dataset", "c"), needle=(str(path), *needle))
    assert not _ingested(root, "c")


def test_the_streaming_h5ad_reader_never_returns_a_block_built_from_corrupt_arrays(tmp_path: Path) -> None:
    """The training loader's .h5ad reader checks each block it reads (here: the third of four)."""
    from xmodal.errors import XmodalInputError
    from xmodal.families.census._readers import H5adChunks
    from xmodal.families.census._vocab import build_vocabulary

    path = write_h5ad(tmp_path / "c.h5ad", COUNTS, OBS, VAR)
    with h5py.File(path, "r") as f:
        third = int(f["X/indptr"][25])  # the first entry of row 26 (block 3 holds rows 21-30)
    _rewrite(path, "X/indices", _set(third, 10**6))
    reader = H5adChunks(path, build_vocabulary([OBS], ["sex"]), chunk_size=10)
    assert reader.read(0)[0].shape == (10, 10)
    with pytest.raises(XmodalInputError, match=r"row 26: X is damaged: .* gene index 1000000"):
        reader.read(2)


# ---------------------------------------------------------------------------------- census: .npz chunks
def _npz(path: Path, **replace: np.ndarray) -> None:
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays.update(replace)
    np.savez(path, **arrays)


NPZ_CASES = {
    "indptr decreases": (lambda x: {"indptr": _decreasing(x.indptr.copy())},
                         ("human_counts_1.npz", "row 6", "indptr) decreases", repr(CELLS[25]))),
    "index beyond the shape": (lambda x: {"indices": _set(0, 99)(x.indices.copy())},
                               ("human_counts_1.npz", "row 1", "gene index 99", repr(CELLS[20]))),
    "complex values": (lambda x: {"data": x.data.astype(np.complex128)}, ("human_counts_1.npz", "complex")),
    "COO coordinate beyond the shape": (
        lambda x: {"format": np.array(b"coo"), "row": _set(0, 500)(x.tocoo().row.astype(np.int64)),
                   "col": x.tocoo().col, "data": x.tocoo().data},
        ("human_counts_1.npz", "cell position 500", "outside its 20 cells")),
}


@pytest.mark.parametrize("case", list(NPZ_CASES))
def test_a_corrupt_npz_chunk_is_refused_naming_the_chunk_and_position(tmp_path: Path, case: str) -> None:
    arrays, needle = NPZ_CASES[case]
    root = census_project(tmp_path, {"kind": "chunks", "path": "chunks"})
    folder = write_chunks(root / "chunks", COUNTS, OBS, VAR, rows=20)
    chunk = folder / "human_counts_1.npz"
    _npz(chunk, **arrays(sp.load_npz(chunk)))
    assert_refused(xmodal(root, "ingest", "--dataset", "c"), needle=needle)
    assert not _ingested(root, "c")


# ---------------------------------------------------------------------------------- multiome: 10x .h5, .h5mu
def _multiome_project(root: Path, **domain: str) -> Path:
    return project(root, {"mo": {"family": "multiome", "source": {"kind": "files",
                                                                 "domains": [{"name": "d", **domain}]}}})


TENX_CASES = {
    # an index beyond the shape made scanpy's slicing write outside the matrix: the process died (SIGSEGV)
    "index beyond the shape": ("matrix/indices", _set(3, 10**7), ("row 1", "feature index 10000000", "barcode")),
    "indptr decreases": ("matrix/indptr", _decreasing, ("row 6", "indptr) decreases", "barcode")),
    "value float32 stores as 0": ("matrix/data", _as(np.float64, 3, 1e-60), ("1e-60", "would become 0 in float32")),
}


@pytest.mark.parametrize("case", list(TENX_CASES))
def test_a_corrupt_10x_matrix_is_refused_not_a_crash(tmp_path: Path, case: str) -> None:
    key, change, needle = TENX_CASES[case]
    path = write_10x(tmp_path / "matrix.h5", small_multiome())
    _rewrite(path, key, change)
    root = _multiome_project(tmp_path, format="10x_h5", path=str(path))
    assert_refused(xmodal(root, "ingest", "--dataset", "mo"), needle=(str(path), *needle))
    assert not _ingested(root, "mo")


def test_a_corrupt_matrix_in_a_multiome_h5mu_is_refused(tmp_path: Path) -> None:
    import mudata as md

    data = small_multiome()
    path = tmp_path / "d.h5mu"
    md.MuData({"rna": data.rna, "atac": data.atac}).write(path)
    _rewrite(path, "mod/atac/X/indices", _set(5, 10**6))
    root = _multiome_project(tmp_path, format="h5mu", path=str(path))
    assert_refused(xmodal(root, "ingest", "--dataset", "mo"),
                   needle=(str(path), "mod/atac/X is damaged", "feature index 1000000"))
    assert not _ingested(root, "mo")


# ---------------------------------------------------------------------------------- paired: .h5ad
def _paired(tmp_path: Path) -> tuple[Path, Path]:
    rng = np.random.default_rng(0)
    for name, width in (("a", 8), ("b", 10)):
        x = sp.csr_matrix(rng.poisson(1.0, (40, width)).astype(np.float32))
        adata = ad.AnnData(X=x, obs=pd.DataFrame(index=[f"c{i}" for i in range(40)]),
                           var=pd.DataFrame(index=[f"{name}{j}" for j in range(width)]))
        adata.write_h5ad(tmp_path / f"{name}.h5ad")
    project(tmp_path, {"pa": {"family": "paired", "source": {"kind": "anndata", "path_a": "a.h5ad",
                                                             "path_b": "b.h5ad"}}})
    return tmp_path, tmp_path / "b.h5ad"


PAIRED_CASES = {
    # an index beyond the shape: toarray wrote outside the dense array (the process died, SIGSEGV)
    "index beyond the shape": ("X/indices", _set(3, 10**6), ("row 1", "feature index 1000000", "'c0'")),
    # a negative index or a decreasing indptr were read as some other matrix, silently
    "negative index": ("X/indices", _set(3, -5), ("row 1", "feature index -5")),
    "indptr decreases": ("X/indptr", _decreasing, ("row 6", "indptr) decreases", "'c5'")),
    "value float32 stores as 0": ("X/data", _as(np.float64, 3, 1e-50), ("1e-50", "would become 0 in float32")),
    "value float32 stores as infinite": ("X/data", _as(np.float64, 3, 1e300), ("1e+300", "would become infinite")),
}


@pytest.mark.parametrize("case", list(PAIRED_CASES))
def test_a_corrupt_h5ad_of_a_paired_dataset_is_refused_not_a_crash(tmp_path: Path, case: str) -> None:
    key, change, needle = PAIRED_CASES[case]
    root, path = _paired(tmp_path)
    _rewrite(path, key, change)
    assert_refused(xmodal(root, "ingest", "--dataset", "pa"), needle=(str(path), *needle))
    assert not _ingested(root, "pa")


# ---------------------------------------------------------------------------------- the checker's cost
def test_the_check_reads_each_block_once_and_builds_the_same_matrix() -> None:
    """What a reader returns after the check is the matrix scipy builds from the same (valid) arrays."""
    from xmodal.data._sparse import Where, checked_compressed, checked_coords

    x = sp.random(300, 50, density=0.1, format="csr", random_state=1, dtype=np.float64)
    x.data = np.ceil(x.data * 20)
    got = checked_compressed(x.data, x.indices, x.indptr, shape=x.shape, where=Where("m"), kind="counts")
    assert (got != x).nnz == 0
    assert got.dtype == np.float64
    coo = x.tocoo()
    order = np.random.default_rng(0).permutation(coo.nnz)  # coordinates in any order
    got = checked_coords(coo.row[order], coo.col[order], coo.data[order], shape=x.shape, where=Where("m"))
    assert (got != x).nnz == 0
    assert got.has_sorted_indices
