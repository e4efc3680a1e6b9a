"""geoadvae as a LightningModule for :func:`xmodal.train.fit`: phases, discriminator/generator updates.

One iteration (seed 000's schedule): encode both batches once; while the GAN term is on, update the
discriminator ``num_disc`` times on freshly re-sampled (detached) codes; then update both VAEs on
the weighted sum of the active terms. Both learning rates decay by ``gamma`` every ``step_size``
iterations. Encoding once per iteration, rather than once more per discriminator update as the
seed did, gives the same codes (the VAEs are frozen during those updates) at a third of the cost.
The updates are adversarial, so the module steps its two optimisers itself (Lightning's manual
optimisation).

Batches are a pure function of ``(seed, iteration, rank)`` (:func:`batch_plan`); the engine keeps
checkpoints, resume, RNG, progress, live metrics and DDP.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Callable
from functools import lru_cache
from typing import Any

import numpy as np
import torch

from xmodal import losses as L
from xmodal.methods.geoadvae._config import LOSSES, GeoAdVAEConfig
from xmodal.methods.geoadvae._module import GeoAdVAEModule
from xmodal.methods.geoadvae._prior import ClusterPrior
from xmodal.train import XmodalModule, epoch_slice, permutation, settings_digest, shard

log = logging.getLogger(__name__)
WEIGHT_KEYS = {"kl": "kl_w", "recon": "recon_x_w", "gan": "gan_w", "gw": "gw_w", "prior": "lambda_p"}
_STREAMS = {"a": 1, "b": 2, "p": 3}


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


def config_digest(config: GeoAdVAEConfig, dims: tuple[int, int], seed: int, *, data: str) -> str:
    """What a checkpoint must match to be resumed: every setting but where it trains and for how long, plus shapes,
    seed and ``data``, the training data's content hash."""
    return settings_digest(config, shapes=dims, seed=seed, data=data, exclude=("max_iter",))


