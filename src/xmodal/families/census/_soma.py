"""The census family's store: a SOMA experiment on disk with Census's own conventions, written and read in chunks.

Layout (as CZ CELLxGENE Census): ``obs`` (``soma_joinid``, ``observation_joinid`` and the metadata fields as
strings), ``ms["RNA"].var`` (``feature_id``, ``feature_name``) and ``ms["RNA"].X["raw"]`` (float32 counts, a
SparseNDArray). The metadata fields are plain strings, not TileDB enumerations as in the Census, and every write
happens at one fixed timestamp, so the same cells give the same bytes (:mod:`xmodal.families.census._canonical`:
``dvc.lock`` reproduces); readers hand them out as categoricals, as before. :func:`write_store` streams chunks into it with known final shapes, so
memory holds one chunk; :class:`SomaChunks` reads it back in contiguous row blocks for the streaming loader.
Metadata values are stored as given (nulls as nulls); the vocabulary normalises them when it encodes.

Every read checks what it gets: the experiment has ``obs``, ``ms["RNA"].var`` and ``X["raw"]`` with their columns
(else an error naming the store and the missing part, or the X layers it has); a TileDB or arrow error while
reading (a truncated or overwritten fragment) is an :class:`~xmodal.errors.XmodalInputError` naming the store and
what was read; and every block of ``X`` passes :func:`xmodal.data._sparse.checked_coords` (coordinates within the
shape, each once, numeric values) before scipy builds it, with raw counts' value check for xmodal's own stores.

:func:`census_chunks` is the query source: the real ``cellxgene_census`` API (``open_soma(uri=...)``, an
``obs_value_filter``, the columns, the organism) against a Census release or any Census-shaped collection,
streamed in row blocks.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from xmodal.data._sparse import Where, checked_coords
from xmodal.errors import XmodalInputError, first_line
from xmodal.families.census._canonical import WRITE_TIMESTAMP, canonical_names
from xmodal.families.census._vocab import Vocabulary

log = logging.getLogger(__name__)

MEASUREMENT, LAYER = "RNA", "raw"
#: what to do about a store xmodal wrote that cannot be read
STORE_FIX = ("the store is damaged or incomplete (a part deleted, a fragment truncated or overwritten): run the stage "
             "that wrote it again (`xmodal ingest` / `xmodal preprocess`, or `dvc repro`)")
#: ... and about a Census collection given as a source
COLLECTION_FIX = ("the collection is damaged or not Census-shaped: download or build it again (census_data/<organism> "
                  f"holding obs, ms[{MEASUREMENT!r}].var and ms[{MEASUREMENT!r}].X[{LAYER!r}])")
OBS_COLUMNS = ("soma_joinid", "observation_joinid")
VAR_COLUMNS = ("soma_joinid", "feature_id", "feature_name")


def _context(init_buffer_bytes: int = 64 * 1024**2) -> Any:
    import tiledbsoma

    return tiledbsoma.SOMATileDBContext(tiledb_config={"soma.init_buffer_bytes": init_buffer_bytes})


def write_store(uri: str | Path, chunks: Iterable[tuple[Any, ...]], *, var: pd.DataFrame,
                n_cells: int, fields: Sequence[str], values: dict[str, Sequence[str]],
                int_columns: Sequence[str] = ()) -> Path:
    """Write a Census-shaped SOMA experiment from chunks, one chunk in memory at a time.

    Parameters
    ----------
    uri
        A folder that does not exist yet.
    chunks
        ``(counts (rows, genes) CSR, obs (rows, fields) indexed by cell id)`` in store order, or
        ``(counts, obs, positions)`` where ``positions`` ``(rows,)`` are the rows (``soma_joinid``) the cells take
        in the store (each row written once; used to regroup cells by split in one pass).
    var
        Genes, index ``feature_id``, column ``feature_name``.
    n_cells
        Total rows (known from the validation scan).
    fields
        The metadata columns to store (strings).
    values
        Every distinct non-null value of each field (a value outside them is an error).
    int_columns
        Further ``obs`` columns stored as int64 (e.g. a cell's row in the ingested store).

    Returns
    -------
    Path
        ``uri``.
    """
    import pyarrow as pa
    import tiledbsoma

    uri = Path(uri)
    enum = {f: sorted({str(v) for v in values[f]}) for f in fields}
    schema = pa.schema([("soma_joinid", pa.int64()), ("observation_joinid", pa.large_string())] +
                       [pa.field(f, pa.large_string(), nullable=True) for f in fields] +
                       [(c, pa.int64()) for c in int_columns])
    ctx = _context()
    var_schema = pa.schema([("soma_joinid", pa.int64()), ("feature_id", pa.large_string()),
                            ("feature_name", pa.large_string())])
    # the structure first, then the data through a fresh handle; both at one fixed timestamp (reproducible names)
    with tiledbsoma.Experiment.create(str(uri), context=ctx, tiledb_timestamp=WRITE_TIMESTAMP) as exp:
        exp.add_new_dataframe("obs", schema=schema, domain=[(0, max(n_cells - 1, 0))])
        rna = exp.add_new_collection("ms").add_new_collection(MEASUREMENT, tiledbsoma.Measurement)
        rna.add_new_dataframe("var", schema=var_schema, domain=[(0, max(len(var) - 1, 0))])
        rna.add_new_collection("X").add_new_sparse_ndarray(LAYER, type=pa.float32(), shape=(n_cells, len(var)))
    with tiledbsoma.Experiment.open(str(uri), "w", context=ctx, tiledb_timestamp=WRITE_TIMESTAMP) as exp:
        obs, rna = exp.obs, exp.ms[MEASUREMENT]
        rna.var.write(pa.table({"soma_joinid": np.arange(len(var), dtype=np.int64),
                                "feature_id": pa.array(var.index.astype(str), pa.large_string()),
                                "feature_name": pa.array(var["feature_name"].astype(str), pa.large_string())},
                               schema=var_schema))
        x = rna.X[LAYER]
        start = 0
        for chunk in chunks:
            counts, meta = chunk[0], chunk[1]
            rows = counts.shape[0]
            positions = (np.arange(start, start + rows, dtype=np.int64) if len(chunk) < 3
                         else np.asarray(chunk[2], dtype=np.int64))
            coo = counts.tocoo()
            x.write(pa.table({"soma_dim_0": positions[coo.row],
                              "soma_dim_1": coo.col.astype(np.int64),
                              "soma_data": coo.data.astype(np.float32)}))
            columns: dict[str, Any] = {"soma_joinid": positions,
                                       "observation_joinid": pa.array(meta.index.astype(str), pa.large_string())}
            for f in fields:
                raw = meta[f].astype(object)
                text = raw.where(raw.isna(), raw.astype(str))
                unknown = ~text.isin(enum[f]).to_numpy() & raw.notna().to_numpy()
                if unknown.any():
                    raise KeyError(f"{f}: {raw[unknown].iloc[0]!r} is not among the values given for the field")
                columns[f] = pa.array(text.to_numpy(dtype=object), pa.large_string(), from_pandas=True)
            for c in int_columns:
                columns[c] = np.asarray(meta[c], dtype=np.int64)
            obs.write(pa.table(columns, schema=schema))
            start += rows
        if start != n_cells:
            raise ValueError(f"wrote {start} cells, expected {n_cells}")
    canonical_names(uri)
    log.info("census: wrote %d cells × %d genes to %s", n_cells, len(var), uri)
    return uri


@contextlib.contextmanager
def _reading(uri: str | Path, what: str, *, fix: str = STORE_FIX) -> Iterator[None]:
    """A TileDB or arrow error inside the block becomes one error naming the store and what was being read."""
    try:
        yield
    except (XmodalInputError, MemoryError):
        raise
    except Exception as exc:  # noqa: BLE001 - TileDB/SOMA/arrow raise many types for a damaged store
        raise XmodalInputError(f"cannot read {what} ({type(exc).__name__}: {first_line(exc, limit=200)})",
                               path=str(uri), fix=fix) from None


def check_experiment(exp: Any, uri: str | Path, *, fix: str = STORE_FIX, obs_columns: Sequence[str] = OBS_COLUMNS,
                     var_columns: Sequence[str] = VAR_COLUMNS) -> tuple[Any, Any, Any]:
    """The parts of a Census-shaped experiment, each opened and checked: ``(obs, var, X["raw"])``.

    Raises
    ------
    XmodalInputError
        A part missing or unreadable (``obs``, ``ms["RNA"]``, its ``var``, ``X``, the layer ``raw``: the layers it
        has are named), or a column the reader needs.
    """
    def part(name: str, get: Any) -> Any:
        with _reading(uri, name, fix=fix):
            return get()

    obs = part("obs (the cells' metadata)", lambda: exp.obs)
    measurements = part("ms (the measurements)", lambda: sorted(exp.ms.keys()))
    if MEASUREMENT not in measurements:
        raise XmodalInputError(f"the experiment has no measurement {MEASUREMENT!r} (it has: "
                               f"{', '.join(map(repr, measurements)) or 'none'})", path=str(uri), fix=fix)
    rna = part(f"ms[{MEASUREMENT!r}]", lambda: exp.ms[MEASUREMENT])
    var = part(f"ms[{MEASUREMENT!r}].var (the genes)", lambda: rna.var)
    layers = part(f"ms[{MEASUREMENT!r}].X (the count layers)", lambda: sorted(rna.X.keys()))
    if LAYER not in layers:
        raise XmodalInputError(f"ms[{MEASUREMENT!r}].X has no layer {LAYER!r} of raw counts (its layers: "
                               f"{', '.join(map(repr, layers)) or 'none'})", path=str(uri),
                               fix=f"xmodal reads raw counts from X[{LAYER!r}], Census's name for them: store them "
                               "under that name")
    x = part(f"X[{LAYER!r}]", lambda: rna.X[LAYER])
    for table, frame, needed in (("obs", obs, obs_columns), (f"ms[{MEASUREMENT!r}].var", var, var_columns)):
        names = part(table, lambda frame=frame: set(frame.schema.names))
        missing = [c for c in needed if c not in names]
        if missing:
            raise XmodalInputError(f"{table} has no column {missing[0]!r}", path=str(uri), fix=fix)
    with _reading(uri, f"X[{LAYER!r}]", fix=fix):
        x.schema  # noqa: B018 - opens the array's schema: a damaged one fails here
    return obs, var, x


def open_store(uri: str | Path) -> Any:
    """Open a store :func:`write_store` wrote (read mode), its parts checked (:func:`check_experiment`).

    Raises
    ------
    XmodalInputError
        No store there, or a damaged one, naming the store and what is wrong.
    """
    import tiledbsoma

    if "://" not in str(uri) and not Path(uri).is_dir():
        raise XmodalInputError("no SOMA store here", path=str(uri), fix=STORE_FIX)
    with _reading(uri, "the SOMA store (not a SOMA experiment?)"):
        exp = tiledbsoma.Experiment.open(str(uri), context=_context())
    try:
        check_experiment(exp, uri)
    except XmodalInputError:
        exp.close()
        raise
    return exp


def _block(table: Any, *, rows: np.ndarray, n_rows: int, n_genes: int, where: Where) -> sp.csr_matrix:
    """A block of a store's ``X`` read as an arrow table → CSR float32, its coordinates and raw counts checked
    (``rows``: each entry's row in the block, -1 where the read returned a row it was not asked for)."""
    counts = checked_coords(rows, table["soma_dim_1"].to_numpy(), table["soma_data"].to_numpy(),
                            shape=(n_rows, n_genes), where=where, kind="counts")
    return sp.csr_matrix(counts, dtype=np.float32)


def _obs_frame(table: Any) -> pd.DataFrame:
    """An ``obs`` arrow table as pandas, its metadata fields categorical (stored as strings: see the module)."""
    import pyarrow as pa

    columns = [column.combine_chunks().dictionary_encode()
               if name not in OBS_COLUMNS and (pa.types.is_large_string(column.type) or pa.types.is_string(column.type))
               else column for name, column in zip(table.column_names, table.columns, strict=True)]
    return pa.table(columns, names=table.column_names).to_pandas()


def store_var(uri: str | Path) -> pd.DataFrame:
    """The genes of a store: ``var`` indexed by ``feature_id`` with ``feature_name``, in the store's order."""
    exp = open_store(uri)
    with exp, _reading(uri, f"ms[{MEASUREMENT!r}].var"):
        var = exp.ms[MEASUREMENT].var.read(column_names=list(VAR_COLUMNS)).concat()
    frame = var.to_pandas().sort_values("soma_joinid")
    return frame.set_index(pd.Index(frame["feature_id"].astype(str), name="feature_id"))[["feature_name"]]


def store_obs(uri: str | Path, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """The ``obs`` of a store in row order, indexed by cell id (``observation_joinid``); small beside ``X``."""
    exp = open_store(uri)
    with exp, _reading(uri, "obs"):
        cols = None if columns is None else [*OBS_COLUMNS, *columns]
        frame = _obs_frame(exp.obs.read(column_names=cols).concat()).sort_values("soma_joinid")
    return frame.set_index(pd.Index(frame["observation_joinid"].astype(str), name="cell_id")).drop(
        columns=list(OBS_COLUMNS))


def store_blocks(uri: str | Path, *, chunk_size: int = 10_000) -> Iterator[tuple[int, sp.csr_matrix]]:
    """The counts of a store in contiguous row blocks: ``(first row, (rows, genes) CSR)``, one block in memory.

    Each block is checked (:func:`_block`): a damaged store is an error naming it, the cell and the gene.
    """
    exp = open_store(uri)
    where = Where(str(uri), matrix=f"X[{LAYER!r}]", fix=STORE_FIX)
    with exp:
        with _reading(uri, "the store's shape (obs and var)"):
            n, n_genes = int(exp.obs.count), int(exp.ms[MEASUREMENT].var.count)
            x = exp.ms[MEASUREMENT].X[LAYER]
        for lo in range(0, n, chunk_size):
            hi = min(n, lo + chunk_size)
            with _reading(uri, f"rows {lo + 1}-{hi} of X[{LAYER!r}]"):
                table = x.read(coords=(slice(lo, hi - 1),)).tables().concat()
            yield lo, _block(table, rows=table["soma_dim_0"].to_numpy() - lo, n_rows=hi - lo, n_genes=n_genes,
                             where=where.block(lo))


def store_rows(uri: str | Path, positions: np.ndarray, *, columns: Sequence[str] = ()
               ) -> tuple[sp.csr_matrix, pd.DataFrame]:
    """Counts ``(len(positions), genes)`` CSR and ``obs`` (``columns``) of given rows of a store, in that order."""
    return SomaChunks(uri, Vocabulary(values={}, specs=[]), chunk_size=1).read_rows(positions, columns=columns)


class SomaChunks:
    """A SOMA experiment read in contiguous blocks of ``chunk_size`` rows (a chunk reader of the stream).

    Parameters
    ----------
    uri
        The experiment (:func:`write_store`'s layout).
    vocab
        Encodes the metadata fields.
    chunk_size
        Rows per chunk.
    """

    def __init__(self, uri: str | Path, vocab: Vocabulary, *, chunk_size: int = 10_000,
                 rows: tuple[int, int] | None = None) -> None:
        self.uri, self.vocab, self.chunk_size = str(uri), vocab, int(chunk_size)
        self._exp: Any = None
        exp = self._open()
        with _reading(self.uri, "the store's shape (obs and var)"):
            self.n_cells = int(exp.obs.count)
            self.n_genes = int(exp.ms[MEASUREMENT].var.count)
        self.start, stop = (0, self.n_cells) if rows is None else (int(rows[0]), int(rows[1]))
        if not 0 <= self.start <= stop <= self.n_cells:
            raise XmodalInputError(f"rows {self.start + 1}-{stop} are outside the store's {self.n_cells} rows",
                                   path=self.uri, fix=STORE_FIX)
        self._sizes = [min(self.chunk_size, stop - s) for s in range(self.start, stop, self.chunk_size)]

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_exp": None}

    def _open(self) -> Any:
        if self._exp is None:
            self._exp = open_store(self.uri)
        return self._exp

    @property
    def _where(self) -> Where:
        return Where(self.uri, matrix=f"X[{LAYER!r}]", fix=STORE_FIX)

    @property
    def sizes(self) -> list[int]:  # noqa: D102 - ChunkReader
        return self._sizes

    def read(self, index: int) -> tuple[sp.csr_matrix, np.ndarray]:  # noqa: D102 - ChunkReader
        exp = self._open()
        lo = self.start + index * self.chunk_size
        hi = lo + self._sizes[index] - 1  # SOMA slices include both ends
        with _reading(self.uri, f"rows {lo + 1}-{hi + 1} of the store"):
            table = exp.ms[MEASUREMENT].X[LAYER].read(coords=(slice(lo, hi),)).tables().concat()
            meta = exp.obs.read(coords=(slice(lo, hi),), column_names=["soma_joinid", *self.vocab.fields]).concat()
        counts = _block(table, rows=table["soma_dim_0"].to_numpy() - lo, n_rows=hi - lo + 1, n_genes=self.n_genes,
                        where=self._where.block(lo))
        order = np.argsort(meta["soma_joinid"].to_numpy())
        frame = _obs_frame(meta).iloc[order]
        if len(frame) != hi - lo + 1:
            raise XmodalInputError(f"obs holds {len(frame)} of the rows {lo + 1}-{hi + 1}", path=self.uri,
                                   fix=STORE_FIX)
        return counts, self.vocab.encode(frame, where=self.uri)

    def read_rows(self, positions: np.ndarray, *, columns: Sequence[str] = ()) -> tuple[sp.csr_matrix, pd.DataFrame]:
        """Counts ``(len(positions), genes)`` CSR and ``obs`` (``columns``, indexed by cell id) of given store rows,
        in the order given (any rows of the store, not only this reader's range)."""
        exp = self._open()
        positions = np.asarray(positions, dtype=np.int64)
        if len(positions) == 0:
            return sp.csr_matrix((0, self.n_genes), dtype=np.float32), pd.DataFrame(columns=list(columns))
        if positions.min() < 0 or positions.max() >= self.n_cells:
            raise XmodalInputError(f"row {int(positions.max()) + 1} asked, the store has {self.n_cells} rows",
                                   path=self.uri, fix=STORE_FIX)
        order = np.unique(positions)
        with _reading(self.uri, f"{len(order)} rows of the store"):
            table = exp.ms[MEASUREMENT].X[LAYER].read(coords=(order,)).tables().concat()
            meta = exp.obs.read(coords=(order,), column_names=["soma_joinid", "observation_joinid", *columns]).concat()
        row = pd.Index(order).get_indexer(table["soma_dim_0"].to_numpy())
        counts = _block(table, rows=row, n_rows=len(order), n_genes=self.n_genes, where=self._where)
        frame = _obs_frame(meta).set_index("soma_joinid")
        if not pd.Index(order).isin(frame.index).all():
            raise XmodalInputError("obs lacks rows that X holds", path=self.uri, fix=STORE_FIX)
        frame = frame.loc[order]
        take = np.searchsorted(order, positions)
        frame = frame.iloc[take]
        frame = frame.set_index(pd.Index(frame["observation_joinid"].astype(str), name="cell_id"))[list(columns)]
        return counts[take], frame

    def obs(self, columns: Sequence[str] | None = None) -> pd.DataFrame:
        """The whole ``obs`` table (small beside ``X``), indexed by ``observation_joinid``."""
        exp = self._open()
        cols = None if columns is None else [*OBS_COLUMNS, *columns]
        with _reading(self.uri, "obs"):
            frame = _obs_frame(exp.obs.read(column_names=cols).concat()).sort_values("soma_joinid")
        return frame.set_index("observation_joinid").drop(columns=["soma_joinid"])


def census_chunks(uri: str | Path, *, organism: str, obs_value_filter: str | None, columns: Sequence[str],
                  chunk_size: int = 10_000, var_value_filter: str | None = None
                  ) -> tuple[pd.DataFrame, int, Iterator[tuple[sp.csr_matrix, pd.DataFrame]]]:
    """Query a Census (or Census-shaped) collection through ``cellxgene_census`` and stream the result.

    :func:`census_source` with each block's ``obs`` rows beside its counts (see there for the parameters).

    Returns
    -------
    tuple
        ``(var, n_cells, chunks)``; ``chunks`` yields ``(counts CSR, obs)`` blocks.
    """
    var, obs, blocks = census_source(uri, organism=organism, obs_value_filter=obs_value_filter, columns=columns,
                                     chunk_size=chunk_size, var_value_filter=var_value_filter)

    def paired() -> Iterator[tuple[sp.csr_matrix, pd.DataFrame]]:
        start = 0
        for counts in blocks:
            yield counts, obs.iloc[start:start + counts.shape[0]]
            start += counts.shape[0]

    return var, len(obs), paired()


def census_source(uri: str | Path, *, organism: str, obs_value_filter: str | None, columns: Sequence[str],
                  chunk_size: int = 10_000, var_value_filter: str | None = None
                  ) -> tuple[pd.DataFrame, pd.DataFrame, Iterator[sp.csr_matrix]]:
    """Query a Census (or Census-shaped) collection through ``cellxgene_census``: the metadata, and the counts
    streamed in row blocks.

    Parameters
    ----------
    uri
        The collection's root (a local folder or an ``s3://`` URI of a Census release); never a version
        name, which would need the network to resolve.
    organism
        ``"Homo sapiens"`` or ``"homo_sapiens"`` (Census's experiment names).
    obs_value_filter, var_value_filter
        SOMA value filters, e.g. ``"tissue_general == 'blood' and is_primary_data == True"``.
    columns
        The ``obs`` columns to keep.
    chunk_size
        Cells per streamed block.

    Returns
    -------
    tuple
        ``(var, obs, blocks)``: genes (index ``feature_id``), the selected cells' ``columns`` (index: cell id, in
        ``soma_joinid`` order) and the counts of those cells, ``(≤ chunk_size, genes)`` CSR blocks in that order,
        in the dtype the collection stores, their coordinates checked (:func:`xmodal.data._sparse.checked_coords`;
        the ingest checks the values as counts).

    Raises
    ------
    XmodalInputError
        The collection cannot be opened, lacks the organism, ``obs``, ``var`` or ``X["raw"]`` (its layers are
        named), a column, or a fragment is unreadable; the query fails or selects no cell or no gene.
    """
    import cellxgene_census
    import tiledbsoma

    try:
        census = cellxgene_census.open_soma(uri=str(uri), tiledb_config={"soma.init_buffer_bytes": 64 * 1024**2})
    except Exception as exc:  # noqa: BLE001
        raise XmodalInputError(f"cannot open the Census collection ({type(exc).__name__}: {exc})", path=str(uri),
                               fix="point `source.uri` to a Census release root (census_data/, census_info/)") from None
    try:
        return _query(census, uri, organism=organism, obs_value_filter=obs_value_filter, columns=columns,
                      chunk_size=chunk_size, var_value_filter=var_value_filter, tiledbsoma=tiledbsoma)
    except BaseException:
        census.close()
        raise


def _query(census: Any, uri: str | Path, *, organism: str, obs_value_filter: str | None, columns: Sequence[str],
           chunk_size: int, var_value_filter: str | None, tiledbsoma: Any
           ) -> tuple[pd.DataFrame, pd.DataFrame, Iterator[sp.csr_matrix]]:
    name = organism.lower().replace(" ", "_")
    with _reading(uri, "census_data (the collection's experiments)", fix=COLLECTION_FIX):
        data = census["census_data"]
        names = sorted(data.keys())
    if name not in names:
        raise XmodalInputError(f"unknown organism {organism!r} (the collection has {', '.join(names)})",
                               path=str(uri), fix="set `source.organism` to one of those")
    with _reading(uri, f"census_data/{name}", fix=COLLECTION_FIX):
        exp = data[name]
    obs_part, _, _ = check_experiment(exp, f"{uri} (census_data/{name})", fix=COLLECTION_FIX)
    known = set(obs_part.schema.names)
    unknown = [c for c in columns if c not in known]
    if unknown:
        raise XmodalInputError(f"unknown obs column {unknown[0]!r}", path=str(uri),
                               fix=f"choose fields among: {', '.join(sorted(known - {'soma_joinid'}))}")
    try:
        query = exp.axis_query(MEASUREMENT, obs_query=tiledbsoma.AxisQuery(value_filter=obs_value_filter),
                               var_query=tiledbsoma.AxisQuery(value_filter=var_value_filter))
        n_cells = int(query.n_obs)
        n_genes = int(query.n_vars)
    except Exception as exc:  # noqa: BLE001 - a malformed filter (or a damaged store)
        raise XmodalInputError(f"the query failed ({type(exc).__name__}: {first_line(exc, limit=200)})",
                               path=str(uri), fix="check `source.obs_value_filter` and `source.var_value_filter` "
                               "(SOMA syntax: field == 'value' and ...); if they are right, the collection is "
                               "damaged") from None
    if n_cells == 0:
        raise XmodalInputError(f"the query selects no cells (obs_value_filter: {obs_value_filter!r})", path=str(uri),
                               fix="widen `source.obs_value_filter`")
    if n_genes == 0:
        raise XmodalInputError(f"the query selects no gene (var_value_filter: {var_value_filter!r})", path=str(uri),
                               fix="widen `source.var_value_filter` (e.g. feature_name in ['CD3E', ...]) or remove it")
    with _reading(uri, f"census_data/{name} ms[{MEASUREMENT!r}].var", fix=COLLECTION_FIX):
        var_frame = query.var(column_names=list(VAR_COLUMNS)).concat().to_pandas()
    var = var_frame.set_index(pd.Index(var_frame["feature_id"].astype(str), name="feature_id"))[["feature_name"]]
    var_pos = pd.Index(var_frame["soma_joinid"].to_numpy())
    with _reading(uri, f"census_data/{name} obs", fix=COLLECTION_FIX):
        obs = query.obs(column_names=[*OBS_COLUMNS, *columns]).concat().to_pandas()
    obs = obs.sort_values("soma_joinid")
    joinids = obs["soma_joinid"].to_numpy()
    frame = obs[list(columns)].set_index(pd.Index(obs["observation_joinid"].astype(str), name="cell_id"))
    where = Where(str(uri), matrix=f"census_data/{name} X[{LAYER!r}]", row_ids=frame.index, col_ids=var.index,
                  fix=COLLECTION_FIX)

    def blocks() -> Iterator[sp.csr_matrix]:
        try:
            for s in range(0, len(joinids), chunk_size):
                ids = joinids[s:s + chunk_size]
                with _reading(uri, f"census_data/{name} X[{LAYER!r}] (cells {s + 1}-{s + len(ids)} of the query)",
                              fix=COLLECTION_FIX):
                    table = exp.ms[MEASUREMENT].X[LAYER].read(coords=(ids, var_pos.to_numpy())).tables().concat()
                rows = pd.Index(ids).get_indexer(table["soma_dim_0"].to_numpy())
                cols = var_pos.get_indexer(table["soma_dim_1"].to_numpy())
                yield checked_coords(rows, cols, table["soma_data"].to_numpy(), shape=(len(ids), len(var_pos)),
                                     where=where.block(s), kind=None)  # values: the ingest checks every source's
        finally:
            census.close()

    return var, frame, blocks()
