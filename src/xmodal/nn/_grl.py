"""Gradient reversal (Ganin & Lempitsky 2015) and the DANN schedule of its strength."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn


class _Reverse(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, alpha: float) -> torch.Tensor:
        ctx.alpha = alpha
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return -ctx.alpha * grad, None


def reverse_gradient(x: torch.Tensor, alpha: float = 1.0) -> torch.Tensor:
    """Identity forward; multiplies the gradient by ``−alpha`` backward. Shape unchanged."""
    return _Reverse.apply(x, alpha)


class GradientReversal(nn.Module):
    """:func:`reverse_gradient` as a module; set ``alpha`` as training progresses (:func:`grl_alpha`)."""

    def __init__(self, alpha: float = 1.0) -> None:
        super().__init__()
        self.alpha = alpha

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(n, d) → (n, d)``."""
        return reverse_gradient(x, self.alpha)


def grl_alpha(progress: float, *, gamma: float = 15.0) -> float:
    """DANN's ``α(p) = 2 / (1 + exp(−γ p)) − 1`` for training progress ``p ∈ [0, 1]`` (0 → 0, 1 → ≈1)."""
    if not 0.0 <= progress <= 1.0:
        raise ValueError(f"progress must be in [0, 1], got {progress}")
    return 2.0 / (1.0 + math.exp(-gamma * progress)) - 1.0
