"""Metadata vocabularies of the ``census`` family, as seed 002's preprocessor builds them, with its defects fixed.

Every metadata value is read through one rule (:func:`normalize_value`, :func:`value_key`): Unicode NFKC (fullwidth
letters, no-break spaces and ligatures become their plain forms), invisible format characters removed, whitespace
collapsed and stripped; null-like values such as ``NaN``, ``""``, ``"unknown"`` become null. Values are *matched*
by their key, the same string case-folded with typographic dashes and quotes folded to ASCII, so ``"T cell"``,
``"t cell"``, ``" T  cell"``, ``"T\u00a0cell"`` and ``"Ｔ ｃｅｌｌ"`` are one value. Each value is *shown* in one
canonical spelling, the most frequent one among the cells (ties: the first in sorted order); spellings merged into
it are logged and recorded (:attr:`Vocabulary.merged`, ``vocab.json``).

One pass over every chunk's metadata table counts the values per field, and each field gets a :class:`FieldSpec`
(cardinality, null fraction, used or not and why). Codes start at 1; **code 0 is reserved** for null and for values
not seen when the vocabulary was built (the seed crashed on both, defect 5). A field with a single value cannot be
changed into another context, so it is dropped with a warning (the seed's ``randint(1, 1)`` failed on it).
"""

from __future__ import annotations

import json
import logging
import math
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from dataclasses import field as _field
from functools import cached_property
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
#: typographic dashes and quotes NFKC leaves alone, folded to ASCII in the matching key
_PUNCTUATION = str.maketrans({**dict.fromkeys("\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe63", "-"),
                              **dict.fromkeys("\u2018\u2019\u201a\u201b\u2032\u00b4\u0060", "'"),
                              **dict.fromkeys("\u201c\u201d\u201e\u201f\u2033", '"')})


def normalize_value(value: object, *, null_like: frozenset[str] = NULL_LIKE) -> str | None:
    """One metadata value as it is shown: NFKC, format characters removed, whitespace collapsed; ``None`` if null-like.

    Parameters
    ----------
    value
        A raw cell of a metadata table (string, number, ``None``, ``NaN``, ``pd.NA``).
    null_like
        Lower-case strings that mean "no value" (compared with the case-folded value).

    Returns
    -------
    str or None
        ``" T   cell "`` → ``"T cell"``; ``"Ｔ\u00a0cell"`` → ``"T cell"``; ``"Unknown"``, ``NaN``, ``None`` →
        ``None``. Case is kept: :func:`value_key` is what values are matched by.
    """
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    text = unicodedata.normalize("NFKC", str(value))
    if not text.isascii():
        text = "".join(c for c in text if unicodedata.category(c) != "Cf")
    text = _SPACES.sub(" ", text).strip()
    return None if text.casefold() in null_like else text


def value_key(value: object, *, null_like: frozenset[str] = NULL_LIKE) -> str | None:
    """What metadata values are matched by: :func:`normalize_value`, case-folded, typographic dashes and quotes as ASCII.

    Every comparison of metadata values (vocabulary codes, held-out combinations, the split's strata, a target
    context at serving time) goes through this key, so two spellings of one value never count as two values.

    Returns
    -------
    str or None
        ``"T cell"``, ``"t cell"``, ``"T  cell "``, ``"T\u00a0cell"`` → ``"t cell"``; ``None`` for null-like values.
    """
    text = normalize_value(value, null_like=null_like)
    return None if text is None else text.casefold().translate(_PUNCTUATION)


def _per_distinct(values: pd.Series | Sequence[object], rule: Callable[[object], object], fill: object) -> pd.Series:
    """``rule`` over a column, computed once per distinct value; ``fill`` for missing values."""
    series = values if isinstance(values, pd.Series) else pd.Series(list(values), dtype=object)
    codes, uniques = pd.factorize(series.astype(object), use_na_sentinel=True)
    mapped = np.array([rule(u) for u in uniques] + [fill], dtype=object)
    return pd.Series(mapped[codes], index=series.index, dtype=object)  # code -1 (NA) takes the trailing fill


