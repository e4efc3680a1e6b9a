"""dualdann's expression-side phase classifier on its own: RNA → phase, without any ATAC.

This is the source branch of :class:`~xmodal.methods.dualdann.DualDANN` — PCA source embedding, the
seed's latent projection and label classifier — trained with the two terms that need no second
modality (classification and supervised contrast), AdamW, cosine annealing and gradient clipping,
and kept at its best validation epoch. It answers "how well does the RNA side know the phase?" on
data that has expression only, e.g. scanpy's bundled ``pbmc68k_reduced``.
"""

from __future__ import annotations

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
from xmodal.train import XmodalModule, shard

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


class ExpressionTraining(XmodalModule):
    """The source branch (``net``: projection, classifier) trained on classification + supervised contrast.

    Parameters
    ----------
    net
        ``Sequential(projection, classifier)``.
    config
        dualdann settings (see :func:`expression_phase_check`).
    steps_per_epoch
        Steps of one epoch (cosine annealing steps once per epoch; validation every ``eval_every`` epochs).
    validation
        Validation embeddings ``(n_v, d)`` and their phases ``(n_v,)``.
    """

    method = "dualdann"

    def __init__(self, net: torch.nn.Sequential, config: DualDANNConfig, *, steps_per_epoch: int,
                 validation: tuple[torch.Tensor, np.ndarray]) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.net, self.cfg, self.steps_per_epoch = net, config, steps_per_epoch
        self._val_z, self._val_phases = validation

    def configure_optimizers(self) -> Any:  # noqa: D102 - Lightning hook
        cfg = self.cfg
        opt = torch.optim.AdamW(self.net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        return [opt], [torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs, eta_min=0.01 * cfg.lr)]

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> None:  # noqa: D102 - Lightning hook
        cfg, opt = self.cfg, self.optimizers()
        epoch, i = divmod(int(batch["step"]), self.steps_per_epoch)
        h = self.net[0](batch["z"])
        loss = cfg.lambda_class * F.cross_entropy(self.net[1](h), batch["y"]) + cfg.lambda_contrastive * (
            L.supervised_contrastive(h, batch["y"], temperature=cfg.contrastive_tau))
        self.check_finite("classification + contrastive", loss, where=f"epoch {epoch + 1}, step {i + 1}")
        opt.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        self.clip_gradients(opt, gradient_clip_val=cfg.grad_clip, gradient_clip_algorithm="norm")
        opt.step()
        if i + 1 == self.steps_per_epoch:
            self.lr_schedulers().step()
            self.record({"epoch": float(epoch + 1), "loss": float(loss.detach())})

    def validation_due(self, step: int) -> bool:  # noqa: D102 - see XmodalModule
        epoch, i = divmod(step, self.steps_per_epoch)
        return i + 1 == self.steps_per_epoch and ((epoch + 1) % self.cfg.eval_every == 0 or epoch + 1 == self.cfg.epochs)

    def validate(self) -> dict[str, float]:
        """Phase metrics of the validation cells."""
        pred = np.asarray(PHASES)[self.net(self._val_z.to(self.device)).argmax(dim=1).cpu().numpy()]
        return classification_metrics(self._val_phases, pred, classes=PHASES)


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
    from xmodal.train import Selection, StepLoader, fit

    torch.manual_seed(seed)
    net = torch.nn.Sequential(projection(encoder.dim, cfg.shared_dim),
                              classifier_head(cfg.shared_dim, cfg.cls_hidden, cfg.cls_layers, len(PHASES),
                                              dropout=cfg.dropout))
    n, b = len(rows["train"]), min(cfg.batch_size, len(rows["train"]))
    module = ExpressionTraining(net, cfg, steps_per_epoch=n // b, validation=(z["validation"],
                                                                              phases[rows["validation"]]))

    def batch(step: int, rank: int, world: int) -> dict[str, Any]:
        epoch, i = divmod(step, n // (b * world))
        order = np.random.default_rng([seed, epoch]).permutation(n)
        idx = torch.as_tensor(shard(order[i * b * world:(i + 1) * b * world], rank=rank, world=world))
        return {"step": step, "z": z["train"][idx], "y": y["train"][idx]}

    key = cfg.selection_metric
    result = fit(module, StepLoader(batch, total=cfg.epochs * (n // b)), settings=cfg, digest="expression", seed=seed,
                 selection=Selection(monitor=key, mode="max", patience=cfg.patience), what="dualdann-expression")
    best = result.summary[f"best_{key}"]
    best_epoch = int(result.summary["best_step"]) // (n // b)

    def predict(part: str) -> np.ndarray:
        net.eval()
        with torch.no_grad():
            out = net(z[part]).argmax(dim=1).numpy()
        return np.asarray(PHASES)[out]

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
