"""Reading tables that users give (CSV with or without header, annotations) with errors that name the line.

Shared by the families' readers. Row numbers in the errors are 1-based *line numbers* as a user sees them in
an editor or a spreadsheet: the header is line 1 and the first data row is line 2 (in a file without header
the first data row is line 1). Blank lines count as lines. Columns are reported by their header name, or by
their 1-based position in the file (the id column being column 1) when the file has no header row.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from xmodal.errors import XmodalInputError

log = logging.getLogger(__name__)

_HeaderMode = Literal["yes", "no", "auto", "required"]
_MISSING_TOKENS = frozenset({"na", "n/a", "nan", "-nan", "+nan", "null", "none", "missing"})
#: label values that mean "no label" (a blank label must not become a class of its own)
_BLANK_LABELS = frozenset({"", "na", "n/a", "nan", "-nan", "null"})
_DIGITS = re.compile(r"\d+")
_PARSER_FIELDS = re.compile(r"Expected (\d+) fields in line (\d+), saw (\d+)")


# --------------------------------------------------------------------------------------------
# low-level CSV handling
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Table:
    """A CSV table split into ids, column names and raw string cells.

    ``lines[i]`` is the 1-based line number of data row ``i`` in the file.
    """

    path: Path
    role: str
    ids: list[str]
    lines: np.ndarray
    columns: list[str]
    cells: np.ndarray
    has_header: bool

    @property
    def n_rows(self) -> int:
        return len(self.ids)

    def column_label(self, j: int) -> int | str:
        """How to name value column ``j`` in an error: header name, else 1-based file column."""
        return self.columns[j] if self.has_header else j + 2


def resolve(path: Path, root: Path) -> Path:
    path = Path(path)
    return path if path.is_absolute() else Path(root) / path


def check_file(path: Path, role: str, root: Path) -> None:
    """Raise if ``path`` is missing, not a file or 0 bytes long."""
    if not path.exists():
        raise XmodalInputError(
            f"{role}: file not found",
            path=path,
            fix=(
                f"check `source.{role}` in params.yaml (relative paths are resolved against "
                f"{Path(root).resolve()}) and that the file was pulled (`dvc pull`)"
            ),
        )
    if not path.is_file():
        raise XmodalInputError(
            f"{role}: not a regular file", path=path, fix=f"point `source.{role}` to a file"
        )
    if not os.access(path, os.R_OK):
        raise XmodalInputError(f"{role}: cannot read the file (permission denied)", path=path,
                               fix="give the user running xmodal read access to it")
    if path.stat().st_size == 0:
        raise XmodalInputError(
            f"{role}: empty file (0 bytes)",
            path=path,
            fix="re-export the file; it must hold a header row and at least one data row",
        )


def _read_raw(path: Path, role: str) -> tuple[np.ndarray, np.ndarray]:
    """Read every cell as a string; return ``(cells, line_numbers)`` without blank lines."""
    try:
        frame = pd.read_csv(
            path,
            header=None,
            dtype=str,
            keep_default_na=False,
            na_filter=False,
            skip_blank_lines=False,
            encoding="utf-8-sig",
        )
    except pd.errors.EmptyDataError:
        raise XmodalInputError(
            f"{role}: empty file (no rows)",
            path=path,
            fix="re-export the file; it must hold a header row and at least one data row",
        ) from None
    except pd.errors.ParserError as exc:
        m = _PARSER_FIELDS.search(str(exc))
        if m:
            raise XmodalInputError(
                f"{role}: line has {m[3]} fields but the lines above have {m[1]}",
                path=path,
                row=int(m[2]),
                fix=(
                    "every line needs the same number of comma-separated fields; look for a "
                    "stray comma or unquoted text that contains a comma"
                ),
            ) from None
        raise XmodalInputError(
            f"{role}: not a readable CSV file ({exc})",
            path=path,
            fix="save the file as comma-separated values (UTF-8)",
        ) from None
    except UnicodeDecodeError as exc:
        raise XmodalInputError(
            f"{role}: not UTF-8 text ({exc.reason} at byte {exc.start})",
            path=path,
            fix="save the file as comma-separated values in UTF-8 encoding",
        ) from None
    except OSError as exc:
        raise XmodalInputError(f"{role}: cannot read the file ({exc.strerror or exc})", path=path,
                               fix="check that the file is readable and complete") from None
    cells = frame.to_numpy(dtype=object)
    if cells.size == 0:
        return cells.reshape(0, max(cells.shape[1], 1)), np.zeros(0, dtype=int)
    blank = (frame.iloc[:, 0].str.strip() == "").to_numpy()
    if cells.shape[1] > 1:
        blank &= (frame.iloc[:, 1:] == "").all(axis=1).to_numpy()
    lines = np.flatnonzero(~blank) + 1
    return cells[~blank], lines


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _looks_like_header(first: Sequence[str], other_ids: Sequence[str]) -> bool:
    """Decide whether ``first`` (stripped cells of line 1) is a header row.

    It is a header when at least half of its non-empty cells after the id are not numbers,
    when its id cell is empty (the index header pandas writes), or when its cells after the id
    are the ids of the following rows (a square distance matrix such as a GW matrix).
    """
    values = list(first[1:])
    nonempty = [c for c in values if c]
    if not nonempty:
        return True
    n_text = sum(not _is_number(c) for c in nonempty)
    if n_text > 0 and 2 * n_text >= len(nonempty):
        return True
    if first[0] == "":
        return True
    return len(values) == len(other_ids) and list(values) == list(other_ids)


def _no_data_error(path: Path, role: str, what: str) -> XmodalInputError:
    return XmodalInputError(
        f"{role}: empty file ({what})",
        path=path,
        fix="the file needs at least one data row below its header; re-export it",
    )


def read_table(
    path: Path,
    role: str,
    *,
    header: _HeaderMode,
    noun: str = "cell id",
    prefix: str = "feature_",
) -> Table:
    """Read an id-first CSV table and check its structure (not its values).

    ``header``: ``"yes"``/``"no"`` trust the caller, ``"auto"`` detects, ``"required"`` detects
    and raises when line 1 looks like data.
    """
    raw, lines = _read_raw(path, role)
    if raw.shape[0] == 0:
        raise _no_data_error(path, role, "only blank lines")
    if raw.shape[1] < 2:
        hint = ""
        if any(sep in str(raw[0, 0]) for sep in ("\t", ";")):
            hint = "; the file seems to use tabs or semicolons, save it as comma-separated"
        raise XmodalInputError(
            f"{role}: no feature columns (only one column: the id)",
            path=path,
            fix=f"the first column must hold the {noun}s and the other columns the values{hint}",
        )
    first = [str(c).strip() for c in raw[0]]
    if header == "yes":
        has_header = True
    elif header == "no":
        has_header = False
    else:
        has_header = _looks_like_header(first, [str(c).strip() for c in raw[1:, 0]])
        if header == "required" and not has_header:
            raise XmodalInputError(
                f"{role} needs a header row with feature names; line 1 holds numbers only, "
                "so it looks like a data row",
                path=path,
                row=int(lines[0]),
                fix=(
                    "add a header row as line 1: an id column name followed by one name per "
                    "feature column (for a distance matrix: the cell ids)"
                ),
            )
    if has_header:
        id_name, columns = first[0], first[1:]
        data, data_lines = raw[1:], lines[1:]
        if data.shape[0] == 0:
            raise _no_data_error(path, role, "header only, no data rows")
        seen: dict[str, int] = {}
        for j, name in enumerate(columns):
            if name == "":
                raise XmodalInputError(
                    f"{role}: column {j + 2} has no name in the header row",
                    path=path,
                    row=int(lines[0]),
                    column=j + 2,
                    fix="give every column a name in the header row (or remove an empty column, "
                    "e.g. from a trailing comma)",
                )
            if name in seen:
                raise XmodalInputError(
                    f"{role}: duplicate column name {name!r} (columns {seen[name] + 2} and {j + 2})",
                    path=path,
                    row=int(lines[0]),
                    column=name,
                    fix="rename or remove one of the duplicated columns",
                )
            seen[name] = j
    else:
        id_name, columns = "", [f"{prefix}{j}" for j in range(raw.shape[1] - 1)]
        data, data_lines = raw, lines
    id_column: int | str = id_name if (has_header and id_name) else 1
    ids = [str(c).strip() for c in data[:, 0]]
    first_seen: dict[str, int] = {}
    for i, cid in enumerate(ids):
        if cid == "":
            raise XmodalInputError(
                f"{role}: empty {noun}",
                path=path,
                row=int(data_lines[i]),
                column=id_column,
                fix=f"give every row a {noun} in the first column",
            )
        if cid in first_seen:
            raise XmodalInputError(
                f"{role}: duplicate {noun} {cid!r} (lines {data_lines[first_seen[cid]]} and "
                f"{data_lines[i]})",
                path=path,
                row=int(data_lines[i]),
                column=id_column,
                fix=f"every {noun} must be unique; remove or rename the repeated row",
            )
        first_seen[cid] = i
    return Table(
        path=path,
        role=role,
        ids=ids,
        lines=np.asarray(data_lines, dtype=int),
        columns=columns,
        cells=data[:, 1:],
        has_header=has_header,
    )


def _cell_error(
    table: Table, i: int, j: int, *, float32_overflow: bool = False, float32_underflow: bool = False
) -> XmodalInputError:
    """The error describing bad cell ``(i, j)`` of ``table``'s values."""
    raw = str(table.cells[i, j])
    text = raw.strip()
    where = {"path": table.path, "row": int(table.lines[i]), "column": table.column_label(j)}
    number: float | None = float(text) if _is_number(text) else None
    if float32_underflow:
        return XmodalInputError(
            f"{table.role}: value {raw!r} is too small for float32 (it would be stored as 0)",
            **where,
            fix="write values this small as 0, or rescale the feature (e.g. multiply by a constant)",
        )
    if float32_overflow:
        return XmodalInputError(
            f"{table.role}: value {raw!r} is too large for float32",
            **where,
            fix="rescale the feature (e.g. divide by a constant) so its values fit in float32",
        )
    if text == "":
        return XmodalInputError(
            f"{table.role}: empty cell (missing value)",
            **where,
            fix="fill in a finite number, or drop the cell (row) or the feature (column)",
        )
    if text.lower() in _MISSING_TOKENS or (number is not None and np.isnan(number)):
        return XmodalInputError(
            f"{table.role}: value {raw!r} is NaN (missing)",
            **where,
            fix="replace missing values by finite numbers (impute them) or drop the cell or the "
            "feature before ingest",
        )
    if number is not None and np.isinf(number):
        return XmodalInputError(
            f"{table.role}: value {raw!r} is infinite",
            **where,
            fix="replace infinite values by finite numbers or drop the cell or the feature",
        )
    return XmodalInputError(
        f"{table.role}: non-numeric value {raw!r} in a feature column",
        **where,
        fix="feature columns must hold numbers only; correct the value, or move annotation "
        "columns (labels, names) to a separate labels file",
    )


