"""Readers of the ``paired`` family with validation at ingest.

Two sources are supported:

* the seed-000 CSV set (:func:`read_paired_csv`): a morphology table (modality A), an
  expression table (modality B), and optional RNA-family labels, cluster labels of each
  modality and a cluster-level correlation matrix;
* AnnData files (:func:`read_paired_anndata`): one ``.h5mu`` with two modalities or two
  ``.h5ad`` files.

Every problem found in the inputs is raised as a :class:`~xmodal.errors.XmodalInputError`
that names the file, the place in it and a fix, before the caller writes anything (the
readers themselves never write files).

Row numbers in the errors of the CSV reader are 1-based *line numbers* as a user sees them
in an editor or a spreadsheet: the header is line 1 and the first data row is line 2 (in a
file without header the first data row is line 1). Blank lines count as lines. Quoted fields
that span several lines are not supported for exact numbering. Columns are reported by their
header name, or by their 1-based position in the file (the id column being column 1) when
the file has no header row.
"""

from __future__ import annotations

import logging
import re
import warnings
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from xmodal._s3 import downloaded, is_s3_uri
from xmodal.data._tables import (
    Table,
    check_file,
    cluster_ids,
    first_entry,
    first_nonfinite,
    numeric,
    read_annotation,
    read_table,
    resolve,
    table_adata,
)
from xmodal.errors import XmodalInputError
from xmodal.families.paired._config import AnnDataSource, CsvPairedSource
from xmodal.families.paired._data import CLUSTER, LABEL, MATCH, PairedData

__all__ = ["CLUSTER_ID", "assign_kinds", "load_source", "read_paired_anndata", "read_paired_csv", "validate_paired"]

log = logging.getLogger(__name__)

CLUSTER_ID = "cluster_id"
"""``obs`` column with the integer cluster id extracted from ``obs["cluster"]`` (-1: no digits)."""

_HeaderMode = Literal["yes", "no", "auto", "required"]
_MISSING_TOKENS = frozenset({"na", "n/a", "nan", "-nan", "+nan", "null", "none", "missing"})
#: label values that mean "no label" (a blank label must not become a class of its own)
_BLANK_LABELS = frozenset({"", "na", "n/a", "nan", "-nan", "null"})
_DIGITS = re.compile(r"\d+")
_PARSER_FIELDS = re.compile(r"Expected (\d+) fields in line (\d+), saw (\d+)")


def _s3_fields(source: CsvPairedSource | AnnDataSource) -> dict[str, str]:
    """The fields of ``source`` that hold ``s3://`` URIs, by name."""
    return {name: value for name, value in source if is_s3_uri(value)}


