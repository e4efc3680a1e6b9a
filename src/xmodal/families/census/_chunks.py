"""Seed 002's chunk export: ``*counts*.npz`` CSR matrices, each with a metadata table, read and validated.

A folder holds chunk pairs named alike: ``human_counts_0.npz`` with ``human_metadata_0.parquet`` (or ``.csv``;
``.pkl`` only when the source says ``trust_pickle: true``, because loading a pickle runs whatever code it
names). The metadata file of a counts file is its name with ``counts`` replaced by ``metadata``. Genes come
from ``genes.csv`` / ``genes.parquet`` in the folder (one list for every chunk; column ``feature_id``, else the
first column), or from per-chunk ``*genes_<k>.csv`` files, which must then all be the same list.

:func:`scan_chunks` checks every chunk before anything is written: rows of counts against rows of metadata,
counts that are negative, non-integer or not finite, duplicate cell ids within and across chunks, gene lists
that differ, and a folder with no chunk. Each error names the file, the row and the fix.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from xmodal.errors import XmodalInputError

log = logging.getLogger(__name__)

_META_SUFFIXES = (".parquet", ".csv", ".pkl")
#: metadata columns taken as the cell id, in order of preference (else the table's index)
CELL_ID_COLUMNS = ("cell_id", "observation_joinid", "obs_id", "soma_joinid")


@dataclass(frozen=True)
class Chunk:
    """One chunk as read: its counts, metadata and where they came from.

    Attributes
    ----------
    counts
        ``(n_rows, n_genes)`` CSR float32 raw counts.
    obs
        Metadata, one row per counts row, indexed by cell id (str).
    counts_path, metadata_path
        The files.
    """

    counts: sp.csr_matrix
    obs: pd.DataFrame
    counts_path: Path
    metadata_path: Path


def chunk_files(folder: Path, *, trust_pickle: bool = False) -> list[tuple[Path, Path]]:
    """The ``(counts, metadata)`` file pairs of a chunk folder, in natural order (``_2`` before ``_10``).

    Raises
    ------
    XmodalInputError
        The folder does not exist, holds no ``*counts*.npz``, a counts file has no metadata file, or its
        metadata is a pickle and ``trust_pickle`` is false.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise XmodalInputError("chunk folder not found", path=folder,
                               fix="point `source.path` to the folder holding the *counts*.npz chunks")
    counts = sorted(folder.glob("*counts*.npz"), key=_natural)
    if not counts:
        raise XmodalInputError("no chunk: the folder holds no *counts*.npz file", path=folder,
                               fix="export chunks as <prefix>_counts_<k>.npz (scipy.sparse.save_npz) with "
                               "<prefix>_metadata_<k>.parquet")
    pairs = []
    for path in counts:
        stem = path.name[: -len(".npz")].replace("counts", "metadata")
        found = [path.with_name(stem + suffix) for suffix in _META_SUFFIXES if path.with_name(stem + suffix).exists()]
        if not found:
            raise XmodalInputError(f"no metadata file for this chunk (looked for {stem}.parquet, .csv, .pkl)",
                                   path=path, fix="write each chunk's metadata beside its counts, named alike")
        meta = found[0]
        if meta.suffix == ".pkl" and not trust_pickle:
            raise XmodalInputError(
                "metadata is a pickle; loading a pickle runs any code it names, so xmodal does not read one unless "
                "told to", path=meta,
                fix="convert it once (pandas.read_pickle(f).to_parquet(...)) or, if you made the file yourself, set "
                "`source.trust_pickle: true`")
        pairs.append((path, meta))
    return pairs