def normalize_column(values: pd.Series | Sequence[object], *, null_like: frozenset[str] = NULL_LIKE) -> pd.Series:
    """:func:`normalize_value` over a column, computed once per distinct value (columns are mostly repeats).

    Returns
    -------
    pandas.Series
        ``object`` dtype, ``None`` where the value is null-like; same length and index as ``values``.
    """
    return _per_distinct(values, lambda v: normalize_value(v, null_like=null_like), None)


def key_column(values: pd.Series | Sequence[object], *, null_like: frozenset[str] = NULL_LIKE) -> pd.Series:
    """:func:`value_key` over a column, computed once per distinct value.

    Returns
    -------
    pandas.Series
        ``object`` dtype, ``None`` where the value is null-like; same length and index as ``values``.
    """
    return _per_distinct(values, lambda v: value_key(v, null_like=null_like), None)


@dataclass(frozen=True)
class Spellings:
    """The spellings of one value (one :func:`value_key`).

    Attributes
    ----------
    shown
        The canonical spelling: the :func:`normalize_value` form with the most cells (ties: the first in sorted
        order).
    others
        Every other spelling met, as given (``repr`` shows the invisible differences), sorted.
    """

    shown: str
    others: tuple[str, ...] = ()


def spelling_groups(spellings: Mapping[object, int], *, null_like: frozenset[str] = NULL_LIKE) -> dict[str, Spellings]:
    """Group raw spellings (with their cell counts) by :func:`value_key`, and pick each value's canonical spelling.

    Parameters
    ----------
    spellings
        ``{raw value: cells}``; null-like values and values without cells are skipped.
    null_like
        Lower-case strings read as null.

    Returns
    -------
    dict
        ``{key: Spellings}``.
    """
    shown: dict[str, Counter[str]] = {}
    raw: dict[str, set[str]] = {}
    for value, n in spellings.items():
        norm = normalize_value(value, null_like=null_like)
        if norm is None or n <= 0:
            continue
        key = value_key(norm, null_like=null_like) or ""
        shown.setdefault(key, Counter())[norm] += int(n)
        raw.setdefault(key, set()).add(str(value))
    out = {}
    for key, forms in shown.items():
        best = min(forms, key=lambda f, c=forms: (-c[f], f))
        out[key] = Spellings(shown=best, others=tuple(sorted(raw[key] - {best})))
    return out


def _merges(groups: Mapping[str, Spellings]) -> dict[str, list[str]]:
    """``{canonical: [other spellings]}`` of the values met in more than one spelling."""
    return {g.shown: list(g.others) for g in sorted(groups.values(), key=lambda g: g.shown) if g.others}


def _report_merges(merged: Mapping[str, Mapping[str, Sequence[str]]], *, where: str, shown: int = 10) -> None:
    """One warning per field whose values came in several spellings (the first ``shown`` values spelled out)."""
    for name, groups in merged.items():
        items = [f"{c!r} ← {', '.join(repr(s) for s in others)}" for c, others in groups.items()]
        more = f"; and {len(items) - shown} more" if len(items) > shown else ""
        log.warning("census: %s: field %r: %d value%s came in several spellings, each read as its most frequent one "
                    "(values are matched ignoring case, whitespace and Unicode form): %s%s", where, name, len(items),
                    "" if len(items) == 1 else "s", "; ".join(items[:shown]), more)