def cells_mismatch(first: Table, second: Table, *, fix: str) -> XmodalInputError | None:
    """Two tables that must list the same cells and do not: the error names the file that is wrong.

    * One table lists cells the other lacks, and not the other way round: the table that **lacks** them is named
      (a row was dropped there), with the first missing cell and its line in the other table.
    * Each lists cells the other lacks (an id written differently in one of them): which one is wrong cannot be
      told, so both files are named, each with its first odd cell and line.

    Returns
    -------
    XmodalInputError or None
        ``None`` when both list the same cells (in any order).
    """
    in_first, in_second = set(first.ids), set(second.ids)
    extra_first = [i for i, c in enumerate(first.ids) if c not in in_second]
    extra_second = [j for j, c in enumerate(second.ids) if c not in in_first]
    if not extra_first and not extra_second:
        return None

    def where(table: Table, i: int) -> str:
        return f"{table.ids[i]!r}, line {table.lines[i]} of {table.path.name}"

    if extra_first and extra_second:
        return XmodalInputError(
            f"{first.role} and {second.role} list different cells: {len(extra_first)} only in {first.path.name} "
            f"(first: {where(first, extra_first[0])}) and {len(extra_second)} only in {second.path.name} (first: "
            f"{where(second, extra_second[0])}); one of the two files writes these ids differently",
            path=f"{first.path} and {second.path}", fix=fix)
    lacking, other, extra = (second, first, extra_first) if extra_first else (first, second, extra_second)
    return XmodalInputError(
        f"{lacking.role} lacks {len(extra)} cell{'s' if len(extra) > 1 else ''} that {other.role} "
        f"({other.path.name}) lists (first: {where(other, extra[0])}): {other.path.name} has {other.n_rows} cells, "
        f"{lacking.path.name} has {lacking.n_rows}", path=lacking.path, fix=fix)


