"""Domain-adaptation losses (seed 001) and gradient reversal: hand values and invariants."""

from __future__ import annotations

import math

import pytest
import torch

from xmodal import losses as L
from xmodal.nn import GradientReversal, grl_alpha, reverse_gradient


def _sample(n: int, d: int, shift: float = 0.0, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g, dtype=torch.float64) + shift


def test_mmd_is_zero_on_identical_samples_and_grows_with_shift() -> None:
    x = _sample(100, 5)
    assert L.mmd_rbf(x, x).item() == pytest.approx(0.0, abs=1e-12)
    near = L.mmd_rbf(x, _sample(100, 5, seed=1)).item()
    far = L.mmd_rbf(x, _sample(100, 5, shift=1.0, seed=1)).item()
    farther = L.mmd_rbf(x, _sample(100, 5, shift=3.0, seed=1)).item()
    assert 0 <= near < far < farther
    y = _sample(80, 5, shift=1.0, seed=2)
    assert L.mmd_rbf(x, y).item() == pytest.approx(L.mmd_rbf(y, x).item(), rel=1e-9)
    assert L.mmd_rbf(10 * x, 10 * y).item() == pytest.approx(L.mmd_rbf(x, y).item(), rel=1e-4)  # scale-free (cdist rounding)


def test_coral_matches_its_formula() -> None:
    x, y = _sample(50, 3), 2 * _sample(60, 3, seed=1)
    cx, cy = torch.cov(x.T), torch.cov(y.T)
    assert L.coral(x, y).item() == pytest.approx(((cx - cy) ** 2).sum().item() / 36, rel=1e-9)
    assert L.coral(x, x + 5.0).item() == pytest.approx(0.0, abs=1e-12)  # a shift of the mean is not CORAL's


def test_kl_and_js_on_known_distributions() -> None:
    p, q = torch.tensor([0.5, 0.5]), torch.tensor([0.9, 0.1])
    expected = 0.9 * math.log(0.9 / 0.5) + 0.1 * math.log(0.1 / 0.5)
    assert L.kl_divergence(p, q).item() == pytest.approx(expected, rel=1e-6)
    assert L.kl_divergence(q, q).item() == pytest.approx(0.0, abs=1e-7)
    js = L.js_divergence(p, q).item()
    assert js == pytest.approx(L.js_divergence(q, p).item(), rel=1e-6)
    assert 0 < js < math.log(2)
    assert L.js_divergence(torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])).item() == pytest.approx(
        math.log(2), rel=1e-4)


def test_confident_entropy_uses_confident_rows_only() -> None:
    probs = torch.tensor([[0.9, 0.05, 0.05], [0.4, 0.3, 0.3], [0.6, 0.4, 0.0]])
    def h(p: list[float]) -> float:
        return -sum(v * math.log(v) for v in p if v > 0)
    assert L.confident_entropy(probs, threshold=0.5).item() == pytest.approx(
        (h([0.9, 0.05, 0.05]) + h([0.6, 0.4])) / 2, rel=1e-5)
    assert L.confident_entropy(probs, threshold=0.95).item() == 0.0


def test_supervised_contrastive_rewards_label_clusters() -> None:
    labels = torch.tensor([0, 0, 1, 1])
    clustered = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    mixed = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.9, 0.1], [0.1, 0.9]])
    assert L.supervised_contrastive(clustered, labels).item() < L.supervised_contrastive(mixed, labels).item()
    assert L.supervised_contrastive(clustered, torch.tensor([0, 1, 2, 3])).item() == 0.0  # no positives


def test_gradient_reversal_and_schedule() -> None:
    x = torch.ones(3, 2, requires_grad=True)
    (reverse_gradient(x, 0.5) * torch.tensor([1.0, 2.0])).sum().backward()
    assert x.grad is not None
    assert torch.equal(x.grad, torch.tensor([[-0.5, -1.0]] * 3))
    assert torch.equal(GradientReversal(2.0)(x), x)
    assert grl_alpha(0.0) == 0.0
    assert grl_alpha(1.0) == pytest.approx(1.0, abs=1e-6)
    assert 0 < grl_alpha(0.1) < grl_alpha(0.2) < 1
    with pytest.raises(ValueError, match="progress"):
        grl_alpha(1.5)
