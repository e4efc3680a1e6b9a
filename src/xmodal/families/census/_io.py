"""Ingest of the ``census`` family: any of its four sources → a validated, Census-shaped SOMA store on disk.

``data/ingested/<dataset>/`` holds:

* ``store/``: the SOMA experiment (:func:`~xmodal.families.census._soma.write_store`): raw counts in
  ``ms["RNA"].X["raw"]``, genes in ``ms["RNA"].var`` (``feature_id``, ``feature_name``), and ``obs`` with the
  metadata fields the dataset conditions on plus every Census field the source has;
* ``schema.json``: family, shapes, per-field value counts and a content hash of the cells (computed over the
  counts, genes and metadata as streamed, so it does not depend on how TileDB lays out its fragments);
* ``truth.npz`` for the synthetic source only: the planted model, so evaluation can compute every test cell's
  true counterfactual.

Every source is read in blocks (memory: one block and the metadata table). Each reader checks the raw arrays of
its blocks before scipy builds them (:mod:`xmodal.data._sparse`: ``indptr``, indices or coordinates within the
shape, a numeric dtype); then every block of every source passes the same value check here,
:func:`~xmodal.families.census._chunks.check_counts`: raw counts must be finite non-negative integers that float32
(the store's type) holds exactly. Cell ids and gene ids must be unique, column names too, and the fields named
must exist. A failure raises :class:`~xmodal.errors.XmodalInputError` naming the file (or store), the cell and
gene, and the fix; the stage then writes nothing.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from xmodal.data._sparse import Where
from xmodal.errors import XmodalInputError
from xmodal.families.census._vocab import CENSUS_FIELDS

log = logging.getLogger(__name__)

STORE = "store"
TRUTH_FILE = "truth.npz"
SCHEMA_VERSION = 1


@dataclass
class SourceData:
    """One opened source: genes, every cell's metadata, and the counts as a stream of row blocks.

    Attributes
    ----------
    var
        Genes: index ``feature_id``, column ``feature_name``.
    obs
        One row per cell in store order, indexed by unique cell id; the metadata columns as given.
    blocks
        Called once: yields ``(counts, where)``: ``(rows, genes)`` sparse blocks of raw counts in ``obs`` order
        (their raw arrays checked by the reader, the values in the source's dtype) and the
        :class:`~xmodal.data._sparse.Where` naming the block's file, matrix and first row there.
    where
        Names the source in errors.
    truth
        The planted model of a synthetic source (:class:`~xmodal.families.census._synthetic.CensusSim`).
    """

    var: pd.DataFrame
    obs: pd.DataFrame
    blocks: Callable[[], Iterator[tuple[sp.csr_matrix, Where]]]
    where: str
    truth: Any = None


def open_source(source: Any, *, root: Path, fields: list[str]) -> SourceData:
    """Open the dataset's ``source`` (one of the four kinds of :mod:`~xmodal.families.census._config`).

    Raises
    ------
    XmodalInputError
        A missing or unreadable file, an empty query, a field the metadata lack.
    """
    kind = source.kind
    if kind == "synthetic_census":
        return _synthetic(source)
    if kind == "chunks":
        return _chunk_export(source, root=root)
    if kind == "h5ad":
        return _h5ad(source, root=root)
    if kind == "cellxgene_census":
        return _census_query(source, fields=fields)
    raise XmodalInputError(f"unknown census source kind {kind!r}")  # the config's union refuses it first


def _synthetic(source: Any) -> SourceData:
    from xmodal._resources import check_memory
    from xmodal.families.census._synthetic import memory_estimate, synthetic_census

    check_memory(memory_estimate(n_cells=source.n_cells, n_genes=source.n_genes, depth=source.depth,
                                 seed=source.seed),
                 what=f"the synthetic census data (source.n_cells = {source.n_cells:,} cells × source.n_genes = "
                 f"{source.n_genes:,} genes)", fix="lower source.n_cells or source.n_genes of the dataset")
    sim = synthetic_census(n_cells=source.n_cells, n_genes=source.n_genes, n_donors=source.n_donors,
                           interaction=source.interaction, depth=source.depth, seed=source.seed)
    size = source.chunk_size

    def blocks() -> Iterator[tuple[sp.csr_matrix, Where]]:
        for s in range(0, sim.counts.shape[0], size):
            yield sim.counts[s:s + size], Where("synthetic_census", matrix="counts", first_row=s)

    return SourceData(var=sim.var, obs=sim.obs, blocks=blocks, where="synthetic_census", truth=sim)


def _chunk_export(source: Any, *, root: Path) -> SourceData:
    from xmodal._s3 import is_s3_uri
    from xmodal.data._tables import resolve
    from xmodal.families.census._chunks import load_counts, scan_metadata

    if is_s3_uri(str(source.path)):
        raise XmodalInputError("a chunk folder is read from local disk or a mounted volume, not from s3://",
                               path=str(source.path), fix="copy it first (`aws s3 sync <uri> data/raw/<name>`) or "
                               "mount the bucket, and point `source.path` there")
    folder = resolve(Path(str(source.path)), root)
    var, obs, pairs = scan_metadata(folder, trust_pickle=source.trust_pickle)

    def blocks() -> Iterator[tuple[sp.csr_matrix, Where]]:
        start = 0
        for counts_path, _ in pairs:
            counts = load_counts(counts_path, n_genes=len(var), genes=var.index, cells=obs.index[start:])
            yield counts, Where(counts_path, matrix="")
            start += counts.shape[0]

    return SourceData(var=var, obs=obs, blocks=blocks, where=str(folder))


def _h5ad(source: Any, *, root: Path) -> SourceData:
    import anndata as ad
    import h5py

    from xmodal._s3 import is_s3_uri
    from xmodal.data._sparse import h5_sparse
    from xmodal.data._tables import resolve
    from xmodal.data._unique import check_unique, check_unique_columns

    if is_s3_uri(str(source.path)):
        from xmodal._s3 import download

        local = Path(root) / ".cache" / "xmodal" / "s3" / Path(str(source.path)).name
        local.parent.mkdir(parents=True, exist_ok=True)
        download(str(source.path), local)
        path = local
    else:
        path = resolve(Path(str(source.path)), root)
    if not path.is_file():
        raise XmodalInputError("file not found", path=path, fix="point `source.path` to the .h5ad of raw counts")
    name = "X" if source.layer is None else f"layers/{source.layer}"
    where = Where(path, matrix=name)
    try:
        with h5py.File(path, "r") as f:
            obs = ad.io.read_elem(f["obs"])
            var = ad.io.read_elem(f["var"])
            node = f["X"] if source.layer is None else f["layers"][source.layer]
            encoding = node.attrs.get("encoding-type")
            if encoding == "csr_matrix":
                matrix = h5_sparse(node, where=where)
    except XmodalInputError:
        raise
    except Exception as exc:  # noqa: BLE001 - h5py/anndata raise many types for a damaged or foreign file
        raise XmodalInputError(f"not a readable .h5ad ({type(exc).__name__}: {exc})", path=path,
                               fix="write it with AnnData.write_h5ad (raw counts in X, or name the layer)") from None
    if encoding != "csr_matrix":
        raise XmodalInputError(f"{name} is stored as {encoding or 'a dense array'}, not CSR, so it cannot be read in "
                               "row blocks", path=path,
                               fix="store raw counts sparse: adata.X = scipy.sparse.csr_matrix(adata.X); "
                               "adata.write_h5ad(...)")
    check_unique_columns(list(obs.columns), table="obs", path=path)
    check_unique_columns(list(var.columns), table="var", path=path)
    obs.index = pd.Index(obs.index.astype(str), name="cell_id")
    check_unique(obs.index, what="cell id", path=path, scope="in obs",
                 fix="give every cell a unique id (adata.obs_names_make_unique())")
    genes = pd.DataFrame(index=pd.Index(var.index.astype(str), name="feature_id"))
    check_unique(genes.index, what="gene id", path=path, scope="in var",
                 fix="list each gene once in var (the index holds the gene ids, e.g. Ensembl)")
    genes["feature_name"] = var["feature_name"].astype(str).to_numpy() if "feature_name" in var else genes.index
    if matrix.shape != (len(obs), len(genes)):
        raise XmodalInputError(f"{name} has shape {matrix.shape}, but obs lists {len(obs)} cells and var "
                               f"{len(genes)} genes", path=path, fix="write the file again with AnnData.write_h5ad")
    size = source.chunk_size
    named = replace(where, row_ids=obs.index, col_ids=genes.index)

    def blocks() -> Iterator[tuple[sp.csr_matrix, Where]]:
        try:
            f = h5py.File(path, "r")
        except OSError as exc:
            raise XmodalInputError(f"cannot read the file again ({exc})", path=path,
                                   fix="keep the file in place while xmodal ingests it") from None
        with f:
            m = h5_sparse(f[name], where=named)
            for s in range(0, len(obs), size):  # the counts' values: checked by the ingest, as every source's
                yield m.rows(s, min(len(obs), s + size), kind=None), where.block(s)

    return SourceData(var=genes, obs=obs, blocks=blocks, where=str(path))


def _census_query(source: Any, *, fields: list[str]) -> SourceData:
    from xmodal.families.census._soma import LAYER, census_source

    columns = list(dict.fromkeys([*fields, *[f for f in CENSUS_FIELDS if f not in fields]]))
    try:
        var, obs, stream = census_source(source.uri, organism=source.organism,
                                         obs_value_filter=source.obs_value_filter, columns=columns,
                                         chunk_size=source.chunk_size, var_value_filter=source.var_value_filter)
    except XmodalInputError as exc:
        if "unknown obs column" not in str(exc) or set(fields) == set(columns):
            raise
        # a collection without every Census field: ask for the requested ones only
        var, obs, stream = census_source(source.uri, organism=source.organism,
                                         obs_value_filter=source.obs_value_filter, columns=fields,
                                         chunk_size=source.chunk_size, var_value_filter=source.var_value_filter)
    where = Where(str(source.uri), matrix=f"the query's X[{LAYER!r}]")

    def blocks() -> Iterator[tuple[sp.csr_matrix, Where]]:
        start = 0
        for counts in stream:
            yield counts, where.block(start)
            start += counts.shape[0]

    return SourceData(var=var, obs=obs, blocks=blocks, where=str(source.uri))


# ---------------------------------------------------------------------- ingest
def check_tables(obs: pd.DataFrame, var: pd.DataFrame, *, where: str) -> None:
    """Every source's metadata and genes: column names, cell ids and gene ids each unique.

    Raises
    ------
    XmodalInputError
        Naming the source, the duplicated value and its two positions.
    """
    from xmodal.data._unique import check_unique, check_unique_columns

    check_unique_columns(list(obs.columns), table="the cells' metadata (obs)", path=where)
    check_unique_columns(list(var.columns), table="the genes (var)", path=where)
    check_unique(obs.index.astype(str), what="cell id", path=where, noun="cell", as_row=False,
                 fix="give every cell a unique id")
    check_unique(var.index.astype(str), what="gene id", path=where, noun="gene", as_row=False,
                 fix="list each gene once (feature_id: e.g. its Ensembl id)")


def stored_columns(obs: pd.DataFrame, fields: list[str], *, where: str) -> list[str]:
    """The metadata columns kept in the store: the requested ``fields`` first, then the other Census fields present.

    Raises
    ------
    XmodalInputError
        A requested field that is not a column of the metadata.
    """
    unknown = [f for f in fields if f not in obs.columns]
    if unknown:
        raise XmodalInputError(
            f"unknown field {unknown[0]!r}: the metadata have the columns {', '.join(map(str, obs.columns))}",
            path=where, fix="list fields that exist in the metadata under datasets.<name>.fields (Census: "
            + ", ".join(CENSUS_FIELDS) + ")")
    return list(dict.fromkeys([*fields, *[f for f in CENSUS_FIELDS if f in obs.columns]]))


def column_values(obs: pd.DataFrame, columns: list[str]) -> dict[str, list[str]]:
    """Every distinct non-null value of each column, as strings (the store's enumerations)."""
    return {c: sorted({str(v) for v in obs[c].dropna().unique()}) for c in columns}


def ingest_census(cfg: Any, *, out: Path, root: Path) -> dict[str, Any]:
    """Read the dataset ``cfg`` describes and write ``store/``, ``schema.json`` (and ``truth.npz``) into ``out``.

    Parameters
    ----------
    cfg
        A :class:`~xmodal.families.census._config.CensusDatasetConfig`.
    out
        An empty folder.
    root
        Where relative source paths are resolved.

    Returns
    -------
    dict
        The schema written.
    """
    from xmodal._io import write_json
    from xmodal.data import SCHEMA_FILE
    from xmodal.families.census._chunks import check_counts
    from xmodal.families.census._soma import write_store

    data = open_source(cfg.source, root=root, fields=list(cfg.fields))
    if len(data.obs) == 0:
        raise XmodalInputError("the source holds no cells", path=data.where, fix="check the source selects cells")
    if len(data.var) == 0:
        raise XmodalInputError("the source holds no gene", path=data.where, fix="check the source selects genes")
    check_tables(data.obs, data.var, where=data.where)
    columns = stored_columns(data.obs, list(cfg.fields), where=data.where)
    obs = data.obs[columns]
    # three running hashes (row lengths, column indices, values), so the blocks' boundaries do not matter
    parts = [hashlib.sha256() for _ in range(3)]

    def chunks() -> Iterator[tuple[sp.csr_matrix, pd.DataFrame]]:
        start = 0
        for counts, where in data.blocks():
            rows = counts.shape[0]
            if start + rows > len(obs):
                raise XmodalInputError(f"the counts hold more rows than the metadata's {len(obs)}", path=where.path,
                                       fix="give one metadata row per cell, aligned with the counts")
            if counts.shape[1] != len(data.var):
                raise XmodalInputError(f"the counts have {counts.shape[1]} genes, the gene list {len(data.var)}",
                                       path=where.path, fix="give counts over the genes of the gene list, in order")
            # the one value check of every source (a new source cannot skip it): then float32, unchanged
            check_counts(counts, path=where.path, matrix=where.matrix, first_row=where.first_row,
                         cells=obs.index[start:start + rows], genes=data.var.index)
            counts = sp.csr_matrix(counts, dtype=np.float32)
            counts.sort_indices()
            for h, part in zip(parts, (np.diff(counts.indptr).astype(np.int64), counts.indices.astype(np.int64),
                                       counts.data.astype(np.float32)), strict=True):
                h.update(part.tobytes())
            yield counts, obs.iloc[start:start + rows]
            start += rows
        if start != len(obs):
            raise XmodalInputError(f"the counts hold {start} rows, the metadata {len(obs)}", path=data.where,
                                   fix="give one metadata row per cell, aligned with the counts")

    write_store(out / STORE, chunks(), var=data.var, n_cells=len(obs), fields=columns,
                values=column_values(obs, columns))
    if data.truth is not None:
        data.truth.save_truth(out / TRUTH_FILE)
    digest = hashlib.sha256("\n".join(map(str, data.var.index)).encode())
    digest.update(obs.astype(str).to_csv().encode())
    for h in parts:
        digest.update(h.digest())
    schema = {
        "family": "census", "schema_version": SCHEMA_VERSION, "n_obs": len(obs), "n_vars": len(data.var),
        "sha256": digest.hexdigest(), "fields": list(cfg.fields), "columns": columns,
        "values": {f: obs[f].astype(str).value_counts().sort_index().to_dict() for f in cfg.fields},
        "synthetic_truth": data.truth is not None,
        "modalities": {"rna": {"name": "rna", "n_obs": len(obs), "n_vars": len(data.var),
                               "sha256": digest.hexdigest(), "kind": "counts"}},
    }
    write_json(out / SCHEMA_FILE, schema)
    return schema


def read_ingested(folder: Path) -> dict[str, Any]:
    """The schema of an ingested census folder, checked to hold a store.

    Raises
    ------
    XmodalInputError
        Not a folder ``xmodal ingest`` wrote for the census family.
    """
    from xmodal._io import read_json
    from xmodal.data import SCHEMA_FILE

    folder = Path(folder)
    if not (folder / STORE).is_dir() or not (folder / SCHEMA_FILE).is_file():
        raise XmodalInputError("no census store here (store/ and schema.json)", path=folder,
                               fix="run `xmodal ingest` (or `dvc repro`) for this dataset first")
    schema = read_json(folder / SCHEMA_FILE)
    if schema.get("family") != "census":
        raise XmodalInputError(f"the folder holds a {schema.get('family')!r} dataset, not a census one", path=folder,
                               fix="give a folder `xmodal ingest` wrote for a census dataset")
    return schema


__all__ = ["STORE", "TRUTH_FILE", "SourceData", "check_tables", "column_values", "ingest_census", "open_source",
           "read_ingested", "stored_columns"]