def numeric(table: Table, *, dtype: type[np.floating] = np.float32) -> np.ndarray:
    """Convert ``table``'s cells to a ``dtype`` matrix; raise on the first bad cell (row-major)."""
    n, m = table.cells.shape
    try:  # fast path: every cell parses as a float
        flat = table.cells.ravel().astype(np.float64)
    except (TypeError, ValueError):  # locate the offending cell
        flat = pd.to_numeric(pd.Series(table.cells.ravel()), errors="coerce").to_numpy(
            dtype=np.float64
        )
    bad = ~np.isfinite(flat)
    if bad.any():
        i, j = divmod(int(np.argmax(bad)), m)
        raise _cell_error(table, i, j)
    with np.errstate(over="ignore", under="ignore"):
        x = flat.reshape(n, m).astype(dtype)
    overflow = ~np.isfinite(x)
    if overflow.any():
        i, j = divmod(int(np.argmax(overflow.ravel())), m)
        raise _cell_error(table, i, j, float32_overflow=True)
    underflow = (x.ravel() == 0) & (flat != 0)  # a non-zero value float32 would store as 0
    if underflow.any():
        i, j = divmod(int(np.argmax(underflow)), m)
        raise _cell_error(table, i, j, float32_underflow=True)
    return x


def _looks_like_row_index(values: Sequence[str]) -> bool:
    """Whether ``values`` are ``0..n-1`` or ``1..n`` in order (a pandas default index)."""
    if not values or not all(v.isdigit() for v in values):
        return False
    numbers = [int(v) for v in values]
    start = numbers[0]
    return start in (0, 1) and numbers == list(range(start, start + len(numbers)))


