"""Metadata vocabularies of the ``census`` family, as seed 002's preprocessor builds them, with its defects fixed.

One pass over every chunk's metadata table: each value is normalised (stripped, inner whitespace collapsed;
null-like values such as ``NaN``, ``""``, ``"unknown"`` become null), counted per field, and each field gets a
:class:`FieldSpec` (cardinality, null fraction, used or not and why). Codes start at 1; **code 0 is reserved**
for null and for values not seen when the vocabulary was built (the seed crashed on both, defect 5). A field
with a single value cannot be changed into another context, so it is dropped with a warning (the seed's
``randint(1, 1)`` failed on it).
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from xmodal.errors import XmodalInputError

log = logging.getLogger(__name__)

#: Census's metadata fields, in the order the seed lists them
CENSUS_FIELDS = ("cell_type", "disease", "development_stage", "sex", "self_reported_ethnicity", "tissue_general",
                 "tissue", "assay", "donor_id")
#: values read as null (compared after normalisation, case-insensitively)
NULL_LIKE = frozenset({"", "nan", "none", "null", "na", "n/a", "<na>", "unknown", "unspecified"})
#: the code of null and unseen values in every field
RESERVED = 0
_SPACES = re.compile(r"\s+")


def normalize_value(value: object, *, null_like: frozenset[str] = NULL_LIKE) -> str | None:
    """One metadata value as the vocabulary stores it: a stripped string, or ``None`` for null-like values.

    Parameters
    ----------
    value
        A raw cell of a metadata table (string, number, ``None``, ``NaN``, ``pd.NA``).
    null_like
        Lower-case strings that mean "no value".

    Returns
    -------
    str or None
        ``" T cell "`` → ``"T cell"``; ``"Unknown"``, ``NaN``, ``None`` → ``None``.
    """
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    text = _SPACES.sub(" ", str(value)).strip()
    return None if text.lower() in null_like else text


def normalize_column(values: pd.Series | Sequence[object], *, null_like: frozenset[str] = NULL_LIKE) -> pd.Series:
    """:func:`normalize_value` over a column, computed once per distinct value (columns are mostly repeats).

    Returns
    -------
    pandas.Series
        ``object`` dtype, ``None`` where the value is null-like; same length and index as ``values``.
    """
    series = values if isinstance(values, pd.Series) else pd.Series(list(values), dtype=object)
    codes, uniques = pd.factorize(series.astype(object), use_na_sentinel=True)
    mapped = np.array([normalize_value(u, null_like=null_like) for u in uniques] + [None], dtype=object)
    return pd.Series(mapped[codes], index=series.index, dtype=object)  # code -1 (NA) takes the trailing None


def _lookup_codes(values: pd.Series, lookup: dict[str, int], *, null_like: frozenset[str]) -> np.ndarray:
    """Codes of a column through ``lookup`` (normalised value → code), computed once per distinct value; 0 else."""
    codes, uniques = pd.factorize(values.astype(object), use_na_sentinel=True)
    mapped = np.array([lookup.get(normalize_value(u, null_like=null_like), RESERVED) for u in uniques] + [RESERVED],
                      dtype=np.int64)
    return mapped[codes]  # code -1 (NA) takes the trailing RESERVED


@dataclass(frozen=True)
class FieldSpec:
    """What the vocabulary scan found about one metadata field.

    Attributes
    ----------
    field
        Column name.
    cardinality
        Distinct non-null values.
    n_cells, n_null
        Cells scanned and cells whose value is null-like.
    used
        Whether the model conditions on this field.
    reason
        Why a requested field is not used (``"cardinality 1"``), else ``""``.
    """

    field: str
    cardinality: int
    n_cells: int
    n_null: int
    used: bool
    reason: str = ""

    @property
    def null_fraction(self) -> float:
        """Share of scanned cells whose value is null-like."""
        return self.n_null / self.n_cells if self.n_cells else 0.0


@dataclass(frozen=True)
class Vocabulary:
    """Value → code per field (codes ``1..K``; 0 is null or unseen), and the field specs.

    Attributes
    ----------
    values
        ``{field: [value of code 1, value of code 2, ...]}`` for the used fields, values sorted.
    specs
        One :class:`FieldSpec` per requested field, used or not.
    null_like
        The null-like strings the scan used (encoding applies the same).
    """

    values: dict[str, list[str]]
    specs: list[FieldSpec]
    null_like: frozenset[str] = NULL_LIKE

    @property
    def fields(self) -> list[str]:
        """The used fields, in the order they were requested."""
        return [s.field for s in self.specs if s.used]

    def cardinality(self, name: str) -> int:
        """Number of real values of a used field (codes ``1..K``)."""
        return len(self.values[name])

    def code(self, name: str, value: object) -> int:
        """The code of one value of field ``name`` (0 when null-like or not in the vocabulary)."""
        norm = normalize_value(value, null_like=self.null_like)
        if norm is None:
            return RESERVED
        try:
            return self.values[name].index(norm) + 1
        except ValueError:
            return RESERVED

    def value(self, name: str, code: int) -> str | None:
        """The value of a code (``None`` for the reserved code)."""
        return None if code == RESERVED else self.values[name][code - 1]

    def encode(self, frame: pd.DataFrame, *, where: str = "metadata") -> np.ndarray:
        """Codes of every used field for each row of ``frame``.

        Parameters
        ----------
        frame
            A metadata table with (at least) the used fields as columns.
        where
            Names the table in errors (a file path).

        Returns
        -------
        numpy.ndarray
            ``(n_rows, n_fields)`` int64, columns in :attr:`fields` order; 0 marks null or unseen values.
        """
        missing = [f for f in self.fields if f not in frame.columns]
        if missing:
            raise XmodalInputError(f"metadata has no column {missing[0]!r} (columns: {', '.join(map(str, frame.columns))})",
                                   path=where, fix="give every chunk's metadata the fields the vocabulary was built on")
        out = np.zeros((len(frame), len(self.fields)), dtype=np.int64)
        for j, name in enumerate(self.fields):
            lookup = {v: i + 1 for i, v in enumerate(self.values[name])}
            out[:, j] = _lookup_codes(frame[name], lookup, null_like=self.null_like)
        return out

    def unseen_fraction(self, frame: pd.DataFrame) -> dict[str, float]:
        """Per used field, the share of rows whose non-null value is not in the vocabulary."""
        out = {}
        for name in self.fields:
            norm = normalize_column(frame[name], null_like=self.null_like)
            known = set(self.values[name])
            present = norm.notna()
            out[name] = float((present & ~norm.isin(known)).sum() / max(len(frame), 1))
        return out

    # ------------------------------------------------------------ files
    def save(self, path: str | Path) -> Path:
        """Write the vocabulary as JSON (values, specs, null-like strings)."""
        path = Path(path)
        path.write_text(json.dumps({"values": self.values, "specs": [asdict(s) for s in self.specs],
                                    "null_like": sorted(self.null_like), "reserved_code": RESERVED}, indent=1) + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path) -> Vocabulary:
        """Read a vocabulary written by :meth:`save`."""
        path = Path(path)
        try:
            raw = json.loads(path.read_text())
            return cls(values={k: [str(v) for v in vs] for k, vs in raw["values"].items()},
                       specs=[FieldSpec(**s) for s in raw["specs"]], null_like=frozenset(raw["null_like"]))
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise XmodalInputError(f"not a vocabulary file ({err})", path=str(path),
                                   fix="re-run `xmodal ingest` for this dataset") from err


def build_vocabulary(tables: Iterable[pd.DataFrame], fields: Sequence[str], *,
                     null_like: frozenset[str] = NULL_LIKE, where: str = "metadata") -> Vocabulary:
    """Scan metadata tables (one per chunk, streamed) and build the vocabulary of ``fields``.

    Parameters
    ----------
    tables
        Metadata tables, each with the requested fields as columns; read one at a time.
    fields
        The fields to condition on, in order.
    null_like
        Lower-case strings read as null.
    where
        Names the source in errors.

    Returns
    -------
    Vocabulary
        Values sorted per field. A field with fewer than two non-null values is kept in ``specs`` with
        ``used=False`` (a warning says so); an unknown field name raises :class:`XmodalInputError`.
    """
    if len(set(fields)) != len(fields):
        dup = next(f for f in fields if list(fields).count(f) > 1)
        raise XmodalInputError(f"field {dup!r} is listed twice", path=where, fix="list each metadata field once")
    counts: dict[str, Counter[str]] = {f: Counter() for f in fields}
    nulls = dict.fromkeys(fields, 0)
    n_cells = 0
    seen_any = False
    for i, frame in enumerate(tables):
        seen_any = True
        unknown = [f for f in fields if f not in frame.columns]
        if unknown:
            raise XmodalInputError(
                f"unknown field {unknown[0]!r}: chunk {i} has columns {', '.join(map(str, frame.columns))}",
                path=where, fix="name fields that exist in the metadata (Census: " + ", ".join(CENSUS_FIELDS) + ")")
        n_cells += len(frame)
        for name in fields:
            norm = normalize_column(frame[name], null_like=null_like)
            nulls[name] += int(norm.isna().sum())
            counts[name].update(norm.dropna().value_counts().to_dict())
    if not seen_any or n_cells == 0:
        raise XmodalInputError("no cells to build the metadata vocabulary from", path=where,
                               fix="check the source: the query or the chunk folder selected no cells")
    specs, values = [], {}
    for name in fields:
        k = len(counts[name])
        used = k >= 2
        reason = "" if used else f"cardinality {k}"
        if not used:
            log.warning("census: field %r has %s non-null value%s (%s); it is dropped: a context that cannot "
                        "change has nothing to condition on", name, k, "" if k == 1 else "s",
                        ", ".join(sorted(counts[name])) or "all null")
        specs.append(FieldSpec(field=name, cardinality=k, n_cells=n_cells, n_null=nulls[name], used=used,
                               reason=reason))
        if used:
            values[name] = sorted(counts[name])
    if not values:
        raise XmodalInputError(f"none of the fields {', '.join(fields)} has two or more values", path=where,
                               fix="condition on fields that vary across the selected cells")
    return Vocabulary(values=values, specs=specs, null_like=null_like)