# --------------------------------------------------------------------------------------------
# public readers
# --------------------------------------------------------------------------------------------
def read_paired_csv(source: CsvPairedSource, *, root: Path = Path(".")) -> PairedData:
    """Read and validate the seed-000 CSV set.

    Parameters
    ----------
    source
        Where the files are and how to read them. Relative paths are resolved against ``root``;
        ``s3://bucket/key`` URIs are downloaded to a temporary folder first (see
        :mod:`xmodal._s3`), and errors name the URI.
    root
        Directory that relative paths in ``source`` are relative to (the project root).

    Returns
    -------
    PairedData
        Modality A (morphology) and B (expression) with dense float32 ``X``, cell ids as
        ``obs_names`` and, when given, ``obs["label"]``, ``obs["cluster"]`` (raw label) and
        ``obs["cluster_id"]`` (its first run of digits as an integer, -1 when it has none),
        ``obs["match"]`` (partner's name in the other modality, when ``source.paired``) and the
        correlation matrix (B clusters × A clusters, float64).

    Raises
    ------
    XmodalInputError
        Before anything is returned, for the first problem found: a missing or empty file,
        modality_a without a header row, an empty, duplicate or misaligned cell id, a NaN,
        infinite, empty or non-numeric value, different cell counts (or a different cell order)
        of A and B when paired, or a labels/cluster file whose rows or ids do not match its
        modality. Rows are 1-based line numbers as shown by an editor: the header is line 1,
        the first data row line 2 (line 1 in a file without header). Columns are the header
        names, or 1-based column positions (the id being column 1) in a file without header.

    Notes
    -----
    * ``modality_a``: header row required; the first column holds the cell ids, all other
      columns are features (a square GW distance matrix whose header holds cell ids is fine).
    * ``modality_b``: the first column holds the cell ids, then one column per gene. With
      ``b_header="auto"`` line 1 is a header when at least half of its cells after the id are
      not numbers (or its id cell is empty); without header the genes are named ``gene_0``...
    * ``labels``: matched by id against modality A (and B's cells get their partner's label
      when paired); when not paired, the file must list the cells of A and those of B whose
      ids are not in A.
    * ``clusters_a``/``clusters_b``: one row per cell of their modality, matched by id (or by
      position when the first column is a ``0..n-1`` row index or the file has one column).
    * ``paired=True``: row i of A and row i of B are the same cell, so both must have the same
      number of rows; when the two files share any id, the ids must agree row by row.
    """
    if remote := _s3_fields(source):
        with downloaded(remote) as local:
            return read_paired_csv(source.model_copy(update=local), root=root)
    root = Path(root)
    paths: dict[str, Path] = {}
    for role in ("modality_a", "modality_b", "labels", "clusters_a", "clusters_b", "corr_matrix"):
        given = getattr(source, role)
        if given is not None:
            paths[role] = resolve(given, root)
            check_file(paths[role], role, root)
    pa, pb = paths["modality_a"], paths["modality_b"]

    ta = read_table(pa, "modality_a", header="required")
    xa = numeric(ta)
    tb = read_table(pb, "modality_b", header=source.b_header, prefix="gene_")
    xb = numeric(tb)

    if source.paired:
        _check_row_pairing(ta, tb)

    a = table_adata(xa, ta.ids, ta.columns)
    b = table_adata(xb, tb.ids, tb.columns)
    target_a = f"modality_a ({pa.name})"
    target_b = f"modality_b ({pb.name})"
    where_a = [f"line {n} of {pa.name}" for n in ta.lines]
    where_b = [f"line {n} of {pb.name}" for n in tb.lines]

    if "labels" in paths:
        if source.paired:
            labels = read_annotation(
                paths["labels"], "labels", ids=ta.ids, where=where_a, target=target_a
            )
            a.obs[LABEL] = labels
            b.obs[LABEL] = labels
        else:
            in_a = set(ta.ids)
            extra_b = [k for k, cid in enumerate(tb.ids) if cid not in in_a]
            ids = ta.ids + [tb.ids[k] for k in extra_b]
            where = where_a + [where_b[k] for k in extra_b]
            labels = read_annotation(
                paths["labels"], "labels", ids=ids, where=where, target=f"{target_a} and {target_b}"
            )
            lookup = dict(zip(ids, labels, strict=True))
            a.obs[LABEL] = labels[: len(ta.ids)]
            b.obs[LABEL] = np.array([lookup[cid] for cid in tb.ids], dtype=object)

    for role, adata, table, where, target in (
        ("clusters_a", a, ta, where_a, target_a),
        ("clusters_b", b, tb, where_b, target_b),
    ):
        if role in paths:
            clusters = read_annotation(
                paths[role], role, ids=table.ids, where=where, target=target
            )
            adata.obs[CLUSTER] = clusters
            adata.obs[CLUSTER_ID] = cluster_ids(clusters)

    if source.paired:
        a.obs[MATCH] = np.asarray(b.obs_names, dtype=object)
        b.obs[MATCH] = np.asarray(a.obs_names, dtype=object)

    corr = None
    if "corr_matrix" in paths:
        tc = read_table(paths["corr_matrix"], "corr_matrix", header="yes", noun="row id")
        corr = pd.DataFrame(
            numeric(tc, dtype=np.float64),
            index=pd.Index(tc.ids, dtype=object),
            columns=pd.Index(tc.columns, dtype=object),
        )

    data = PairedData(a=a, b=b, names=(source.names[0], source.names[1]), corr_matrix=corr)
    validate_paired(data, source_paths=(str(pa), str(pb)))
    return assign_kinds(data, declared=source.kinds, source_paths=(pa, pb), rows=(ta.lines, tb.lines),
                        columns=(ta.column_label, tb.column_label))


