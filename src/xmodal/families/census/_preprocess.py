"""Preprocessing of the ``census`` family: the split (whole context combinations held out), the metadata vocabulary
and the genes, all from training cells, and the processed store the loader streams.

``data/processed/<dataset>/`` holds:

* ``store/``: a SOMA experiment of the **raw counts of the selected genes**, its rows grouped by split (training
  cells first, then validation, then test, each in ingested order) so every split is one contiguous row range
  the loader reads in chunks; ``obs`` keeps the metadata, ``split`` and ``ingested_row``;
* ``vocab.json``: the metadata vocabulary built on the training cells (code 0: null or unseen), with the spellings
  that merged into one value (``merged``);
* ``field_means.npz``: per value of every field, the training cells' mean normalised expression (``mean:<field>``,
  the mean-shift baseline of the counterfactual evaluation) and its additive effect fitted jointly with every other
  field's (``effect:<field>``, :func:`additive_effects`: the mean-shift term's targets in ``cycleae``);
* ``preprocessor_rna/``: what the served model needs to bring raw counts into its input (the genes, the
  normalisation, the vocabulary);
* ``schema.json``: shapes, split sizes, the held-out combinations (in the data's spellings), the merged spellings of
  every field (``merged_values``) and a content hash;
* ``truth.npz`` (synthetic data only): the planted model on the kept genes.

Metadata values are read once, before anything is built from them, through one rule
(:func:`~xmodal.families.census._vocab.canonical_obs`): values that differ only in case, whitespace or Unicode form
are one value, stored in its most frequent spelling, and the merge is logged. Held-out combinations are matched the
same way, so a cell spelled ``"t cell"`` / ``"Female"`` of a held-out ``{cell_type: T cell, sex: female}`` is a test
cell.

The model's input is ``log1p(target_sum · counts / Σ counts)`` over the selected genes, computed per batch.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from xmodal.errors import XmodalInputError
from xmodal.families._base import SPLITS
from xmodal.families.census._io import STORE, TRUTH_FILE, read_ingested
from xmodal.families.census._vocab import (
    Vocabulary,
    build_vocabulary,
    canonical_holdout,
    canonical_obs,
    key_column,
    normalize_column,
    value_key,
)

log = logging.getLogger(__name__)

SPLIT = "split"
INGESTED_ROW = "ingested_row"
VOCAB_FILE = "vocab.json"
FIELD_MEANS = "field_means.npz"
PREPROCESSOR = "preprocessor_rna"


def dataset_config(ingested: Path) -> Any:
    """The dataset's config as ingest recorded it in ``schema.json`` (fields, held-out combinations)."""
    from xmodal.families.census._config import CensusDatasetConfig

    schema = read_ingested(ingested)
    settings = (schema.get("settings") or {}).get("dataset")
    if not isinstance(settings, dict):
        raise XmodalInputError("schema.json records no dataset settings", path=Path(ingested) / "schema.json",
                               fix="re-run `xmodal ingest` for this dataset")
    return CensusDatasetConfig.model_validate(settings)


def holdout_mask(obs: pd.DataFrame, holdout: list[dict[str, str]], *, where: str | Path) -> np.ndarray:
    """Cells in any held-out combination (values matched by :func:`~xmodal.families.census._vocab.value_key`: case,
    whitespace and Unicode form do not matter).

    Raises
    ------
    XmodalInputError
        A combination that matches no cell (the values present are listed).
    """
    held = np.zeros(len(obs), dtype=bool)
    for combo in holdout:
        match = np.ones(len(obs), dtype=bool)
        for field, value in combo.items():
            column = key_column(obs[field])
            want = value_key(value)
            if want is None or want not in set(column.dropna()):
                shown = sorted(set(normalize_column(obs[field]).dropna()))
                raise XmodalInputError(
                    f"holdout {combo}: {field} has no value {value!r} (values: {', '.join(shown)[:400]})", path=where,
                    fix="name values that occur in the data under datasets.<name>.holdout")
            match &= (column == want).to_numpy()
        if not match.any():
            raise XmodalInputError(f"holdout {combo} matches no cell", path=where,
                                   fix="hold out a combination that occurs in the data")
        held |= match
    return held


