"""One checker for every sparse matrix xmodal reads: the raw arrays, before a matrix is built or used.

A sparse matrix on disk is three arrays and a shape: compressed rows (``.h5ad``, ``.npz``; 10x ``.h5`` is the
same layout with one row per barcode), compressed columns (an ``.h5ad`` stored CSC), or coordinates (SOMA's
``soma_dim_0`` / ``soma_dim_1`` / ``soma_data``). scipy, anndata and numba trust those arrays: an ``indptr``
that decreases or points beyond the arrays, or an index beyond the shape, makes them read or write memory that
is not the matrix (garbage values, or a segfault). So every reader passes the raw arrays through this module
first, and only then builds a scipy matrix:

* **structure**: ``indptr`` of ``rows + 1`` integers, from 0, never decreasing, ending at the number of stored
  entries (as many ``indices`` as ``data``); indices (or coordinates) integers within the shape; each position
  stored once (scipy would silently add duplicates up);
* **dtype**: bool, integers and floats (float16/32/64) are read; complex, strings and objects are refused;
* **values**, by ``kind``: ``values`` (any real number), ``finite`` (no NaN/inf), ``nonnegative`` (also ≥ 0),
  ``counts`` (also integers); ``None`` leaves the values to a later check (a reader whose caller checks every
  block as counts, so that the error says what is wrong with a count);
* **conversion to float32** (what xmodal stores): a value float32 cannot hold is refused, never silently changed:
  a non-zero value that would become 0 (below 1.4e-45) or a finite one that would become infinite (above
  3.4e38), for every kind; for ``counts``, also an integer that float32 cannot hold exactly (above 2^24 =
  16 777 216, e.g. 16 777 217 would be stored as 16 777 216). Rounding a non-integer value in its last digits
  is float32's ordinary precision and is accepted.

A refusal is one :class:`~xmodal.errors.XmodalInputError` naming the file and the matrix, the first bad position
(row and column, 1-based, with the cell and gene ids when the reader knows them) and the fix. The checks are
vectorised numpy over slices of at most :data:`STEP` entries, so their memory is bounded whatever the matrix's
size; readers of large files call them one row block at a time.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp

from xmodal.errors import XmodalInputError

log = logging.getLogger(__name__)

#: stored entries checked at once (the temporaries of a check are a few arrays of this length)
STEP = 1 << 22
#: the largest integer float32 holds exactly: counts above it would change when stored
FLOAT32_EXACT = 2**24

Kind = Literal["values", "finite", "nonnegative", "counts"] | None
_KINDS = ("values", "finite", "nonnegative", "counts", None)

DAMAGED_FIX = ("the file is damaged or was not written by anndata, scipy or Cell Ranger: write it again from its "
               "source (e.g. AnnData.write_h5ad, scipy.sparse.save_npz)")


@dataclass(frozen=True)
class Where:
    """Where a matrix comes from, so that an error names the file and the cell and gene of a position.

    Attributes
    ----------
    path
        The file (or store) named in errors.
    matrix
        The matrix's name inside it, e.g. ``"X"``, ``"layers/raw"``, ``"matrix"``, ``"X['raw']"``.
    row_ids, col_ids
        Ids of the rows and columns (cells and genes) when known, indexed by absolute row / column.
    first_row
        Absolute row of the checked block's first row (readers that stream row blocks).
    rows, cols
        What a row and a column are (``"cell"``, ``"gene"``, ``"feature"`` ...).
    """

    path: str | Path | None
    matrix: str = "X"
    row_ids: Sequence[Any] | None = None
    col_ids: Sequence[Any] | None = None
    first_row: int = 0
    rows: str = "cell"
    cols: str = "gene"
    row_ids_start: int = 0
    fix: str | None = None

    def block(self, first_row: int) -> Where:
        """The same place, for a block starting at absolute row ``first_row``."""
        return replace(self, first_row=int(first_row))

    def _id(self, ids: Sequence[Any] | None, index: int) -> str | None:
        if ids is None or not 0 <= index < len(ids):
            return None
        value = ids[index]
        return value.decode(errors="replace") if isinstance(value, bytes) else str(value)

    def name(self, row: int | None = None, col: int | None = None) -> str:
        """``"cell 'c7', gene 'g3'"`` for a position of the block (ids where known, else 1-based numbers)."""
        parts = []
        if row is not None:
            r = self.first_row + row
            cid = self._id(self.row_ids, r - self.row_ids_start)
            parts.append(f"{self.rows} {cid!r}" if cid is not None else f"{self.rows} {r + 1}")
        if col is not None:
            gid = self._id(self.col_ids, col)
            parts.append(f"{self.cols} {gid!r}" if gid is not None else f"{self.cols} {col + 1}")
        return ", ".join(parts)

    def error(self, problem: str, *, row: int | None = None, col: int | None = None,
              fix: str = DAMAGED_FIX) -> XmodalInputError:
        """An error at a position of the block (``row``, ``col``: 0-based within the block)."""
        damage = problem.startswith(("is ", "has "))
        if damage:
            problem = f"{self.matrix or 'the matrix'} {problem}"
        elif self.matrix:
            problem = f"{self.matrix}: {problem}"
        return XmodalInputError(problem, path=self.path, row=None if row is None else self.first_row + row + 1,
                                column=None if col is None else col + 1, fix=self.fix or fix)


# ------------------------------------------------------------------------------------------- dtype
def check_dtype(dtype: Any, *, where: Where, what: str = "values") -> np.dtype:
    """Accept bool, integer and float ``dtype`` (returned as a numpy dtype); refuse complex, text and objects.

    Raises
    ------
    XmodalInputError
        Naming the matrix and the dtype found.
    """
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise where.error(f"its {what} have the type {dtype!r}, not numbers",
                          fix="store the matrix as integers or floats") from None
    if dt.kind in "biuf":
        return dt
    found = {"c": "complex numbers", "U": "text", "S": "bytes (text)", "O": "Python objects",
             "V": "raw records", "M": "dates", "m": "time spans"}.get(dt.kind, str(dt))
    fix = "store the matrix as integers or floats"
    if dt.kind == "c":
        fix += " (of a complex matrix, keep the real part, X.real, if that is what it measures)"
    raise where.error(f"its {what} are {found} ({dt}), not real numbers", fix=fix)


def _check_index_dtype(array: np.ndarray, *, where: Where, name: str) -> None:
    if array.dtype.kind not in "iu":
        raise where.error(f"its {name} are {array.dtype}, not integers")


# ------------------------------------------------------------------------------------------- values
def _fmt(value: Any) -> str:
    if isinstance(value, np.integer | int | np.bool_ | bool):
        return str(int(value))
    return repr(float(value))


def _bad_values(v: np.ndarray, kind: str) -> np.ndarray | None:
    """Mask of the values of one slice that ``kind`` refuses (``None``: none), conversion to float32 included."""
    bad = None

    def add(mask: np.ndarray) -> None:
        nonlocal bad
        bad = mask if bad is None else bad | mask

    if v.dtype.kind == "f":
        with np.errstate(invalid="ignore"):
            if kind == "counts":  # v - floor(v): 0 for integers, NaN for NaN and ±inf, else the fraction
                frac = np.floor(v)
                np.subtract(v, frac, out=frac)
                bad = frac != 0
                bad |= v < 0
            elif kind == "nonnegative":
                bad = ~(v >= 0)  # negative or NaN
                bad |= np.isinf(v)
            elif kind == "finite":
                bad = ~np.isfinite(v)
        if v.dtype.itemsize > 4:  # float64 and wider: what float32 would change, looked at where it can happen
            with np.errstate(over="ignore", under="ignore", invalid="ignore"):
                a = np.abs(v)
                suspect = (a > (FLOAT32_EXACT if kind == "counts" else 3e38)) | ((a < 1e-44) & (a != 0))
                if suspect.any():
                    where_ = np.flatnonzero(suspect)
                    f = v[where_].astype(np.float32)
                    changed = (np.isinf(f) & np.isfinite(v[where_])) | ((f == 0) & (v[where_] != 0))
                    if kind == "counts":
                        changed |= f.astype(v.dtype) != v[where_]
                    mask = np.zeros(len(v), dtype=bool)
                    mask[where_[changed]] = True
                    add(mask)
    elif v.dtype.kind in "iu":
        if kind in ("nonnegative", "counts") and v.dtype.kind == "i":
            add(v < 0)
        if kind == "counts" and v.dtype.itemsize >= 4:
            big = np.abs(v.astype(np.float64)) > FLOAT32_EXACT
            if big.any():
                exact = np.zeros(len(v), dtype=bool)
                for k in np.flatnonzero(big):  # rare: compared as Python integers (no int64 overflow)
                    exact[k] = int(np.float32(v[k])) == int(v[k])
                add(big & ~exact)
    return None if bad is None or not bad.any() else bad


def _reason(value: Any, kind: str, at: str) -> tuple[str, str]:
    """Why ``value`` (of the position ``at``) is refused, and the fix."""
    counts = kind == "counts"
    what = f"{'count' if counts else 'value'} {_fmt(value)} of {at}" if at else f"{'count' if counts else 'value'} " \
        f"{_fmt(value)}"
    fix_counts = "give raw UMI counts (Census layer `raw`), not normalised values"
    if isinstance(value, np.floating | float):
        v = float(value)
        if not np.isfinite(v):
            return (f"{what} is not finite",
                    fix_counts if counts else "replace NaN/infinite values by finite numbers or drop the cell")
        if v < 0 and kind in ("nonnegative", "counts"):
            return f"{what} is negative", fix_counts if counts else "give non-negative values"
        if counts and v != round(v):
            return f"{what} is not an integer", fix_counts
        with np.errstate(over="ignore", under="ignore"):
            f = np.float32(v)
        if np.isinf(f):
            return (f"{what} would become infinite in float32 (the largest is 3.4e38)",
                    "rescale the values (e.g. log-transform them) before ingest")
        if f == 0:
            return (f"{what} would become 0 in float32 (the smallest non-zero is 1.4e-45)",
                    "set values this small to 0, or rescale the matrix, before ingest")
    elif value < 0:
        return f"{what} is negative", fix_counts if counts else "give non-negative values"
    return (f"{what} is beyond what float32 holds exactly (2^24 = 16777216): it would be stored as "
            f"{_fmt(np.float32(value))}", "check the matrix: a count this large for one cell and gene is not a UMI "
            "count (give raw counts)")


def check_values(data: np.ndarray, *, kind: Kind, where: Where,
                 locate: Callable[[int], tuple[int | None, int | None]]) -> None:
    """Refuse the first stored value ``kind`` does not allow (see the module docstring), in slices of :data:`STEP`.

    Parameters
    ----------
    data
        The stored values (any shape is flattened in C order).
    kind
        ``values``, ``finite``, ``nonnegative`` or ``counts`` (``None``: the dtype only).
    where
        Names the file and the matrix.
    locate
        Maps a position in ``data`` to ``(row, col)`` of the block (0-based; ``None`` when unknown).

    Raises
    ------
    XmodalInputError
        At the first refused value, naming its cell and gene.
    """
    if kind not in _KINDS:
        raise ValueError(f"kind must be one of {_KINDS}, not {kind!r}")
    data = np.asarray(data).reshape(-1)
    check_dtype(data.dtype, where=where)
    if kind is None or data.dtype.kind == "b" or len(data) == 0:
        return
    if data.dtype.kind in "iu" and kind != "counts" and not (kind == "nonnegative" and data.dtype.kind == "i"):
        return  # integers are finite; float32 holds them within its precision
    if data.dtype.kind == "f" and kind == "values" and data.dtype.itemsize <= 4:
        return
    for start in range(0, len(data), STEP):
        bad = _bad_values(data[start:start + STEP], kind)
        if bad is not None:
            pos = start + int(np.argmax(bad))
            row, col = locate(pos)
            problem, fix = _reason(data[pos], kind, where.name(row, col))
            raise where.error(problem, row=row, col=col, fix=fix)


# ------------------------------------------------------------------------------------------- structure
def _rows_of(indptr: np.ndarray, positions: np.ndarray | int) -> np.ndarray | int:
    """Major index (row of CSR) of stored positions, given a valid ``indptr`` starting at 0."""
    return np.searchsorted(indptr, positions, side="right") - 1


def check_indptr(indptr: np.ndarray, *, n_major: int, n_stored: int | None, where: Where, axis: str = "rows",
                 block: bool = False) -> np.ndarray:
    """Check a compressed matrix's ``indptr`` (of a whole matrix, or of a row block when ``block``).

    Parameters
    ----------
    indptr
        ``n_major + 1`` integers.
    n_major
        Rows (``axis="rows"``, CSR) or columns (``axis="cols"``, CSC).
    n_stored
        Stored entries of the whole matrix (``len(indices)``), when known.
    block
        ``indptr`` is a slice of a larger one: it need not start at 0 nor end at ``n_stored``.

    Returns
    -------
    numpy.ndarray
        ``indptr`` as int64, shifted to start at 0 (positions within the block's entries).

    Raises
    ------
    XmodalInputError
        A wrong length, a negative or decreasing pointer, one beyond the stored entries; the error names the
        first bad row (or column).
    """
    ip = np.asarray(indptr)
    _check_index_dtype(ip, where=where, name="index pointers (indptr)")
    ip = ip.astype(np.int64, copy=False).reshape(-1)
    unit = where.rows if axis == "rows" else where.cols

    def at(i: int) -> dict[str, Any]:
        return {"row": i} if axis == "rows" else {"col": i}

    def name(i: int) -> str:
        return where.name(row=i) if axis == "rows" else where.name(col=i)

    if len(ip) != n_major + 1:
        raise where.error(f"is damaged: its index pointer (indptr) has {len(ip)} entries for {n_major} {unit}s "
                          f"(needs {n_major + 1})")
    if n_major == 0:
        return ip - ip[0]
    if ip[0] < 0 or (not block and ip[0] != 0):
        raise where.error(f"is damaged: its index pointer (indptr) starts at {int(ip[0])}, not 0", **at(0))
    steps = np.diff(ip)
    if (steps < 0).any():
        i = int(np.argmax(steps < 0))
        raise where.error(f"is damaged: its index pointer (indptr) decreases at {name(i)} (from {int(ip[i])} to "
                          f"{int(ip[i + 1])})", **at(i))
    if n_stored is not None and (ip[-1] > n_stored or (not block and ip[-1] != n_stored)):
        i = int(np.argmax(ip[1:] > n_stored)) if ip[-1] > n_stored else n_major - 1
        raise where.error(f"is damaged: its index pointer (indptr) points to entry {int(ip[i + 1])} at "
                          f"{name(i)}, but {n_stored} entries are stored", **at(i))
    return ip - ip[0]


def check_indices(indices: np.ndarray, indptr: np.ndarray, *, n_minor: int, where: Where,
                  axis: str = "rows") -> None:
    """Check the minor indices of a compressed block: integers within ``[0, n_minor)``, each at most once per row.

    Parameters
    ----------
    indices
        The block's stored indices (``indptr[-1]`` of them).
    indptr
        The block's index pointer, from 0 (as :func:`check_indptr` returns it).
    n_minor
        Columns (CSR) or rows (CSC).

    Raises
    ------
    XmodalInputError
        At the first index outside the shape, or the first position stored twice.
    """
    idx = np.asarray(indices).reshape(-1)
    _check_index_dtype(idx, where=where, name="indices")
    minor = where.cols if axis == "rows" else where.rows

    def pos(major: int, minor_i: int | None) -> dict[str, Any]:
        return {"row": major, "col": minor_i} if axis == "rows" else {"row": minor_i, "col": major}

    if len(idx) != int(indptr[-1]):
        raise where.error(f"is damaged: {len(idx)} indices for {int(indptr[-1])} stored entries")
    # signed indices seen unsigned: a negative one becomes huge, so one comparison finds both ends
    flat_view = idx.view(idx.dtype.str.replace("i", "u")) if idx.dtype.kind == "i" else idx
    for start in range(0, len(idx), STEP):
        bad = flat_view[start:start + STEP] >= n_minor
        if bad.any():
            k = start + int(np.argmax(bad))
            major = int(_rows_of(indptr, k))
            name = where.name(row=major) if axis == "rows" else where.name(col=major)
            raise where.error(f"is damaged: stored entry {k + 1} ({name}) has {minor} index {int(idx[k])}, outside "
                              f"the {n_minor} {minor}s of its shape", **pos(major, None))
    # each position once: within a row the indices must differ (sorted rows: strictly increasing)
    if len(idx) < 2:
        return
    firsts = indptr[:-1][np.diff(indptr) > 0]  # where each non-empty row begins
    unsorted = None
    for start in range(1, len(idx), STEP):
        stop = min(len(idx), start + STEP)
        flat = idx[start:stop] <= idx[start - 1:stop - 1]
        lo, hi = np.searchsorted(firsts, [start, stop])
        flat[firsts[lo:hi] - start] = False  # a row's first entry may be below the previous row's last
        if flat.any():
            unsorted = start + int(np.argmax(flat))
            break
    if unsorted is None:
        return
    # some row is not strictly increasing: sort the entries of the rows from there on (rare) and look for repeats
    first_major = int(_rows_of(indptr, unsorted))
    lo = int(indptr[first_major])
    majors = np.repeat(np.arange(first_major, len(indptr) - 1), np.diff(indptr[first_major:]))
    order = np.lexsort((idx[lo:], majors))
    keys_major, keys_minor = majors[order], idx[lo:][order]
    same = (np.diff(keys_major) == 0) & (np.diff(keys_minor.astype(np.int64)) == 0)
    if same.any():
        k = int(np.argmax(same))
        major, minor_i = int(keys_major[k]), int(keys_minor[k])
        p, q = sorted((lo + int(order[k]), lo + int(order[k + 1])))
        args = pos(major, minor_i)
        raise where.error(f"is damaged: {where.name(args['row'], args['col'])} is stored twice (entries {p + 1} and "
                          f"{q + 1}), which would be added up", **args,
                          fix="store each position once (scipy: matrix.sum_duplicates() if adding them up is what "
                          "you mean), then write the file again")


def checked_compressed(data: np.ndarray, indices: np.ndarray, indptr: np.ndarray, *, shape: tuple[int, int],
                       where: Where, kind: Kind = "values", fmt: str = "csr", n_stored: int | None = None,
                       block: bool = False) -> sp.csr_matrix | sp.csc_matrix:
    """Check the raw arrays of a CSR (or CSC) matrix or row block, then build it (values in their own dtype).

    Parameters
    ----------
    data, indices, indptr
        The raw arrays (of a row block: ``indptr`` is its slice, ``data`` and ``indices`` the entries it points to).
    shape
        ``(rows, cols)`` of the matrix (of the block).
    where
        Names the file, the matrix and the ids.
    kind
        The values' check (:func:`check_values`).
    fmt
        ``"csr"`` or ``"csc"``.
    n_stored
        Stored entries of the whole matrix, when ``block``.
    block
        The arrays are a row block of a larger matrix.

    Returns
    -------
    scipy.sparse.csr_matrix or csc_matrix
        Built only once every check passed.

    Raises
    ------
    XmodalInputError
        The first problem (structure, dtype, value), with its position.
    """
    if fmt not in ("csr", "csc"):
        raise where.error(f"is stored as {fmt}, not CSR or CSC", fix="store it as CSR (scipy.sparse.csr_matrix)")
    n_rows, n_cols = _shape(shape, where)
    axis = "rows" if fmt == "csr" else "cols"
    n_major, n_minor = (n_rows, n_cols) if fmt == "csr" else (n_cols, n_rows)
    data = np.asarray(data).reshape(-1)
    indices = np.asarray(indices).reshape(-1)
    check_dtype(data.dtype, where=where)
    if len(data) != len(indices):
        raise where.error(f"is damaged: {len(data)} stored values for {len(indices)} indices")
    ip = check_indptr(indptr, n_major=n_major, n_stored=len(indices) if n_stored is None else n_stored,
                      where=where, axis=axis, block=block)
    if block and int(ip[-1]) != len(indices):
        raise where.error(f"is damaged: the block points to {int(ip[-1])} entries, {len(indices)} were read")
    check_indices(indices, ip, n_minor=n_minor, where=where, axis=axis)

    def locate(p: int) -> tuple[int | None, int | None]:
        major, minor = int(_rows_of(ip, p)), int(indices[p])
        return (major, minor) if fmt == "csr" else (minor, major)

    check_values(data, kind=kind, where=where, locate=locate)
    cls = sp.csr_matrix if fmt == "csr" else sp.csc_matrix
    index_dtype = np.int32 if max(len(indices), n_minor, n_major) < 2**31 - 1 else np.int64
    return cls((data, indices.astype(index_dtype, copy=False), ip.astype(index_dtype, copy=False)),
               shape=(n_rows, n_cols), copy=False)


def _shape(shape: Any, where: Where) -> tuple[int, int]:
    try:
        dims = [int(s) for s in np.asarray(shape).reshape(-1)]
    except (TypeError, ValueError):
        raise where.error(f"is damaged: its shape {shape!r} is not two integers") from None
    if len(dims) != 2 or min(dims) < 0:
        raise where.error(f"is damaged: its shape {tuple(dims)} is not two non-negative integers")
    return dims[0], dims[1]


def checked_coords(rows: np.ndarray, cols: np.ndarray, data: np.ndarray, *, shape: tuple[int, int], where: Where,
                   kind: Kind = "values") -> sp.csr_matrix:
    """Check coordinates and values of a COO matrix (a SOMA read, a ``.npz`` in COO), then build it as CSR.

    Parameters
    ----------
    rows, cols
        0-based positions in the block (a negative one: a coordinate the reader could not place).
    data
        The values.
    shape
        ``(rows, cols)`` of the block.

    Returns
    -------
    scipy.sparse.csr_matrix
        In the values' dtype, rows sorted.

    Raises
    ------
    XmodalInputError
        A coordinate outside the shape, a position stored twice, a dtype or value refused.
    """
    n_rows, n_cols = _shape(shape, where)
    rows, cols, data = (np.asarray(a).reshape(-1) for a in (rows, cols, data))
    _check_index_dtype(rows, where=where, name="row coordinates")
    _check_index_dtype(cols, where=where, name="column coordinates")
    check_dtype(data.dtype, where=where)
    if not len(rows) == len(cols) == len(data):
        raise where.error(f"is damaged: {len(rows)} row and {len(cols)} column coordinates for {len(data)} values")
    for start in range(0, len(rows), STEP):
        r, c = rows[start:start + STEP], cols[start:start + STEP]
        bad = (r < 0) | (r >= n_rows) | (c < 0) | (c >= n_cols)
        if bad.any():
            k = start + int(np.argmax(bad))
            ri, ci = int(rows[k]), int(cols[k])
            row_ok, col_ok = 0 <= ri < n_rows, 0 <= ci < n_cols
            what = (f"{where.rows} position {ri}, outside its {n_rows} {where.rows}s" if not row_ok else
                    f"{where.cols} position {ci}, outside its {n_cols} {where.cols}s")
            raise where.error(f"is damaged: stored entry {k + 1} has {what}", row=ri if row_ok else None,
                              col=ci if col_ok else None)
    order = np.lexsort((cols, rows)) if len(rows) > 1 else np.arange(len(rows))
    rows, cols, data = rows[order], cols[order], data[order]
    if len(rows) > 1:
        same = (np.diff(rows.astype(np.int64)) == 0) & (np.diff(cols.astype(np.int64)) == 0)
        if same.any():
            k = int(np.argmax(same))
            raise where.error(f"is damaged: {where.name(int(rows[k]), int(cols[k]))} is stored twice",
                              row=int(rows[k]), col=int(cols[k]))
    check_values(data, kind=kind, where=where, locate=lambda p: (int(rows[p]), int(cols[p])))
    indptr = np.zeros(n_rows + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=n_rows), out=indptr[1:])
    index_dtype = np.int32 if max(len(data), n_cols, n_rows) < 2**31 - 1 else np.int64
    return sp.csr_matrix((data, cols.astype(index_dtype), indptr.astype(index_dtype)), shape=(n_rows, n_cols),
                         copy=False)


# ------------------------------------------------------------------------------------------- matrices in memory
def check_matrix(x: Any, *, where: Where, kind: Kind = "values") -> None:
    """Check a matrix already in memory (sparse: its raw arrays; dense: dtype and values) before it is used.

    scipy builds CSR/CSC/COO matrices from arrays without checking them in full, so a matrix anndata, mudata or
    scanpy read from a damaged file must pass here before any operation touches it.

    Raises
    ------
    XmodalInputError
        As :func:`checked_compressed` / :func:`checked_coords`; a format whose arrays xmodal does not check
        (BSR, DIA) is refused.
    """
    if sp.issparse(x):
        fmt = x.format
        if fmt in ("csr", "csc"):
            checked_compressed(x.data, x.indices, x.indptr, shape=x.shape, where=where, kind=kind, fmt=fmt)
        elif fmt == "coo":
            checked_coords(x.row if hasattr(x, "row") else x.coords[0], x.col if hasattr(x, "col") else x.coords[1],
                           x.data, shape=x.shape, where=where, kind=kind)
        elif fmt in ("lil", "dok"):
            check_matrix(x.tocsr(), where=where, kind=kind)
        else:
            raise where.error(f"is a {fmt.upper()} sparse matrix, which xmodal does not read",
                              fix="store it as CSR (scipy.sparse.csr_matrix)")
        return
    arr = np.asarray(x)
    if arr.ndim != 2:
        raise where.error(f"has {arr.ndim} dimensions, not 2 (cells × features)")
    width = max(arr.shape[1], 1)
    check_values(arr, kind=kind, where=where, locate=lambda p: divmod(p, width))


def float32_csr(x: Any, *, where: Where, kind: Kind = "values") -> sp.csr_matrix:
    """:func:`check_matrix`, then ``x`` as a float32 CSR matrix (values unchanged: the check refuses any that
    float32 cannot hold)."""
    check_matrix(x, where=where, kind=kind)
    return sp.csr_matrix(x, dtype=np.float32)


# ------------------------------------------------------------------------------------------- HDF5 (anndata, 10x)
@dataclass(frozen=True)
class H5Sparse:
    """A CSR/CSC matrix stored in an HDF5 group (anndata's encoding, or 10x's ``matrix``), its layout checked.

    Attributes
    ----------
    group
        The open ``h5py.Group`` (``data``, ``indices``, ``indptr``).
    fmt
        ``"csr"`` or ``"csc"``.
    shape
        ``(rows, cols)``.
    n_stored
        Stored entries.
    where
        Names the file and the matrix.
    """

    group: Any
    fmt: str
    shape: tuple[int, int]
    n_stored: int
    where: Where

    def rows(self, start: int, stop: int, *, kind: Kind = "values") -> sp.csr_matrix:
        """Rows ``start … stop - 1`` (CSR only), read and checked: only that block's entries are read.

        Raises
        ------
        XmodalInputError
            As :func:`checked_compressed`, positions named in the whole matrix.
        """
        if self.fmt != "csr":
            raise self.where.error("is not stored as CSR, so it cannot be read in row blocks",
                                   fix="store it sparse by rows: adata.X = scipy.sparse.csr_matrix(adata.X); "
                                   "adata.write_h5ad(...)")
        where = self.where.block(start)
        ip = _read(self.group, "indptr", where, slice(start, stop + 1))
        check_indptr(ip, n_major=stop - start, n_stored=self.n_stored, where=where, block=True)  # before slicing
        lo, hi = int(ip[0]), int(ip[-1])
        data = _read(self.group, "data", where, slice(lo, hi))
        indices = _read(self.group, "indices", where, slice(lo, hi))
        return checked_compressed(data, indices, ip, shape=(stop - start, self.shape[1]), where=where, kind=kind,
                                  n_stored=self.n_stored, block=True)

    def check(self, *, kind: Kind = "values", rows_per_block: int = 100_000) -> None:
        """Check the whole matrix: CSR one row block at a time; CSC at once (it cannot be cut into row blocks, and
        whoever reads it holds it whole anyway)."""
        if self.fmt == "csr":
            for s in range(0, self.shape[0], rows_per_block):
                self.rows(s, min(self.shape[0], s + rows_per_block), kind=kind)
            return
        checked_compressed(_read(self.group, "data", self.where), _read(self.group, "indices", self.where),
                           _read(self.group, "indptr", self.where), shape=self.shape, where=self.where, kind=kind,
                           fmt="csc")


def _read(group: Any, name: str, where: Where, part: slice | None = None) -> np.ndarray:
    """One dataset of ``group`` (or a slice of it), with a clear error when it is missing or unreadable."""
    import h5py

    node = group.get(name)
    if not isinstance(node, h5py.Dataset):
        raise where.error(f"is damaged: it has no `{name}` array")
    try:
        return node[()] if part is None else node[part]
    except Exception as exc:  # noqa: BLE001 - h5py raises OSError, TypeError, ValueError ... for damaged data
        raise where.error(f"is damaged: its `{name}` array cannot be read ({type(exc).__name__}: {exc})") from None


def h5_sparse(group: Any, *, where: Where, shape: tuple[int, int] | None = None, fmt: str | None = None
              ) -> H5Sparse:
    """The layout of a sparse matrix stored in an HDF5 group, checked without reading its entries.

    Parameters
    ----------
    group
        anndata's sparse encoding (attributes ``encoding-type`` csr_matrix / csc_matrix and ``shape``), or a
        group with ``data``, ``indices``, ``indptr`` whose ``shape`` and ``fmt`` the caller gives (10x).
    where
        Names the file and the matrix.

    Raises
    ------
    XmodalInputError
        Not a sparse group, a missing array, lengths that disagree, an ``indptr`` that does not start at 0 and
        end at the number of stored entries, a refused dtype.
    """
    import h5py

    if not isinstance(group, h5py.Group):
        raise where.error("is a dense array, not a sparse matrix")
    if fmt is None:
        encoding = group.attrs.get("encoding-type")
        encoding = encoding.decode() if isinstance(encoding, bytes) else encoding
        if encoding not in ("csr_matrix", "csc_matrix"):
            raise where.error(f"is stored as {encoding or 'an unknown encoding'}, not a CSR or CSC sparse matrix",
                              fix="write it with anndata (AnnData.write_h5ad), X sparse (scipy.sparse.csr_matrix)")
        fmt = encoding[:3]
    if shape is None:
        shape = group.attrs.get("shape")
        if shape is None:
            raise where.error("is damaged: it has no `shape` attribute")
    rows, cols = _shape(shape, where)
    nodes = {}
    for name in ("data", "indices", "indptr"):
        node = group.get(name)
        if not isinstance(node, h5py.Dataset) or node.ndim != 1:
            raise where.error(f"is damaged: it has no one-dimensional `{name}` array")
        nodes[name] = node
    check_dtype(nodes["data"].dtype, where=where)
    _check_index_dtype(np.empty(0, nodes["indices"].dtype), where=where, name="indices")
    _check_index_dtype(np.empty(0, nodes["indptr"].dtype), where=where, name="index pointers (indptr)")
    n_stored = int(nodes["indices"].shape[0])
    if int(nodes["data"].shape[0]) != n_stored:
        raise where.error(f"is damaged: {nodes['data'].shape[0]} stored values for {n_stored} indices")
    n_major = rows if fmt == "csr" else cols
    unit = where.rows if fmt == "csr" else where.cols
    if int(nodes["indptr"].shape[0]) != n_major + 1:
        raise where.error(f"is damaged: its index pointer (indptr) has {nodes['indptr'].shape[0]} entries for "
                          f"{n_major} {unit}s (needs {n_major + 1})")
    ends = _read(group, "indptr", where, slice(None)) if n_major < 2 else np.concatenate(
        [_read(group, "indptr", where, slice(0, 1)), _read(group, "indptr", where, slice(n_major, n_major + 1))])
    ends = np.asarray(ends, dtype=np.int64)
    if int(ends[0]) != 0:
        raise where.error(f"is damaged: its index pointer (indptr) starts at {int(ends[0])}, not 0")
    if int(ends[-1]) != n_stored:
        last = {"row": n_major - 1} if fmt == "csr" else {"col": n_major - 1}
        raise where.error(f"is damaged: its index pointer (indptr) ends at {int(ends[-1])}, but {n_stored} entries "
                          "are stored", **(last if n_major else {}))
    return H5Sparse(group=group, fmt=fmt, shape=(rows, cols), n_stored=n_stored, where=where)


def _h5_index(fh: Any, key: str) -> list[str] | None:
    """The index (cell or feature ids) of an anndata dataframe group, for naming positions; ``None`` if unreadable."""
    try:
        group = fh.get(key)
        name = group.attrs.get("_index") if group is not None else None
        if name is None:
            return None
        name = name.decode() if isinstance(name, bytes) else str(name)
        return [v.decode(errors="replace") if isinstance(v, bytes) else str(v) for v in group[name][()]]
    except Exception:  # noqa: BLE001 - only names positions: a damaged index is the reader's to report
        return None


def check_h5_file(path: str | Path, *, kind: Kind = "values", rows: str = "cell", cols: str = "feature") -> None:
    """Check every matrix anndata or mudata would read from an ``.h5ad`` / ``.h5mu`` before they read it: ``X``, and
    ``X`` of each modality under ``mod/``.

    A sparse matrix is checked in row blocks (structure, dtype, values of ``kind``); a dense one only its dtype
    (its values are checked once read). A file that is not HDF5, or has no such matrix, is left to the reader's
    own error.

    Raises
    ------
    XmodalInputError
        Naming the file, the matrix (``X``, ``mod/rna/X``) and the first bad position.
    """
    import h5py

    try:
        fh = h5py.File(path, "r")
    except Exception:  # noqa: BLE001 - not HDF5 at all: the reader's own error says so
        return
    with fh:
        keys = ["X"]
        mods = fh.get("mod")
        if isinstance(mods, h5py.Group):
            keys += [f"mod/{name}/X" for name in mods]
        for key in keys:
            try:
                node = fh.get(key)
            except Exception:  # noqa: BLE001 - a damaged link: the reader's own error says so
                continue
            if node is None:
                continue
            parent = key.rsplit("/", 1)[0] + "/" if "/" in key else ""
            where = Where(path, matrix=key, rows=rows, cols=cols, row_ids=_h5_index(fh, parent + "obs"),
                          col_ids=_h5_index(fh, parent + "var"))
            if isinstance(node, h5py.Dataset):
                check_dtype(node.dtype, where=where)
                continue
            encoding = node.attrs.get("encoding-type")
            if (encoding.decode() if isinstance(encoding, bytes) else encoding) in ("csr_matrix", "csc_matrix"):
                h5_sparse(node, where=where).check(kind=kind)


__all__ = ["DAMAGED_FIX", "FLOAT32_EXACT", "STEP", "H5Sparse", "Kind", "Where", "check_dtype", "check_h5_file",
           "check_indices", "check_indptr", "check_matrix", "check_values", "checked_compressed", "checked_coords",
           "float32_csr", "h5_sparse"]