def _check_row_pairing(ta: Table, tb: Table) -> None:
    """With ``paired: true``: same number of rows, and the same ids row by row if ids are shared."""
    from xmodal.data._tables import cells_mismatch

    shared = set(ta.ids).intersection(tb.ids)
    fix = (f"give {ta.path.name} and {tb.path.name} one row per cell in the same order (xmodal does not truncate to "
           "the shorter file), or set `paired: false` when the cells are not matched")
    if shared and (ta.n_rows != tb.n_rows or len(shared) < max(ta.n_rows, tb.n_rows)):
        mismatch = cells_mismatch(ta, tb, fix=fix)
        if mismatch is not None:  # the same id scheme: name the file that lacks cells (or both)
            raise mismatch
    if ta.n_rows != tb.n_rows:
        raise XmodalInputError(
            f"paired: true needs the same cells in both files, but modality_a ({ta.path.name}) has "
            f"{ta.n_rows} cells and modality_b ({tb.path.name}) has {tb.n_rows}",
            path=tb.path,
            fix=(
                f"give {ta.path.name} and {tb.path.name} one row per cell in the same order "
                "(xmodal does not truncate to the shorter file), or set `paired: false` when the "
                "cells are not matched"
            ),
        )
    if not shared:
        return  # different id schemes: the pairing is by row position only
    differ = np.flatnonzero(np.asarray(ta.ids, dtype=object) != np.asarray(tb.ids, dtype=object))
    if differ.size:
        i = int(differ[0])
        raise XmodalInputError(
            f"paired: true, but cell {tb.ids[i]!r} of modality_b is not cell {ta.ids[i]!r} on the "
            f"same row of modality_a (line {ta.lines[i]} of {ta.path.name})",
            path=tb.path,
            row=int(tb.lines[i]),
            fix=(
                f"sort {tb.path.name} in the cell order of {ta.path.name} (row i of A must be the "
                "partner of row i of B), or set `paired: false`"
            ),
        )


def read_paired_anndata(source: AnnDataSource, *, root: Path = Path(".")) -> PairedData:
    """Read and validate a ``.h5mu`` with two modalities, or two ``.h5ad`` files.

    Parameters
    ----------
    source
        ``path`` (``.h5mu``; ``modalities`` picks two of its modalities, default: the first
        two) or ``path_a`` and ``path_b`` (``.h5ad``); ``label_key`` and ``match_key`` name
        ``obs`` columns. Relative paths are resolved against ``root``; ``s3://bucket/key`` URIs
        are downloaded to a temporary folder first (see :mod:`xmodal._s3`).
    root
        Directory that relative paths in ``source`` are relative to (the project root).

    Returns
    -------
    PairedData
        Copies of the two modalities with dense float32 ``X`` and string ``obs_names``;
        ``obs["label"]`` from ``label_key`` (as str, missing values as ``""``; a modality
        without that column takes its partners' labels when ``match_key`` is given) and
        ``obs["match"]`` from ``match_key`` of A (naming cells of B; B's ``match`` names its
        partner in A, ``""`` when it has none). Names: the modality keys of the ``.h5mu``, or
        the file stems of the ``.h5ad`` files.

    Raises
    ------
    XmodalInputError
        Missing or unreadable files, unknown modalities or ``obs`` keys, a ``match_key`` value
        that is not a cell of B or names one B cell twice, and every check of
        :func:`validate_paired` (rows there are 1-based cell positions).
    """
    import mudata as md

    if remote := _s3_fields(source):
        with downloaded(remote) as local:
            return read_paired_anndata(source.model_copy(update=local), root=root)
    root = Path(root)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        if source.path is not None:
            path = resolve(source.path, root)
            check_file(path, "path", root)
            md.set_options(pull_on_update=False)
            mdata = _load(lambda: md.read_h5mu(path), path, "path", ".h5mu")
            available = list(mdata.mod)
            if source.modalities is not None:
                names = (source.modalities[0], source.modalities[1])
                for name in names:
                    if name not in mdata.mod:
                        raise XmodalInputError(
                            f"no modality {name!r} in the .h5mu (it has {available})",
                            path=path,
                            fix="set `source.modalities` to two of the modalities listed",
                        )
            elif len(available) < 2:
                raise XmodalInputError(
                    f"the .h5mu holds {len(available)} modalities ({available}), a paired data "
                    "set needs two",
                    path=path,
                    fix="write both modalities into the .h5mu, or give `path_a` and `path_b`",
                )
            else:
                names = (available[0], available[1])
            a, b = mdata.mod[names[0]].copy(), mdata.mod[names[1]].copy()
            path_a = path_b = path
            sources = (f"{path}:{names[0]}", f"{path}:{names[1]}")
        else:
            if source.path_a is None or source.path_b is None:  # excluded by the model validator
                raise XmodalInputError(
                    "give `path` (.h5mu) or both `path_a` and `path_b` (.h5ad)",
                    fix="set `source.path`, or `source.path_a` and `source.path_b`",
                )
            path_a, path_b = resolve(source.path_a, root), resolve(source.path_b, root)
            check_file(path_a, "path_a", root)
            check_file(path_b, "path_b", root)
            a = _load(lambda: ad.read_h5ad(path_a), path_a, "path_a", ".h5ad")
            b = _load(lambda: ad.read_h5ad(path_b), path_b, "path_b", ".h5ad")
            names = (path_a.stem, path_b.stem) if path_a.stem != path_b.stem else ("a", "b")
            sources = (str(path_a), str(path_b))

    a, b = _dense(a, path_a, sources[0]), _dense(b, path_b, sources[1])
    validate_paired(PairedData(a=a, b=b, names=names), source_paths=sources)
    if source.match_key is not None:
        _set_match(a, b, source.match_key, path_a, sources[0])
    if source.label_key is not None:
        _set_labels(a, b, source.label_key, (path_a, path_b), sources, source.match_key)
    return assign_kinds(PairedData(a=a, b=b, names=names), declared=source.kinds, source_paths=sources)


