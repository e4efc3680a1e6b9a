"""Pure loss functions on tensors (no modules, no state)."""

from __future__ import annotations

from xmodal.losses._domain import (
    confident_entropy,
    coral,
    js_divergence,
    kl_divergence,
    mmd_rbf,
    supervised_contrastive,
)
from xmodal.losses._gan import GanKind, discriminator_loss, generator_loss, gradient_penalty
from xmodal.losses._gw import gromov_wasserstein_loss
from xmodal.losses._prior import cluster_prior_infonce, cluster_prior_mse, prior_target
from xmodal.losses._vae import kl_per_latent_dim, l1_reconstruction

__all__ = [
    "GanKind",
    "cluster_prior_infonce",
    "cluster_prior_mse",
    "confident_entropy",
    "coral",
    "discriminator_loss",
    "generator_loss",
    "gradient_penalty",
    "gromov_wasserstein_loss",
    "js_divergence",
    "kl_divergence",
    "kl_per_latent_dim",
    "l1_reconstruction",
    "mmd_rbf",
    "prior_target",
    "supervised_contrastive",
]
