"""The dualdann training loop: epochs of paired source/target mini-batches, validation on the target domain.

Per epoch, ``min(n_source, n_target) // batch_size`` steps (the seed's ``drop_last``), each on a
source batch (fixed RNA embeddings, phases known) and a target batch (peaks; phases known for the
labelled ATAC cells, ``-1`` for the others). When adapting to another domain, the target batch is
one batch of the source domain's ATAC cells (labelled: classification and contrastive terms only)
and one of the target domain's (the adversary, balance and entropy terms align these with the
source embeddings). The gradient-reversal strength ``α(p)`` is constant
within an epoch, the target-class weight warms up linearly over ``target_class_warmup`` epochs,
AdamW with gradient clipping steps every batch and cosine annealing every epoch.

Every ``eval_every`` epochs the model predicts the **validation** ATAC cells of the target domain
(eval mode, no gradients). The best state by ``selection_metric`` is kept and is what training
returns (the seed reloaded the best *source* checkpoint); training stops after ``patience``
validations without improvement, or after 5 collapsed validations in a row past epoch 25. Test
cells are never passed in.
"""

from __future__ import annotations

import copy
import logging
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from xmodal.errors import ConfigError, TrainingDivergedError
from xmodal.methods.dualdann._config import DualDANNConfig
from xmodal.methods.dualdann._module import DualDANNModule, LossWeights, batch_losses
from xmodal.metrics import classification_metrics
from xmodal.nn import grl_alpha

log = logging.getLogger(__name__)
_DENSE_LIMIT = 1 << 30  # bytes of peaks held dense under input: auto
_COLLAPSE_AFTER, _COLLAPSE_RUN = 25, 5


class Peaks:
    """Peak matrix ``(n, P)`` held dense or sparse; :meth:`batch` returns a dense float32 tensor."""

    def __init__(self, x: np.ndarray | sp.spmatrix, *, mode: str, device: torch.device) -> None:
        self.device = device
        n, p = x.shape
        dense = mode == "dense" or (mode == "auto" and n * p * 4 <= _DENSE_LIMIT)
        if dense:
            self.dense: torch.Tensor | None = torch.as_tensor(
                np.asarray(x.toarray() if sp.issparse(x) else x, dtype=np.float32), device=device)
            self.sparse: sp.csr_matrix | None = None
        else:
            self.dense, self.sparse = None, sp.csr_matrix(x, dtype=np.float32)
        self.shape = (n, p)

    def batch(self, idx: np.ndarray) -> torch.Tensor:
        """Rows ``idx`` as a dense ``(len(idx), P)`` tensor on the device."""
        if self.dense is not None:
            return self.dense[torch.as_tensor(idx, device=self.device)]
        assert self.sparse is not None
        return torch.from_numpy(self.sparse[idx].toarray()).to(self.device)


@dataclass
class TrainingData:
    """What the trainer sees: training cells of both sides and the target domain's validation cells.

    Attributes
    ----------
    source_x, source_y
        Source embeddings ``(n_s, d)`` and phase codes ``(n_s,)``.
    target_x, target_y
        Training peaks ``(n_t, P)`` and phase codes ``(n_t,)``, ``-1`` where the label is not used.
    val_x, val_y
        The target domain's validation peaks ``(n_v, P)`` and phase codes ``(n_v,)``.
    adapted
        Boolean ``(n_t,)``: the training peaks of the target domain, adapted to (the adversary, balance
        and entropy terms see these); ``None`` when every peak row is of the source domain (the seed's
        setting, and the source-only ablation), and the adversary sees them all.
    """

    source_x: np.ndarray
    source_y: np.ndarray
    target_x: np.ndarray | sp.spmatrix
    target_y: np.ndarray
    val_x: np.ndarray | sp.spmatrix
    val_y: np.ndarray
    adapted: np.ndarray | None = None