def _load(read: Callable[[], Any], path: Path, role: str, suffix: str) -> Any:
    from xmodal.data._formats import describe, require
    from xmodal.data._sparse import check_h5_file

    kind = suffix.lstrip(".")
    require(path, kind, expects=f"{role}: expected {describe(kind)}", fix=f"give {describe(kind)} here")
    check_h5_file(path)  # the matrices' raw arrays, before anndata/mudata build them
    try:
        return read()
    except Exception as exc:  # noqa: BLE001 - the h5py/anndata error types vary by version
        raise XmodalInputError(
            f"{role}: cannot read the file as {suffix} ({type(exc).__name__}: {exc})",
            path=path,
            fix=f"check that the file is a complete {suffix} written by anndata/mudata",
        ) from None


def _dense(adata: ad.AnnData, path: Path, label: str) -> ad.AnnData:
    """A copy with dense float32 ``X`` and string ``obs_names``/``var_names``."""
    if adata.X is None:
        raise XmodalInputError(
            f"{label}: the modality has no X matrix",
            path=path,
            fix="store the feature matrix in X (not only in layers)",
        )
    from xmodal.data._sparse import Where, check_matrix
    from xmodal.data._unique import check_unique_columns

    check_unique_columns(list(adata.obs.columns), table=f"{label}: obs", path=path)
    check_matrix(adata.X, where=Where(path, matrix=f"{label}: X", row_ids=adata.obs_names, col_ids=adata.var_names,
                                      cols="feature"))  # before toarray reads through its arrays
    x = adata.X.toarray() if sp.issparse(adata.X) else np.asarray(adata.X)
    out = adata.copy()
    out.X = np.ascontiguousarray(x, dtype=np.float32)
    out.obs_names = pd.Index([str(n) for n in out.obs_names], dtype=object)
    out.var_names = pd.Index([str(n) for n in out.var_names], dtype=object)
    return out


def _as_str(column: pd.Series) -> np.ndarray:
    """Column values as str with missing values as ``""``."""
    values = column.astype(object).to_numpy()
    return np.array(["" if pd.isna(v) else str(v) for v in values], dtype=object)