def read_annotation(
    path: Path,
    role: str,
    *,
    ids: Sequence[str],
    where: Sequence[str],
    target: str,
) -> np.ndarray:
    """Read an ``id, value`` annotation file and return its values aligned to ``ids``.

    Parameters
    ----------
    path, role
        The file and its field name in the source (``labels``, ``clusters_a`` ...).
    ids
        The cell ids the file must describe, in modality order.
    where
        For each id, where it comes from (e.g. ``"line 5 of morpho.csv"``), for errors.
    target
        What the file describes, e.g. ``"modality_a (morpho.csv)"``.

    Notes
    -----
    With two or more columns the first holds cell ids and the second the value; rows are
    matched by id (a first column that is just ``0..n-1``/``1..n`` is a row index: rows are
    then matched by position). Line 1 is a header unless its id is one of ``ids``. A file with
    a single column holds the values only, must have a header row and is matched by position.
    In every case the number of data rows must equal the number of cells.
    """
    raw, lines = _read_raw(path, role)
    if raw.shape[0] == 0:
        raise _no_data_error(path, role, "only blank lines")
    idset = set(ids)
    single = raw.shape[1] == 1
    has_header = single or str(raw[0, 0]).strip() not in idset
    data, data_lines = (raw[1:], lines[1:]) if has_header else (raw, lines)
    if data.shape[0] == 0:
        raise _no_data_error(path, role, "header only, no data rows")
    column: int | str = (str(raw[0, 0]).strip() or 1) if has_header else 1
    value_col = 0 if single else 1
    values = np.array([str(v).strip() for v in data[:, value_col]], dtype=object)
    value_column: int | str = (str(raw[0, value_col]).strip() or value_col + 1) if has_header else value_col + 1
    for i, value in enumerate(values):
        if value.lower() in _BLANK_LABELS:
            raise XmodalInputError(
                f"{role}: {'empty' if value == '' else repr(value) + ' (missing)'} value"
                + ("" if single else f" for cell {str(data[i, 0]).strip()!r}"),
                path=path,
                row=int(data_lines[i]),
                column=value_column,
                fix="give every cell a value (e.g. 'unassigned' for cells without a type), or drop the cell "
                "from the data",
            )
    file_ids = [str(v).strip() for v in data[:, 0]]
    if not single:
        first_seen: dict[str, int] = {}
        for i, cid in enumerate(file_ids):
            if cid == "":
                raise XmodalInputError(
                    f"{role}: empty cell id",
                    path=path,
                    row=int(data_lines[i]),
                    column=column,
                    fix="give every row the id of its cell in the first column",
                )
            if cid in first_seen:
                raise XmodalInputError(
                    f"{role}: duplicate cell id {cid!r} (lines {data_lines[first_seen[cid]]} and "
                    f"{data_lines[i]})",
                    path=path,
                    row=int(data_lines[i]),
                    column=column,
                    fix="give every cell exactly one row; remove the repeated row",
                )
            first_seen[cid] = i
    by_id = (not single) and bool(idset.intersection(file_ids))
    if not single and not by_id and not _looks_like_row_index(file_ids):
        raise XmodalInputError(
            f"{role}: the ids in the first column ({file_ids[0]!r}, ...) match none of the cell "
            f"ids of {target} ({ids[0]!r}, ...)",
            path=path,
            column=column,
            fix=f"put the cell ids of {target} in the first column of {path.name}",
        )
    if len(file_ids) != len(ids):
        detail = ""
        if by_id:
            missing = [k for k, cid in enumerate(ids) if cid not in first_seen]
            extra = [cid for cid in file_ids if cid not in idset]
            if missing:
                detail = f"; first cell without a row: {ids[missing[0]]!r} ({where[missing[0]]})"
            elif extra:
                detail = f"; first row for an unknown cell: {extra[0]!r}"
        raise XmodalInputError(
            f"{role} does not match {target}: expected {len(ids)} data rows (one per cell), "
            f"found {len(file_ids)}{detail}",
            path=path,
            fix=(
                "give exactly one row per cell, keyed by its id in the first column; an off-by-one "
                "count usually means a missing or extra header row or a dropped cell (xmodal never "
                "shifts labels to make them fit)"
            ),
        )
    if not by_id:
        return values
    pos = np.empty(len(ids), dtype=int)
    for k, cid in enumerate(ids):
        if cid not in first_seen:
            raise XmodalInputError(
                f"{role} does not match {target}: no row for cell {cid!r} ({where[k]})",
                path=path,
                column=column,
                fix=f"add a row for every cell of {target} (ids in the first column must match)",
            )
        pos[k] = first_seen[cid]
    return values[pos]


