"""VAE terms: KL to the standard normal prior and L1 reconstruction."""

from __future__ import annotations

import torch


def kl_per_latent_dim(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Mean over cells of ``KL(N(mu, σ²) ‖ N(0, I))``, divided by the latent size (seed 000).

    Parameters
    ----------
    mu, logvar
        Posterior parameters, ``(n, latent)``.

    Returns
    -------
    torch.Tensor
        Scalar ``mean_i[-½ Σ_k (1 + logσ²_ik − μ²_ik − σ²_ik)] / latent``.
    """
    kl = -0.5 * (1.0 + logvar - mu.pow(2) - logvar.exp()).sum(dim=1)
    return kl.mean() / mu.shape[1]


def l1_reconstruction(x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Mean absolute error between reconstruction and input, both ``(n, d)``; a scalar."""
    return (x_hat - x).abs().mean()
