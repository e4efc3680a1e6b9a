"""Synthetic paired data with planted ground truth, so every metric means something.

A shared latent space holds ``n_clusters`` cell types of unequal size; inside each cluster cells
spread along a trajectory (continuous structure, so within-cluster pairing is recoverable in
principle). Modality A is a random linear map of the latent plus a smooth nonlinear bend (morphology-like,
continuous); modality B is Poisson counts whose log-rate is a random linear map of the latent
(expression-like). Paired mode measures each latent cell in both modalities and shuffles B,
recording the true partner in ``obs["match"]``; unpaired mode draws B's cells independently.

``seed`` fixes the experiment (cell types, geometry, measurement maps); ``batch`` draws another set of
cells from that same experiment, and ``batch_effect`` plants a technical shift on a batch (per-feature
offsets in A, per-gene capture changes in B), so drift monitoring and retraining have a known answer.
"""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd

from xmodal.families.paired._config import SyntheticPairedSource
from xmodal.families.paired._data import CLUSTER, LABEL, MATCH, PairedData


def synthetic_paired(config: SyntheticPairedSource | None = None, **overrides: object) -> PairedData:
    """Generate a planted-structure paired dataset.

    Parameters
    ----------
    config
        Generator parameters (defaults: :class:`~xmodal.config.SyntheticPairedSource`).
    **overrides
        Field overrides, e.g. ``synthetic_paired(n_cells=200, seed=3)``.

    Returns
    -------
    PairedData
        ``a``: ``n_cells × dim_a`` float32; ``b``: ``n_b × dim_b`` float32 counts; both with
        ``obs["label"]`` and ``obs["cluster"]``; in paired mode ``obs["match"]`` names the
        partner; ``corr_matrix`` is the correlation of the planted cluster centres (K × K).
    """
    cfg = (config or SyntheticPairedSource()).model_copy(update=overrides)
    _check_size(cfg)
    rng = np.random.default_rng(cfg.seed)  # the experiment
    k, latent = cfg.n_clusters, cfg.latent_dim
    weights = rng.permutation(np.arange(1, k + 1, dtype=float))
    weights /= weights.sum()
    centres = rng.normal(size=(k, latent)) * 2.0
    directions = rng.normal(size=(k, latent))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    # each cluster gets its own trajectory length and spread: distinct shapes, not just positions
    directions *= rng.uniform(0.5, 2.5, size=(k, 1))
    spreads = rng.uniform(0.15, 0.5, size=k)
    map_a = (
        rng.normal(size=(latent, cfg.dim_a)) / np.sqrt(latent),
        rng.normal(size=(latent, 32)) / np.sqrt(latent),
        rng.normal(size=(32, cfg.dim_a)) / np.sqrt(32),
    )
    map_b = (rng.normal(size=(latent, cfg.dim_b)) * 0.5 / np.sqrt(latent), rng.normal(size=cfg.dim_b) * 0.5 + 0.5)
    # batch 0 continues the experiment's stream (its cells are what they always were); batch i has its own
    cells_rng = rng if cfg.batch == 0 else np.random.default_rng([cfg.seed, cfg.batch])
    offset_a, offset_b = _batch_effect(cfg)

    z_a, lab_a = _latent_cells(cells_rng, cfg.n_cells, weights, centres, directions, spreads)
    if cfg.pairing == "paired":
        perm = cells_rng.permutation(cfg.n_cells)
        z_b, lab_b = z_a[perm], lab_a[perm]
    else:
        z_b, lab_b = _latent_cells(cells_rng, cfg.n_cells_b or cfg.n_cells, weights, centres, directions, spreads)

    # mostly linear with a smooth nonlinear bend: a different, but not scrambled, geometry
    x_a = z_a @ map_a[0] + 0.5 * np.tanh(z_a @ map_a[1]) @ map_a[2]
    x_a = x_a + cfg.noise * x_a.std() * cells_rng.normal(size=x_a.shape) + offset_a * x_a.std(axis=0)
    rate = np.exp(z_b @ map_b[0] + map_b[1] + offset_b) * cells_rng.lognormal(0.0, cfg.noise, size=(len(z_b), 1))
    x_b = cells_rng.poisson(rate).astype(np.float32)

    suffix = f"-{cfg.batch}" if cfg.batch else ""
    a = _anndata(x_a, lab_a, prefix="a", feature="feat", suffix=suffix)
    b = _anndata(x_b, lab_b, prefix="b", feature="gene", suffix=suffix)
    if cfg.pairing == "paired":
        inverse = np.empty_like(perm)
        inverse[perm] = np.arange(len(perm))
        a.obs[MATCH] = b.obs_names[inverse].to_numpy(dtype=str)
        b.obs[MATCH] = a.obs_names[perm].to_numpy(dtype=str)
    names = [f"type_{i}" for i in range(k)]
    corr = pd.DataFrame(np.corrcoef(centres), index=names, columns=names)
    return PairedData(a=a, b=b, names=tuple(cfg.names), corr_matrix=corr)


def _check_size(cfg: SyntheticPairedSource) -> None:
    """Refuse sizes this machine cannot hold (float64 work arrays, about four live at once)."""
    from xmodal._resources import check_memory

    n_b = cfg.n_cells_b or cfg.n_cells
    width = cfg.dim_a + cfg.dim_b + cfg.latent_dim + 32
    check_memory(4 * 8 * (cfg.n_cells + n_b) * width,
                 what=f"synthetic paired data of {cfg.n_cells:,} + {n_b:,} cells × {cfg.dim_a:,} + {cfg.dim_b:,} "
                 "features", fix="lower source.n_cells (n_cells_b), dim_a or dim_b of the dataset")


def _batch_effect(cfg: SyntheticPairedSource) -> tuple[np.ndarray, np.ndarray]:
    """The planted technical shift of one batch: offsets (in feature SDs) for A, log-rate offsets for B."""
    if cfg.batch_effect == 0:
        return np.zeros(cfg.dim_a), np.zeros(cfg.dim_b)
    rng = np.random.default_rng([cfg.seed, cfg.batch, 1])
    return cfg.batch_effect * rng.normal(size=cfg.dim_a), cfg.batch_effect * rng.normal(size=cfg.dim_b)


def _latent_cells(
    rng: np.random.Generator,
    n: int,
    weights: np.ndarray,
    centres: np.ndarray,
    directions: np.ndarray,
    spreads: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    labels = rng.choice(len(weights), size=n, p=weights)
    t = rng.uniform(-1.0, 1.0, size=n)
    noise = spreads[labels, None] * rng.normal(size=(n, centres.shape[1]))
    z = centres[labels] + t[:, None] * directions[labels] + noise
    return z, labels


def _anndata(x: np.ndarray, labels: np.ndarray, *, prefix: str, feature: str, suffix: str = "") -> ad.AnnData:
    obs = pd.DataFrame(index=[f"{prefix}{i:05d}{suffix}" for i in range(len(x))])
    obs[LABEL] = pd.Categorical([f"type_{i}" for i in labels])
    obs[CLUSTER] = obs[LABEL].astype(str)
    var = pd.DataFrame(index=[f"{feature}_{j}" for j in range(x.shape[1])])
    return ad.AnnData(X=np.asarray(x, dtype=np.float32), obs=obs, var=var)