@torch.no_grad()
def predict_peaks(module: DualDANNModule, peaks: Peaks, *, batch_size: int = 1024) -> np.ndarray:
    """Class probabilities ``(n, K)`` of peak rows, in eval mode without gradients (module mode restored)."""
    was = module.training
    module.eval()
    try:
        n = peaks.shape[0]
        out = [torch.softmax(module.classifier(module.shared_target(peaks.batch(np.arange(i, min(i + batch_size, n))))),
                             dim=1).cpu() for i in range(0, n, batch_size)]
    finally:
        module.train(was)
    return torch.cat(out).numpy() if out else np.zeros((0, module.n_classes), dtype=np.float32)


class Trainer:
    """Fit a :class:`DualDANNModule` (see the module docstring for the schedule).

    Parameters
    ----------
    module
        Freshly initialised networks, on ``device``.
    config
        Hyper-parameters.
    data
        Training and validation cells (:class:`TrainingData`).
    classes
        Phase names in code order.
    seed
        Seeds the batch order (dropout and noise follow torch's generator, seeded by the caller).
    device
        Where the batches go.
    """

    def __init__(self, module: DualDANNModule, config: DualDANNConfig, data: TrainingData, *,
                 classes: list[str], seed: int, device: torch.device) -> None:
        self.module, self.cfg, self.classes, self.seed, self.device = module, config, classes, seed, device
        self.source_x = torch.as_tensor(data.source_x, dtype=torch.float32, device=device)
        self.source_y = torch.as_tensor(data.source_y, dtype=torch.long, device=device)
        self.target = Peaks(data.target_x, mode=config.input, device=device)
        self.target_y = torch.as_tensor(data.target_y, dtype=torch.long, device=device)
        self.val = Peaks(data.val_x, mode=config.input, device=device)
        self.val_y = np.asarray(data.val_y)
        self.weights = LossWeights(
            classification=config.lambda_class, target_classification=config.lambda_target_class,
            domain=config.lambda_domain, contrastive=config.lambda_contrastive, balance=config.lambda_balance,
            entropy=config.lambda_entropy, peak_objective=config.lambda_peak, temperature=config.contrastive_tau,
            confidence=config.confidence_threshold)
        self.optimizer = torch.optim.AdamW(module.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, T_max=config.epochs,
                                                                    eta_min=0.01 * config.lr)
        n_t = self.target.shape[0]
        adapted = np.zeros(n_t, dtype=bool) if data.adapted is None else np.asarray(data.adapted, dtype=bool)
        # the peak rows of a step: one batch of the source domain's ATAC cells, and one of the target domain's
        self.streams = [np.flatnonzero(~adapted), np.flatnonzero(adapted)] if adapted.any() else [np.arange(n_t)]
        self.streams = [idx for idx in self.streams if len(idx)]
        self.adapted = torch.as_tensor(adapted, device=device)
        self.steps_per_epoch = min(len(self.source_x), *(len(idx) for idx in self.streams)) // config.batch_size
        if self.steps_per_epoch == 0:
            raise ConfigError(f"methods.dualdann.batch_size {config.batch_size} exceeds the training cells of a "
                              f"stream ({len(self.source_x)} source, "
                              f"{' + '.join(str(len(i)) for i in self.streams)} ATAC); lower it")

    def _target_weight(self, epoch: int) -> float:
        warm = self.cfg.target_class_warmup
        return 1.0 if warm == 0 else min(1.0, epoch / warm)

    def epoch(self, epoch: int) -> dict[str, float]:
        """One epoch of training (``epoch`` counts from 0); returns the mean of every weighted term."""
        cfg = self.cfg
        self.module.train()
        rng = np.random.default_rng([self.seed, epoch])
        order_s = rng.permutation(len(self.source_x))
        orders_t = [rng.permutation(idx) for idx in self.streams]
        alpha = grl_alpha(epoch / cfg.epochs, gamma=cfg.grl_gamma)
        target_weight = self._target_weight(epoch)
        sums: dict[str, float] = {}
        b = cfg.batch_size
        for step in range(self.steps_per_epoch):
            s = torch.as_tensor(order_s[step * b:(step + 1) * b], device=self.device)
            t = np.concatenate([order[step * b:(step + 1) * b] for order in orders_t])
            t_idx = torch.as_tensor(t, device=self.device)
            y_t = self.target_y[t_idx]
            terms = batch_losses(self.module, self.source_x[s], self.source_y[s], self.target.batch(t),
                                 y_t if bool((y_t >= 0).any()) else None, alpha=alpha, target_weight=target_weight,
                                 divergence=cfg.divergence, weights=self.weights,
                                 adversarial=self.adapted[t_idx] if len(self.streams) > 1 else None)
            for name, value in terms.items():
                v = float(value.detach())
                if not math.isfinite(v):
                    raise TrainingDivergedError(
                        f"dualdann: loss term {name!r} became {v} at epoch {epoch + 1}, step {step + 1}; "
                        "lower methods.dualdann.lr (or the weight of that term)")
                sums[name] = sums.get(name, 0.0) + v
            self.optimizer.zero_grad(set_to_none=True)
            terms["total"].backward()
            torch.nn.utils.clip_grad_norm_(self.module.parameters(), cfg.grad_clip)
            self.optimizer.step()
        lr = self.optimizer.param_groups[0]["lr"]
        self.scheduler.step()
        return {"epoch": epoch + 1, "lr": lr, "alpha": alpha, "target_weight": target_weight,
                **{f"loss_{k}": v / self.steps_per_epoch for k, v in sums.items()}}

    def validate(self) -> dict[str, float]:
        """Metrics of the target domain's validation cells (``val_*``) and the largest predicted share."""
        probs = predict_peaks(self.module, self.val)
        pred = probs.argmax(axis=1)
        names = np.asarray(self.classes)
        out = classification_metrics(names[self.val_y], names[pred], classes=self.classes, prefix="val_")
        out["val_top_share"] = float(np.bincount(pred, minlength=len(self.classes)).max() / max(len(pred), 1))
        return out

    def fit(self, *, callback: Any = None) -> tuple[list[dict[str, float]], dict[str, Any]]:
        """Train; leave the best validated state in the module.

        Returns
        -------
        tuple
            Per-epoch history (losses; validation metrics on validated epochs) and a summary:
            ``best_epoch``, ``best_<selection_metric>``, ``epochs_run``, ``stopped`` (why).
        """
        from tqdm.auto import tqdm

        cfg = self.cfg
        key = f"val_{cfg.selection_metric}"
        best, best_epoch, best_state = -math.inf, 0, copy.deepcopy(self.module.state_dict())
        stale = collapsed = 0
        stopped = "max_epochs"
        history: list[dict[str, float]] = []
        bar = tqdm(range(cfg.epochs), desc="dualdann", unit="epoch", disable=None, leave=False)
        for epoch in bar:
            record = self.epoch(epoch)
            last = epoch + 1 == cfg.epochs
            if (epoch + 1) % cfg.eval_every == 0 or last:
                record |= self.validate()
                score = record[key]
                if score > best:
                    best, best_epoch, stale = score, epoch + 1, 0
                    best_state = copy.deepcopy(self.module.state_dict())
                else:
                    stale += 1
                collapsed = collapsed + 1 if record["val_top_share"] > cfg.collapse_share else 0
                bar.set_postfix({key: f"{score:.3f}", "best": f"{best:.3f}"})
                if stale >= cfg.patience:
                    stopped = f"no improvement of {key} in {cfg.patience} validations"
                elif epoch + 1 > _COLLAPSE_AFTER and collapsed >= _COLLAPSE_RUN:
                    stopped = f"{_COLLAPSE_RUN} collapsed validations in a row"
            history.append(record)
            if callback is not None:
                callback(epoch + 1, record)
            if stopped != "max_epochs":
                log.info("dualdann: stopping at epoch %d: %s", epoch + 1, stopped)
                break
        bar.close()
        self.module.load_state_dict(best_state)
        self.module.eval()
        return history, {"best_epoch": best_epoch, f"best_{key}": best, "epochs_run": len(history),
                         "stopped": stopped, "steps_per_epoch": self.steps_per_epoch}
