"""Reading, validating and storing ``multiome`` data (see :mod:`xmodal.families.multiome._data`).

Readers accept what users have: Cell Ranger ARC's ``filtered_feature_bc_matrix.h5`` (Gene Expression
+ Peaks), an ``.h5mu`` with ``rna`` and ``atac`` modalities, and the seed's CSV set (cells × genes,
cells × peaks named ``chr:start-end``, labels). Every reader validates: errors name the file, the row
or column, and the fix.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from xmodal.data import SCHEMA_FILE
from xmodal.errors import XmodalInputError
from xmodal.families.multiome._data import DOMAIN, PHASE, PHASES, MultiomeData
from xmodal.families.multiome._prep import parse_peaks

log = logging.getLogger(__name__)
SCHEMA_VERSION = 1
GEX, PEAKS = "Gene Expression", "Peaks"


def _with_domain(rna: ad.AnnData, atac: ad.AnnData, domain: str, phases: pd.Series | None) -> MultiomeData:
    obs = pd.DataFrame(index=rna.obs_names.astype(str))
    if phases is not None:
        obs[PHASE] = pd.Categorical(phases.reindex(obs.index).astype(str), categories=list(PHASES))
    obs[DOMAIN] = pd.Categorical([domain] * len(obs), categories=[domain])
    rna = ad.AnnData(X=sp.csr_matrix(rna.X, dtype=np.float32), obs=obs.copy(), var=rna.var.copy())
    atac = ad.AnnData(X=sp.csr_matrix(atac.X, dtype=np.float32), obs=obs.copy(), var=atac.var.copy())
    return MultiomeData(rna=rna, atac=atac)


def read_10x_multiome(path: str | Path, *, domain: str, phases: pd.Series | None = None) -> MultiomeData:
    """Read Cell Ranger ARC's ``filtered_feature_bc_matrix.h5``.

    Parameters
    ----------
    path
        The HDF5 matrix with ``Gene Expression`` and ``Peaks`` features.
    domain
        Name of this dataset (e.g. the cell line).
    phases
        Optional phase per barcode (``G1``/``S``/``G2M``); without it, phases are scored later.

    Returns
    -------
    MultiomeData
        Counts of both modalities, validated.
    """
    import scanpy as sc

    from xmodal.data._formats import require

    path = Path(path)
    require(path, "10x_h5", expects="format 10x_h5 expects a Cell Ranger ARC matrix",
            fix="give Cell Ranger ARC's filtered_feature_bc_matrix.h5")
    check_10x_h5(path)  # the raw arrays, before scanpy builds (and slices) a matrix from them
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            both = sc.read_10x_h5(path, gex_only=False)
    except Exception as exc:  # noqa: BLE001 - h5py/scanpy raise many types for a damaged matrix
        raise XmodalInputError(f"not a readable 10x feature-barcode matrix ({type(exc).__name__}: {exc})", path=path,
                               fix="give Cell Ranger ARC's filtered_feature_bc_matrix.h5, complete") from None
    if "feature_types" not in both.var:
        raise XmodalInputError("the matrix has no feature types (a Cell Ranger 2 or gene-only matrix)", path=path,
                               fix="give the joint ARC matrix (Gene Expression + Peaks) of Cell Ranger ARC")
    kinds = both.var["feature_types"].astype(str)
    missing = [k for k in (GEX, PEAKS) if not (kinds == k).any()]
    if missing:
        raise XmodalInputError(f"the matrix has no {' or '.join(repr(m) for m in missing)} features "
                               f"(found: {sorted(set(kinds))})", path=path,
                               fix="give the joint ARC matrix (Gene Expression + Peaks), not a single-modality one")
    both.var_names_make_unique()
    data = _with_domain(both[:, (kinds == GEX).to_numpy()], both[:, (kinds == PEAKS).to_numpy()], domain, phases)
    validate_multiome(data, source=str(path))
    return data


def check_10x_h5(path: str | Path) -> None:
    """Check a 10x feature-barcode matrix (``matrix/``: ``data``, ``indices``, ``indptr`` over barcodes, ``shape``
    features × barcodes, ``barcodes``, ``features/id``) before it is read: the sparse arrays
    (:mod:`xmodal.data._sparse`), the lengths of the barcode and feature lists, and that barcodes and feature ids
    are unique (gene symbols may repeat: scanpy's names are made unique, as Cell Ranger's own tools do).

    A file without this layout is left to the reader's own error.

    Raises
    ------
    XmodalInputError
        Naming the file, the first bad position (barcode and feature) or the duplicated value and its positions.
    """
    import h5py

    from xmodal.data._sparse import Where, h5_sparse
    from xmodal.data._unique import check_unique

    try:
        fh = h5py.File(path, "r")
    except Exception:  # noqa: BLE001 - not HDF5: scanpy's error (caught by the reader) says so
        return
    with fh:
        m = fh.get("matrix")
        feats = m.get("features") if isinstance(m, h5py.Group) else None
        if not isinstance(feats, h5py.Group) or not all(isinstance(m.get(k), h5py.Dataset) for k in ("barcodes",
                                                                                                      "shape")):
            return
        where = Where(path, matrix="matrix", rows="barcode", cols="feature")
        try:
            barcodes = [b.decode(errors="replace") if isinstance(b, bytes) else str(b) for b in m["barcodes"][()]]
            ids = feats["id"][()] if isinstance(feats.get("id"), h5py.Dataset) else None
            ids = None if ids is None else [b.decode(errors="replace") if isinstance(b, bytes) else str(b) for b in ids]
            shape = np.asarray(m["shape"][()]).reshape(-1)
        except Exception as exc:  # noqa: BLE001 - h5py raises many types for damaged data
            raise XmodalInputError(f"the matrix's barcodes, features or shape cannot be read ({type(exc).__name__}: "
                                   f"{exc})", path=path, fix="give Cell Ranger ARC's filtered_feature_bc_matrix.h5, "
                                   "complete") from None
        if len(shape) != 2 or shape.dtype.kind not in "iu" or shape.min() < 0:
            raise XmodalInputError(f"the matrix is damaged: its shape {tuple(shape.tolist())} is not two counts "
                                   "(features, barcodes)", path=path,
                                   fix="give Cell Ranger ARC's filtered_feature_bc_matrix.h5, complete")
        n_features, n_barcodes = int(shape[0]), int(shape[1])
        for what, values, n in (("barcodes", barcodes, n_barcodes), ("feature ids", ids, n_features)):
            if values is not None and len(values) != n:
                raise XmodalInputError(f"the matrix lists {len(values)} {what} for its shape's {n}", path=path,
                                       fix="give Cell Ranger ARC's filtered_feature_bc_matrix.h5, complete")
        check_unique(barcodes, what="barcode", path=path, noun="barcode",
                     fix="give each cell one barcode (a matrix of one run), or merge the duplicated cells")
        if ids is not None:
            check_unique(ids, what="feature id", path=path, noun="feature", as_row=False,
                         fix="list each gene and peak once (a peak is one interval chr:start-end)")
        where = Where(path, matrix="matrix", rows="barcode", cols="feature", row_ids=barcodes, col_ids=ids)
        # 10x stores features × barcodes by column: the same arrays are barcodes × features by row
        h5_sparse(m, where=where, shape=(n_barcodes, n_features), fmt="csr").check(kind="values")


def read_multiome_csv(rna: str | Path, atac: str | Path, *, domain: str,
                      labels: str | Path | None = None) -> MultiomeData:
    """Read the seed's CSV set: cells × genes, cells × peaks (id column first, header row), labels.

    Parameters
    ----------
    rna, atac
        Expression and peak tables; both list the same cells (any order).
    domain
        Name of this dataset.
    labels
        Optional table with an id column and a ``phase`` column (``G1``/``S``/``G2M``).

    Returns
    -------
    MultiomeData
        Validated; cells in the order of ``rna``.
    """
    from xmodal.data._tables import cells_mismatch, check_file, numeric, read_table

    tables = {}
    for role, path in (("rna", Path(rna)), ("atac", Path(atac))):
        check_file(path, role, path.parent)
        tables[role] = read_table(path, role, header="required")
    t_rna, t_atac = tables["rna"], tables["atac"]
    mismatch = cells_mismatch(t_rna, t_atac, fix="both tables must list the same cells (a Multiome measures each "
                              "cell twice)")
    if mismatch is not None:
        raise mismatch
    order = pd.Index(t_atac.ids).get_indexer(t_rna.ids)
    x_rna = numeric(t_rna)
    x_atac = numeric(t_atac)[order]
    try:
        parse_peaks(t_atac.columns)
    except XmodalInputError as exc:
        raise XmodalInputError(exc.problem, path=t_atac.path, row=1, column=exc.column, fix=exc.fix) from None
    phases = None
    if labels is not None:
        phases = read_phase_labels(labels, t_rna.ids)
    data = _with_domain(ad.AnnData(X=x_rna, obs=pd.DataFrame(index=t_rna.ids), var=pd.DataFrame(index=t_rna.columns)),
                        ad.AnnData(X=x_atac, obs=pd.DataFrame(index=t_rna.ids),
                                   var=pd.DataFrame(index=t_atac.columns)),
                        domain, phases)
    validate_multiome(data, source=f"{t_rna.path} / {t_atac.path}")
    return data


def read_phase_labels(path: str | Path, ids: Sequence[str]) -> pd.Series:
    """Read a labels CSV (cell id column first, a ``phase`` column) for the cells ``ids``.

    Structure is checked as for every xmodal CSV (ragged lines, duplicate or empty ids, text that is not
    UTF-8), then each phase: it must be one of :data:`~xmodal.families.multiome.PHASES`, and every cell of ``ids``
    needs one (extra rows for other cells are ignored).

    Returns
    -------
    pandas.Series
        The phase of every cell of ``ids``, indexed by them.

    Raises
    ------
    XmodalInputError
        Naming the labels file, the line and the column, the bad value and the fix.
    """
    from xmodal.data._tables import check_file, read_table

    path = Path(path)
    check_file(path, "labels", path.parent)
    table = read_table(path, "labels", header="required")
    if PHASE not in table.columns:
        raise XmodalInputError(f"labels: no `{PHASE}` column (columns: {table.columns})", path=path, row=1,
                               fix="name the column holding G1/S/G2M `phase`")
    j = table.columns.index(PHASE)
    phases = pd.Series([str(v).strip() for v in table.cells[:, j]], index=pd.Index(table.ids, dtype=object))
    for i, value in enumerate(phases):
        if value not in PHASES:
            what = "empty phase" if value == "" else f"unknown phase {value!r}"
            raise XmodalInputError(f"labels: {what} for cell {table.ids[i]!r}", path=path, row=int(table.lines[i]),
                                   column=PHASE, fix=f"use one of {list(PHASES)}")
    missing = [c for c in ids if c not in phases.index]
    if missing:
        raise XmodalInputError(f"labels: {len(missing)} of the {len(ids)} cells have no label (first: "
                               f"{missing[0]!r})", path=path,
                               fix="give every cell a phase, or leave labels out to score phases from genes")
    return phases.loc[list(ids)]


def validate_multiome(data: MultiomeData, *, source: str | None = None) -> None:
    """Check counts (finite, non-negative), peak names, unique cell ids and known phases.

    Raises
    ------
    XmodalInputError
        On the first problem, naming the modality, the cell (row) and the feature (column).
    """
    from xmodal.data import first_entry
    from xmodal.data._sparse import Where, check_matrix
    from xmodal.data._unique import check_unique

    if data.rna.n_obs == 0:
        raise XmodalInputError("no cells", path=source, fix="give at least one cell")
    check_unique(data.rna.obs_names, what="cell id", path=source, fix="give every cell one row")
    for name, adata in (("rna", data.rna), ("atac", data.atac)):
        check_unique(adata.var_names, what=f"{name}: feature", path=source, noun="feature", as_row=False,
                     fix="give every gene and peak a unique name (anndata's var_names_make_unique())")
    for name, adata in (("rna", data.rna), ("atac", data.atac)):  # the arrays, before anything reads the values
        check_matrix(adata.X, where=Where(source, matrix=name, row_ids=adata.obs_names, col_ids=adata.var_names,
                                          cols="feature"), kind="values")
    for name, adata in (("rna", data.rna), ("atac", data.atac)):
        bad = first_entry(sp.csr_matrix(adata.X), lambda v: ~np.isfinite(v) | (v < 0))
        if bad is not None:
            row, col, value = bad
            raise XmodalInputError(
                f"{name}: value {value} of cell {adata.obs_names[row]!r} is not a non-negative count",
                path=source, row=row + 1, column=str(adata.var_names[col]),
                fix="give raw or normalised non-negative values without NaN/inf")
    try:
        parse_peaks(list(data.atac.var_names))
    except XmodalInputError as exc:
        raise XmodalInputError(f"atac: {exc.problem} (peak {exc.column} of {data.atac.n_vars})", path=source,
                               fix=exc.fix) from None
    if PHASE in data.rna.obs:
        check_phases(data.rna.obs[PHASE], source=source)


def check_phases(phases: pd.Series, *, source: str | Path | None) -> None:
    """Every value of ``phases`` (indexed by cell) must be one of :data:`~xmodal.families.multiome.PHASES`.

    Raises
    ------
    XmodalInputError
        Naming ``source``, the first bad cell (its 1-based row) and its value.
    """
    values = phases.astype(object).to_numpy()
    for i, value in enumerate(values):
        if pd.isna(value) or str(value) not in PHASES:
            what = "no phase" if pd.isna(value) or str(value).strip() == "" else f"unknown phase {str(value)!r}"
            raise XmodalInputError(f"obs[{PHASE!r}]: {what} for cell {str(phases.index[i])!r}", path=source,
                                   row=i + 1, column=PHASE,
                                   fix=f"use one of {list(PHASES)}, or leave the phases out to score them from genes")


def concat_domains(datasets: Sequence[MultiomeData]) -> MultiomeData:
    """Stack datasets (domains) that measure the same genes and peaks, in the given order.

    Raises
    ------
    XmodalInputError
        When features differ (map peaks with :func:`~xmodal.families.multiome.map_peaks` first) or a
        domain name repeats.
    """
    names = [d.domains[0] for d in datasets]
    if len(set(names)) != len(names):
        raise XmodalInputError(f"domain names repeat: {names}", fix="name every dataset differently")
    first = datasets[0]
    for d in datasets[1:]:
        for mod in ("rna", "atac"):
            if not getattr(d, mod).var_names.equals(getattr(first, mod).var_names):
                raise XmodalInputError(f"domain {d.domains[0]!r} measures other {mod} features than {names[0]!r}",
                                       fix="align genes by name and peaks by coordinates (map_peaks) first")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rna = ad.concat([d.rna for d in datasets], merge="first")
        atac = ad.concat([d.atac for d in datasets], merge="first")
    for adata in (rna, atac):
        adata.obs[DOMAIN] = pd.Categorical(adata.obs[DOMAIN].astype(str), categories=names)
    return MultiomeData(rna=rna, atac=atac)


def content_hash(adata: ad.AnnData) -> str:
    """SHA-256 over the sparse matrix (CSR arrays and shape), cell and feature names, phase, domain and split."""
    import hashlib

    h = hashlib.sha256()
    x = sp.csr_matrix(adata.X, dtype=np.float32)
    x.sort_indices()
    h.update(str(x.shape).encode())
    for arr in (x.data, x.indices.astype(np.int64), x.indptr.astype(np.int64)):
        h.update(np.ascontiguousarray(arr).tobytes())
    for seq in (adata.obs_names, adata.var_names):
        h.update("\x1f".join(map(str, seq)).encode())
    for col in (PHASE, DOMAIN, "split"):
        if col in adata.obs:
            h.update(col.encode() + "\x1f".join(map(str, adata.obs[col])).encode())
    return h.hexdigest()


def write_multiome(data: MultiomeData, directory: str | Path) -> dict[str, Any]:
    """Write ``data.h5mu`` (modalities ``rna``, ``atac``) and ``schema.json``; return the schema."""
    from xmodal._io import write_json
    from xmodal.data import write_h5mu

    directory = Path(directory)
    write_h5mu({"rna": data.rna, "atac": data.atac},
               {"xmodal": {"family": "multiome", "modalities": ["rna", "atac"]}}, directory)
    schema = {
        "family": "multiome", "schema_version": SCHEMA_VERSION, "domains": data.domains,
        "modalities": {m: {"n_obs": int(a.n_obs), "n_vars": int(a.n_vars), "sha256": content_hash(a)}
                       for m, a in (("rna", data.rna), ("atac", data.atac))},
        "phases": (data.rna.obs[PHASE].astype(str).value_counts().sort_index().to_dict()
                   if PHASE in data.rna.obs else None),
    }
    write_json(directory / SCHEMA_FILE, schema)
    return schema


def read_multiome(directory_or_file: str | Path) -> MultiomeData:
    """Read what :func:`write_multiome` wrote (the folder or its ``.h5mu``)."""
    from xmodal.data import read_h5mu

    mdata, path = read_h5mu(directory_or_file)
    if mdata.uns.get("xmodal", {}).get("family") != "multiome" or not {"rna", "atac"} <= set(mdata.mod):
        raise XmodalInputError("not a `multiome` family file (needs modalities rna and atac)", path=path)
    return MultiomeData(rna=mdata.mod["rna"].copy(), atac=mdata.mod["atac"].copy())


def _read_h5mu_domain(path: Path, *, domain: str, phases: pd.Series | None,
                      with_phases: bool = True) -> MultiomeData:
    import mudata as md

    from xmodal.data._formats import require

    require(path, "h5mu", expects="format h5mu expects an .h5mu with modalities rna and atac",
            fix="give an .h5mu with rna and atac")
    from xmodal.data._sparse import check_h5_file

    check_h5_file(path)  # the matrices' raw arrays, before mudata builds them
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        try:
            mdata = md.read_h5mu(path)
        except Exception as exc:  # noqa: BLE001 - h5py/mudata raise many types for a damaged file
            raise XmodalInputError(f"not a readable .h5mu file ({type(exc).__name__}: {exc})", path=path,
                                   fix="give an .h5mu with modalities `rna` and `atac`, complete") from None
    if not {"rna", "atac"} <= set(mdata.mod):
        raise XmodalInputError(f"the .h5mu has modalities {sorted(mdata.mod)}, not `rna` and `atac`", path=path,
                               fix="name the expression modality `rna` and the peaks `atac`")
    rna, atac = mdata.mod["rna"], mdata.mod["atac"]
    if not rna.obs_names.equals(atac.obs_names):
        raise XmodalInputError("modalities rna and atac hold different cells (or another order)", path=path,
                               fix="keep the cells measured in both, in the same order")
    if phases is None and with_phases and PHASE in rna.obs:
        check_phases(rna.obs[PHASE], source=path)
        phases = rna.obs[PHASE].astype(str)
    data = _with_domain(rna, atac, domain, phases)
    validate_multiome(data, source=str(path))
    return data


def load_multiome(source: Any, *, root: str | Path = ".", seed: int = 0) -> MultiomeData:
    """Build a validated :class:`MultiomeData` from a ``multiome`` dataset source.

    Parameters
    ----------
    source
        :class:`~xmodal.config.SyntheticMultiomeSource` or :class:`~xmodal.config.MultiomeFilesSource`.
    root
        Directory that relative file paths are resolved against (``s3://`` URIs are downloaded first).
    seed
        Seeds the phase scoring of domains without labels.

    Returns
    -------
    MultiomeData
        All domains stacked (``obs["domain"]``), with a ``phase`` per cell: given, or scored from the
        S and G2/M genes (:func:`~xmodal.families.multiome.score_phases`; ``obs["phase_scored"]`` says
        which). Later domains' peaks are carried onto the first domain's by genomic overlap; when
        some reference peak found no overlap, ``atac.var["measured[<domain>]"]`` (bool) says, per
        domain, which peaks were measured and which are zero-imputed (see :class:`~xmodal.families.multiome.PeakMapper`).
    """
    from xmodal.families.multiome._config import MultiomeFilesSource, SyntheticMultiomeSource
    from xmodal.families.multiome._data import synthetic_multiome

    if isinstance(source, SyntheticMultiomeSource):
        data = synthetic_multiome(source)
        validate_multiome(data, source="synthetic_multiome")
        return _mark_scored(data, scored=False)
    if not isinstance(source, MultiomeFilesSource):  # pragma: no cover - the config union is closed
        raise TypeError(f"unknown multiome source {type(source).__name__}")
    from xmodal._s3 import downloaded, is_s3_uri

    remote = {f"{i}.{f}": str(getattr(d, f)) for i, d in enumerate(source.domains)
              for f in ("path", "rna", "atac", "labels") if is_s3_uri(getattr(d, f))}
    if remote:
        with downloaded(remote) as local:
            domains = [d.model_copy(update={f: local[f"{i}.{f}"] for f in ("path", "rna", "atac", "labels")
                                            if f"{i}.{f}" in local}) for i, d in enumerate(source.domains)]
            return load_multiome(source.model_copy(update={"domains": domains}), root=root, seed=seed)
    from xmodal.data._tables import resolve
    from xmodal.errors import reading

    read = [_read_domain(d, root=Path(root), seed=seed) for d in source.domains]
    files = [resolve(Path(str(d.path if d.path is not None else d.atac)), Path(root)) for d in source.domains]
    reference = list(read[0].atac.var_names)
    aligned = [read[0]]
    measured = {read[0].domains[0]: np.ones(len(reference), dtype=bool)}
    for d, file in zip(read[1:], files[1:], strict=True):
        measured[d.domains[0]] = np.ones(len(reference), dtype=bool)
        with reading(file):
            if list(d.atac.var_names) != reference:
                from xmodal.families.multiome._prep import map_peaks

                x, matched = map_peaks(reference, d.atac, min_overlap=source.peak_min_overlap)
                if not matched.any():
                    raise XmodalInputError(f"domain {d.domains[0]!r}: none of its peaks overlaps a peak of "
                                           f"{read[0].domains[0]!r} ({files[0]})",
                                           fix="check that both use the same genome build")
                measured[d.domains[0]] = matched
                d = MultiomeData(rna=d.rna, atac=ad.AnnData(X=x, obs=d.atac.obs.copy(),
                                                            var=read[0].atac.var.copy()))
            aligned.append(_common_genes(d, read[0]))
    data = concat_domains(_unique_ids(aligned, files=files, mode=source.cell_ids))
    if not all(m.all() for m in measured.values()):  # record what coordinate mapping left at zero
        from xmodal.families.multiome._prep import MEASURED

        for name, mask in measured.items():
            data.atac.var[MEASURED.format(name)] = mask
    return data


def _unique_ids(domains: list[MultiomeData], *, files: Sequence[Path], mode: str) -> list[MultiomeData]:
    """The domains with cell ids unique across them (10x barcodes repeat between runs).

    ``mode``: ``as_is`` refuses a repeated id; ``prefix`` writes every id as ``<domain>:<id>``; ``auto`` does so
    only when some id repeats (logged), and keeps the ids otherwise.
    """
    seen: dict[str, int] = {}
    clash = None
    for k, d in enumerate(domains):
        for cid in map(str, d.rna.obs_names):
            if cid in seen and clash is None:
                clash = (cid, seen[cid], k)
            seen.setdefault(cid, k)
    if mode == "as_is" and clash is not None:
        cid, first, second = clash
        raise XmodalInputError(f"cell id {cid!r} is in domain {domains[first].domains[0]!r} ({files[first]}) and in "
                               f"domain {domains[second].domains[0]!r}", path=files[second],
                               fix="give every cell an id unique across domains, or set source.cell_ids: prefix "
                               "(ids become <domain>:<id>) or auto")
    if mode == "prefix" or (mode == "auto" and clash is not None):
        if clash is not None:
            log.info("cell id %r appears in two domains: every id is written as <domain>:<id> (source.cell_ids: %s)",
                     clash[0], mode)
        out = []
        for d in domains:
            name = d.domains[0]
            ids = [f"{name}:{cid}" for cid in map(str, d.rna.obs_names)]
            rna, atac = d.rna.copy(), d.atac.copy()
            rna.obs_names = atac.obs_names = pd.Index(ids, dtype=object)
            out.append(MultiomeData(rna=rna, atac=atac))
        return out
    return domains


def _common_genes(data: MultiomeData, reference: MultiomeData) -> MultiomeData:
    """``data`` with ``reference``'s genes in its order (genes it lacks are zero)."""
    genes = reference.rna.var_names
    if data.rna.var_names.equals(genes):
        return data
    found = genes.isin(data.rna.var_names)
    if found.mean() < 0.5:
        raise XmodalInputError(f"domain {data.domains[0]!r} measures only {found.sum()} of the "
                               f"{len(genes)} genes of {reference.domains[0]!r}",
                               fix="use the same gene names (symbols) in every domain")
    x = sp.lil_matrix((data.rna.n_obs, len(genes)), dtype=np.float32)
    x[:, np.flatnonzero(found)] = sp.csr_matrix(data.rna[:, genes[found]].X)
    rna = ad.AnnData(X=sp.csr_matrix(x), obs=data.rna.obs.copy(), var=reference.rna.var.copy())
    return MultiomeData(rna=rna, atac=data.atac)


def _read_domain(files: Any, *, root: Path, seed: int) -> MultiomeData:
    from xmodal.data._tables import check_file, resolve

    paths = {f: resolve(Path(str(getattr(files, f))), root) for f in ("path", "rna", "atac", "labels")
             if getattr(files, f) is not None}
    for role, path in paths.items():
        check_file(path, f"domains[{files.name}].{role}", root)
    if files.format == "csv":
        data = read_multiome_csv(paths["rna"], paths["atac"], domain=files.name, labels=paths.get("labels"))
    else:
        if files.format == "10x_h5":
            data = read_10x_multiome(paths["path"], domain=files.name)
        else:  # an .h5mu may carry its own phases: a labels file overrides them
            data = _read_h5mu_domain(paths["path"], domain=files.name, phases=None, with_phases="labels" not in paths)
        if "labels" in paths:  # the labels file names the cells (barcodes) of the matrix
            phases = read_phase_labels(paths["labels"], list(map(str, data.rna.obs_names)))
            data = _with_domain(data.rna, data.atac, files.name, phases)
    if PHASE in data.rna.obs:
        return _mark_scored(data, scored=False)
    from xmodal.families.multiome._prep import score_phases

    phases = score_phases(data.rna, seed=seed)
    log.info("domain %s: no labels given; phases scored from S and G2/M genes: %s", files.name,
             phases.value_counts().to_dict())
    return _mark_scored(_with_domain(data.rna, data.atac, files.name, phases), scored=True)


def _mark_scored(data: MultiomeData, *, scored: bool) -> MultiomeData:
    rna, atac = data.rna.copy(), data.atac.copy()
    for adata in (rna, atac):
        adata.obs["phase_scored"] = scored
    return MultiomeData(rna=rna, atac=atac)