def assign_splits(obs: pd.DataFrame, *, holdout: list[dict[str, str]], split: Any, where: str | Path) -> np.ndarray:
    """``train`` / ``validation`` / ``test`` per cell: every cell of a held-out combination is a test cell; the others
    are split at the configured shares, stratified by the held-out fields' combination when ``split.stratify``.

    ``obs`` is expected in canonical spellings (:func:`~xmodal.families.census._vocab.canonical_obs`): held-out cells
    are found by value key whatever their spelling, but strata are told apart by spelling.

    Raises
    ------
    XmodalInputError
        A split with fewer than ``split.min_cells_per_split`` cells.
    """
    from xmodal.data import split_cells

    held = holdout_mask(obs, holdout, where=where)
    rest = np.flatnonzero(~held)
    strata_fields = list(dict.fromkeys(f for combo in holdout for f in combo)) if split.stratify else []
    # by spelling: the strata's sorted order seeds the split, and obs is in canonical spellings (one per value) here
    strata = [normalize_column(obs[f].iloc[rest]).fillna("").to_numpy() for f in strata_fields]
    out = np.full(len(obs), "test", dtype=object)
    out[rest] = split_cells(len(rest), strata=strata, validation=split.validation_fraction,
                            test=split.test_fraction, rng=np.random.default_rng(split.seed))
    for name in SPLITS:
        n = int((out == name).sum())
        if n < split.min_cells_per_split:
            raise XmodalInputError(f"the {name} split holds {n} cells, fewer than split.min_cells_per_split = "
                                   f"{split.min_cells_per_split}", path=where,
                                   fix="use more cells, hold out fewer combinations or change the split shares")
    return out


def check_learnable(vocab: Vocabulary, holdout: list[dict[str, str]], counterfactual_field: str, *,
                    where: str | Path) -> None:
    """Every value of a held-out combination must occur in training on its own, and the counterfactual field must be
    used, or the combination cannot be composed from what the model learned.

    Raises
    ------
    XmodalInputError
        Naming the value (or field) and the fix.
    """
    if counterfactual_field not in vocab.fields:
        spec = next((s for s in vocab.specs if s.field == counterfactual_field), None)
        raise XmodalInputError(f"the counterfactual field {counterfactual_field!r} is not used by the model "
                               f"({spec.reason if spec else 'not among the fields'})", path=where,
                               fix="choose a counterfactual_field with two or more values among the training cells")
    for combo in holdout:
        for field, value in combo.items():
            if field in vocab.fields and vocab.code(field, value) == 0:
                raise XmodalInputError(
                    f"holdout {combo}: no training cell has {field} = {value!r} once the combinations are held out, "
                    "so the model cannot learn it", path=where,
                    fix="hold out combinations whose values each occur in other training cells")


@dataclass(frozen=True)
class GeneStats:
    """Per-gene statistics of the training cells in ``log1p(target_sum · counts / Σ counts)`` (all genes)."""

    n_cells: int
    detected: np.ndarray
    mean: np.ndarray
    var: np.ndarray


def gene_stats(store: Path, train: np.ndarray, *, target_sum: float, chunk_size: int) -> GeneStats:
    """Stream the store once and accumulate the training cells' per-gene detection, mean and variance."""
    from xmodal.families.census._soma import store_blocks

    s1 = s2 = det = None
    n = 0
    for lo, counts in store_blocks(store, chunk_size=chunk_size):
        rows = train[lo:lo + counts.shape[0]]
        if not rows.any():
            continue
        x = lognormalize_csr(counts[rows], target_sum=target_sum)
        if s1 is None:
            s1, s2, det = np.zeros(x.shape[1]), np.zeros(x.shape[1]), np.zeros(x.shape[1])
        s1 += np.asarray(x.sum(axis=0)).ravel()
        s2 += np.asarray(x.multiply(x).sum(axis=0)).ravel()
        det += np.asarray((x > 0).sum(axis=0)).ravel()
        n += x.shape[0]
    if s1 is None or n == 0:
        raise XmodalInputError("no training cell to select genes from", path=store,
                               fix="check the split: every cell was held out")
    mean = s1 / n
    return GeneStats(n_cells=n, detected=det, mean=mean, var=np.maximum(s2 / n - mean**2, 0.0))


