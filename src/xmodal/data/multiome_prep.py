"""Preprocessing of the ``multiome`` family: pure functions, each returning new objects.

- :func:`normalize_cpm_log1p_l2`: the seed's CPM → log1p → row-L2, skipped for data that already look
  normalised;
- :func:`frequent_peaks`: peaks open in at least a share of (training) cells;
- :func:`map_peaks`: carry another dataset's peaks onto reference peaks by genomic overlap (unmatched
  reference peaks stay zero);
- :func:`score_phases`: cell-cycle phases from S and G2/M gene scores when a dataset has no labels;
- :func:`split_per_domain`: stratified train/validation/test split inside every domain.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from xmodal.data.multiome import DOMAIN, G2M_GENES, PHASE, S_GENES
from xmodal.errors import XmodalInputError

log = logging.getLogger(__name__)
_PEAK = re.compile(r"^(?P<chrom>[^:\s]+)[:_-](?P<start>\d+)[-_](?P<end>\d+)$")
SPLITS = ("train", "validation", "test")


def looks_normalized(x: np.ndarray | sp.spmatrix) -> bool:
    """The seed's rule: already normalised when the maximum is below 20 and some value is not an integer."""
    values = x.data if sp.issparse(x) else np.asarray(x).ravel()
    if values.size == 0:
        return False
    return float(values.max()) < 20 and bool(np.any(values != np.round(values)))


def normalize_cpm_log1p_l2(x: np.ndarray | sp.spmatrix, *, force: bool = False) -> sp.csr_matrix:
    """Counts per million → ``log1p`` → unit L2 norm per cell.

    Parameters
    ----------
    x
        Cells × features, dense or sparse, ``(n, d)``.
    force
        Normalise even when :func:`looks_normalized` says the data already are.

    Returns
    -------
    scipy.sparse.csr_matrix
        ``(n, d)`` float32; cells with no counts stay all-zero.
    """
    m = sp.csr_matrix(x, dtype=np.float64, copy=True)
    if not force and looks_normalized(m):
        log.info("data look normalised already (max < 20, non-integer values): left as they are")
        return m.astype(np.float32)
    totals = np.asarray(m.sum(axis=1)).ravel()
    scale = np.divide(1e6, totals, out=np.zeros_like(totals), where=totals > 0)
    m = sp.diags(scale) @ m
    m.data = np.log1p(m.data)
    norms = np.sqrt(np.asarray(m.multiply(m).sum(axis=1)).ravel())
    m = sp.diags(np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)) @ m
    return sp.csr_matrix(m, dtype=np.float32)


def frequent_peaks(atac: ad.AnnData, *, min_fraction: float = 0.05) -> np.ndarray:
    """Boolean mask ``(n_peaks,)`` of peaks open (> 0) in at least ``min_fraction`` of the cells given.

    Pass training cells only, so that held-out cells do not shape the feature set.
    """
    if not 0 <= min_fraction < 1:
        raise ValueError(f"min_fraction must be in [0, 1), got {min_fraction}")
    x = sp.csr_matrix(atac.X)
    share = np.asarray((x > 0).sum(axis=0)).ravel() / max(atac.n_obs, 1)
    return share >= min_fraction


def parse_peaks(names: Sequence[str]) -> pd.DataFrame:
    """Split ``chr:start-end`` names (also ``chr-start-end``, ``chr_start_end``) into columns.

    Raises
    ------
    XmodalInputError
        Naming the first peak that is not in that form, and its position.
    """
    rows = []
    for i, name in enumerate(names):
        match = _PEAK.match(str(name))
        if match is None or int(match["end"]) <= int(match["start"]):
            raise XmodalInputError(f"peak {name!r} is not `chr:start-end` with end > start", column=i + 1,
                                   fix="name peaks by their coordinates, e.g. chr1:10000-10500")
        rows.append((match["chrom"], int(match["start"]), int(match["end"])))
    return pd.DataFrame(rows, columns=["chrom", "start", "end"])


