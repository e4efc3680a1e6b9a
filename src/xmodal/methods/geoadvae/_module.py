"""The geoadvae networks: one VAE per modality and a discriminator on the shared latent."""

from __future__ import annotations

from torch import nn

from xmodal.methods.geoadvae._config import GeoAdVAEConfig
from xmodal.nn import VAE, LatentDiscriminator, init_gaussian, init_kaiming


class GeoAdVAEModule(nn.Module):
    """``vae_a`` (modality A), ``vae_b`` (modality B) and ``disc`` (latent discriminator).

    Initialisation follows seed 000 (once, not twice): Kaiming-normal fan-in weights and zero
    biases for the VAEs, ``N(0, 0.02)`` for the discriminator.

    Parameters
    ----------
    dim_a, dim_b
        Input widths of the two modalities.
    config
        Architecture fields of :class:`GeoAdVAEConfig`.
    """

    def __init__(self, dim_a: int, dim_b: int, config: GeoAdVAEConfig) -> None:
        super().__init__()
        shared = None
        if config.shared_layer:
            shared = (nn.Linear(config.dim, config.latent_dim), nn.Linear(config.latent_dim, config.dim))
        kw = {"dim": config.dim, "dropout": config.dropout, "shared": shared}
        self.vae_a = VAE(dim_a, config.latent_dim, **kw)
        self.vae_b = VAE(dim_b, config.latent_dim, **kw)
        self.disc = LatentDiscriminator(config.latent_dim, dim=config.dis_dim, dropout=config.dis_dropout,
                                        norm=config.dis_norm, sigmoid=config.gan_type != "wgan-gp")
        init_kaiming(self.vae_a)
        init_kaiming(self.vae_b)
        init_gaussian(self.disc)

    def generator_parameters(self) -> list[nn.Parameter]:
        """Parameters of both VAEs, each shared tensor once."""
        seen: dict[int, nn.Parameter] = {}
        for p in [*self.vae_a.parameters(), *self.vae_b.parameters()]:
            seen.setdefault(id(p), p)
        return list(seen.values())
