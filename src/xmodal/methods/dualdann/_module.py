"""The dualdann networks and the per-batch loss of seed 001, with the original's defects fixed.

Source cells arrive as fixed embeddings (PCA or a frozen foundation model, computed once); target
cells as peaks through a trainable :class:`~xmodal.nn.PeakEncoder`. Each domain has its own projection
into a shared space, where one label classifier and one domain discriminator work. The CDANN
discriminator sees the shared features through gradient reversal and the class probabilities
**detached** (the seed passed them with their gradient, so the discriminator's loss trained the
classifier directly).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from xmodal import losses as L
from xmodal.nn import PeakEncoder, reverse_gradient

Divergence = Literal["mmd", "coral", "kl", "js"]


def _head(in_dim: int, hidden: int, layers: int, out: int, *, dropout: float, act: nn.Module,
          spectral: bool = False) -> nn.Sequential:
    blocks: list[nn.Module] = []
    size = in_dim
    for _ in range(layers - 1):
        linear = nn.Linear(size, hidden)
        blocks += [nn.utils.parametrizations.spectral_norm(linear) if spectral else linear,
                   nn.BatchNorm1d(hidden), act, nn.Dropout(dropout)]
        size = hidden
    blocks.append(nn.Linear(size, out))
    return nn.Sequential(*blocks)


def projection(in_dim: int, shared_dim: int) -> nn.Sequential:
    """The seed's per-domain ``LatentProjection``: Linear → BN → ReLU → Dropout(0.1), ``(n, in_dim) → (n, shared_dim)``."""
    return nn.Sequential(nn.Linear(in_dim, shared_dim), nn.BatchNorm1d(shared_dim), nn.ReLU(), nn.Dropout(0.1))


def classifier_head(shared_dim: int, hidden: int, layers: int, n_classes: int, *, dropout: float) -> nn.Sequential:
    """The seed's label classifier: ``(layers−1)×[Linear → BN → ReLU → Dropout] + Linear → n_classes``."""
    return _head(shared_dim, hidden, layers, n_classes, dropout=dropout, act=nn.ReLU())


class DualDANNModule(nn.Module):
    """Source projection, peak encoder + target projection, label classifier, domain discriminator.

    Parameters
    ----------
    source_dim
        Width of the source embeddings.
    peak_encoder
        The target (peak) encoder; its output width feeds the target projection.
    n_classes
        Phases (3).
    shared_dim
        Shared space (seed: 768).
    cls_hidden, cls_layers, disc_hidden, disc_layers, dropout
        Classifier and discriminator sizes (seed: 256/2 and 256/3, dropout 0.1).
    conditional
        CDANN: the discriminator also sees the (detached) class probabilities.
    spectral_norm
        Spectral normalisation of the discriminator's hidden layers.
    """

    def __init__(self, source_dim: int, peak_encoder: PeakEncoder, *, embedding_dim: int, n_classes: int = 3,
                 shared_dim: int = 768, cls_hidden: int = 256, cls_layers: int = 2, disc_hidden: int = 256,
                 disc_layers: int = 3, dropout: float = 0.1, conditional: bool = True,
                 spectral_norm: bool = False) -> None:
        super().__init__()
        self.peak_encoder, self.conditional, self.n_classes = peak_encoder, conditional, n_classes

        self.project_source = projection(source_dim, shared_dim)
        self.project_target = projection(embedding_dim, shared_dim)
        self.classifier = classifier_head(shared_dim, cls_hidden, cls_layers, n_classes, dropout=dropout)
        self.discriminator = _head(shared_dim + (n_classes if conditional else 0), disc_hidden, disc_layers, 1,
                                   dropout=dropout, act=nn.LeakyReLU(0.2), spectral=spectral_norm)

    def shared_source(self, x: torch.Tensor) -> torch.Tensor:
        """Source embeddings ``(n, source_dim)`` → shared features ``(n, shared_dim)``."""
        return self.project_source(x)

    def shared_target(self, peaks: torch.Tensor) -> torch.Tensor:
        """Peaks ``(n, P)`` → shared features ``(n, shared_dim)``."""
        return self.project_target(self.peak_encoder(peaks))

    def domain_logits(self, shared: torch.Tensor, class_logits: torch.Tensor, *, alpha: float) -> torch.Tensor:
        """Discriminator logits ``(n, 1)`` on reversed features (and detached class probabilities for CDANN)."""
        h = reverse_gradient(shared, alpha)
        if self.conditional:
            h = torch.cat([h, F.softmax(class_logits, dim=1).detach()], dim=1)
        return self.discriminator(h)


