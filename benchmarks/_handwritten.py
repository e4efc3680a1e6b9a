"""The hand-written training loops geoadvae and dualdann had before :mod:`xmodal.train` (commit 0609e12).

Kept here only as the baseline the engine's per-step overhead is measured against
(``benchmarks/geoadvae_speed.py``, ``benchmarks/dualdann_speed.py``): the same networks, losses and
optimiser steps in a plain Python loop, without Lightning. Nothing in ``src/`` imports this file.
"""
# ruff: noqa
from __future__ import annotations

# ---------------------------------------------------------------- geoadvae (methods/geoadvae/_trainer.py)
import hashlib
import json
import logging
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from xmodal import losses as L
from xmodal._io import atomic_file
from xmodal.errors import TrainingDivergedError, XmodalInputError, first_line
from xmodal.methods.geoadvae._config import GeoAdVAEConfig
from xmodal.methods.geoadvae._module import GeoAdVAEModule
from xmodal.methods.geoadvae._prior import ClusterPrior

log = logging.getLogger(__name__)
CHECKPOINT = "checkpoint.pt"
WEIGHT_KEYS = {"kl": "kl_w", "recon": "recon_x_w", "gan": "gan_w", "gw": "gw_w", "prior": "lambda_p"}
_STATE_KEYS = ("digest", "step", "history", "module", "opt_gen", "opt_dis", "sched_gen", "sched_dis", "torch_rng")