def read_genes(folder: Path, pairs: list[tuple[Path, Path]]) -> pd.DataFrame:
    """The gene list of a chunk folder: ``var`` indexed by ``feature_id`` (with ``feature_name`` when given)."""
    folder = Path(folder)
    shared = [folder / name for name in ("genes.parquet", "genes.csv") if (folder / name).exists()]
    if shared:
        return _gene_table(shared[0])
    per_chunk = []
    for counts, _ in pairs:
        path = counts.with_name(counts.name[: -len(".npz")].replace("counts", "genes") + ".csv")
        if not path.exists():
            raise XmodalInputError("no gene list: neither genes.csv / genes.parquet in the folder nor "
                                   f"{path.name} beside the chunk", path=counts,
                                   fix="write the genes (column feature_id, optionally feature_name) to genes.csv")
        per_chunk.append((path, _gene_table(path)))
    first_path, first = per_chunk[0]
    for path, genes in per_chunk[1:]:
        if not genes.index.equals(first.index):
            diff = next((i for i, (a, b) in enumerate(zip(genes.index, first.index, strict=False)) if a != b),
                        min(len(genes), len(first)))
            raise XmodalInputError(
                f"chunks have different gene lists: {len(genes)} genes here, {len(first)} in {first_path.name}; "
                f"first difference at gene {diff + 1}", path=path,
                fix="export every chunk over the same genes in the same order")
    return first


def _gene_table(path: Path) -> pd.DataFrame:
    from xmodal.data._unique import check_unique

    frame = _read_table(path, trust_pickle=False)
    column = "feature_id" if "feature_id" in frame.columns else frame.columns[0]
    ids = frame[column].astype(str)
    check_unique(ids.to_numpy(), what="gene", path=path, noun="line" if path.suffix == ".csv" else "row",
                 base=_row(path, 0), column=column, fix="list each gene once")
    var = frame.drop(columns=[column]).set_index(pd.Index(ids.to_numpy(), name="feature_id"))
    if "feature_name" not in var.columns:
        var["feature_name"] = var.index
    return var


def _read_table(path: Path, *, trust_pickle: bool) -> pd.DataFrame:
    from xmodal.data._unique import check_unique_columns

    try:
        if path.suffix == ".parquet":
            import pyarrow.parquet as pq

            check_unique_columns(pq.read_schema(path).names, table="the table", path=path)
            return pd.read_parquet(path)
        if path.suffix == ".csv":
            # pandas renames a repeated header name (sex, sex.1): read the header as written first
            header = pd.read_csv(path, header=None, nrows=1, dtype=str, keep_default_na=False)
            check_unique_columns(list(header.iloc[0]) if len(header) else [], table="the header", path=path)
            return pd.read_csv(path, dtype=str, keep_default_na=False)
        if path.suffix == ".pkl" and trust_pickle:
            frame = pd.read_pickle(path)  # noqa: S301 - only with source.trust_pickle: true (the user's own file)
            if not isinstance(frame, pd.DataFrame):
                raise TypeError(f"holds a {type(frame).__name__}, not a DataFrame")
            check_unique_columns(list(frame.columns), table="the table", path=path)
            return frame
    except XmodalInputError:
        raise
    except Exception as exc:  # noqa: BLE001 - every unreadable table gets the same clear error
        raise XmodalInputError(f"cannot read the table ({type(exc).__name__}: {exc})", path=path,
                               fix="re-export it as parquet or csv") from None
    raise XmodalInputError(f"unsupported table format {path.suffix!r}", path=path, fix="use .parquet or .csv")


def read_chunk(counts_path: Path, metadata_path: Path, *, n_genes: int, trust_pickle: bool = False) -> Chunk:
    """Read and validate one chunk (see the module docstring for what is checked)."""
    counts = load_counts(counts_path, n_genes=n_genes)
    obs = read_metadata(metadata_path, n_rows=counts.shape[0], counts_name=counts_path.name,
                        trust_pickle=trust_pickle)
    check_counts(counts, path=counts_path, cells=obs.index)
    return Chunk(counts=sp.csr_matrix(counts, dtype=np.float32), obs=obs, counts_path=counts_path,
                 metadata_path=metadata_path)


def read_counts(counts_path: Path, *, n_genes: int, genes: Sequence[Any] | None = None,
                cells: Sequence[Any] | None = None) -> sp.csr_matrix:
    """One chunk's counts ``(rows, n_genes)`` CSR float32, checked (:func:`load_counts`) to be finite non-negative
    integers that float32 holds exactly."""
    counts = load_counts(counts_path, n_genes=n_genes, genes=genes, cells=cells)
    check_counts(counts, path=counts_path, genes=genes, cells=cells)
    return sp.csr_matrix(counts, dtype=np.float32)


