"""dualdann as a LightningModule for :func:`xmodal.train.fit`: epochs of paired source/target batches.

Per epoch, ``min(n_source, n_target) // (batch_size × processes)`` steps (the seed's ``drop_last``), each
on a source batch (fixed RNA embeddings, phases known) and a target batch (peaks; phases known for the
labelled ATAC cells, ``-1`` for the others). When adapting to another domain, the target batch is
one batch of the source domain's ATAC cells (labelled: classification and contrastive terms only)
and one of the target domain's (the adversary, balance and entropy terms align these with the
source embeddings). The gradient-reversal strength ``α(p)`` is constant within an epoch, the
target-class weight warms up linearly over ``target_class_warmup`` epochs, AdamW with gradient
clipping steps every batch and cosine annealing every epoch. The domain adversary makes this
adversarial training, so the module steps its optimiser itself (manual optimisation).

Every ``eval_every`` epochs the engine asks for the **validation** ATAC cells of the target domain
(eval mode, no gradients); it keeps the best state by ``selection_metric`` (the seed reloaded the
best *source* checkpoint) and stops after ``patience`` validations without improvement, or, by
:meth:`DualDANNTraining.stop_reason`, after 5 collapsed validations in a row past epoch 25. Test
cells are never passed in.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np
import torch

from xmodal.errors import ConfigError, TrainingDivergedError
from xmodal.methods.dualdann._config import DualDANNConfig
from xmodal.methods.dualdann._module import DualDANNModule, LossWeights, batch_losses
from xmodal.methods.dualdann._peaks import Peaks, TrainingData, predict_peaks
from xmodal.metrics import classification_metrics
from xmodal.nn import grl_alpha
from xmodal.train import XmodalModule, settings_digest, shard

_COLLAPSE_AFTER, _COLLAPSE_RUN = 25, 5


def config_digest(config: DualDANNConfig, dims: tuple[int, int], seed: int, *, data: str) -> str:
    """What a checkpoint must match to be resumed: every setting but where it trains, plus shapes, seed and
    ``data``, the training data's content hash."""
    return settings_digest(config, shapes=dims, seed=seed, data=data)


class EpochPlan:
    """The batches of every step: epoch ``e`` shuffles each stream with ``default_rng([seed, e])``.

    Parameters
    ----------
    data
        Training cells.
    batch_size
        Rows of each stream per process and step.
    world
        Processes; a step's global batch holds ``world × batch_size`` rows of each stream, and each rank
        takes its own part.
    seed
        Seeds the orders.
    """

    def __init__(self, data: TrainingData, *, batch_size: int, world: int, seed: int, input_mode: str) -> None:
        self.seed, self.b, self.world = seed, batch_size, world
        self.source_x = torch.as_tensor(data.source_x, dtype=torch.float32)
        self.source_y = torch.as_tensor(data.source_y, dtype=torch.long)
        self.target = Peaks(data.target_x, mode=input_mode)
        self.target_y = torch.as_tensor(data.target_y, dtype=torch.long)
        n_t = self.target.shape[0]
        adapted = np.zeros(n_t, dtype=bool) if data.adapted is None else np.asarray(data.adapted, dtype=bool)
        # the peak rows of a step: one batch of the source domain's ATAC cells, and one of the target domain's
        streams = [np.flatnonzero(~adapted), np.flatnonzero(adapted)] if adapted.any() else [np.arange(n_t)]
        self.streams = [idx for idx in streams if len(idx)]
        self.two_streams = len(self.streams) > 1
        self.adapted = torch.as_tensor(adapted)
        self.steps_per_epoch = min(len(self.source_x), *(len(idx) for idx in self.streams)) // (batch_size * world)
        if self.steps_per_epoch == 0:
            raise ConfigError(f"methods.dualdann.batch_size {batch_size} × {world} process(es) exceeds the training "
                              f"cells of a stream ({len(self.source_x)} source, "
                              f"{' + '.join(str(len(i)) for i in self.streams)} ATAC); lower it")
        self._orders = lru_cache(maxsize=2)(self._epoch_orders)

    def _epoch_orders(self, epoch: int) -> tuple[np.ndarray, list[np.ndarray]]:
        rng = np.random.default_rng([self.seed, epoch])
        return rng.permutation(len(self.source_x)), [rng.permutation(idx) for idx in self.streams]

    def __call__(self, step: int, rank: int, world: int) -> dict[str, Any]:
        """Rank ``rank``'s batch of global step ``step``."""
        epoch, i = divmod(step, self.steps_per_epoch)
        order_s, orders_t = self._orders(epoch)
        g = self.b * world
        s = shard(order_s[i * g:(i + 1) * g], rank=rank, world=world)
        t = np.concatenate([shard(order[i * g:(i + 1) * g], rank=rank, world=world) for order in orders_t])
        t_idx = torch.as_tensor(t)
        return {"step": step, "idx_source": torch.as_tensor(s), "idx_target": t_idx,
                "x_source": self.source_x[s], "y_source": self.source_y[s],
                "peaks": self.target.batch(t), "y_target": self.target_y[t_idx], "adversarial": self.adapted[t_idx]}