def lognormalize_csr(counts: sp.csr_matrix, *, target_sum: float) -> sp.csr_matrix:
    """``log1p(target_sum · counts / Σ counts)`` per row of a CSR matrix (rows without counts stay zero)."""
    counts = sp.csr_matrix(counts, dtype=np.float32)
    totals = np.asarray(counts.sum(axis=1)).ravel()
    scale = np.divide(target_sum, totals, out=np.zeros_like(totals, dtype=np.float64), where=totals > 0)
    out = sp.csr_matrix(sp.diags(scale.astype(np.float32)) @ counts)
    out.data = np.log1p(out.data)
    return out


def additive_effects(gram: np.ndarray, moments: np.ndarray, *, rcond: float = 1e-10) -> np.ndarray:
    """Per-value effects of every field fitted jointly by least squares: each value's mean with the other fields'
    composition taken out.

    A per-value mean compares cells that also differ in every other field. Where training cells are not balanced
    across fields (always, once whole combinations are held out: the training cells of one sex then lack a cell type
    the other has), the difference of two means carries the other fields' effects. Here the expression ``y`` of each
    training cell is fitted as ``Σ_f β_f[code_f]`` over all fields at once, and ``β_f[b] − β_f[a]`` is the change
    from ``a`` to ``b`` with everything else held equal.

    Parameters
    ----------
    gram
        ``(P, P)``: ``DᵀD`` of the indicator design ``D`` ``(cells, P)``, one column per code of every field (code 0
        included), ``P = Σ_f (K_f + 1)``.
    moments
        ``(P, G)``: ``Dᵀy``.
    rcond
        Relative cut-off of the pseudo-inverse's eigenvalues.

    Returns
    -------
    numpy.ndarray
        ``(P, G)`` float64, the minimum-norm least-squares solution. Each field's columns sum to the intercept, so
        single effects are not identified; their differences within a field are wherever the design connects the two
        values, which is what the mean-shift term reads.
    """
    return np.linalg.pinv(gram, rcond=rcond, hermitian=True) @ moments


def select_genes(stats: GeneStats, *, n_top: int | None, min_cells: int) -> np.ndarray:
    """Indices (sorted) of the most variable genes detected in at least ``min_cells`` training cells."""
    ok = stats.detected >= min_cells
    if ok.sum() < 2:
        raise XmodalInputError(f"{int(ok.sum())} genes are detected in ≥ {min_cells} training cells; the model "
                               "needs at least 2", fix="lower preprocess.census.min_cells_per_gene or check the counts")
    candidates = np.flatnonzero(ok)
    if n_top is None or n_top >= len(candidates):
        return candidates
    order = np.argsort(-stats.var[candidates], kind="stable")[:n_top]
    return np.sort(candidates[order])


