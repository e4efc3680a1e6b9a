"""Ids and column names that must be unique: one check, one message naming the value and both its positions.

Every reader of a table (``obs``/``var`` of an ``.h5ad``, a 10x feature list, a gene table, a metadata CSV or
parquet, a SOMA ``var``) passes its ids and column names through here, so a duplicate is always refused the same
way: the file, the duplicated value, where it appears first and where again, and the fix.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from xmodal.errors import XmodalInputError


def first_duplicate(values: Sequence[Any]) -> tuple[int, int] | None:
    """Positions ``(first, again)`` (0-based) of the first value that appears a second time, or ``None``."""
    index = pd.Index(list(values) if not isinstance(values, pd.Index | np.ndarray) else values)
    dup = index.duplicated()
    if not dup.any():
        return None
    again = int(np.argmax(dup))
    value = index[again]
    same = [i for i in range(again) if _same(index[i], value)]
    return (same[0] if same else again), again


def _same(a: Any, b: Any) -> bool:
    return a == b or (a != a and b != b)  # NaN equals NaN here, as pandas.Index.duplicated counts it


def check_unique(values: Sequence[Any], *, what: str, path: str | Path | None, fix: str, noun: str = "row",
                 base: int = 1, column: str | int | None = None, as_row: bool = True, scope: str = "") -> None:
    """Refuse the first value of ``values`` that appears twice.

    Parameters
    ----------
    values
        Ids in file order.
    what
        What a value is, e.g. ``"gene id"`` or ``"cell id"``.
    path
        The file named in the error.
    fix
        What to do about it.
    noun
        What a position is (``"row"``, ``"line"``, ``"feature"``, ``"column"``).
    base
        The number a user gives the first value (1: first row; 2: a CSV's first data line).
    column
        The column of the file holding the ids, if any.
    as_row
        Report the second position as the error's row.
    scope
        Where the ids must be unique, e.g. ``"in this chunk"``.

    Raises
    ------
    XmodalInputError
        ``<what> 'v' appears twice (<noun>s i and j)``.
    """
    found = first_duplicate(values)
    if found is None:
        return
    first, again = found
    value = list(values)[again] if not isinstance(values, pd.Index | np.ndarray) else values[again]
    shown = value.decode(errors="replace") if isinstance(value, bytes) else value
    raise XmodalInputError(f"{what} {str(shown)!r} appears twice{' ' + scope if scope else ''} ({noun}s "
                           f"{first + base} and {again + base})",
                           path=path, row=again + base if as_row else None, column=column, fix=fix)


def check_unique_columns(columns: Sequence[Any], *, table: str, path: str | Path | None) -> None:
    """Refuse a table whose column names repeat (``obs``, ``var``, a CSV header, a parquet schema).

    Raises
    ------
    XmodalInputError
        ``<table> has the column 'c' twice (columns i and j)``.
    """
    found = first_duplicate([str(c) for c in columns])
    if found is None:
        return
    first, again = found
    raise XmodalInputError(f"{table} has the column {str(columns[again])!r} twice (columns {first + 1} and "
                           f"{again + 1})", path=path, column=again + 1,
                           fix="rename or drop one of the two columns, so each name says which column it is")


__all__ = ["check_unique", "check_unique_columns", "first_duplicate"]