def cluster_ids(labels: np.ndarray) -> np.ndarray:
    """Integer ids from cluster labels such as ``"cluster_3"`` (first run of digits, else -1)."""
    out = np.full(len(labels), -1, dtype=np.int64)
    for k, text in enumerate(labels):
        m = _DIGITS.search(str(text))
        if m:
            out[k] = int(m.group())
    return out


def table_adata(x: np.ndarray, ids: Sequence[str], columns: Sequence[str]) -> ad.AnnData:
    obs = pd.DataFrame(index=pd.Index([str(i) for i in ids], dtype=object))
    var = pd.DataFrame(index=pd.Index([str(c) for c in columns], dtype=object))
    return ad.AnnData(X=np.ascontiguousarray(x, dtype=np.float32), obs=obs, var=var)


def first_entry(x: object, bad: Callable[[np.ndarray], np.ndarray]) -> tuple[int, int, float] | None:
    """Row, column and value of the first stored entry of ``x`` (row-major) for which ``bad(values)`` holds.

    ``x`` is a dense ``(n, d)`` array or a sparse matrix (only its stored entries are tested); ``bad`` maps an
    array of values to a boolean mask of the same shape.
    """
    if sp.issparse(x):
        coo = sp.coo_matrix(x)
        hit = bad(coo.data)
        if not hit.any():
            return None
        rows, cols, vals = coo.row[hit], coo.col[hit], coo.data[hit]
        k = int(np.lexsort((cols, rows))[0])
        return int(rows[k]), int(cols[k]), float(vals[k])
    arr = np.asarray(x)
    if arr.ndim != 2:
        arr = arr.reshape(arr.shape[0], -1)
    hit = bad(arr)
    if not hit.any():
        return None
    i, j = divmod(int(np.argmax(hit.ravel())), arr.shape[1])
    return i, j, float(arr[i, j])


def first_nonfinite(x: object) -> tuple[int, int, float] | None:
    """Row, column and value of the first non-finite entry in row-major order, or None."""
    return first_entry(x, lambda v: ~np.isfinite(v))