def preprocess_census(ingested: Path, *, out: Path, cfg: Any, split: Any, dataset: Any = None
                      ) -> dict[str, dict[str, int]]:
    """Split, build the vocabulary, select genes on training cells, and write the processed folder into ``out``.

    Parameters
    ----------
    ingested
        ``data/ingested/<dataset>`` (the ingested store and its schema).
    out
        An empty folder.
    cfg
        :class:`~xmodal.families.census._config.CensusPreprocessConfig`.
    split
        :class:`~xmodal.config.SplitConfig`.
    dataset
        The dataset's config (held-out combinations, fields, counterfactual field); default: as ingest recorded it.

    Returns
    -------
    dict
        ``{"train": {"rna": n}, "validation": {...}, "test": {...}}``.
    """
    from xmodal._io import write_json
    from xmodal.data import SCHEMA_FILE
    from xmodal.families.census._io import column_values
    from xmodal.families.census._soma import store_blocks, store_obs, store_var, write_store

    ingested, out = Path(ingested), Path(out)
    dcfg = dataset if dataset is not None else dataset_config(ingested)
    schema = read_ingested(ingested)
    store = ingested / STORE
    where = ingested / STORE
    truth = None
    if (ingested / TRUTH_FILE).is_file():  # read (and checked) before the work, not after the store is written
        from xmodal.families.census._synthetic import CensusSim

        truth = CensusSim.load_truth(ingested / TRUTH_FILE)
    # every value in one spelling (matched case-, whitespace- and Unicode-insensitively), once, before the split,
    # the vocabulary and the processed store are made; the held-out combinations in the same spellings
    obs, merged = canonical_obs(store_obs(store), list(dcfg.fields), where=str(where))
    holdout = canonical_holdout(list(dcfg.holdout), obs)
    labels = assign_splits(obs, holdout=holdout, split=split, where=where)
    vocab = build_vocabulary([obs[labels == "train"]], list(dcfg.fields), where=str(where))
    vocab = replace(vocab, merged={f: merged[f] for f in vocab.fields if f in merged})
    check_learnable(vocab, holdout, dcfg.counterfactual_field, where=where)
    stats = gene_stats(store, labels == "train", target_sum=cfg.target_sum, chunk_size=cfg.chunk_size)
    genes = select_genes(stats, n_top=cfg.n_top_genes, min_cells=cfg.min_cells_per_gene)
    var = store_var(store).iloc[genes]

    # rows grouped by split, each split in ingested order
    order = np.concatenate([np.flatnonzero(labels == s) for s in SPLITS])
    position = np.empty(len(obs), dtype=np.int64)
    position[order] = np.arange(len(obs))
    columns = [c for c in schema.get("columns", list(dcfg.fields)) if c in obs.columns]
    meta = obs[columns].copy()
    meta[SPLIT] = labels
    meta[INGESTED_ROW] = np.arange(len(obs), dtype=np.int64)
    digest = hashlib.sha256(str(schema.get("sha256", "")).encode())
    digest.update(np.asarray(genes, dtype=np.int64).tobytes())
    digest.update(labels.astype(str).tobytes())

    # one indicator column per code of every field (code 0 included): X'X and X'y of the training cells give the
    # per-value means (the mean-shift baseline) and the additive effects (:func:`additive_effects`)
    sizes_f = [vocab.cardinality(f) + 1 for f in vocab.fields]
    offsets = np.concatenate([[0], np.cumsum(sizes_f)])
    gram = np.zeros((offsets[-1], offsets[-1]))
    moments = np.zeros((offsets[-1], len(genes)))

    def chunks() -> Any:
        for lo, counts in store_blocks(store, chunk_size=cfg.chunk_size):
            hi = lo + counts.shape[0]
            block = counts[:, genes]
            block.sort_indices()
            rows = meta.iloc[lo:hi]
            train = np.flatnonzero(labels[lo:hi] == "train")
            if len(train):
                x = lognormalize_csr(block[train], target_sum=cfg.target_sum)
                codes = vocab.encode(rows.iloc[train], where=str(where))
                design = sp.csr_matrix((np.ones(codes.size), ((codes + offsets[:-1]).ravel(),
                                                              np.repeat(np.arange(len(train)), codes.shape[1]))),
                                       shape=(offsets[-1], len(train)))
                gram[...] += (design @ design.T).toarray()
                moments[...] += np.asarray((design @ x).todense())
            for name in SPLITS:  # one contiguous run of target rows per split
                pick = np.flatnonzero(labels[lo:hi] == name)
                if len(pick):
                    yield block[pick], rows.iloc[pick], position[lo:hi][pick]

    values = column_values(meta, columns)
    values[SPLIT] = list(SPLITS)
    write_store(out / STORE, chunks(), var=var, n_cells=len(obs), fields=[*columns, SPLIT], values=values,
                int_columns=[INGESTED_ROW])
    vocab.save(out / VOCAB_FILE)
    if truth is not None:  # the planted model on the kept genes: evaluation reads only this folder
        truth.subset_genes(genes).save_truth(out / TRUTH_FILE)
    counted = np.diag(gram)
    effects = additive_effects(gram, moments)
    blocks = {f: slice(offsets[j], offsets[j + 1]) for j, f in enumerate(vocab.fields)}
    with (out / FIELD_MEANS).open("wb") as fh:  # rows: code 0 (null/unseen), then codes 1..K
        np.savez(fh, **{f"mean:{f}": (moments[b] / np.maximum(counted[b], 1)[:, None]).astype(np.float32)
                        for f, b in blocks.items()},
                 **{f"effect:{f}": effects[b].astype(np.float32) for f, b in blocks.items()},
                 **{f"count:{f}": counted[b] for f, b in blocks.items()})
    sizes = {s: int((labels == s).sum()) for s in SPLITS}
    prep = CensusPreprocessor(genes=list(map(str, var.index)), feature_names=list(map(str, var["feature_name"])),
                              target_sum=cfg.target_sum, vocab=vocab)
    prep.save(out / PREPROCESSOR)
    held = holdout_mask(obs, holdout, where=where)
    write_json(out / SCHEMA_FILE, {
        "family": "census", "schema_version": 1, "n_obs": len(obs), "n_vars": len(var), "genes_of": int(len(stats.mean)),
        "sha256": digest.hexdigest(), "splits": sizes,
        "rows": {s: [int(sum(sizes[t] for t in SPLITS[:i])), int(sum(sizes[t] for t in SPLITS[:i + 1]))]
                 for i, s in enumerate(SPLITS)},
        "holdout": holdout, "holdout_cells": int(held.sum()), "merged_values": merged,
        "counterfactual_field": dcfg.counterfactual_field, "fields": vocab.fields, "chunk_size": cfg.chunk_size,
        "dropped_fields": [s.field for s in vocab.specs if not s.used], "target_sum": cfg.target_sum,
        "synthetic_truth": bool(schema.get("synthetic_truth")),
        "modalities": {"rna": {"name": "rna", "n_obs": len(obs), "n_vars": len(var), "sha256": digest.hexdigest(),
                               "kind": "counts"}},
    })
    log.info("census: %d genes of %d kept; %d held-out cells in %d combination(s); fields %s", len(var),
             len(stats.mean), int(held.sum()), len(holdout), vocab.fields)
    return {s: {"rna": sizes[s]} for s in SPLITS}