def load_counts(counts_path: Path, *, n_genes: int, genes: Sequence[Any] | None = None,
                cells: Sequence[Any] | None = None) -> sp.csr_matrix:
    """One chunk's matrix as stored (CSR, its own dtype), its raw arrays checked before scipy builds it.

    The ``.npz`` is read with :func:`numpy.load` (no pickles); its CSR, CSC or COO arrays pass
    :mod:`xmodal.data._sparse` (``indptr``, indices within the shape, no position twice, a numeric dtype); the
    values are checked as counts by :func:`check_counts` (every caller does).

    Raises
    ------
    XmodalInputError
        Not a sparse ``.npz``, a damaged matrix (naming the first bad row), another number of genes.
    """
    from xmodal.data._sparse import Where, checked_compressed, checked_coords

    where = Where(counts_path, matrix="", col_ids=genes, row_ids=cells)
    try:
        with np.load(counts_path, allow_pickle=False) as npz:
            fmt = npz["format"].item() if "format" in npz.files else b"csr"
            fmt = fmt.decode() if isinstance(fmt, bytes) else str(fmt)
            shape = npz["shape"]
            arrays = {k: npz[k] for k in ("data", "indices", "indptr", "row", "col") if k in npz.files}
    except Exception as exc:  # noqa: BLE001 - numpy/zipfile raise many types for a damaged file
        raise XmodalInputError(f"not a scipy sparse .npz ({type(exc).__name__}: {exc})", path=counts_path,
                               fix="write chunks with scipy.sparse.save_npz(path, csr_matrix)") from None
    dims = np.asarray(shape).reshape(-1)
    if len(dims) == 2 and dims.dtype.kind in "iu" and int(dims[1]) != n_genes:
        raise XmodalInputError(f"{int(dims[1])} genes, the gene list has {n_genes}", path=counts_path,
                               fix="export every chunk over the genes of genes.csv, in its order")
    needed = ("row", "col", "data") if fmt == "coo" else ("data", "indices", "indptr")
    missing = [k for k in needed if k not in arrays]
    if fmt not in ("csr", "csc", "coo") or missing:
        problem = (f"the matrix is stored as {fmt}, which xmodal does not read" if fmt not in ("csr", "csc", "coo")
                   else f"the matrix is damaged: it has no `{missing[0]}` array")
        raise XmodalInputError(problem, path=counts_path,
                               fix="write chunks with scipy.sparse.save_npz(path, csr_matrix)")
    if fmt == "coo":  # the values: checked as counts by the caller (check_counts)
        counts = checked_coords(arrays["row"], arrays["col"], arrays["data"], shape=shape, where=where, kind=None)
    else:
        counts = checked_compressed(arrays["data"], arrays["indices"], arrays["indptr"], shape=shape, where=where,
                                    fmt=fmt, kind=None)
    return sp.csr_matrix(counts)


def check_counts(counts: Any, *, path: Path | str, first_row: int = 0, cells: Sequence[Any] | None = None,
                 genes: Sequence[Any] | None = None, matrix: str = "") -> None:
    """Raise a clear error at the first count that is not a finite non-negative integer float32 holds exactly.

    The one check of raw counts every census source, reader and input goes through
    (:func:`xmodal.data._sparse.check_matrix` with ``kind="counts"``): the matrix's raw arrays are checked too.

    Parameters
    ----------
    counts
        ``(rows, genes)`` sparse (or dense) matrix, in any numeric dtype.
    path
        Named in the error.
    first_row
        Row of the file the block starts at (0-based), so the error names the file's row.
    cells, genes
        Ids of the block's rows and of the columns, named in the error when given.
    matrix
        The matrix's name in the file (``"X"``, ``"layers/raw"``), if it is not the whole file.
    """
    from xmodal.data._sparse import Where, check_matrix

    check_matrix(counts, where=Where(path, matrix=matrix, first_row=first_row, row_ids=cells, row_ids_start=first_row,
                                     col_ids=genes), kind="counts")


