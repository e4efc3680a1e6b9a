"""cycleae as a LightningModule for :func:`xmodal.train.fit`: streamed batches of raw counts, the seed's two steps.

Every step reads one batch of the training cells from the census stream (:class:`~xmodal.families.census.StreamPlan`:
chunks in a seeded per-epoch order, cells shuffled in buffers of chunks, DDP shards by chunk), normalises it
(``log1p(target_sum · counts / Σ counts)``) and makes the seed's two updates:

1. the generator: targets that change every field, reconstruction + integration + target consistency with the
   classifier frozen (+ ``shift_weight`` × the mean-shift term, not the seed's), gradient-norm clip, AdamW with the seed's two weight decays, then the base head clamped ≥ 0;
2. the classifier on the real cells (Adam).

The two losses touch disjoint parameters and the generator's is computed with the classifier before its update,
so one backward pass of their sum gives exactly the seed's two updates (and DDP one gradient reduction per step).

The engine validates on a fixed sample of validation cells (eval mode, no gradients) at the end of every epoch (or
every ``eval_every`` steps), keeps the best state by ``selection_metric`` and can stop early. Test cells are never
read.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from xmodal.methods.cycleae._config import CycleAEConfig
from xmodal.methods.cycleae._module import (
    ContextClassifier,
    CycleAEModule,
    context_loss,
    generator_losses,
    log_normalize,
    optimizers,
    sample_targets,
)
from xmodal.metrics.counterfactual import MIN_GROUP, SeenChange, seen_changes
from xmodal.train import XmodalModule

#: selection metric → direction
DIRECTION = {"loss": "min", "recon": "min", "cf_mean_r2": "max"}


class CycleAETraining(XmodalModule):
    """Trains a :class:`CycleAEModule` (``self.net``) and its :class:`ContextClassifier` on streamed batches.

    Parameters
    ----------
    net, classifier
        Freshly initialised networks.
    config
        Hyper-parameters.
    plan
        The stream (for the epoch layout).
    world
        Processes.
    target_sum
        Counts per cell of the normalisation.
    val_x, val_codes
        Validation cells: ``(n_v, G)`` log1p-normalised expression and ``(n_v, F)`` codes.
    changes
        Observed changes of seen combinations (:func:`seen_changes`) for ``val_cf_mean_r2``.
    means
        Per field ``(K_f + 1, G)`` training means or additive effects per code, for the mean-shift term
        (``shift_weight`` > 0; ``shift_targets`` says which).
    glm
        With ``shift_targets: glm``, the count model whose per-cell changes the term matches instead.
    """

    method = "cycleae"
    divergence_fix = "lower methods.cycleae.lr, or check the counts for extreme values"

    def __init__(self, net: CycleAEModule, classifier: ContextClassifier, config: CycleAEConfig, *, plan: Any,
                 world: int, target_sum: float, val_x: np.ndarray, val_codes: np.ndarray,
                 changes: list[SeenChange], means: list[np.ndarray] | None = None, glm: Any = None) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.net, self.classifier, self.cfg = net, classifier, config
        self.plan, self.world, self.target_sum = plan, world, target_sum
        self.val_x = torch.as_tensor(val_x, dtype=torch.float32)
        self.val_codes = torch.as_tensor(val_codes, dtype=torch.long)
        # fixed validation targets: the same draw at every validation
        self.val_target = sample_targets(self.val_codes, net.cardinalities,
                                         generator=torch.Generator().manual_seed(12345))
        self.changes = changes
        if config.shift_weight > 0 and means is None and glm is None:
            raise ValueError("shift_weight > 0 needs the training means per field value or a count model")
        self.glm = glm
        self.means = [torch.as_tensor(m, dtype=torch.float32) for m in means or []]
        self.sums: dict[str, float] = {}
        self.count = 0

    def configure_optimizers(self) -> Any:  # noqa: D102 - Lightning hook
        cfg = self.cfg
        gen, cls = optimizers(self.net, self.classifier, lr=cfg.lr, weight_decay_base=cfg.weight_decay_base,
                              weight_decay_metadata=cfg.weight_decay_metadata,
                              weight_decay_classifier=cfg.weight_decay_classifier)
        return [gen, cls]

    def _losses(self, x: torch.Tensor, codes: torch.Tensor, target: torch.Tensor, *, shift: bool = True
                ) -> dict[str, torch.Tensor]:
        cfg = self.cfg
        return generator_losses(self.net, self.classifier, x, codes, target, cycles=cfg.cycles,
                                integration=cfg.integration, target_weight=cfg.target_weight,
                                label_smoothing=cfg.label_smoothing, means=self.means,
                                shift_weight=cfg.shift_weight if shift else 0.0, glm=self.glm)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> None:  # noqa: D102 - Lightning hook
        cfg = self.cfg
        step = int(batch["step"])
        epoch, i = self.plan.locate(step, self.world)
        opt_gen, opt_cls = self.optimizers()
        x = log_normalize(batch["x"].float(), target_sum=self.target_sum)
        codes = batch["codes"].long()
        target = sample_targets(codes, self.net.cardinalities)
        terms = self._losses(x, codes, target)
        terms["classifier"] = context_loss(self.classifier(x), codes, label_smoothing=cfg.label_smoothing)
        where = f"epoch {epoch + 1}, step {i + 1}"
        for name, value in terms.items():
            self.check_finite(name, value, where=where)
        opt_gen.zero_grad(set_to_none=True)
        opt_cls.zero_grad(set_to_none=True)
        self.manual_backward(terms["total"] + terms["classifier"])  # disjoint parameters: the seed's two steps
        self.clip_gradients(opt_gen, gradient_clip_val=cfg.grad_clip, gradient_clip_algorithm="norm")
        opt_gen.step()
        self.net.clamp_()
        opt_cls.step()
        for name, value in terms.items():
            self.sums[name] = self.sums.get(name, 0.0) + float(value.detach())
        self.count += 1
        if i + 1 == self.plan.steps_in_epoch(epoch, self.world):
            self.record({"epoch": float(epoch + 1), **{f"loss_{k}": v / self.count for k, v in self.sums.items()},
                         **{f"scale_{n}": float(s) for n, s in zip(["base", *self.field_names], self.scales(),
                                                                   strict=True)}})
            self.sums, self.count = {}, 0

    @property
    def field_names(self) -> list[str]:
        """Field names for records (``field_0``, … unless set by the model)."""
        return getattr(self, "_field_names", [f"field_{f}" for f in range(len(self.net.cardinalities))])

    def scales(self) -> list[float]:
        """The heads' learnable output scales: the base head's, then each field's."""
        with torch.no_grad():
            return [float(torch.exp(self.net.log_scale_base)), *torch.exp(self.net.log_scale).tolist()]

    # ------------------------------------------------------------ validation
    def validation_due(self, step: int) -> bool:  # noqa: D102 - see XmodalModule
        if self.cfg.eval_every:
            return (step + 1) % self.cfg.eval_every == 0
        epoch, i = self.plan.locate(step, self.world)
        return i + 1 == self.plan.steps_in_epoch(epoch, self.world)

    def validate(self) -> dict[str, float]:
        """``val_loss`` (the seed's terms, without the mean-shift term), ``val_recon`` (MSE of ``G(x; s→s)``),
        ``val_cycle``, the classifier's accuracy on real cells and at reading the targets from generated ones, and
        ``val_cf_mean_r2`` (see :func:`seen_changes`)."""
        device = self.device
        x, codes, target = self.val_x.to(device), self.val_codes.to(device), self.val_target.to(device)
        terms = self._losses(x, codes, target, shift=False)  # the seed's terms: no draw from the training RNG
        out = {"val_loss": float(terms["total"]), "val_cycle": float(terms["recon"]),
               "val_recon": float(torch.mean((self.net(x, codes, codes)[0] - x) ** 2))}
        x_st = self.net(x, codes, target)[0]
        out["val_target_accuracy"] = _accuracy(self.classifier(x_st), target)
        out["val_classifier_accuracy"] = _accuracy(self.classifier(x), codes)
        out["val_cf_mean_r2"] = self.seen_change_r2(x, codes)
        return out

    def seen_change_r2(self, x: torch.Tensor, codes: torch.Tensor) -> float:
        """R² of the mean predicted change against the observed one, pooled over :attr:`changes` and genes."""
        from xmodal.metrics import r2

        if not self.changes:
            return float("nan")
        pred, true = [], []
        for change in self.changes:
            rows = torch.as_tensor(change.rows, device=x.device)
            s = codes[rows]
            t = s.clone()
            t[:, change.field] = change.code
            delta = self.net(x[rows], s, t)[0] - self.net(x[rows], s, s)[0]
            pred.append(delta.mean(0).cpu().numpy())
            true.append(change.observed)
        return r2(np.stack(pred), np.stack(true))

    def extra_state(self) -> dict[str, Any]:  # noqa: D102 - see XmodalModule
        return {"sums": dict(self.sums), "count": self.count}

    def load_extra_state(self, state: dict[str, Any]) -> None:  # noqa: D102 - see XmodalModule
        self.sums, self.count = dict(state.get("sums", {})), int(state.get("count", 0))


def _accuracy(logits: list[torch.Tensor], codes: torch.Tensor) -> float:
    """Mean over fields of the share of cells with a known code whose argmax is that code."""
    hits = []
    for f, logit in enumerate(logits):
        known = codes[:, f] > 0
        if known.any():
            hits.append(float((logit[known].argmax(1) + 1 == codes[known, f]).float().mean()))
    return float(np.mean(hits)) if hits else float("nan")


__all__ = ["DIRECTION", "MIN_GROUP", "CycleAETraining", "SeenChange", "seen_changes"]