def batch_plan(x_a: torch.Tensor, x_b: torch.Tensor, *, batch_size: int, seed: int,
               pairs: tuple[np.ndarray, np.ndarray] | None) -> Callable[[int, int, int], dict[str, Any]]:
    """The batch of iteration ``step`` on rank ``rank`` of ``world``: ``x_a``/``x_b`` rows and their indices.

    Epoch ``e`` of a modality is a permutation seeded by ``(seed, modality, e)``; a step's global batch is
    ``world × batch_size`` consecutive rows of it, of which each rank takes its own part. In paired mode both
    modalities follow the permutation of the pairs.
    """

    @lru_cache(maxsize=6)
    def perm(key: str, n: int, epoch: int) -> np.ndarray:
        return permutation(n, seed=seed, stream=_STREAMS[key], epoch=epoch)

    def take(key: str, n: int, step: int, rank: int, world: int) -> np.ndarray:
        per_rank = min(batch_size, n // world)
        epoch, start = epoch_slice(n, step=step, per_rank=per_rank, world=world)
        return shard(perm(key, n, epoch)[start:start + per_rank * world], rank=rank, world=world)

    def batch(step: int, rank: int, world: int) -> dict[str, Any]:
        if pairs is not None:
            sel = take("p", len(pairs[0]), step, rank, world)
            ia, ib = torch.as_tensor(pairs[0][sel]), torch.as_tensor(pairs[1][sel])
        else:
            ia = torch.as_tensor(take("a", len(x_a), step, rank, world))
            ib = torch.as_tensor(take("b", len(x_b), step, rank, world))
        return {"step": step, "idx_a": ia, "idx_b": ib, "x_a": x_a[ia], "x_b": x_b[ib]}

    return batch


class GeoAdVAETraining(XmodalModule):
    """Trains a :class:`GeoAdVAEModule` (``self.net``) on batches of :func:`batch_plan`.

    Parameters
    ----------
    net
        The networks.
    config
        Hyper-parameters.
    prior
        Cluster prior inputs, or ``None``.
    paired
        Whether batches hold partner rows (latent correlation is then recorded).
    """

    method = "geoadvae"
    divergence_fix = "lower methods.geoadvae.lr"

    def __init__(self, net: GeoAdVAEModule, config: GeoAdVAEConfig, *, prior: ClusterPrior | None,
                 paired: bool) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.net, self.cfg, self.paired = net, config, paired
        self.prior = prior
        self._prior_tensors: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None

    def configure_optimizers(self) -> Any:  # noqa: D102 - Lightning hook
        cfg = self.cfg
        betas = (cfg.beta1, cfg.beta2)
        fused = self.device.type in ("cpu", "cuda")
        opt_gen = torch.optim.Adam(self.net.generator_parameters(), lr=cfg.lr, betas=betas,
                                   weight_decay=cfg.weight_decay, fused=fused)
        opt_dis = torch.optim.Adam(self.net.disc.parameters(), lr=cfg.lr, betas=betas,
                                   weight_decay=cfg.weight_decay, fused=fused)
        return ([opt_gen, opt_dis], [torch.optim.lr_scheduler.StepLR(opt_gen, cfg.step_size, cfg.gamma),
                                     torch.optim.lr_scheduler.StepLR(opt_dis, cfg.step_size, cfg.gamma)])

    # --------------------------------------------------------------- losses
    def _check(self, name: str, value: torch.Tensor, step: int) -> None:
        key = WEIGHT_KEYS.get(name, "lr")
        self.check_finite(name, value, where=f"iteration {step} (phase {phase_of(step, self.cfg.phase_durations)})",
                          fix=f"lower methods.geoadvae.lr or methods.geoadvae.{key}, or check the input for extreme "
                          "values")

    def _prior(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if self._prior_tensors is None or self._prior_tensors[0].device != self.device:
            assert self.prior is not None
            self._prior_tensors = tuple(torch.as_tensor(v, device=self.device) for v in
                                        (self.prior.corr, self.prior.clusters_a, self.prior.clusters_b))
        return self._prior_tensors

    def _prior_loss(self, z_a: torch.Tensor, z_b: torch.Tensor, idx_a: torch.Tensor,
                    idx_b: torch.Tensor) -> torch.Tensor:
        corr, clusters_a, clusters_b = self._prior()
        target = L.prior_target(corr, clusters_a[idx_a], clusters_b[idx_b])
        if self.cfg.prior_form == "mse":
            return L.cluster_prior_mse(z_a, z_b, target)
        return L.cluster_prior_infonce(z_a, z_b, target > self.cfg.positive_threshold,
                                       temperature=self.cfg.prior_temperature)

    def _prior_warmup(self, step: int) -> float:
        if self.cfg.prior_loss_warmup == 0:
            return 1.0
        start = _phase_start(self.cfg.loss_schedule["prior"], self.cfg.phase_durations)
        return min(1.0, (step - start + 1) / self.cfg.prior_loss_warmup)

    def _discriminator_updates(self, opt: Any, mu_a: torch.Tensor, lv_a: torch.Tensor, mu_b: torch.Tensor,
                               lv_b: torch.Tensor, step: int) -> float:
        cfg, net = self.cfg, self.net
        mu_a, lv_a, mu_b, lv_b = mu_a.detach(), lv_a.detach(), mu_b.detach(), lv_b.detach()
        value = torch.zeros(())
        for _ in range(cfg.num_disc):
            z_a = net.vae_a.sample(mu_a, lv_a)
            z_b = net.vae_b.sample(mu_b, lv_b)
            loss = L.discriminator_loss(net.disc(z_a), net.disc(z_b), kind=cfg.gan_type, smoothing=cfg.label_smoothing)
            if cfg.gan_type == "wgan-gp":
                loss = loss + cfg.gp_w * L.gradient_penalty(net.disc, z_a, z_b)
            loss = cfg.gan_w * loss
            self._check("discriminator", loss, step)
            opt.zero_grad(set_to_none=True)
            self.manual_backward(loss)
            opt.step()
            value = loss.detach()
        return float(value)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> None:  # noqa: D102 - Lightning hook
        cfg, net, step = self.cfg, self.net, int(batch["step"])
        opt_gen, opt_dis = self.optimizers()
        sched_gen, sched_dis = self.lr_schedulers()
        active = active_losses(step, cfg)
        if step == 0 or active != active_losses(step - 1, cfg):
            log.info("geoadvae: phase %d from iteration %d: %s", phase_of(step, cfg.phase_durations), step,
                     ", ".join(sorted(active)))
        x_a, x_b, idx_a, idx_b = batch["x_a"], batch["x_b"], batch["idx_a"], batch["idx_b"]
        disc_loss: float | None = None
        for g in range(cfg.num_gen):
            mu_a, lv_a = net.vae_a.encode(x_a)
            mu_b, lv_b = net.vae_b.encode(x_b)
            if g == 0 and "gan" in active and cfg.num_disc > 0:
                net.disc.requires_grad_(True)
                disc_loss = self._discriminator_updates(opt_dis, mu_a, lv_a, mu_b, lv_b, step)
            z_a, z_b = net.vae_a.sample(mu_a, lv_a), net.vae_b.sample(mu_b, lv_b)
            raw: dict[str, torch.Tensor] = {}
            if "kl" in active:
                raw["kl"] = L.kl_per_latent_dim(mu_a, lv_a) + L.kl_per_latent_dim(mu_b, lv_b)
            if "recon" in active:
                raw["recon"] = L.l1_reconstruction(net.vae_a.decode(z_a), x_a) + \
                    L.l1_reconstruction(net.vae_b.decode(z_b), x_b)
            if "gan" in active:
                net.disc.requires_grad_(False)  # the encoders' step must not touch the discriminator
                raw["gan"] = L.generator_loss(net.disc(z_a), net.disc(z_b), kind=cfg.gan_type,
                                              smoothing=cfg.label_smoothing)
            if "gw" in active and cfg.gw_w > 0:
                raw["gw"] = L.gromov_wasserstein_loss(z_a, z_b, mode=cfg.gw_mode, group_size=cfg.gw_group_size)
            if "prior" in active and self.prior is not None:
                raw["prior"] = self._prior_loss(z_a, z_b, idx_a, idx_b)
            raw = {k: v for k, v in raw.items() if getattr(cfg, WEIGHT_KEYS[k]) > 0}
            weights = {k: getattr(cfg, WEIGHT_KEYS[k]) for k in raw}
            if "prior" in raw:
                weights["prior"] *= self._prior_warmup(step)
            for name, value in raw.items():
                self._check(name, value, step)
            total = sum(weights[k] * v for k, v in raw.items())
            opt_gen.zero_grad(set_to_none=True)
            if isinstance(total, torch.Tensor) and total.requires_grad:
                self.manual_backward(total)
                opt_gen.step()
        net.disc.requires_grad_(True)
        with warnings.catch_warnings():  # the discriminator's rate decays on schedule even before its phase
            warnings.simplefilter("ignore", UserWarning)
            sched_gen.step()
            sched_dis.step()
        if step % cfg.log_every == 0 or step == cfg.max_iter - 1:
            record = {f"loss_{k}": float(v.detach()) for k, v in raw.items()}
            record.update({f"weighted_{k}": float(weights[k] * v.detach()) for k, v in raw.items()})
            record["loss_total"] = float(total.detach()) if isinstance(total, torch.Tensor) else float(total)
            record.update(latent_stats(mu_a.detach(), mu_b.detach(), paired=self.paired))
            record["lr"] = opt_gen.param_groups[0]["lr"]
            record["phase"] = float(phase_of(step, cfg.phase_durations))
            if disc_loss is not None:
                record["loss_discriminator"] = disc_loss
            self.record(record)


def latent_stats(mu_a: torch.Tensor, mu_b: torch.Tensor, *, paired: bool) -> dict[str, float]:
    """Means and SDs of the codes (averaged over dimensions), and their cross-modal agreement.

    ``latent_corr`` is the mean per-dimension Pearson correlation between the two batches' codes
    (meaningful for paired batches, ~0 for unpaired ones); ``latent_cos`` the mean cosine between
    the batches' mean codes.
    """
    mu_a, mu_b = mu_a.float(), mu_b.float()
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


__all__ = ["LOSSES", "GeoAdVAETraining", "active_losses", "batch_plan", "config_digest", "latent_stats", "phase_of"]
