"""Peak (scATAC) encoders of seed 001, each with the objective it is meant to train with.

The seed defined denoising, variational and contrastive encoders but never called their losses
(only the forward paths differed), and its VAE sampled even in eval mode. Here every encoder's
:meth:`PeakEncoder.objective` is its own self-supervised loss (0 for ``mlp`` and ``hybrid``, which
have none), and evaluation is deterministic.

Shapes: peaks ``(n, P)`` → embedding ``(n, H)``.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

PeakKind = Literal["mlp", "dae", "vae", "contrastive", "hybrid"]
PEAK_KINDS: tuple[str, ...] = ("mlp", "dae", "vae", "contrastive", "hybrid")


def _stack(sizes: list[int], *, dropout: float, norm: bool, act: type[nn.Module] = nn.ReLU) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, o in zip(sizes, sizes[1:], strict=False):
        layers.append(nn.Linear(i, o))
        if norm:
            layers.append(nn.BatchNorm1d(o))
        layers += [act(), nn.Dropout(dropout)]
    return nn.Sequential(*layers)


class _Residual(nn.Module):
    def __init__(self, width: int, *, dropout: float, norm_first: bool) -> None:
        super().__init__()
        self.norm_first = norm_first
        self.norm = nn.BatchNorm1d(width)
        self.linear = nn.Linear(width, width)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.norm_first:  # hybrid: BN → Linear → act → dropout, added
            return x + self.drop(F.relu(self.linear(self.norm(x))))
        return x + self.drop(F.relu(self.norm(self.linear(x))))


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, *, temperature: float = 0.1) -> torch.Tensor:
    """SimCLR's normalised-temperature cross-entropy for two views ``(n, d)`` of the same cells; a scalar."""
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    n = len(z1)
    sim = z @ z.T / temperature
    sim = sim.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device), float("-inf"))
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(sim, target)


class PeakEncoder(nn.Module):
    """One of seed 001's peak encoders (``kind``) with its own training objective.

    Parameters
    ----------
    kind
        ``mlp``: Linear+BN+ReLU+Dropout, residual blocks, Linear+BN, LayerNorm.
        ``dae``: the same trunk on inputs with Gaussian noise (σ = ``noise_level``, training only) and a
        decoder; objective: MSE of the clean input.
        ``vae``: μ/logσ² heads, sampling in training only, decoder; objective: MSE + β·KL.
        ``contrastive``: plain MLP (no BN) and a projection head; objective: NT-Xent between two
        random peak-dropout views.
        ``hybrid``: BN on the raw peaks, then residual BN→Linear→ReLU→Dropout blocks.
    n_peaks
        ``P``.
    hidden, intermediate, layers, dropout
        ``H`` (embedding size), ``I`` (trunk width), depth (≥ 2), dropout (seed: 256, 512, 3, 0.2).
    noise_level, beta, temperature, augment, projection
        DAE noise σ, VAE β, NT-Xent τ, contrastive peak-dropout rate, projection width.
    """

    def __init__(self, kind: PeakKind, n_peaks: int, *, hidden: int = 256, intermediate: int = 512,
                 layers: int = 3, dropout: float = 0.2, noise_level: float = 0.1, beta: float = 1.0,
                 temperature: float = 0.1, augment: float = 0.2, projection: int = 128) -> None:
        super().__init__()
        if kind not in PEAK_KINDS:
            raise ValueError(f"unknown peak encoder {kind!r}; choose one of {list(PEAK_KINDS)}")
        if layers < 2:
            raise ValueError("layers must be at least 2")
        self.kind, self.noise_level, self.beta = kind, noise_level, beta
        self.temperature, self.augment = temperature, augment
        hidden_blocks = layers - 2
        if kind == "contrastive":
            self.trunk = _stack([n_peaks, intermediate, *[intermediate] * hidden_blocks, hidden], dropout=dropout,
                                norm=False)
            self.projection = nn.Sequential(nn.Linear(hidden, projection), nn.ReLU(), nn.Linear(projection, projection))
            self.out = nn.Identity()
        elif kind == "hybrid":
            self.trunk = nn.Sequential(
                nn.BatchNorm1d(n_peaks), nn.Linear(n_peaks, intermediate), nn.ReLU(), nn.Dropout(dropout),
                *[_Residual(intermediate, dropout=dropout, norm_first=True) for _ in range(hidden_blocks + 1)],
                nn.Linear(intermediate, hidden), nn.ReLU())
            self.out = nn.Identity()
        else:
            self.trunk = nn.Sequential(
                *_stack([n_peaks, intermediate], dropout=dropout, norm=True),
                *[_Residual(intermediate, dropout=dropout, norm_first=False) for _ in range(hidden_blocks)])
            if kind == "vae":
                self.mu = nn.Linear(intermediate, hidden)
                self.logvar = nn.Linear(intermediate, hidden)
            else:
                self.head = nn.Sequential(nn.Linear(intermediate, hidden), nn.BatchNorm1d(hidden))
            self.out = nn.LayerNorm(hidden)
        if kind in ("dae", "vae"):
            self.decoder = nn.Sequential(*_stack([hidden, intermediate], dropout=dropout, norm=True),
                                         nn.Linear(intermediate, n_peaks))

    def _code(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """Pre-normalisation code and, for the VAE, ``(mu, logvar)``."""
        if self.kind == "dae" and self.training and self.noise_level > 0:
            x = x + self.noise_level * torch.randn_like(x)
        h = self.trunk(x)
        if self.kind == "vae":
            mu, logvar = self.mu(h), self.logvar(h)
            code = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar) if self.training else mu
            return code, mu, logvar
        if self.kind in ("mlp", "dae"):
            return self.head(h), None, None
        return h, None, None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Embedding ``(n, P) → (n, H)``; deterministic in eval mode."""
        return self.out(self._code(x)[0])

    def objective(self, x: torch.Tensor) -> torch.Tensor:
        """The encoder's own self-supervised loss on a batch ``(n, P)`` (a scalar; 0 for mlp/hybrid)."""
        if self.kind in ("dae", "vae"):
            code, mu, logvar = self._code(x)
            recon = F.mse_loss(self.decoder(code), x)
            if self.kind == "dae":
                return recon
            kl = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(dim=1).mean()
            return recon + self.beta * kl / mu.shape[1]
        if self.kind == "contrastive":
            views = [x * (torch.rand_like(x) >= self.augment) for _ in range(2)]
            return nt_xent(*(self.projection(self._code(v)[0]) for v in views), temperature=self.temperature)
        return x.sum() * 0.0