def _set_match(a: ad.AnnData, b: ad.AnnData, key: str, path: Path, label: str) -> None:
    if key not in a.obs:
        raise XmodalInputError(
            f"{label}: no obs column {key!r} (match_key); it has {list(map(str, a.obs.columns))}",
            path=path,
            column=key,
            fix="set `source.match_key` to the obs column of modality A naming each partner in B, "
            "or remove it",
        )
    partner = _as_str(a.obs[key])
    pos_b = {name: k for k, name in enumerate(b.obs_names)}
    b_match = np.full(b.n_obs, "", dtype=object)
    for i, name in enumerate(partner):
        if name == "":
            continue
        if name not in pos_b:
            raise XmodalInputError(
                f"{label}: cell {a.obs_names[i]!r} names partner {name!r}, which is not a cell of "
                "modality B",
                path=path,
                row=i + 1,
                column=key,
                fix="the match_key column must hold obs names of modality B (empty when unknown)",
            )
        k = pos_b[name]
        if b_match[k] != "":
            raise XmodalInputError(
                f"{label}: cells {b_match[k]!r} and {a.obs_names[i]!r} both name partner {name!r}",
                path=path,
                row=i + 1,
                column=key,
                fix="each cell of modality B can be the partner of one cell of A only",
            )
        b_match[k] = a.obs_names[i]
    a.obs[MATCH] = partner
    b.obs[MATCH] = b_match


def _set_labels(
    a: ad.AnnData,
    b: ad.AnnData,
    key: str,
    paths: tuple[Path, Path],
    labels: tuple[str, str],
    match_key: str | None,
) -> None:
    present = (key in a.obs, key in b.obs)
    for k, adata in enumerate((a, b)):
        if present[k]:
            _check_labels(adata, paths[k], labels[k], key)
            adata.obs[LABEL] = _as_str(adata.obs[key])
    if all(present):
        return
    missing = 1 if present[0] else 0
    if not any(present) or match_key is None:
        have = (a, b)[missing].obs.columns
        raise XmodalInputError(
            f"{labels[missing]}: no obs column {key!r} (label_key); it has {list(map(str, have))}",
            path=paths[missing],
            column=key,
            fix="set `source.label_key` to an obs column present in both modalities (or in one "
            "of them together with `match_key`), or remove it",
        )
    # propagate the labels of the labelled modality to its partners
    src, dst = (a, b) if missing == 1 else (b, a)
    lookup = dict(zip(src.obs_names, src.obs[LABEL], strict=True))
    dst.obs[LABEL] = np.array([lookup.get(p, "") for p in _as_str(dst.obs[MATCH])], dtype=object)
    unlabelled = np.flatnonzero(dst.obs[LABEL].to_numpy() == "")
    if len(unlabelled):
        i = int(unlabelled[0])
        raise XmodalInputError(
            f"{labels[missing]}: {len(unlabelled)} cells have no partner in the labelled modality, so no label "
            f"(first: {str(dst.obs_names[i])!r}); label_key {key!r} is only in {labels[1 - missing]}",
            path=paths[missing],
            row=i + 1,
            column=key,
            fix=f"add an obs column {key!r} to this modality too, or remove `label_key`",
        )


def _check_labels(adata: ad.AnnData, path: Path, label: str, key: str) -> None:
    """A blank or NaN label in ``obs[key]`` is missing data, not a class named ``''``: refuse it with the cell's row."""
    role = label.removeprefix(str(path)).lstrip(":")  # the modality of an .h5mu; nothing for an .h5ad
    for i, value in enumerate(adata.obs[key].astype(object).to_numpy()):
        text = "" if pd.isna(value) else str(value).strip()
        if text.lower() in _BLANK_LABELS:
            what = "a missing (NaN)" if pd.isna(value) or text else "an empty"
            raise XmodalInputError(
                f"{role + ': ' if role else ''}cell {str(adata.obs_names[i])!r} has {what} label in obs[{key!r}]",
                path=path,
                row=i + 1,
                column=key,
                fix="give every cell a label (e.g. 'unassigned' for cells without a type), or drop those cells",
            )