def canonical_obs(obs: pd.DataFrame, fields: Sequence[str], *, null_like: frozenset[str] = NULL_LIKE,
                  where: str = "metadata") -> tuple[pd.DataFrame, dict[str, dict[str, list[str]]]]:
    """Every value of ``fields`` in its canonical spelling: one spelling per value (:func:`value_key`), the most frequent.

    Applied once to the cells' metadata before the split and the vocabulary are made, so that every later step
    (held-out combinations, vocabulary, evaluation) sees one spelling per value. Null-like values are kept as given.

    Parameters
    ----------
    obs
        The cells' metadata, one row per cell.
    fields
        The columns to canonicalise (others are copied as they are).
    null_like
        Lower-case strings read as null.
    where
        Names the table in the log.

    Returns
    -------
    tuple
        A new frame (same index and columns; the fields as ``object`` columns) and the merged spellings
        ``{field: {canonical: [other spellings, as given]}}`` (only where a value has several spellings); each
        merge is logged as a warning.
    """
    out = obs.copy()
    merged: dict[str, dict[str, list[str]]] = {}
    for name in fields:
        if name not in obs.columns:
            continue
        groups = spelling_groups(obs[name].value_counts(dropna=True).to_dict(), null_like=null_like)

        def canonical(value: object, groups: dict[str, Spellings] = groups) -> object:
            key = value_key(value, null_like=null_like)
            return value if key is None else groups[key].shown  # null-like values stay as given

        out[name] = _per_distinct(obs[name], canonical, None)
        merges = _merges(groups)
        if merges:
            merged[name] = merges
    _report_merges(merged, where=where)
    return out, merged


