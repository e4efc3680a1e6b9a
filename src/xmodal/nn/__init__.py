"""Shared pure-PyTorch layers: MLP blocks, per-modality VAEs, latent discriminators.

Nothing here trains or reads data; methods compose these modules (the scvi-tools split of
modules from training and from the user-facing model).
"""

from __future__ import annotations

from xmodal.nn._grl import GradientReversal, grl_alpha, reverse_gradient
from xmodal.nn._layers import (
    VAE,
    LatentDiscriminator,
    encoder_widths,
    init_gaussian,
    init_kaiming,
    mlp_block,
)
from xmodal.nn._peak import PEAK_KINDS, PeakEncoder, nt_xent

__all__ = [
    "PEAK_KINDS",
    "VAE",
    "GradientReversal",
    "LatentDiscriminator",
    "PeakEncoder",
    "encoder_widths",
    "grl_alpha",
    "init_gaussian",
    "init_kaiming",
    "mlp_block",
    "nt_xent",
    "reverse_gradient",
]
