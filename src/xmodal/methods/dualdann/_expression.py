"""dualdann's expression-side phase classifier on its own: RNA → phase, without any ATAC.

This is the source branch of :class:`~xmodal.methods.dualdann.DualDANN` — PCA source embedding, the
seed's latent projection and label classifier — trained with the two terms that need no second
modality (classification and supervised contrast), AdamW, cosine annealing and gradient clipping,
and kept at its best validation epoch. It answers "how well does the RNA side know the phase?" on
data that has expression only, e.g. scanpy's bundled ``pbmc68k_reduced``.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F

from xmodal import losses as L
from xmodal.families.multiome._data import PHASES
from xmodal.methods.dualdann._config import DualDANNConfig
from xmodal.methods.dualdann._module import classifier_head, projection
from xmodal.methods.dualdann._source import PCAEncoder
from xmodal.metrics import classification_metrics

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExpressionCheck:
    """Test metrics of the expression-side classifier and how it was selected.

    Attributes
    ----------
    test
        ``accuracy``, ``balanced_accuracy``, ``macro_f1``, ``cohen_kappa``, ``f1_<phase>``, ``n`` on test cells.
    best_epoch, best_validation
        The kept epoch and its validation value of ``config.selection_metric``.
    predictions
        Predicted phases of the test cells ``(n_test,)``.
    """

    test: dict[str, float]
    best_epoch: int
    best_validation: float
    predictions: np.ndarray


def expression_phase_check(x: np.ndarray | sp.spmatrix, phases: np.ndarray, split: np.ndarray, *,
                           config: DualDANNConfig | None = None, seed: int = 0) -> ExpressionCheck:
    """Train the RNA → phase classifier on ``train`` cells, select on ``validation``, score ``test``.

    Parameters
    ----------
    x
        Normalised expression, cells × genes ``(n, g)``.
    phases
        ``G1``/``S``/``G2M`` per cell ``(n,)``.
    split
        ``train``/``validation``/``test`` per cell ``(n,)``; test cells are only predicted at the end.
    config
        dualdann settings used: ``source_pcs``, ``shared_dim``, ``cls_hidden``, ``cls_layers``, ``dropout``,
        ``lr``, ``weight_decay``, ``grad_clip``, ``batch_size``, ``epochs``, ``eval_every``, ``patience``,
        ``lambda_class``, ``lambda_contrastive``, ``contrastive_tau``, ``selection_metric``.
    seed
        Seeds initialisation, batches and dropout.

    Returns
    -------
    ExpressionCheck
    """
    cfg = config or DualDANNConfig()
    split, phases = np.asarray(split).astype(str), np.asarray(phases).astype(str)
    rows = {s: np.flatnonzero(split == s) for s in ("train", "validation", "test")}
    x = sp.csr_matrix(x, dtype=np.float32)
    encoder = PCAEncoder.fit(x[rows["train"]], n_components=cfg.source_pcs)
    z = {s: torch.from_numpy(encoder.transform(x[idx])) for s, idx in rows.items()}
    y = {s: torch.as_tensor([PHASES.index(p) for p in phases[idx]], dtype=torch.long) for s, idx in rows.items()}
    torch.manual_seed(seed)
    net = torch.nn.Sequential(projection(encoder.dim, cfg.shared_dim),
                              classifier_head(cfg.shared_dim, cfg.cls_hidden, cfg.cls_layers, len(PHASES),
                                              dropout=cfg.dropout))
    features = net[0]
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs, eta_min=0.01 * cfg.lr)
    n, b = len(rows["train"]), min(cfg.batch_size, len(rows["train"]))
    key = cfg.selection_metric
    best, best_epoch, best_state, stale = -np.inf, 0, copy.deepcopy(net.state_dict()), 0

    def predict(part: str) -> np.ndarray:
        net.eval()
        with torch.no_grad():
            out = net(z[part]).argmax(dim=1).numpy()
        net.train()
        return np.asarray(PHASES)[out]

    for epoch in range(cfg.epochs):
        order = np.random.default_rng([seed, epoch]).permutation(n)
        for step in range(n // b):
            idx = torch.as_tensor(order[step * b:(step + 1) * b])
            h = features(z["train"][idx])
            logits = net[1](h)
            loss = cfg.lambda_class * F.cross_entropy(logits, y["train"][idx]) + cfg.lambda_contrastive * (
                L.supervised_contrastive(h, y["train"][idx], temperature=cfg.contrastive_tau))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.grad_clip)
            opt.step()
        sched.step()
        if (epoch + 1) % cfg.eval_every == 0 or epoch + 1 == cfg.epochs:
            score = classification_metrics(phases[rows["validation"]], predict("validation"), classes=PHASES)[key]
            if score > best:
                best, best_epoch, best_state, stale = score, epoch + 1, copy.deepcopy(net.state_dict()), 0
            else:
                stale += 1
                if stale >= cfg.patience:
                    break
    net.load_state_dict(best_state)
    pred = predict("test")
    test = classification_metrics(phases[rows["test"]], pred, classes=PHASES)
    log.info("expression-side phase classifier: test %s %.3f (kept epoch %d)", key, test[key], best_epoch)
    return ExpressionCheck(test=test, best_epoch=best_epoch, best_validation=float(best), predictions=pred)


def split_stratified(phases: Any, *, validation: float = 0.15, test: float = 0.15, seed: int = 0) -> np.ndarray:
    """``train``/``validation``/``test`` per cell, stratified by phase (one domain)."""
    import pandas as pd

    from xmodal.families.multiome._preprocess import split_per_domain

    obs = pd.DataFrame({"phase": np.asarray(phases).astype(str), "domain": "all"})
    return split_per_domain(obs, validation=validation, test=test, seed=seed).astype(str).to_numpy()
