"""Cluster prior of seed 000: cross-modal cosine similarities should follow cluster correlations.

The seed's MSE form, ``mean((S/τ − T/τ)²)``, is ``mean((S − T)²)/τ²``: with τ = 0.07 it is ~200×
the natural scale (≈100 on random codes) and swamps every other term. :func:`cluster_prior_mse`
is the same objective on the natural scale, ``mean((S − T)²)`` (the seed's value times τ²), so its
weight ``lambda_p`` means what it says. The temperature belongs to the InfoNCE form, where it sets
the softmax sharpness.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def prior_target(corr: torch.Tensor, clusters_a: torch.Tensor, clusters_b: torch.Tensor) -> torch.Tensor:
    """Target matrix ``T_ij = corr[c_b(j), c_a(i)]``.

    Parameters
    ----------
    corr
        Cluster correlations, ``(K_b, K_a)`` (B clusters × A clusters, the seed's orientation).
    clusters_a, clusters_b
        Integer cluster of each cell in the batch, ``(n_a,)`` and ``(n_b,)``.

    Returns
    -------
    torch.Tensor
        ``(n_a, n_b)``.
    """
    return corr[clusters_b][:, clusters_a].T


def cluster_prior_mse(z_a: torch.Tensor, z_b: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``mean((cos(z_a,i, z_b,j) − T_ij)²)``; codes ``(n_a, latent)``, ``(n_b, latent)``, target ``(n_a, n_b)``."""
    sim = F.normalize(z_a, dim=1) @ F.normalize(z_b, dim=1).T
    return (sim - target).pow(2).mean()


def cluster_prior_infonce(z_a: torch.Tensor, z_b: torch.Tensor, positives: torch.Tensor, *,
                          temperature: float = 0.07) -> torch.Tensor:
    """InfoNCE over cross-modal cosine similarities with cluster-defined positives.

    ``L = −mean_i log(Σ_{j∈pos(i)} e^{S_ij/τ} / Σ_j e^{S_ij/τ})`` over the A cells that have at
    least one positive in the batch (the seed's ``Example/`` version charged ``−log 1e−8`` for
    rows without positives and took positives from raw cluster ids, ignoring the correlation
    matrix; here ``positives`` comes from it).

    Parameters
    ----------
    z_a, z_b
        Codes ``(n_a, latent)`` and ``(n_b, latent)``.
    positives
        Boolean ``(n_a, n_b)``.
    temperature
        Softmax temperature τ.

    Returns
    -------
    torch.Tensor
        Scalar (0 when no row has a positive).
    """
    sim = F.normalize(z_a, dim=1) @ F.normalize(z_b, dim=1).T / temperature
    rows = positives.any(dim=1)
    if not bool(rows.any()):
        return sim.sum() * 0.0
    sim, positives = sim[rows], positives[rows]
    log_all = torch.logsumexp(sim, dim=1)
    log_pos = torch.logsumexp(sim.masked_fill(~positives, float("-inf")), dim=1)
    return (log_all - log_pos).mean()