class DualDANNTraining(XmodalModule):
    """Trains a :class:`DualDANNModule` (``self.net``) on :class:`EpochPlan` batches; validates on target cells.

    Parameters
    ----------
    net
        Freshly initialised networks.
    config
        Hyper-parameters.
    plan
        The batches (for the epoch layout).
    val_x, val_y
        The target domain's validation peaks ``(n_v, P)`` and phase codes ``(n_v,)``.
    classes
        Phase names in code order.
    """

    method = "dualdann"
    divergence_fix = "lower methods.dualdann.lr (or the weight of that term)"

    def __init__(self, net: DualDANNModule, config: DualDANNConfig, *, plan: EpochPlan, val_x: Any,
                 val_y: np.ndarray, classes: list[str]) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.net, self.cfg, self.classes = net, config, classes
        self.steps_per_epoch, self.two_streams = plan.steps_per_epoch, plan.two_streams
        self._val_x, self.val_y = val_x, np.asarray(val_y)
        self._val: Peaks | None = None
        self.sums: dict[str, float] = {}
        self.weights = LossWeights(
            classification=config.lambda_class, target_classification=config.lambda_target_class,
            domain=config.lambda_domain, contrastive=config.lambda_contrastive, balance=config.lambda_balance,
            entropy=config.lambda_entropy, peak_objective=config.lambda_peak, temperature=config.contrastive_tau,
            confidence=config.confidence_threshold)

    def configure_optimizers(self) -> Any:  # noqa: D102 - Lightning hook
        cfg = self.cfg
        opt = torch.optim.AdamW(self.net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        return [opt], [torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs, eta_min=0.01 * cfg.lr)]

    def _target_weight(self, epoch: int) -> float:
        warm = self.cfg.target_class_warmup
        return 1.0 if warm == 0 else min(1.0, epoch / warm)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> None:  # noqa: D102 - Lightning hook
        cfg = self.cfg
        step = int(batch["step"])
        epoch, i = divmod(step, self.steps_per_epoch)
        opt = self.optimizers()
        alpha = grl_alpha(epoch / cfg.epochs, gamma=cfg.grl_gamma)
        target_weight = self._target_weight(epoch)
        y_t = batch["y_target"]
        terms = batch_losses(self.net, batch["x_source"], batch["y_source"], batch["peaks"],
                             y_t if bool((y_t >= 0).any()) else None, alpha=alpha, target_weight=target_weight,
                             divergence=cfg.divergence, weights=self.weights,
                             adversarial=batch["adversarial"] if self.two_streams else None)
        for name, value in terms.items():
            v = float(value.detach())
            if not np.isfinite(v):
                raise TrainingDivergedError(
                    f"dualdann: loss term {name!r} became {v} at epoch {epoch + 1}, step {i + 1}; "
                    "lower methods.dualdann.lr (or the weight of that term)")
            self.sums[name] = self.sums.get(name, 0.0) + v
        opt.zero_grad(set_to_none=True)
        self.manual_backward(terms["total"])
        self.clip_gradients(opt, gradient_clip_val=cfg.grad_clip, gradient_clip_algorithm="norm")
        opt.step()
        if i + 1 == self.steps_per_epoch:
            lr = opt.param_groups[0]["lr"]
            self.lr_schedulers().step()
            self.record({"epoch": float(epoch + 1), "lr": lr, "alpha": alpha, "target_weight": target_weight,
                         **{f"loss_{k}": v / self.steps_per_epoch for k, v in self.sums.items()}})
            self.sums = {}

    # ------------------------------------------------------------ validation
    def validation_due(self, step: int) -> bool:  # noqa: D102 - see XmodalModule
        epoch, i = divmod(step, self.steps_per_epoch)
        return i + 1 == self.steps_per_epoch and ((epoch + 1) % self.cfg.eval_every == 0 or epoch + 1 == self.cfg.epochs)

    def validate(self) -> dict[str, float]:
        """Metrics of the target domain's validation cells (``val_*``) and the largest predicted share."""
        if self._val is None or self._val.device != self.device:
            self._val = Peaks(self._val_x, mode=self.cfg.input, device=self.device)
        probs = predict_peaks(self.net, self._val)
        pred = probs.argmax(axis=1)
        names = np.asarray(self.classes)
        out = classification_metrics(names[self.val_y], names[pred], classes=self.classes, prefix="val_")
        out["val_top_share"] = float(np.bincount(pred, minlength=len(self.classes)).max() / max(len(pred), 1))
        return out

    def stop_reason(self, history: list[dict[str, float]]) -> str | None:
        """Stop after 5 collapsed validations in a row (one phase for most cells) past epoch 25 (the seed's rule)."""
        validated = [h for h in history if "val_top_share" in h]
        if not validated or validated[-1]["epoch"] <= _COLLAPSE_AFTER or len(validated) < _COLLAPSE_RUN:
            return None
        if all(h["val_top_share"] > self.cfg.collapse_share for h in validated[-_COLLAPSE_RUN:]):
            return f"{_COLLAPSE_RUN} collapsed validations in a row"
        return None

    def extra_state(self) -> dict[str, Any]:  # noqa: D102 - see XmodalModule
        return {"sums": dict(self.sums)}

    def load_extra_state(self, state: dict[str, Any]) -> None:  # noqa: D102 - see XmodalModule
        self.sums = dict(state.get("sums", {}))


def epochs_of(history: list[dict[str, float]], step: int | None) -> int:
    """The epoch a 1-based step count ends (0 for ``None``), read from the history's epoch records."""
    if step is None:
        return 0
    return next((int(h["epoch"]) for h in history if int(h["step"]) == step - 1), 0)


__all__ = ["DualDANNTraining", "EpochPlan", "Peaks", "TrainingData", "config_digest", "epochs_of", "predict_peaks"]
