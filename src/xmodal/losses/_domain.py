"""Domain-adaptation terms of seed 001: distribution divergences, confident entropy, supervised contrast.

``mmd_rbf`` and ``coral`` compare source and target *features*; ``kl_divergence`` and
``js_divergence`` compare class *distributions* (the seed's "balance" loss: the batch-mean target
prediction against the source class prior).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F


def _median_distance(x: torch.Tensor, y: torch.Tensor, max_samples: int = 1000) -> torch.Tensor:
    pooled = torch.cat([x, y]).detach()[:max_samples]
    d = torch.cdist(pooled, pooled)
    positive = d[d > 0]
    return positive.median() if positive.numel() else torch.ones((), dtype=x.dtype, device=x.device)


def mmd_rbf(x: torch.Tensor, y: torch.Tensor, *, scales: Sequence[float] = (0.25, 0.5, 1.0, 2.0, 4.0)) -> torch.Tensor:
    """Biased MMD² between two samples under a sum of RBF kernels.

    The bandwidths are ``scale · σ`` with σ the median pairwise distance of the pooled (detached)
    samples, so the term is scale-free.

    Parameters
    ----------
    x, y
        Samples ``(n, d)`` and ``(m, d)``.
    scales
        Bandwidth multipliers.

    Returns
    -------
    torch.Tensor
        Scalar ``≥ 0`` (up to rounding); 0 for identical samples.
    """
    sigma = _median_distance(x, y)
    xy = torch.cat([x, y])
    d2 = torch.cdist(xy, xy).pow(2)
    kernel = sum(torch.exp(-d2 / (2 * (s * sigma) ** 2)) for s in scales)
    n = len(x)
    return kernel[:n, :n].mean() + kernel[n:, n:].mean() - 2 * kernel[:n, n:].mean()


def coral(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """CORAL: ``‖Cov(x) − Cov(y)‖²_F / (4 d²)`` for samples ``(n, d)`` and ``(m, d)``; a scalar."""
    d = x.shape[1]

    def cov(z: torch.Tensor) -> torch.Tensor:
        z = z - z.mean(dim=0, keepdim=True)
        return z.T @ z / max(len(z) - 1, 1)

    return (cov(x) - cov(y)).pow(2).sum() / (4 * d * d)


def kl_divergence(p: torch.Tensor, q: torch.Tensor, *, eps: float = 1e-8) -> torch.Tensor:
    """``KL(q ‖ p) = Σ_k q_k log(q_k / p_k)`` for class distributions ``(K,)``: the target's mean
    prediction ``p`` should cover the source class prior ``q``.

    (The seed called ``F.kl_div(log p, q, "batchmean")`` on a single distribution, which divides
    this by K.)
    """
    p, q = p.clamp_min(eps), q.clamp_min(eps)
    return (q * (q.log() - p.log())).sum()


def js_divergence(p: torch.Tensor, q: torch.Tensor, *, eps: float = 1e-8) -> torch.Tensor:
    """Jensen–Shannon divergence of class distributions ``(K,)``: symmetric, ``0 ≤ JS ≤ log 2``."""
    m = 0.5 * (p + q)
    return 0.5 * kl_divergence(m, p, eps=eps) + 0.5 * kl_divergence(m, q, eps=eps)


def confident_entropy(probs: torch.Tensor, *, threshold: float = 0.5) -> torch.Tensor:
    """Mean prediction entropy over the rows whose top probability exceeds ``threshold`` (0 if none).

    ``probs``: ``(n, K)`` class probabilities.
    """
    keep = probs.max(dim=1).values > threshold
    if not bool(keep.any()):
        return probs.sum() * 0.0
    return -torch.special.xlogy(probs[keep], probs[keep]).sum(dim=1).mean()


def supervised_contrastive(features: torch.Tensor, labels: torch.Tensor, *, temperature: float = 0.1) -> torch.Tensor:
    """Supervised contrastive loss (Khosla et al. 2020) over L2-normalised features.

    ``L = −mean_i [ mean_{p ∈ P(i)} log( e^{s_ip/τ} / Σ_{a ≠ i} e^{s_ia/τ} ) ]`` over anchors with at
    least one positive (same label, not itself).

    Parameters
    ----------
    features
        ``(n, d)``.
    labels
        Integer labels ``(n,)``.
    temperature
        τ.

    Returns
    -------
    torch.Tensor
        Scalar (0 when no anchor has a positive).
    """
    z = F.normalize(features, dim=1)
    sim = z @ z.T / temperature
    n = len(z)
    self_mask = torch.eye(n, dtype=torch.bool, device=z.device)
    sim = sim.masked_fill(self_mask, float("-inf"))
    log_prob = sim - torch.logsumexp(sim, dim=1, keepdim=True)
    positives = (labels[:, None] == labels[None, :]) & ~self_mask
    has = positives.any(dim=1)
    if not bool(has.any()):
        return features.sum() * 0.0
    mean_pos = log_prob.masked_fill(~positives, 0.0).sum(dim=1)[has] / positives.sum(dim=1)[has]
    return -mean_pos.mean()
