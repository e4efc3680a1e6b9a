"""A simulation of a paired RNA + ATAC experiment that behaves like real data (SNARE-seq, 10x Multiome).

What makes real paired data hard for an alignment method, and what :func:`synthetic_paired` does not have:

* **Unequal cell types** (a few large, several rare), each with continuous structure inside it (a
  differentiation axis shared by all types, and a type-specific program), not isotropic blobs.
* **Two different nonlinear read-outs of the same state**: RNA is a random two-layer network of the latent
  state, ATAC another one; neither modality's geometry is a linear image of the other's.
* **Count noise of the real kind**: RNA is negative-binomial (gamma-Poisson) with log-normal library sizes;
  ATAC is binary accessibility of thousands of peaks with a per-cell depth, about 3–6 % non-zero.
* **Very different widths**: thousands of genes against many thousands of peaks, or, in ``features:
  reduced``, the low-dimensional features people share (SNARE-seq's published matrices are 10 RNA PCs and
  19 ATAC topic proportions): RNA log-CPM → PCA, ATAC TF-IDF → non-negative topics, proportions per cell.

The pairing is known (B's rows are shuffled, ``obs["match"]`` names the partner), so FOSCTTM and label
transfer have a true answer.
"""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd

from xmodal.families.paired._config import MultiomicSimSource
from xmodal.families.paired._data import CLUSTER, LABEL, MATCH, PairedData


def simulated_multiome(config: MultiomicSimSource | None = None, **overrides: object) -> PairedData:
    """Generate a SNARE-seq-like paired dataset (A = ATAC, B = RNA by default names).

    Parameters
    ----------
    config
        Generator parameters (defaults: :class:`~xmodal.families.paired.MultiomicSimSource`).
    **overrides
        Field overrides, e.g. ``simulated_multiome(n_cells=500, features="reduced")``.

    Returns
    -------
    PairedData
        ``a``: ATAC, ``n_cells × n_peaks`` binary counts (or ``n_cells × n_topics`` proportions);
        ``b``: RNA, ``n_cells × n_genes`` counts (or ``n_cells × n_rna_pcs`` PCs), rows shuffled; both with
        ``obs["label"]``, ``obs["cluster"]`` and ``obs["match"]``.
    """
    cfg = (config or MultiomicSimSource()).model_copy(update=overrides)
    _check_size(cfg)
    rng = np.random.default_rng(cfg.seed)
    k, latent = cfg.n_types, cfg.latent_dim
    # unequal cell types: sorted Dirichlet shares, the rarest at least min_type_fraction
    shares = np.sort(rng.dirichlet(np.full(k, 1.2)))[::-1]
    shares = np.maximum(shares, cfg.min_type_fraction)
    shares /= shares.sum()
    centres = rng.normal(size=(k, latent)) * cfg.separation
    program = rng.normal(size=(k, latent))
    program /= np.linalg.norm(program, axis=1, keepdims=True)
    shared_axis = rng.normal(size=latent)
    shared_axis /= np.linalg.norm(shared_axis)
    labels = rng.choice(k, size=cfg.n_cells, p=shares)
    t_type = rng.uniform(-1.0, 1.0, size=cfg.n_cells)
    t_shared = rng.beta(2.0, 2.0, size=cfg.n_cells) * 2.0 - 1.0
    spread = rng.uniform(0.3, 0.7, size=k)
    z = (centres[labels] + 1.5 * t_type[:, None] * program[labels] + 1.0 * t_shared[:, None] * shared_axis
         + spread[labels, None] * rng.normal(size=(cfg.n_cells, latent)))

    rna_rate = _read_out(rng, z, cfg.n_genes, hidden=cfg.hidden)
    gene_base = rng.normal(-1.0, 1.2, size=cfg.n_genes)
    library = rng.lognormal(np.log(cfg.rna_depth), 0.5, size=(cfg.n_cells, 1))
    mu = np.exp(np.clip(rna_rate + gene_base, -12, 6))
    mu = mu / mu.sum(axis=1, keepdims=True) * library
    theta = cfg.rna_dispersion
    rna = rng.poisson(rng.gamma(theta, mu / theta)).astype(np.float32)

    atac_logit = _read_out(rng, z, cfg.n_peaks, hidden=cfg.hidden)
    peak_base = rng.normal(-4.0, 0.8, size=cfg.n_peaks)
    depth = rng.normal(0.0, 0.4, size=(cfg.n_cells, 1))
    prob = 1.0 / (1.0 + np.exp(-(1.2 * atac_logit + peak_base + depth)))
    atac = (rng.random(prob.shape) < prob).astype(np.float32)

    if cfg.features == "reduced":
        atac, atac_names = _topics(atac, cfg.n_topics, seed=cfg.seed), [f"topic_{j}" for j in range(cfg.n_topics)]
        rna, rna_names = _log_pcs(rna, cfg.n_rna_pcs), [f"PC_{j}" for j in range(cfg.n_rna_pcs)]
    else:
        atac_names = [f"peak_{j}" for j in range(cfg.n_peaks)]
        rna_names = [f"gene_{j}" for j in range(cfg.n_genes)]

    names = [f"type_{i}" for i in range(k)]
    perm = rng.permutation(cfg.n_cells)
    inverse = np.empty_like(perm)
    inverse[perm] = np.arange(cfg.n_cells)
    a = _anndata(atac, labels, names, prefix="atac", features=atac_names)
    b = _anndata(rna[perm], labels[perm], names, prefix="rna", features=rna_names)
    a.obs[MATCH] = b.obs_names[inverse].to_numpy(dtype=str)
    b.obs[MATCH] = a.obs_names[perm].to_numpy(dtype=str)
    corr = pd.DataFrame(np.corrcoef(centres), index=names, columns=names)
    return PairedData(a=a, b=b, names=tuple(cfg.names), corr_matrix=corr)


