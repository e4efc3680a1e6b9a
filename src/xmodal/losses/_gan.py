"""Latent GAN losses of seed 000 (label flip: B is "real" for the discriminator, A is "fake").

The discriminator learns to tell the modalities apart; each encoder is trained to make its codes
look like the other modality's. Label smoothing ``s`` moves the targets to ``1 − s`` and ``s``.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

GanKind = Literal["lsgan", "nsgan", "wgan-gp"]


def _target_loss(score: torch.Tensor, target: float, kind: GanKind) -> torch.Tensor:
    if kind == "lsgan":
        return (score - target).pow(2).mean()
    if kind == "nsgan":
        return F.binary_cross_entropy(score.clamp(1e-7, 1 - 1e-7), torch.full_like(score, target))
    raise ValueError(f"unknown GAN kind {kind!r}")


def discriminator_loss(d_a: torch.Tensor, d_b: torch.Tensor, *, kind: GanKind = "lsgan",
                       smoothing: float = 0.1) -> torch.Tensor:
    """Discriminator loss on scores of A codes ``d_a`` and B codes ``d_b`` (each ``(n, 1)``).

    ``lsgan``: ``½[(D(z_b) − (1−s))² + (D(z_a) − s)²]``; ``nsgan``: the same targets with binary
    cross-entropy; ``wgan-gp``: ``mean D(z_a) − mean D(z_b)`` (add :func:`gradient_penalty`).
    """
    if kind == "wgan-gp":
        return d_a.mean() - d_b.mean()
    return 0.5 * (_target_loss(d_b, 1.0 - smoothing, kind) + _target_loss(d_a, smoothing, kind))


def generator_loss(d_a: torch.Tensor, d_b: torch.Tensor, *, kind: GanKind = "lsgan",
                   smoothing: float = 0.1) -> torch.Tensor:
    """Encoder (generator) loss: both sides try to swap labels.

    ``lsgan``: ``(D(z_a) − (1−s))² + (D(z_b) − s)²``; ``nsgan``: the same with cross-entropy;
    ``wgan-gp``: ``mean D(z_b) − mean D(z_a)``. Scores are ``(n, 1)``; returns a scalar.
    """
    if kind == "wgan-gp":
        return d_b.mean() - d_a.mean()
    return _target_loss(d_a, 1.0 - smoothing, kind) + _target_loss(d_b, smoothing, kind)


def gradient_penalty(critic: torch.nn.Module, z_a: torch.Tensor, z_b: torch.Tensor, *,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """WGAN-GP penalty ``mean((‖∇D(x̃)‖₂ − 1)²)`` on random interpolates of ``z_a`` and ``z_b`` (``(n, latent)``)."""
    n = min(len(z_a), len(z_b))
    alpha = torch.rand(n, 1, generator=generator, dtype=z_a.dtype).to(z_a.device)
    mixed = (alpha * z_a[:n].detach() + (1 - alpha) * z_b[:n].detach()).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(mixed).sum(), mixed, create_graph=True)
    return (grad.norm(dim=1) - 1.0).pow(2).mean()