@dataclass
class GeoBatches:
    """Deterministic mini-batches: epoch ``e`` of a modality is ``randperm`` seeded by ``(seed, modality, e)``.

    In paired mode both modalities follow the permutation of the pairs.
    """

    n_a: int
    n_b: int
    batch_size: int
    seed: int
    pairs: tuple[np.ndarray, np.ndarray] | None = None
    _cache: dict[tuple[str, int], torch.Tensor] = field(default_factory=dict, repr=False)

    def _perm(self, key: str, n: int, epoch: int) -> torch.Tensor:
        if (key, epoch) not in self._cache:
            if len(self._cache) > 8:
                self._cache.clear()
            g = torch.Generator().manual_seed(int(self.seed) * 1_000_003 + {"a": 1, "b": 2, "p": 3}[key] * 7919 + epoch)
            self._cache[(key, epoch)] = torch.randperm(n, generator=g)
        return self._cache[(key, epoch)]

    def _take(self, key: str, n: int, step: int) -> torch.Tensor:
        bs = min(self.batch_size, n)
        per_epoch = n // bs
        epoch, i = divmod(step, per_epoch)
        return self._perm(key, n, epoch)[i * bs:(i + 1) * bs]

    def __call__(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Row indices ``(idx_a, idx_b)`` of iteration ``step``, each ``(batch_size,)``."""
        if self.pairs is not None:
            sel = self._take("p", len(self.pairs[0]), step).numpy()
            return torch.as_tensor(self.pairs[0][sel]), torch.as_tensor(self.pairs[1][sel])
        return self._take("a", self.n_a, step), self._take("b", self.n_b, step)


from xmodal.methods.geoadvae._lightning import _phase_start, active_losses, config_digest, phase_of  # shared
from xmodal.train import data_hash


class GeoAdVAELoop:
    """Trains a :class:`GeoAdVAEModule` on two modalities.

    Parameters
    ----------
    module
        The networks (modified in place by training).
    config
        Hyper-parameters.
    x_a, x_b
        Training cells, ``(n_a, d_a)`` and ``(n_b, d_b)`` float32 on the training device.
    prior
        Cluster prior inputs, or ``None``.
    pairs
        Row indices of partner pairs (paired mode only).
    seed
        Seeds batches, dropout and re-parameterisation.
    """

    def __init__(self, module: GeoAdVAEModule, config: GeoAdVAEConfig, x_a: torch.Tensor, x_b: torch.Tensor, *,
                 prior: ClusterPrior | None, pairs: tuple[np.ndarray, np.ndarray] | None, seed: int) -> None:
        self.module, self.cfg, self.x_a, self.x_b, self.seed = module, config, x_a, x_b, seed
        self.device = x_a.device
        self.batches = GeoBatches(len(x_a), len(x_b), config.batch_size, seed, pairs)
        self.prior = prior
        if prior is not None:
            self.corr = torch.as_tensor(prior.corr, device=self.device)
            self.clusters_a = torch.as_tensor(prior.clusters_a, device=self.device)
            self.clusters_b = torch.as_tensor(prior.clusters_b, device=self.device)
        betas = (config.beta1, config.beta2)
        fused = self.device.type == "cpu"
        self.opt_gen = torch.optim.Adam(module.generator_parameters(), lr=config.lr, betas=betas,
                                        weight_decay=config.weight_decay, fused=fused)
        self.opt_dis = torch.optim.Adam(module.disc.parameters(), lr=config.lr, betas=betas,
                                        weight_decay=config.weight_decay, fused=fused)
        self.sched_gen = torch.optim.lr_scheduler.StepLR(self.opt_gen, config.step_size, config.gamma)
        self.sched_dis = torch.optim.lr_scheduler.StepLR(self.opt_dis, config.step_size, config.gamma)
        self.step = 0
        self.history: list[dict[str, float]] = []
        self.digest = config_digest(config, (x_a.shape[1], x_b.shape[1]), seed, data=data_hash(
            x_a.cpu(), x_b.cpu(), pairs, None if prior is None else (prior.corr, prior.clusters_a, prior.clusters_b)))

    # ------------------------------------------------------------ checkpoints
    def state(self) -> dict[str, Any]:
        """Everything needed to continue exactly where training stands."""
        return {
            "digest": self.digest, "step": self.step, "history": self.history,
            "module": self.module.state_dict(), "opt_gen": self.opt_gen.state_dict(),
            "opt_dis": self.opt_dis.state_dict(), "sched_gen": self.sched_gen.state_dict(),
            "sched_dis": self.sched_dis.state_dict(), "torch_rng": torch.get_rng_state(),
        }

    def save_checkpoint(self, directory: Path) -> Path:
        """Write ``checkpoint.pt`` atomically (temporary file, then rename)."""
        target = directory / CHECKPOINT
        with atomic_file(target) as tmp:
            torch.save(self.state(), tmp)
        return target

    def load_checkpoint(self, path: Path) -> None:
        """Restore a checkpoint written by :meth:`save_checkpoint` for the same settings and data.

        The file is read with ``weights_only=True`` (tensors and plain types; nothing in it can run), and its
        settings digest is checked before any state is restored.

        Raises
        ------
        XmodalInputError
            The file is truncated, corrupt, holds anything but tensors and plain data, lacks an entry, or was
            written with other settings, data shapes or seed.
        """
        from xmodal._safe_load import load_torch

        fix = "train without --resume to start over (the checkpoint is then rewritten)"
        state = load_torch(path, what="geoadvae checkpoint", fix=fix, map_location=self.device)
        missing = [k for k in _STATE_KEYS if not isinstance(state, dict) or k not in state]
        if missing:
            raise XmodalInputError(f"not a geoadvae checkpoint (no {', '.join(missing)})", path=path, fix=fix)
        if state["digest"] != self.digest:
            raise XmodalInputError(
                "the checkpoint was written with other settings, data shapes or seed", path=path,
                fix="resume with the parameters it was started with, or train without --resume to start over")
        try:
            self.module.load_state_dict(state["module"])
            self.opt_gen.load_state_dict(state["opt_gen"])
            self.opt_dis.load_state_dict(state["opt_dis"])
            self.sched_gen.load_state_dict(state["sched_gen"])
            self.sched_dis.load_state_dict(state["sched_dis"])
            torch.set_rng_state(state["torch_rng"])
            self.step, self.history = int(state["step"]), list(state["history"])
        except (RuntimeError, ValueError, KeyError, TypeError) as exc:
            raise XmodalInputError(f"the checkpoint does not fit the model ({type(exc).__name__}: "
                                   f"{first_line(exc, limit=200)})", path=path, fix=fix) from None
        log.info("geoadvae: resumed from %s at iteration %d", path, self.step)

    # --------------------------------------------------------------- losses
    def _check(self, name: str, value: torch.Tensor) -> None:
        if not bool(torch.isfinite(value)):
            key = WEIGHT_KEYS.get(name, "lr")
            raise TrainingDivergedError(
                f"geoadvae: the {name} loss became {float(value)} at iteration {self.step} "
                f"(phase {phase_of(self.step, self.cfg.phase_durations)}); lower methods.geoadvae.lr "
                f"or methods.geoadvae.{key}, or check the input for extreme values")

    def _prior_loss(self, z_a: torch.Tensor, z_b: torch.Tensor, idx_a: torch.Tensor,
                    idx_b: torch.Tensor) -> torch.Tensor:
        target = L.prior_target(self.corr, self.clusters_a[idx_a], self.clusters_b[idx_b])
        if self.cfg.prior_form == "mse":
            return L.cluster_prior_mse(z_a, z_b, target)
        return L.cluster_prior_infonce(z_a, z_b, target > self.cfg.positive_threshold,
                                       temperature=self.cfg.prior_temperature)

    def _prior_warmup(self) -> float:
        if self.cfg.prior_loss_warmup == 0:
            return 1.0
        start = _phase_start(self.cfg.loss_schedule["prior"], self.cfg.phase_durations)
        return min(1.0, (self.step - start + 1) / self.cfg.prior_loss_warmup)

    def _discriminator_updates(self, mu_a: torch.Tensor, lv_a: torch.Tensor, mu_b: torch.Tensor,
                               lv_b: torch.Tensor) -> float:
        cfg, disc = self.cfg, self.module.disc
        mu_a, lv_a, mu_b, lv_b = mu_a.detach(), lv_a.detach(), mu_b.detach(), lv_b.detach()
        value = 0.0
        for _ in range(cfg.num_disc):
            z_a = self.module.vae_a.sample(mu_a, lv_a)
            z_b = self.module.vae_b.sample(mu_b, lv_b)
            loss = L.discriminator_loss(disc(z_a), disc(z_b), kind=cfg.gan_type, smoothing=cfg.label_smoothing)
            if cfg.gan_type == "wgan-gp":
                loss = loss + cfg.gp_w * L.gradient_penalty(disc, z_a, z_b)
            loss = cfg.gan_w * loss
            self._check("discriminator", loss)
            self.opt_dis.zero_grad(set_to_none=True)
            loss.backward()
            self.opt_dis.step()
            value = float(loss.detach())
        return value

    def iteration(self) -> dict[str, float]:
        """One training iteration; returns raw and weighted loss values and latent statistics."""
        cfg, m = self.cfg, self.module
        active = active_losses(self.step, cfg)
        if self.step == 0 or active != active_losses(self.step - 1, cfg):
            log.info("geoadvae: phase %d from iteration %d: %s", phase_of(self.step, cfg.phase_durations), self.step,
                     ", ".join(sorted(active)))
        idx_a, idx_b = self.batches(self.step)
        x_a, x_b = self.x_a[idx_a], self.x_b[idx_b]
        record: dict[str, float] = {}
        disc_loss: float | None = None
        for g in range(cfg.num_gen):
            mu_a, lv_a = m.vae_a.encode(x_a)
            mu_b, lv_b = m.vae_b.encode(x_b)
            if g == 0 and "gan" in active and cfg.num_disc > 0:
                m.disc.requires_grad_(True)
                disc_loss = self._discriminator_updates(mu_a, lv_a, mu_b, lv_b)
            z_a, z_b = m.vae_a.sample(mu_a, lv_a), m.vae_b.sample(mu_b, lv_b)
            raw: dict[str, torch.Tensor] = {}
            if "kl" in active:
                raw["kl"] = L.kl_per_latent_dim(mu_a, lv_a) + L.kl_per_latent_dim(mu_b, lv_b)
            if "recon" in active:
                raw["recon"] = L.l1_reconstruction(m.vae_a.decode(z_a), x_a) + \
                    L.l1_reconstruction(m.vae_b.decode(z_b), x_b)
            if "gan" in active:
                m.disc.requires_grad_(False)  # the encoders' step must not touch the discriminator
                raw["gan"] = L.generator_loss(m.disc(z_a), m.disc(z_b), kind=cfg.gan_type,
                                              smoothing=cfg.label_smoothing)
            if "gw" in active and cfg.gw_w > 0:
                raw["gw"] = L.gromov_wasserstein_loss(z_a, z_b, mode=cfg.gw_mode, group_size=cfg.gw_group_size)
            if "prior" in active and self.prior is not None:
                raw["prior"] = self._prior_loss(z_a, z_b, idx_a, idx_b)
            raw = {k: v for k, v in raw.items() if getattr(cfg, WEIGHT_KEYS[k]) > 0}
            weights = {k: getattr(cfg, WEIGHT_KEYS[k]) for k in raw}
            if "prior" in raw:
                weights["prior"] *= self._prior_warmup()
            for name, value in raw.items():
                self._check(name, value)
            total = sum(weights[k] * v for k, v in raw.items())
            self.opt_gen.zero_grad(set_to_none=True)
            if isinstance(total, torch.Tensor) and total.requires_grad:
                total.backward()
                self.opt_gen.step()
        m.disc.requires_grad_(True)
        with warnings.catch_warnings():  # the discriminator's rate decays on schedule even before its phase
            warnings.simplefilter("ignore", UserWarning)
            self.sched_gen.step()
            self.sched_dis.step()
        if self.step % cfg.log_every == 0 or self.step == cfg.max_iter - 1:
            record.update({f"loss_{k}": float(v.detach()) for k, v in raw.items()})
            record.update({f"weighted_{k}": float(weights[k] * v.detach()) for k, v in raw.items()})
            record["loss_total"] = float(total.detach()) if isinstance(total, torch.Tensor) else float(total)
            record.update(_latent_stats(mu_a.detach(), mu_b.detach(), paired=self.batches.pairs is not None))
            record["lr"] = self.opt_gen.param_groups[0]["lr"]
            record["phase"] = float(phase_of(self.step, cfg.phase_durations))
            if disc_loss is not None:
                record["loss_discriminator"] = disc_loss
        return record

    # ------------------------------------------------------------------ loop
    def fit(self, *, checkpoint_dir: Path | None = None, resume: bool = False,
            callback: Callable[[int, dict[str, float]], None] | None = None) -> list[dict[str, float]]:
        """Train to ``max_iter`` iterations (from the checkpoint when ``resume``); return the history.

        ``callback(step, record)`` runs after every iteration (e.g. to stop a run).
        """
        from tqdm.auto import tqdm

        cfg = self.cfg
        if resume:
            if checkpoint_dir is None:
                raise XmodalInputError("--resume needs a checkpoint folder")
            path = checkpoint_dir / CHECKPOINT
            if path.is_file():
                self.load_checkpoint(path)
            else:
                log.warning("geoadvae: no checkpoint at %s; training from the start", path)
        self.module.train()
        bar = tqdm(total=cfg.max_iter, initial=self.step, desc="geoadvae", unit="it", disable=None, leave=False)
        try:
            while self.step < cfg.max_iter:
                record = self.iteration()
                if record:
                    self.history.append({"step": float(self.step), **record})
                    bar.set_postfix(phase=int(record.get("phase", 0)), loss=f"{record.get('loss_total', 0.0):.3g}")
                self.step += 1
                bar.update()
                if checkpoint_dir is not None and (self.step % cfg.checkpoint_every == 0 or self.step == cfg.max_iter):
                    self.save_checkpoint(checkpoint_dir)
                if callback is not None:
                    callback(self.step, record)
        finally:
            bar.close()
        self.module.eval()
        return self.history


def _latent_stats(mu_a: torch.Tensor, mu_b: torch.Tensor, *, paired: bool) -> dict[str, float]:
    """Means and SDs of the codes (averaged over dimensions), and their cross-modal agreement.

    ``latent_corr`` is the mean per-dimension Pearson correlation between the two batches' codes
    (meaningful for paired batches, ~0 for unpaired ones); ``latent_cos`` the mean cosine between
    the batches' mean codes.
    """
    out = {"latent_mean_a": float(mu_a.mean()), "latent_mean_b": float(mu_b.mean()),
           "latent_std_a": float(mu_a.std(dim=0).mean()), "latent_std_b": float(mu_b.std(dim=0).mean()),
           "latent_cos": float(torch.nn.functional.cosine_similarity(mu_a.mean(0), mu_b.mean(0), dim=0))}
    if paired:
        n = min(len(mu_a), len(mu_b))
        a, b = mu_a[:n] - mu_a[:n].mean(0), mu_b[:n] - mu_b[:n].mean(0)
        denom = a.norm(dim=0) * b.norm(dim=0)
        corr = (a * b).sum(0) / denom.clamp_min(1e-12)
        out["latent_corr"] = float(corr.mean())
    return {k: (v if math.isfinite(v) else float("nan")) for k, v in out.items()}



# ---------------------------------------------------------------- dualdann (methods/dualdann/_trainer.py)
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
from xmodal.methods.dualdann._peaks import Peaks, TrainingData, predict_peaks  # shared, not the loop


class DualDANNLoop:
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