@dataclass(frozen=True)
class LossWeights:
    """Weights of seed 001's loss terms (its defaults)."""

    classification: float = 1.0
    target_classification: float = 1.0
    domain: float = 1.0
    contrastive: float = 0.5
    balance: float = 5.0
    entropy: float = 0.1
    peak_objective: float = 1.0
    temperature: float = 0.1
    confidence: float = 0.5


def batch_losses(module: DualDANNModule, x_source: torch.Tensor, y_source: torch.Tensor, peaks: torch.Tensor,
                 y_target: torch.Tensor | None, *, alpha: float, target_weight: float, divergence: Divergence,
                 weights: LossWeights | None = None, adversarial: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Every weighted term of one source/target mini-batch, and their sum under ``"total"``.

    Parameters
    ----------
    module
        The networks (train mode).
    x_source, y_source
        Source embeddings ``(n, source_dim)`` and phases ``(n,)``.
    peaks, y_target
        Target peaks ``(m, P)`` and their phases ``(m,)`` (the paired RNA's), ``-1`` where unknown;
        ``None`` when no target cell is labelled.
    alpha
        Gradient-reversal strength (:func:`~xmodal.nn.grl_alpha` of the training progress).
    target_weight
        Current weight of the target classification term (the curriculum warm-up applied).
    divergence
        Balance term: ``mmd``/``coral`` between shared features, ``kl``/``js`` between the source class
        prior and the mean target prediction.
    weights
        Term weights (default: the seed's).
    adversarial
        Boolean ``(m,)``: the target rows that the domain discriminator, the balance term and the
        entropy term see (default: all, as in the seed). Cross-domain training passes the target
        domain's cells here, so the labelled ATAC cells of the source domain only feed the
        classification and contrastive terms.

    Returns
    -------
    dict of torch.Tensor
        Scalars ``class``, ``target_class``, ``domain``, ``contrastive``, ``balance``, ``entropy``,
        ``peak_objective`` (each already weighted) and ``total``.
    """
    w = weights or LossWeights()
    s, t = module.shared_source(x_source), module.shared_target(peaks)
    logits_s, logits_t = module.classifier(s), module.classifier(t)
    probs_t = F.softmax(logits_t, dim=1)
    adv = slice(None) if adversarial is None else adversarial
    t_adv, probs_adv = t[adv], probs_t[adv]
    d_s = module.domain_logits(s, logits_s, alpha=alpha)
    d_t = module.domain_logits(t_adv, logits_t[adv], alpha=alpha)
    terms: dict[str, torch.Tensor] = {
        "class": w.classification * F.cross_entropy(logits_s, y_source),
        "domain": w.domain * (F.binary_cross_entropy_with_logits(d_s, torch.zeros_like(d_s))
                              + F.binary_cross_entropy_with_logits(d_t, torch.ones_like(d_t))),
        "entropy": w.entropy * L.confident_entropy(probs_adv, threshold=w.confidence),
        "peak_objective": w.peak_objective * module.peak_encoder.objective(peaks),
    }
    known = y_target >= 0 if y_target is not None else torch.zeros(len(peaks), dtype=torch.bool, device=peaks.device)
    terms["target_class"] = (target_weight * w.target_classification * F.cross_entropy(logits_t[known], y_target[known])
                             if bool(known.any()) else logits_t.sum() * 0.0)
    # known target labels are used as they are (the seed took pseudo-labels even when labels existed)
    pseudo = probs_t.argmax(dim=1).detach()
    labels_t = torch.where(known, y_target, pseudo) if y_target is not None else pseudo
    terms["contrastive"] = w.contrastive * L.supervised_contrastive(
        torch.cat([s, t]), torch.cat([y_source, labels_t]), temperature=w.temperature)
    if divergence == "mmd":
        balance = L.mmd_rbf(s, t_adv)
    elif divergence == "coral":
        balance = L.coral(s, t_adv)
    else:
        prior = torch.bincount(y_source, minlength=module.n_classes).to(probs_t.dtype) / len(y_source)
        balance = (L.kl_divergence if divergence == "kl" else L.js_divergence)(probs_adv.mean(dim=0), prior)
    terms["balance"] = w.balance * balance
    terms["total"] = sum(terms.values())
    return terms