def map_peaks(reference: Sequence[str], query: ad.AnnData, *, min_overlap: float = 0.5) -> tuple[sp.csr_matrix, float]:
    """Express ``query``'s peak counts on the ``reference`` peaks by genomic overlap.

    A query peak feeds a reference peak when they overlap by at least ``min_overlap`` of the
    shorter of the two; a reference peak sums the counts of all query peaks feeding it and stays 0
    when none does (zero imputation).

    Parameters
    ----------
    reference
        Reference peak names (``chr:start-end``), ``(p_ref,)``.
    query
        Cells × peaks of another dataset, ``(n, p_query)``.
    min_overlap
        Required overlap as a share of the shorter peak, in ``(0, 1]``.

    Returns
    -------
    tuple
        Counts on the reference peaks ``(n, p_ref)`` (CSR float32) and the share of reference
        peaks that received a query peak.
    """
    if not 0 < min_overlap <= 1:
        raise ValueError(f"min_overlap must be in (0, 1], got {min_overlap}")
    ref, qry = parse_peaks(reference), parse_peaks(list(query.var_names))
    rows, cols = [], []
    for chrom, q in qry.groupby("chrom", sort=False):
        r = ref[ref["chrom"] == chrom]
        if r.empty:
            continue
        order = np.argsort(r["start"].to_numpy())
        r_start, r_end, r_idx = r["start"].to_numpy()[order], r["end"].to_numpy()[order], r.index.to_numpy()[order]
        longest = int((r_end - r_start).max())
        for qi, qs, qe in zip(q.index, q["start"], q["end"], strict=True):
            lo = np.searchsorted(r_start, qs - longest, side="left")
            hi = np.searchsorted(r_start, qe, side="left")
            for k in range(lo, hi):
                overlap = min(qe, r_end[k]) - max(qs, r_start[k])
                if overlap > 0 and overlap >= min_overlap * min(qe - qs, r_end[k] - r_start[k]):
                    rows.append(qi)
                    cols.append(r_idx[k])
    link = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(qry), len(ref)))
    mapped = sp.csr_matrix(sp.csr_matrix(query.X) @ link, dtype=np.float32)
    share = float(np.unique(cols).size / max(len(ref), 1))
    log.info("peak mapping: %d of %d reference peaks matched (%.1f %%)", np.unique(cols).size, len(ref), 100 * share)
    return mapped, share


def score_phases(rna: ad.AnnData, *, s_genes: Sequence[str] = S_GENES, g2m_genes: Sequence[str] = G2M_GENES,
                 min_genes: int = 10, seed: int = 0) -> pd.Series:
    """Cell-cycle phase of each cell from S and G2/M gene scores (scanpy's ``score_genes_cell_cycle``).

    The expression is normalised (CPM → log1p) on a copy first. Default gene lists: Tirosh et al.
    (2016), :data:`~xmodal.data.multiome.S_GENES` and :data:`~xmodal.data.multiome.G2M_GENES`.

    Raises
    ------
    XmodalInputError
        When fewer than ``min_genes`` genes of a list are measured.

    Returns
    -------
    pandas.Series
        ``G1``, ``S`` or ``G2M`` per cell, indexed like ``rna.obs``.
    """
    import scanpy as sc

    for name, genes in (("S", s_genes), ("G2M", g2m_genes)):
        found = int(pd.Index(genes).isin(rna.var_names).sum())
        if found < min_genes:
            raise XmodalInputError(
                f"only {found} of the {len(genes)} {name}-phase genes are measured; cannot score phases",
                fix="give phase labels (obs column `phase`) or gene names as symbols (e.g. MCM5, TOP2A)")
    work = ad.AnnData(X=sp.csr_matrix(rna.X, dtype=np.float32), obs=pd.DataFrame(index=rna.obs_names),
                      var=pd.DataFrame(index=rna.var_names))
    sc.pp.normalize_total(work, target_sum=1e6)
    sc.pp.log1p(work)
    sc.tl.score_genes_cell_cycle(work, s_genes=list(s_genes), g2m_genes=list(g2m_genes), random_state=seed)
    return work.obs["phase"].astype(str).rename(PHASE)


def split_per_domain(obs: pd.DataFrame, *, validation: float = 0.15, test: float = 0.15,
                     seed: int = 0) -> pd.Series:
    """Stratified (by ``phase``) train/validation/test assignment inside each ``domain``.

    Parameters
    ----------
    obs
        Cell annotations with ``domain`` and ``phase`` columns.
    validation, test
        Shares held out in every domain and phase.
    seed
        Seeds the assignment.

    Returns
    -------
    pandas.Series
        ``train``, ``validation`` or ``test`` per cell (categorical), indexed like ``obs``.
    """
    if validation < 0 or test < 0 or validation + test >= 1:
        raise ValueError("validation and test must be non-negative shares with validation + test < 1")
    rng = np.random.default_rng(seed)
    out = np.empty(len(obs), dtype=object)
    groups = obs.groupby([obs[DOMAIN].astype(str), obs[PHASE].astype(str)], sort=True).indices
    for _, idx in sorted(groups.items()):
        idx = rng.permutation(idx)
        n_test = int(round(test * len(idx)))
        n_val = int(round(validation * len(idx)))
        out[idx[:n_test]] = "test"
        out[idx[n_test:n_test + n_val]] = "validation"
        out[idx[n_test + n_val:]] = "train"
    return pd.Series(pd.Categorical(out, categories=list(SPLITS)), index=obs.index, name="split")