def _read_out(rng: np.random.Generator, z: np.ndarray, width: int, *, hidden: int) -> np.ndarray:
    """A random two-layer network ``tanh(z W1 + c) W2``: a smooth, nonlinear, modality-specific view, ``(n, width)``."""
    w1 = rng.normal(size=(z.shape[1], hidden)) / np.sqrt(z.shape[1])
    c = rng.normal(size=hidden) * 0.5
    w2 = rng.normal(size=(hidden, width)) / np.sqrt(hidden)
    h = np.tanh(z @ w1 + c)
    return 1.5 * h @ w2


def _log_pcs(counts: np.ndarray, n_pcs: int) -> np.ndarray:
    """RNA as people share it: log1p of counts per 10 000, centred, top principal components ``(n, n_pcs)``."""
    x = np.log1p(counts / np.maximum(counts.sum(axis=1, keepdims=True), 1.0) * 1e4)
    x = x - x.mean(axis=0)
    u, s, _ = np.linalg.svd(x, full_matrices=False)
    return (u[:, :n_pcs] * s[:n_pcs]).astype(np.float32)


def _topics(binary: np.ndarray, n_topics: int, *, seed: int) -> np.ndarray:
    """ATAC as people share it: TF-IDF, non-negative topics (NMF), as proportions per cell ``(n, n_topics)``."""
    from sklearn.decomposition import NMF

    tf = binary / np.maximum(binary.sum(axis=1, keepdims=True), 1.0)
    idf = np.log1p(len(binary) / np.maximum(binary.sum(axis=0), 1.0))
    w = NMF(n_components=n_topics, init="nndsvda", max_iter=300, random_state=seed).fit_transform(tf * idf)
    w = w + 1e-6
    return (w / w.sum(axis=1, keepdims=True)).astype(np.float32)


def _check_size(cfg: MultiomicSimSource) -> None:
    from xmodal._resources import check_memory

    check_memory(6 * 8 * cfg.n_cells * (cfg.n_genes + cfg.n_peaks),
                 what=f"a simulated multiome of {cfg.n_cells:,} cells × {cfg.n_genes:,} genes + {cfg.n_peaks:,} peaks",
                 fix="lower source.n_cells, n_genes or n_peaks of the dataset")


def _anndata(x: np.ndarray, labels: np.ndarray, names: list[str], *, prefix: str, features: list[str]) -> ad.AnnData:
    obs = pd.DataFrame(index=[f"{prefix}{i:05d}" for i in range(len(x))])
    obs[LABEL] = pd.Categorical([names[i] for i in labels], categories=names)
    obs[CLUSTER] = obs[LABEL].astype(str)
    return ad.AnnData(X=np.asarray(x, dtype=np.float32), obs=obs, var=pd.DataFrame(index=features))