# --------------------------------------------------------------------------------------------
# validation of the container
# --------------------------------------------------------------------------------------------
def validate_paired(data: PairedData, *, source_paths: tuple[str, str] | None = None) -> None:
    """Check both modalities of ``data``: cells, features, unique cell ids, finite values.

    Parameters
    ----------
    data
        The container to check (``X`` dense or sparse).
    source_paths
        Files (or descriptions) of modality A and B used in the error messages; default: the
        modality names.

    Raises
    ------
    XmodalInputError
        For the first problem: a modality with zero cells or zero features (empty), a
        duplicate cell id (naming the id and both rows), or a NaN or infinite value (naming
        the row, the column name and the cell id). Rows are 1-based positions of the cells in
        the modality, i.e. the spreadsheet row counting the first cell as row 1 (the CSV
        reader reports editor line numbers itself before it calls this function).
    """
    paths = source_paths if source_paths is not None else data.names
    for name, adata, path in ((data.names[0], data.a, paths[0]), (data.names[1], data.b, paths[1])):
        if adata.n_obs == 0 or adata.n_vars == 0:
            what = "no cells" if adata.n_obs == 0 else "no features"
            raise XmodalInputError(
                f"{name}: empty modality ({what}; shape {adata.n_obs} x {adata.n_vars})",
                path=path,
                fix="provide at least one cell and one feature in each modality",
            )
        var_names = pd.Index(adata.var_names)
        if var_names.duplicated().any():
            j = int(np.argmax(var_names.duplicated()))
            first = int(np.flatnonzero(var_names == var_names[j])[0])
            raise XmodalInputError(
                f"{name}: feature name {str(var_names[j])!r} appears twice (features {first + 1} and {j + 1})",
                path=path,
                column=j + 1,
                fix="give every feature a unique name (e.g. anndata's var_names_make_unique())",
            )
        obs_names = pd.Index(adata.obs_names)
        dup = obs_names.duplicated()
        if dup.any():
            j = int(np.argmax(dup))
            cid = obs_names[j]
            i = int(np.flatnonzero(obs_names == cid)[0])
            raise XmodalInputError(
                f"{name}: duplicate cell id {cid!r} (rows {i + 1} and {j + 1})",
                path=path,
                row=j + 1,
                fix="every cell id must be unique; remove or rename the repeated cell",
            )
        bad = first_nonfinite(adata.X)
        if bad is not None:
            i, j, value = bad
            kind = "NaN (missing)" if np.isnan(value) else "infinite"
            raise XmodalInputError(
                f"{name}: value of cell {str(adata.obs_names[i])!r} is {kind}",
                path=path,
                row=i + 1,
                column=str(adata.var_names[j]),
                fix="replace NaN/infinite values by finite numbers (impute) or drop the cell or "
                "the feature before ingest",
            )


def assign_kinds(
    data: PairedData,
    *,
    declared: Sequence[str],
    source_paths: Sequence[str | Path] | None = None,
    rows: Sequence[np.ndarray | None] = (None, None),
    columns: Sequence[Callable[[int], int | str] | None] = (None, None),
) -> PairedData:
    """Decide (``auto``) or check (``counts``) what each modality holds; return ``data`` with ``kinds`` set.

    Each modality's kind and the reason for it are logged (INFO, one line per modality) and kept in
    ``kind_reasons`` (``schema.json``: ``modalities.<a|b>.kind_reason``).

    Parameters
    ----------
    data
        Validated paired data.
    declared
        Per modality: ``counts`` (every value must be a non-negative integer), ``continuous``, or ``auto``: counts
        when every value is a non-negative integer *and* the values have the low end counts have, zeros or small
        values (:func:`~xmodal.data._counts.judge_counts`); dense integer features without one (the 5th
        percentile of the values 100 or more: binned or aggregated measurements) are continuous. A modality that
        is almost counts, with a few negative or fractional values, is logged as a warning naming the first such
        value.
    source_paths
        The files of A and B, for messages.
    rows, columns
        How to name a cell's row (e.g. the CSV line of each cell) and a feature's column in messages;
        default: 1-based cell position and the feature name.

    Raises
    ------
    XmodalInputError
        A modality declared ``counts`` holds a negative or non-integer value (naming the file, the cell's row,
        the feature and the value).
    """
    from xmodal.data._counts import judge_counts

    paths = source_paths if source_paths is not None else data.names
    kinds, reasons = [], []
    for k, (adata, kind) in enumerate(zip((data.a, data.b), declared, strict=True)):
        name = data.names[k]
        label = "ab"[k] if name == "ab"[k] else f"{'ab'[k]} ({name})"
        verdict = judge_counts(adata.X)
        if verdict.integers or kind == "continuous":
            got = {"counts": "counts", "continuous": "continuous"}.get(kind, verdict.kind)
            if kind == "auto":
                reason = verdict.reason + ("" if verdict.counts else "; declare source.kinds counts if they are")
            elif got == verdict.kind or not verdict.integers:
                reason = f"declared; {verdict.reason}"
            else:
                reason = f"declared; auto would read {verdict.reason}"
            kinds.append(got)
            reasons.append(reason)
            log.info("%s: %s (%s)", label, got, reason)
            continue
        bad, share = _not_counts(adata.X)
        i, j, value = bad or (0, 0, float("nan"))  # the verdict saw a negative or fractional value: bad names it
        where = {"path": paths[k], "row": int(rows[k][i]) if rows[k] is not None else i + 1,
                 "column": columns[k](j) if columns[k] is not None else str(adata.var_names[j])}
        what = "negative" if value < 0 else "not an integer"
        if kind == "counts":
            raise XmodalInputError(
                f"{name}: value {value:g} of cell {str(adata.obs_names[i])!r} is {what}, but the modality is declared "
                "as counts", **where,
                fix="give raw counts (non-negative integers), or declare the modality `continuous` in source.kinds")
        if share >= 0.99:
            log.warning("%s: %.2f %% of the non-zero values are positive integers, as in counts, but cell %r holds "
                        "%g in %r (%s); it is read as continuous. Declare source.kinds as counts to refuse such "
                        "values, or as continuous to silence this", name, 100 * share, str(adata.obs_names[i]), value,
                        str(adata.var_names[j]), paths[k])
        kinds.append("continuous")
        reasons.append(verdict.reason)
        log.info("%s: continuous (%s)", label, verdict.reason)
    return replace(data, kinds=(kinds[0], kinds[1]), kind_reasons=(reasons[0], reasons[1]))


