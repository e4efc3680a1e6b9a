"""The geoadvae training loop: phases, discriminator/generator updates, checkpoints, history.

One iteration (seed 000's schedule): encode both batches once; while the GAN term is on, update the
discriminator ``num_disc`` times on freshly re-sampled (detached) codes; then update both VAEs on
the weighted sum of the active terms. Both learning rates decay by ``gamma`` every ``step_size``
iterations. Encoding once per iteration, rather than once more per discriminator update as the
seed did, gives the same codes (the VAEs are frozen during those updates) at a third of the cost.

Batches are a pure function of ``(seed, iteration)``, so a run resumed from a checkpoint (which
also holds the optimiser, scheduler and RNG states) ends with the same weights as one never
interrupted.
"""

from __future__ import annotations

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
from xmodal.methods.geoadvae._config import LOSSES, GeoAdVAEConfig
from xmodal.methods.geoadvae._module import GeoAdVAEModule
from xmodal.methods.geoadvae._prior import ClusterPrior

log = logging.getLogger(__name__)
CHECKPOINT = "checkpoint.pt"
WEIGHT_KEYS = {"kl": "kl_w", "recon": "recon_x_w", "gan": "gan_w", "gw": "gw_w", "prior": "lambda_p"}
_STATE_KEYS = ("digest", "step", "history", "module", "opt_gen", "opt_dis", "sched_gen", "sched_dis", "torch_rng")


@dataclass
class Batches:
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


def phase_of(step: int, durations: list[int]) -> int:
    """1-based phase of iteration ``step``; the last phase lasts to the end of training."""
    end = 0
    for phase, length in enumerate(durations, start=1):
        end += length
        if step < end:
            return phase
    return len(durations)


def active_losses(step: int, config: GeoAdVAEConfig) -> frozenset[str]:
    """The loss terms on at iteration ``step`` (a term missing from ``loss_schedule`` is off)."""
    phase = phase_of(step, config.phase_durations)
    return frozenset(k for k, start in config.loss_schedule.items() if phase >= start)


def _phase_start(phase: int, durations: list[int]) -> int:
    return sum(durations[: phase - 1])


def config_digest(config: GeoAdVAEConfig, dims: tuple[int, int], seed: int) -> str:
    """What a checkpoint must match to be resumed: every setting except bookkeeping, plus shapes and seed."""
    fields = config.model_dump(mode="json", exclude={"checkpoint_every", "max_iter", "threads", "device"})
    blob = json.dumps({"config": fields, "dims": list(dims), "seed": seed}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


class Trainer:
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
        self.batches = Batches(len(x_a), len(x_b), config.batch_size, seed, pairs)
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
        self.digest = config_digest(config, (x_a.shape[1], x_b.shape[1]), seed)

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


__all__ = ["CHECKPOINT", "LOSSES", "Batches", "Trainer", "TrainingDivergedError", "active_losses", "phase_of"]