class CensusPreprocessor:
    """Raw counts (any genes, named by ``feature_id`` or ``feature_name``) → the model's genes, and metadata codes.

    Parameters
    ----------
    genes
        The model's genes (``feature_id``), in order.
    feature_names
        Their names (either may name a column of the input).
    target_sum
        Counts per cell after normalisation (the model normalises; kept here for the record).
    vocab
        The metadata vocabulary of the training cells.
    """

    kind = "census"

    def __init__(self, *, genes: list[str], feature_names: list[str], target_sum: float, vocab: Vocabulary) -> None:
        self.genes, self.feature_names, self.target_sum, self.vocab = genes, feature_names, target_sum, vocab

    def save(self, directory: Path) -> None:
        """Write ``meta.json`` and ``vocab.json`` into ``directory``."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "meta.json").write_text(json.dumps(
            {"family": "census", "kind": "census", "genes": self.genes, "feature_names": self.feature_names,
             "target_sum": self.target_sum}, indent=1) + "\n")
        self.vocab.save(directory / VOCAB_FILE)

    @classmethod
    def load(cls, directory: Path) -> CensusPreprocessor:
        """Read what :meth:`save` wrote."""
        from xmodal._io import read_json

        directory = Path(directory)
        meta = read_json(directory / "meta.json", fix="re-run `xmodal preprocess` (the folder is damaged)")
        try:
            return cls(genes=[str(g) for g in meta["genes"]], feature_names=[str(g) for g in meta["feature_names"]],
                       target_sum=float(meta["target_sum"]), vocab=Vocabulary.load(directory / VOCAB_FILE))
        except (KeyError, TypeError, ValueError) as exc:
            raise XmodalInputError(f"not a census preprocessor ({exc})", path=directory / "meta.json",
                                   fix="re-run `xmodal preprocess`") from None

    def gene_columns(self, names: list[str]) -> np.ndarray:
        """Column index of each model gene in ``names`` (matched by ``feature_id``, else ``feature_name``).

        Raises
        ------
        XmodalInputError
            Model genes the input lacks (how many, and the first few).
        """
        index = pd.Index([str(n) for n in names])
        by_id = index.get_indexer(self.genes)
        if (by_id < 0).any() and not index.has_duplicates:
            by_name = index.get_indexer(self.feature_names)
            by_id = by_name if (by_name >= 0).sum() > (by_id >= 0).sum() else by_id
        missing = [g for g, i in zip(self.genes, by_id, strict=True) if i < 0]
        if missing:
            raise XmodalInputError(f"the input lacks {len(missing)} of the model's {len(self.genes)} genes (first: "
                                   f"{', '.join(missing[:5])})",
                                   fix="give raw counts of every gene the model was trained on (columns named by "
                                   "feature_id or feature_name); genes it does not know are ignored")
        return by_id

    def transform_adata(self, adata: Any) -> Any:
        """An AnnData of raw counts → a copy holding the model's genes in order (raw counts, CSR), ``obs`` kept."""
        import anndata as ad

        cols = self.gene_columns(list(map(str, adata.var_names)))
        x = model_counts(adata.X, cols, path="the input cells")
        return ad.AnnData(X=x, obs=adata.obs.copy(), var=pd.DataFrame({"feature_name": self.feature_names},
                                                                       index=pd.Index(self.genes, name="feature_id")))

    def transform_frame(self, frame: pd.DataFrame, domain: str | None = None) -> Any:
        """A DataFrame of raw counts (gene columns) plus metadata columns → :meth:`transform_adata` of it."""
        import anndata as ad

        meta = [c for c in frame.columns if c in self.vocab.fields]
        genes = [c for c in frame.columns if c not in meta]
        try:  # float64: the counts check sees the values as given, before float32 could change them
            x = frame[genes].to_numpy(dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise XmodalInputError(f"gene columns must hold numbers ({exc})",
                                   fix="give raw counts per gene, and the metadata fields as their own columns") from None
        adata = ad.AnnData(X=sp.csr_matrix(x), obs=frame[meta].astype(object).copy(),
                           var=pd.DataFrame(index=pd.Index(genes, dtype=str)))
        adata.obs_names = [str(i) for i in frame.index]
        return self.transform_adata(adata)


def model_counts(matrix: Any, cols: Any, *, path: str) -> sp.csr_matrix:
    """Columns ``cols`` of a raw-counts matrix (dense or sparse, any numeric dtype) as float32 CSR, checked first.

    The counts check (:func:`~xmodal.families.census._chunks.check_counts`) runs on the values as given, so a count
    float32 would change (16 777 217, a float64 1e-50) is refused rather than silently altered.
    """
    from xmodal.families.census._chunks import check_counts

    picked = sp.csr_matrix(matrix)[:, cols] if sp.issparse(matrix) else np.asarray(matrix)[:, cols]
    check_counts(picked, path=path)
    return sp.csr_matrix(picked, dtype=np.float32)


__all__ = ["FIELD_MEANS", "INGESTED_ROW", "PREPROCESSOR", "SPLIT", "VOCAB_FILE", "CensusPreprocessor", "GeneStats",
           "additive_effects", "assign_splits", "check_learnable", "dataset_config", "gene_stats", "holdout_mask", "lognormalize_csr",
           "model_counts", "preprocess_census", "select_genes"]
