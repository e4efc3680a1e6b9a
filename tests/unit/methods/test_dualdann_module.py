"""dualdann networks and batch loss: every peak encoder × divergence, and the seed-001 fixes."""

from __future__ import annotations

import math

import pytest
import torch

from xmodal.methods.dualdann._module import DualDANNModule, LossWeights, batch_losses
from xmodal.nn import PEAK_KINDS, PeakEncoder

P, SRC = 60, 12


def _module(kind: str = "mlp", *, conditional: bool = True) -> DualDANNModule:
    torch.manual_seed(0)
    enc = PeakEncoder(kind, P, hidden=8, intermediate=16, layers=3)  # type: ignore[arg-type]
    return DualDANNModule(SRC, enc, embedding_dim=8, shared_dim=16, cls_hidden=16, disc_hidden=16,
                          conditional=conditional).train()


def _batch(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(16, SRC, generator=g), torch.randint(0, 3, (16,), generator=g),
            (torch.rand(16, P, generator=g) < 0.1).float(), torch.randint(0, 3, (16,), generator=g))


@pytest.mark.parametrize("kind", PEAK_KINDS)
@pytest.mark.parametrize("divergence", ["mmd", "coral", "kl", "js"])
def test_every_encoder_and_divergence_trains_a_step(kind: str, divergence: str) -> None:
    module = _module(kind)
    x, y, peaks, y_t = _batch()
    terms = batch_losses(module, x, y, peaks, y_t, alpha=0.5, target_weight=0.3, divergence=divergence)
    assert all(math.isfinite(v.item()) for v in terms.values())
    opt = torch.optim.AdamW(module.parameters(), lr=1e-3)
    terms["total"].backward()
    opt.step()
    module.eval()
    with torch.no_grad():
        assert module.classifier(module.shared_target(peaks)).shape == (16, 3)


def test_discriminator_does_not_train_the_classifier_through_the_probabilities() -> None:
    """Seed 001 concatenated the class probabilities with their gradient (defect 6)."""
    module = _module()
    x, y, peaks, y_t = _batch()
    weights = LossWeights(classification=0, target_classification=0, contrastive=0, balance=0, entropy=0,
                          peak_objective=0)
    batch_losses(module, x, y, peaks, y_t, alpha=1.0, target_weight=0.0, divergence="mmd",
                 weights=weights)["total"].backward()
    classifier_grads = [p.grad for p in module.classifier.parameters()]
    assert all(g is None or not g.any() for g in classifier_grads)
    assert any(p.grad is not None and p.grad.any() for p in module.discriminator.parameters())


def test_gradient_reversal_flips_the_encoders_gradient() -> None:
    x, y, peaks, y_t = _batch()
    weights = LossWeights(classification=0, target_classification=0, contrastive=0, balance=0, entropy=0,
                          peak_objective=0)
    grads = []
    for alpha in (1.0, -1.0):  # -1: no reversal
        module = _module()
        batch_losses(module, x, y, peaks, y_t, alpha=alpha, target_weight=0.0, divergence="mmd",
                     weights=weights)["total"].backward()
        grads.append(module.project_target[0].weight.grad.clone())
    torch.testing.assert_close(grads[0], -grads[1])


def test_known_target_labels_are_used_for_the_contrastive_term() -> None:
    """Seed 001 used target pseudo-labels even when the target labels were known (defect 7)."""
    x, y, peaks, y_t = _batch()
    weights = LossWeights(classification=0, target_classification=0, domain=0, balance=0, entropy=0,
                          peak_objective=0)
    module = _module()

    def contrastive(labels: torch.Tensor | None) -> float:
        torch.manual_seed(5)  # the same dropout masks every call
        return batch_losses(module, x, y, peaks, labels, alpha=0.0, target_weight=0.0, divergence="kl",
                            weights=weights)["contrastive"].item()

    labelled, pseudo = contrastive(y_t), contrastive(None)
    with torch.no_grad():
        for p in module.classifier.parameters():
            p.add_(3 * torch.randn_like(p))  # other predictions, the same features
    assert contrastive(y_t) == pytest.approx(labelled, rel=1e-6)  # labels known: predictions do not matter
    assert contrastive(None) != pytest.approx(pseudo, rel=1e-6)  # unlabelled: pseudo-labels do
    assert labelled > 0