def read_metadata(metadata_path: Path, *, n_rows: int, counts_name: str, trust_pickle: bool = False
                  ) -> pd.DataFrame:
    """One chunk's metadata: ``n_rows`` rows indexed by unique cell id (see :data:`CELL_ID_COLUMNS`)."""
    from xmodal.data._unique import check_unique

    obs = _read_table(metadata_path, trust_pickle=trust_pickle)
    if len(obs) != n_rows:
        raise XmodalInputError(f"{len(obs)} metadata rows for {n_rows} count rows in {counts_name}",
                               path=metadata_path, fix="export each chunk's metadata with one row per cell, aligned")
    id_column = next((c for c in CELL_ID_COLUMNS if c in obs.columns), None)
    ids = (obs[id_column] if id_column else pd.Series(obs.index)).astype(str).to_numpy()
    obs = obs.drop(columns=[id_column]) if id_column else obs
    obs.index = pd.Index(ids, name="cell_id")
    check_unique(ids, what="cell id", path=metadata_path, noun="line" if metadata_path.suffix == ".csv" else "row",
                 base=_row(metadata_path, 0), column=id_column, scope="in this chunk", fix="give every cell a unique id")
    return obs


def scan_metadata(folder: Path, *, trust_pickle: bool = False) -> tuple[pd.DataFrame, pd.DataFrame,
                                                                       list[tuple[Path, Path]]]:
    """Every chunk's metadata, checked, without reading the counts: ``(var, obs of all cells, file pairs)``.

    Rows are checked against each ``.npz``'s stored shape; cell ids must be unique within and across chunks.
    """
    pairs = chunk_files(folder, trust_pickle=trust_pickle)
    var = read_genes(folder, pairs)
    frames: list[pd.DataFrame] = []
    seen: dict[str, str] = {}
    for counts_path, meta_path in pairs:
        obs = read_metadata(meta_path, n_rows=npz_rows(counts_path), counts_name=counts_path.name,
                            trust_pickle=trust_pickle)
        for row, cell in enumerate(obs.index):
            if cell in seen:
                raise XmodalInputError(f"cell id {cell!r} appears in two chunks (also in {seen[cell]})",
                                       path=meta_path, row=_row(meta_path, row),
                                       fix="give every cell a unique id across chunks")
            seen[cell] = meta_path.name
        frames.append(obs)
    return var, pd.concat(frames), pairs


def scan_chunks(folder: Path, *, trust_pickle: bool = False) -> Iterator[Chunk]:
    """Read every chunk of ``folder`` in order, validated, with cell ids unique across chunks.

    Yields
    ------
    Chunk
        One at a time (memory: one chunk).
    """
    pairs = chunk_files(folder, trust_pickle=trust_pickle)
    var = read_genes(folder, pairs)
    seen: dict[str, str] = {}
    for counts_path, meta_path in pairs:
        chunk = read_chunk(counts_path, meta_path, n_genes=len(var), trust_pickle=trust_pickle)
        for row, cell in enumerate(chunk.obs.index):
            if cell in seen:
                raise XmodalInputError(f"cell id {cell!r} appears in two chunks (also in {seen[cell]})",
                                       path=meta_path, row=_row(meta_path, row),
                                       fix="give every cell a unique id across chunks")
            seen[cell] = meta_path.name
        yield chunk


def npz_rows(path: Path) -> int:
    """Rows of a ``save_npz`` file from its ``shape`` entry alone (the matrix is not read)."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            shape = np.asarray(npz["shape"]).reshape(-1)
    except Exception as exc:  # noqa: BLE001
        raise XmodalInputError(f"not a scipy sparse .npz ({type(exc).__name__}: {exc})", path=path,
                               fix="write chunks with scipy.sparse.save_npz(path, csr_matrix)") from None
    if len(shape) != 2 or shape.dtype.kind not in "iu" or shape.min() < 0:
        raise XmodalInputError(f"the matrix is damaged: its shape {tuple(shape.tolist())} is not two non-negative "
                               "integers", path=path, fix="write chunks with scipy.sparse.save_npz(path, csr_matrix)")
    return int(shape[0])


def _row(path: Path, index: int) -> int:
    """The row a user sees: the CSV line (header is line 1), or the 1-based row of a parquet/pickle table."""
    return index + 2 if path.suffix == ".csv" else index + 1


def _natural(path: Path) -> list[object]:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path.name)]