def _not_counts(x: object) -> tuple[tuple[int, int, float] | None, float]:
    """The first value (row-major) that is negative or not an integer, and the share of non-zero values that
    are positive integers."""
    values = np.asarray(sp.coo_matrix(x).data if sp.issparse(x) else x, dtype=np.float64)
    nonzero = values[values != 0]
    share = float(((nonzero > 0) & (nonzero == np.round(nonzero))).mean()) if nonzero.size else 1.0
    return first_entry(x, lambda v: (v < 0) | (v != np.round(v))), share


def load_source(source: object, *, root: object = ".") -> PairedData:
    """Build a :class:`PairedData` from a dataset ``source`` config (any of the five kinds).

    Parameters
    ----------
    source
        A ``SyntheticPairedSource``, ``MultiomicSimSource``, ``Pbmc68kSource``, ``CsvPairedSource`` or ``AnnDataSource``.
    root
        Directory that relative file paths in ``source`` are resolved against. ``s3://`` URIs
        (``csv`` and ``anndata`` sources) are downloaded to a temporary folder, read like local
        files and removed (see :mod:`xmodal._s3` for the endpoint and credentials).

    Returns
    -------
    PairedData
        Validated data; bad input raises :class:`~xmodal.errors.XmodalInputError`.
    """
    from xmodal.families.paired._bundled import pbmc68k_paired
    from xmodal.families.paired._config import (
        AnnDataSource,
        CsvPairedSource,
        MultiomicSimSource,
        Pbmc68kSource,
        SyntheticPairedSource,
    )
    from xmodal.families.paired._multiomic import simulated_multiome
    from xmodal.families.paired._synthetic import synthetic_paired

    if isinstance(source, SyntheticPairedSource):
        data = replace(synthetic_paired(source), kinds=("continuous", "counts"))
    elif isinstance(source, MultiomicSimSource):
        kinds = ("counts", "counts") if source.features == "counts" else ("continuous", "continuous")
        data = replace(simulated_multiome(source), kinds=kinds)
    elif isinstance(source, Pbmc68kSource):
        data = replace(pbmc68k_paired(source), kinds=("continuous", "continuous"))
    elif isinstance(source, CsvPairedSource):
        return read_paired_csv(source, root=Path(str(root)))
    elif isinstance(source, AnnDataSource):
        return read_paired_anndata(source, root=Path(str(root)))
    else:  # pragma: no cover - the config union is closed
        raise TypeError(f"unknown data source {type(source).__name__}")
    validate_paired(data)
    return assign_kinds(data, declared=data.kinds or ("auto", "auto"))  # the generator's kinds, logged and checked
