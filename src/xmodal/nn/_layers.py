"""MLP blocks, the seed-000 VAE with input-adapted depth, and the latent discriminator."""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

Norm = Literal["none", "batch", "layer"]


def encoder_widths(input_dim: int, dim: int) -> list[int]:
    """Hidden widths of an encoder, adapted to the input width (seed 000's table).

    Parameters
    ----------
    input_dim
        Features of the modality ``d``.
    dim
        Base width (256 in the seed's main configuration).

    Returns
    -------
    list of int
        ``d ≥ 2000``: ``[4·dim, 2·dim, dim]``; ``1000 ≤ d < 2000``: ``[2·dim, dim, dim]``;
        ``500 ≤ d < 1000``: ``[max(256, 2·dim), dim]``; smaller inputs: ``[2·dim, dim]`` when
        ``d > 4·dim``, else ``[dim]``. The last width is always ``dim``.
    """
    if input_dim < 1 or dim < 1:
        raise ValueError(f"input_dim and dim must be positive, got {input_dim} and {dim}")
    if input_dim >= 2000:
        return [4 * dim, 2 * dim, dim]
    if input_dim >= 1000:
        return [2 * dim, dim, dim]
    if input_dim >= 500:
        return [max(256, 2 * dim), dim]
    return [2 * dim, dim] if input_dim > 4 * dim else [dim]


def mlp_block(in_features: int, out_features: int, *, dropout: float = 0.1, norm: Norm = "batch",
              slope: float = 0.2) -> nn.Sequential:
    """``Linear → norm → LeakyReLU(slope) → Dropout(dropout)``.

    Shapes: ``(n, in_features) → (n, out_features)``.
    """
    layers: list[nn.Module] = [nn.Linear(in_features, out_features)]
    if norm == "batch":
        layers.append(nn.BatchNorm1d(out_features))
    elif norm == "layer":
        layers.append(nn.LayerNorm(out_features))
    layers.append(nn.LeakyReLU(slope))
    if dropout > 0:
        layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


class VAE(nn.Module):
    """One modality's variational autoencoder (seed 000's ``VAEGen_MORE_LAYERS``).

    Encoder: :func:`mlp_block` per width of :func:`encoder_widths`, then linear heads ``mu`` and
    ``logvar``. Decoder: the widths reversed (``latent → dim → … → widest``, each a block),
    then a plain ``Linear`` to the input width (no output activation).

    Parameters
    ----------
    input_dim
        Features ``d`` of the modality.
    latent_dim
        Shared latent size (16 in the seed).
    dim
        Base hidden width (256 in the seed).
    dropout
        Dropout of the hidden blocks (0.1 in the seed).
    shared
        Optional ``(mu_head, first_decoder_linear)`` shared with the other modality's VAE (the
        seed's ``shared_layer``); both map to/from width ``dim``.
    """

    def __init__(self, input_dim: int, latent_dim: int = 16, *, dim: int = 256, dropout: float = 0.1,
                 shared: tuple[nn.Linear, nn.Linear] | None = None) -> None:
        super().__init__()
        widths = encoder_widths(input_dim, dim)
        self.input_dim, self.latent_dim, self.widths = input_dim, latent_dim, widths
        sizes = [input_dim, *widths]
        self.encoder = nn.Sequential(*(mlp_block(i, o, dropout=dropout) for i, o in zip(sizes, sizes[1:], strict=False)))
        self.mu = shared[0] if shared is not None else nn.Linear(widths[-1], latent_dim)
        self.logvar = nn.Linear(widths[-1], latent_dim)
        first = shared[1] if shared is not None else nn.Linear(latent_dim, widths[-1])
        back = widths[::-1]
        first_block = nn.Sequential(first, nn.BatchNorm1d(back[0]), nn.LeakyReLU(0.2), nn.Dropout(dropout))
        self.decoder = nn.Sequential(
            first_block, *(mlp_block(i, o, dropout=dropout) for i, o in zip(back, back[1:], strict=False)),
            nn.Linear(back[-1], input_dim),
        )

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior parameters: ``(n, d) → mu (n, latent), logvar (n, latent)``."""
        h = self.encoder(x)
        return self.mu(h), self.logvar(h)

    def sample(self, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        """Reparameterised draw in training mode; ``mu`` itself in eval mode. Shape ``(n, latent)``."""
        if not self.training:
            return mu
        return mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Reconstruction ``(n, latent) → (n, d)``."""
        return self.decoder(z)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """``x (n, d)`` → ``(z, mu, logvar, x_hat)`` with ``z, mu, logvar (n, latent)``, ``x_hat (n, d)``."""
        mu, logvar = self.encode(x)
        z = self.sample(mu, logvar)
        return z, mu, logvar, self.decode(z)


class LatentDiscriminator(nn.Module):
    """Discriminator on latent codes (seed 000): ``latent → 2·dim → dim → dim/2 → 1``.

    ``Linear → [norm] → LeakyReLU(0.2) → Dropout`` twice, ``Linear → LeakyReLU``, then a
    ``Linear`` to one logit; a sigmoid follows for ``lsgan``/``nsgan`` (not for ``wgan-gp``).

    Shapes: ``(n, latent) → (n, 1)``.
    """

    def __init__(self, latent_dim: int = 16, *, dim: int = 128, dropout: float = 0.3, norm: Norm = "none",
                 sigmoid: bool = True) -> None:
        super().__init__()
        half = max(1, dim // 2)
        self.net = nn.Sequential(
            mlp_block(latent_dim, 2 * dim, dropout=dropout, norm=norm),
            mlp_block(2 * dim, dim, dropout=dropout, norm="none"),
            mlp_block(dim, half, dropout=0.0, norm="none"),
            nn.Linear(half, 1),
        )
        self.sigmoid = sigmoid

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Scores ``(n, 1)``: probabilities with a sigmoid, raw critic values without."""
        out = self.net(z)
        return torch.sigmoid(out) if self.sigmoid else out


def init_kaiming(module: nn.Module) -> None:
    """Kaiming-normal (fan_in) weights and zero biases for every ``Linear`` in ``module`` (in place)."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.kaiming_normal_(m.weight, a=0.0, mode="fan_in")
            nn.init.zeros_(m.bias)


def init_gaussian(module: nn.Module, *, std: float = 0.02) -> None:
    """``N(0, std)`` weights and zero biases for every ``Linear`` in ``module`` (in place)."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, std)
            nn.init.zeros_(m.bias)