def canonical_holdout(holdout: Sequence[Mapping[str, str]], obs: pd.DataFrame, *,
                      null_like: frozenset[str] = NULL_LIKE) -> list[dict[str, str]]:
    """The held-out combinations with each value in the spelling ``obs`` uses (matched by :func:`value_key`).

    A value no cell has is returned as given (normalised), for :func:`~xmodal.families.census._preprocess.holdout_mask`
    to report with the values there are.
    """
    out = []
    for combo in holdout:
        fixed = {}
        for name, value in combo.items():
            want = value_key(value, null_like=null_like)
            shown = normalize_column(obs[name], null_like=null_like).dropna().unique() if name in obs.columns else []
            match = sorted(s for s in shown if value_key(s, null_like=null_like) == want)
            fixed[name] = match[0] if match else (normalize_value(value, null_like=null_like) or str(value))
        out.append(fixed)
    return out


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
        ``{field: [value of code 1, value of code 2, ...]}`` for the used fields, values sorted, each in its
        canonical spelling.
    specs
        One :class:`FieldSpec` per requested field, used or not.
    null_like
        The null-like strings the scan used (encoding applies the same).
    merged
        ``{field: {canonical spelling: [other spellings read as it]}}``: the spellings that merged into one value.
    """

    values: dict[str, list[str]]
    specs: list[FieldSpec]
    null_like: frozenset[str] = NULL_LIKE
    merged: dict[str, dict[str, list[str]]] = _field(default_factory=dict)

    @property
    def fields(self) -> list[str]:
        """The used fields, in the order they were requested."""
        return [s.field for s in self.specs if s.used]

    @cached_property
    def _lookups(self) -> dict[str, tuple[dict[str, int], dict[str, int]]]:
        """Per field: exact spelling → code and :func:`value_key` → code (the first value of each key)."""
        out = {}
        for name, vals in self.values.items():
            by_key: dict[str, int] = {}
            for i, v in enumerate(vals):
                by_key.setdefault(value_key(v, null_like=self.null_like) or "", i + 1)
            out[name] = ({v: i + 1 for i, v in enumerate(vals)}, by_key)
        return out

    def cardinality(self, name: str) -> int:
        """Number of real values of a used field (codes ``1..K``)."""
        return len(self.values[name])

    def code(self, name: str, value: object) -> int:
        """The code of one value of field ``name`` (0 when null-like or not in the vocabulary).

        The value is matched by its spelling first, then by :func:`value_key` (case, whitespace, Unicode form).
        """
        exact, by_key = self._lookups[name]
        norm = normalize_value(value, null_like=self.null_like)
        if norm is None:
            return RESERVED
        return exact.get(norm) or by_key.get(value_key(norm, null_like=self.null_like) or "", RESERVED)

    def value(self, name: str, code: int) -> str | None:
        """The value of a code (``None`` for the reserved code)."""
        return None if code == RESERVED else self.values[name][code - 1]

    def _codes(self, name: str, values: pd.Series) -> np.ndarray:
        """Codes of a column, computed once per distinct value; 0 for null, unseen and missing values."""
        codes = _per_distinct(values, lambda v: self.code(name, v), RESERVED)
        return codes.to_numpy(dtype=np.int64)

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
            out[:, j] = self._codes(name, frame[name])
        return out

    def unseen_fraction(self, frame: pd.DataFrame) -> dict[str, float]:
        """Per used field, the share of rows whose non-null value is not in the vocabulary."""
        out = {}
        for name in self.fields:
            present = normalize_column(frame[name], null_like=self.null_like).notna().to_numpy()
            unseen = present & (self._codes(name, frame[name]) == RESERVED)
            out[name] = float(unseen.sum() / max(len(frame), 1))
        return out

    # ------------------------------------------------------------ files
    def save(self, path: str | Path) -> Path:
        """Write the vocabulary as JSON (values, specs, null-like strings, merged spellings)."""
        path = Path(path)
        path.write_text(json.dumps({"values": self.values, "specs": [asdict(s) for s in self.specs],
                                    "null_like": sorted(self.null_like), "reserved_code": RESERVED,
                                    "merged": self.merged}, indent=1) + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path) -> Vocabulary:
        """Read a vocabulary written by :meth:`save` (files without ``merged`` read as no merges)."""
        path = Path(path)
        try:
            raw = json.loads(path.read_text())
            merged = {str(f): {str(c): [str(s) for s in others] for c, others in groups.items()}
                      for f, groups in (raw.get("merged") or {}).items()}
            return cls(values={k: [str(v) for v in vs] for k, vs in raw["values"].items()},
                       specs=[FieldSpec(**s) for s in raw["specs"]], null_like=frozenset(raw["null_like"]),
                       merged=merged)
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
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
        Values sorted per field, one per :func:`value_key`, each in its most frequent spelling; spellings that
        merged are logged and kept in :attr:`Vocabulary.merged`. A field with fewer than two non-null values is kept
        in ``specs`` with ``used=False`` (a warning says so); an unknown field name raises
        :class:`XmodalInputError`.
    """
    if len(set(fields)) != len(fields):
        dup = next(f for f in fields if list(fields).count(f) > 1)
        raise XmodalInputError(f"field {dup!r} is listed twice", path=where, fix="list each metadata field once")
    counts: dict[str, Counter[object]] = {f: Counter() for f in fields}  # raw values (null-like ones skipped later)
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
            for value, n in frame[name].value_counts(dropna=True).items():
                counts[name][value] += int(n)
    if not seen_any or n_cells == 0:
        raise XmodalInputError("no cells to build the metadata vocabulary from", path=where,
                               fix="check the source: the query or the chunk folder selected no cells")
    specs, values, merged = [], {}, {}
    for name in fields:
        groups = spelling_groups(counts[name], null_like=null_like)
        shown = sorted(g.shown for g in groups.values())
        k = len(shown)
        used = k >= 2
        reason = "" if used else f"cardinality {k}"
        if not used:
            log.warning("census: field %r has %s non-null value%s (%s); it is dropped: a context that cannot "
                        "change has nothing to condition on", name, k, "" if k == 1 else "s",
                        ", ".join(shown) or "all null")
        specs.append(FieldSpec(field=name, cardinality=k, n_cells=n_cells, n_null=nulls[name], used=used,
                               reason=reason))
        if used:
            values[name] = shown
            merges = _merges(groups)
            if merges:
                merged[name] = merges
    if not values:
        raise XmodalInputError(f"none of the fields {', '.join(fields)} has two or more values", path=where,
                               fix="condition on fields that vary across the selected cells")
    _report_merges(merged, where=where)
    return Vocabulary(values=values, specs=specs, null_like=null_like, merged=merged)
