"""Preprocessing of the ``multiome`` family: pure functions, each returning new objects.

- :func:`normalize_cpm_log1p_l2`: the seed's CPM → log1p → row-L2, skipped for data that already look
  normalised;
- :func:`frequent_peaks`: peaks open in at least a share of (training) cells;
- :func:`map_peaks`: carry another dataset's peaks onto reference peaks by genomic overlap (unmatched
  reference peaks stay zero);
- :class:`PeakMapper`: the learned alternative to those zeros — predicts the reference peaks a dataset
  did not measure from the ones it did, fitted on cells that measured both;
- :func:`score_phases`: cell-cycle phases from S and G2/M gene scores when a dataset has no labels;
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from xmodal._threads import torch_threads_kept
from xmodal.errors import XmodalInputError
from xmodal.families.multiome._data import G2M_GENES, PHASE, S_GENES

log = logging.getLogger(__name__)
_PEAK = re.compile(r"^(?P<chrom>[^:\s]+)[:_-](?P<start>\d+)[-_](?P<end>\d+)$")


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
    logged = sp.csr_matrix(sp.diags(_per_million(m)) @ m)
    logged.data = np.log1p(logged.data)
    return sp.csr_matrix(sp.diags(_inverse_norms(logged)) @ logged, dtype=np.float32)


def _per_million(m: sp.spmatrix) -> np.ndarray:
    """``1e6 / row total`` ``(n,)``; 0 for rows without counts."""
    totals = np.asarray(m.sum(axis=1), dtype=np.float64).ravel()
    return np.divide(1e6, totals, out=np.zeros_like(totals), where=totals > 0)


def _inverse_norms(m: sp.spmatrix) -> np.ndarray:
    """``1 / row L2 norm`` ``(n,)``; 0 for all-zero rows."""
    norms = np.sqrt(np.asarray(m.multiply(m).sum(axis=1), dtype=np.float64).ravel())
    return np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)


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


def map_peaks(reference: Sequence[str], query: ad.AnnData, *,
              min_overlap: float = 0.5) -> tuple[sp.csr_matrix, np.ndarray]:
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
        Counts on the reference peaks ``(n, p_ref)`` (CSR float32) and which reference peaks received
        a query peak ``(p_ref,)`` bool (the others are zero-imputed).
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
    matched = np.zeros(len(ref), dtype=bool)
    matched[np.unique(np.asarray(cols, dtype=np.int64))] = True
    log.info("peak mapping: %d of %d reference peaks matched (%.1f %%)", matched.sum(), len(ref),
             100 * matched.mean() if len(ref) else 0.0)
    return mapped, matched


MEASURED = "measured[{}]"  # atac.var column: which reference peaks a domain measured (peak mapping)


@dataclass(frozen=True)
class PeakMapper:
    """Predicts the peaks a dataset did not measure from those it did (the learned peak mapper).

    Coordinate mapping leaves every reference peak that no peak of a dataset overlaps at zero. The mapper
    instead learns, on cells that measured both, a low-rank linear map from the measured peaks to the
    unmeasured ones in the space the model sees (normalised values): a truncated SVD of the measured peaks
    (a ``rank``-dimensional adapter, the seed's 25 027 → 256 idea) followed by ridge regression,
    predictions clipped at zero. :func:`mapper_views` builds its fitting pairs.

    Attributes
    ----------
    measured, unmeasured
        Feature positions (into the preprocessor's kept peaks) of the inputs ``(m,)`` and outputs ``(u,)``.
    basis
        SVD directions ``(m, k)``.
    score_mean
        Mean of the fitting cells' scores ``(k,)``.
    coef
        Ridge coefficients ``(k, u)``.
    intercept
        Mean of the fitting cells' outputs ``(u,)``.
    """

    measured: np.ndarray
    unmeasured: np.ndarray
    basis: np.ndarray
    score_mean: np.ndarray
    coef: np.ndarray
    intercept: np.ndarray

    @classmethod
    def fit(cls, inputs: sp.spmatrix | np.ndarray, outputs: np.ndarray, *, measured: np.ndarray, rank: int = 256,
            alpha: float = 1.0, seed: int = 0) -> PeakMapper:
        """Fit on cells that measured every peak.

        Parameters
        ----------
        inputs
            The fitting cells' measured peaks as the mapped dataset would show them ``(n, m)``.
        outputs
            Their unmeasured peaks, the targets ``(n, u)``.
        measured
            ``(p,)`` bool over the kept peaks: ``m`` True (inputs), ``u`` False (outputs).
        rank
            Width of the adapter (capped at ``min(n, m) - 1``).
        alpha
            Ridge penalty, relative to the mean variance of the scores.
        seed
            Seeds the randomised SVD.
        """
        from sklearn.utils.extmath import randomized_svd

        measured = np.asarray(measured, dtype=bool)
        positions, targets = np.flatnonzero(measured), np.flatnonzero(~measured)
        x = sp.csr_matrix(inputs, dtype=np.float64)
        y = np.asarray(outputs, dtype=np.float64)
        if len(positions) < 2 or len(targets) == 0 or x.shape[0] < 3:
            raise XmodalInputError(f"the peak mapper needs ≥ 2 measured peaks, ≥ 1 unmeasured peak and ≥ 3 fitting "
                                   f"cells (got {len(positions)}, {len(targets)}, {x.shape[0]})",
                                   fix="use preprocess.multiome.peak_impute: zero")
        if x.shape != (y.shape[0], len(positions)) or y.shape[1] != len(targets):
            raise ValueError(f"inputs {x.shape} / outputs {y.shape} do not match the mask ({len(positions)} measured, "
                             f"{len(targets)} not)")
        k = max(1, min(rank, len(positions) - 1, x.shape[0] - 1))
        _, _, vt = randomized_svd(x, n_components=k, random_state=seed)
        basis = vt.T
        scores = np.asarray(x @ basis)
        score_mean = scores.mean(axis=0)
        centred = scores - score_mean
        intercept = y.mean(axis=0)
        gram = centred.T @ centred
        penalty = alpha * max(float(np.trace(gram)) / k, 1e-12)
        coef = np.linalg.solve(gram + penalty * np.eye(k), centred.T @ (y - intercept))
        return cls(measured=positions, unmeasured=targets, basis=basis.astype(np.float32),
                   score_mean=score_mean.astype(np.float32), coef=coef.astype(np.float32),
                   intercept=intercept.astype(np.float32))

    def predict(self, inputs: sp.spmatrix | np.ndarray) -> np.ndarray:
        """Measured peaks ``(n, m)`` → predicted unmeasured peaks ``(n, u)`` float32, ≥ 0."""
        x = sp.csr_matrix(inputs, dtype=np.float32)
        return np.clip((np.asarray(x @ self.basis) - self.score_mean) @ self.coef + self.intercept, 0.0, None)

    def apply(self, x: sp.spmatrix, *, renormalize: bool) -> sp.csr_matrix:
        """``(n, p)`` with the unmeasured peaks replaced by :meth:`predict` of the measured ones → CSR float32.

        ``renormalize``: scale each row back to unit L2 norm (for data normalised by CPM → log1p → L2).
        """
        x = sp.csr_matrix(x, dtype=np.float32)
        predicted = self.predict(x[:, self.measured])
        keep = np.ones(x.shape[1], dtype=np.float32)
        keep[self.unmeasured] = 0.0
        n, u = predicted.shape
        filled = sp.csr_matrix((predicted.ravel(), (np.repeat(np.arange(n), u), np.tile(self.unmeasured, n))),
                               shape=x.shape, dtype=np.float32)
        out = sp.csr_matrix(x.multiply(keep[None, :]) + filled, dtype=np.float32)
        out.eliminate_zeros()
        if renormalize:
            out = sp.csr_matrix(sp.diags(_inverse_norms(out)) @ out, dtype=np.float32)
        return out

    def arrays(self) -> dict[str, np.ndarray]:
        """The fitted arrays, for ``np.savez``."""
        return {f: getattr(self, f) for f in ("measured", "unmeasured", "basis", "score_mean", "coef", "intercept")}


def mapper_views(counts: sp.spmatrix, measured: np.ndarray, *, normalize: bool) -> tuple[sp.csr_matrix, np.ndarray]:
    """Fitting pairs for a :class:`PeakMapper` from cells that measured every peak.

    The inputs are what a dataset that measured only ``measured`` would show after preprocessing (the other
    peaks zero, then CPM → log1p → L2 when ``normalize``); the outputs are the unmeasured peaks on the same
    scale (log1p of counts per million of the measured depth, divided by the same L2 norm), so that the
    predictions slot in beside the inputs before the row is renormalised.

    Parameters
    ----------
    counts
        Raw counts of the fitting cells over the kept peaks ``(n, p)``.
    measured
        ``(p,)`` bool.

    Returns
    -------
    tuple
        Inputs ``(n, m)`` CSR and outputs ``(n, u)`` dense.
    """
    x = sp.csr_matrix(counts, dtype=np.float64)
    measured = np.asarray(measured, dtype=bool)
    seen, unseen = x[:, np.flatnonzero(measured)], np.asarray(x[:, np.flatnonzero(~measured)].toarray())
    if not normalize:
        return sp.csr_matrix(seen, dtype=np.float32), unseen.astype(np.float32)
    scale = _per_million(seen)  # per million of the measured depth, as the mapped dataset's cells are
    logged = sp.csr_matrix(sp.diags(scale) @ seen)
    logged.data = np.log1p(logged.data)
    inverse = _inverse_norms(logged)
    inputs = sp.csr_matrix(sp.diags(inverse) @ logged, dtype=np.float32)
    outputs = np.log1p(unseen * scale[:, None]) * inverse[:, None]
    return inputs, outputs.astype(np.float32)


def score_phases(rna: ad.AnnData, *, s_genes: Sequence[str] = S_GENES, g2m_genes: Sequence[str] = G2M_GENES,
                 min_genes: int = 10, seed: int = 0) -> pd.Series:
    """Cell-cycle phase of each cell from S and G2/M gene scores (scanpy's ``score_genes_cell_cycle``).

    The expression is normalised (CPM → log1p) on a copy first. Default gene lists: Tirosh et al.
    (2016), :data:`~xmodal.families.multiome.S_GENES` and :data:`~xmodal.families.multiome.G2M_GENES`.

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
    with torch_threads_kept():  # scanpy's numba kernels reset the process's OpenMP thread count
        sc.pp.normalize_total(work, target_sum=1e6)
        sc.pp.log1p(work)
        sc.tl.score_genes_cell_cycle(work, s_genes=list(s_genes), g2m_genes=list(g2m_genes), random_state=seed)
    return work.obs["phase"].astype(str).rename(PHASE)
