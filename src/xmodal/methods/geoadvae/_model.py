"""The ``geoadvae`` model: fit, embed, save and load."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from xmodal._safe_load import load_torch
from xmodal.errors import XmodalInputError
from xmodal.families.paired._data import PairedData
from xmodal.methods._base import RETRAIN, read_history, read_model_meta, write_model_meta
from xmodal.methods.geoadvae._config import GeoAdVAEConfig
from xmodal.methods.geoadvae._module import GeoAdVAEModule
from xmodal.methods.geoadvae._prior import build_prior

log = logging.getLogger(__name__)
WEIGHTS = "weights.pt"


class GeoAdVAE:
    """Morphology ↔ expression alignment by per-modality VAEs sharing one latent space (seed 000).

    Each modality has its own VAE (depth adapted to the input width); a discriminator on the
    latent codes pushes the two code distributions together; a Gromov–Wasserstein term (with a
    real gradient, unlike the seed) makes the batches' latent geometries agree; a cluster prior
    asks cross-modal cosine similarities to follow cluster correlations. Terms switch on by phase
    (``loss_schedule``, ``phase_durations``).

    In ``unpaired`` mode (the default) neither the pairing nor the labels are read: modalities are
    shuffled independently and the prior is built without supervision (see
    :func:`~xmodal.methods.geoadvae._prior.build_prior`). ``paired`` mode samples partner rows
    together. Embedding runs in eval mode without gradients and returns the posterior means.

    Parameters
    ----------
    config
        Hyper-parameters (defaults: :class:`GeoAdVAEConfig`, the seed's main configuration).

    Examples
    --------
    >>> from xmodal.families.paired import synthetic_paired
    >>> data = synthetic_paired(n_cells=120, dim_a=10, dim_b=30, seed=0)
    >>> cfg = GeoAdVAEConfig(max_iter=20, dim=16, phase_durations=[5, 5, 5], prior_clusters=4)
    >>> model = GeoAdVAE(cfg).fit(data, seed=0)
    >>> model.transform(data.b.X, modality="b").shape
    (120, 16)
    """

    method = "geoadvae"

    def __init__(self, config: GeoAdVAEConfig | None = None) -> None:
        self.config = config or GeoAdVAEConfig()
        self.module: GeoAdVAEModule | None = None
        self.history: list[dict[str, float]] = []
        self.info: dict[str, Any] = {}
        self.rank = 0

    # ------------------------------------------------------------------ fit
    def fit(self, data: PairedData, *, seed: int = 0, checkpoint_dir: str | Path | None = None,
            resume: bool = False, callback: Any = None, live: Any = None) -> GeoAdVAE:
        """Train on ``data`` (its labels are never read; its pairing only in ``paired`` mode).

        Parameters
        ----------
        data
            Training cells: ``data.a.X`` ``(n_a, d_a)`` and ``data.b.X`` ``(n_b, d_b)``.
        seed
            Seeds initialisation, batches, dropout, re-parameterisation and the prior's k-means.
        checkpoint_dir
            Where ``checkpoint.pt`` is written every ``checkpoint_every`` iterations.
        resume
            Continue from ``checkpoint_dir/checkpoint.pt`` when it exists.
        callback
            ``callback(step, record)`` after each recorded iteration (``step`` counts from 1).
        live
            A :class:`~xmodal.train.LiveLogger` that rank 0 sends each record to while training runs.

        Returns
        -------
        GeoAdVAE
            ``self``, fitted.
        """
        from xmodal.methods.geoadvae._lightning import GeoAdVAETraining, batch_plan, config_digest
        from xmodal.train import StepLoader, data_hash, fit

        cfg = self.config
        start = time.perf_counter()
        pairs = self._pairs(data)
        prior = build_prior(data, cfg, seed=seed)
        torch.manual_seed(seed)
        net = GeoAdVAEModule(data.a.n_vars, data.b.n_vars, cfg)
        x_a = torch.as_tensor(np.asarray(data.a.X, dtype=np.float32))
        x_b = torch.as_tensor(np.asarray(data.b.X, dtype=np.float32))
        training = GeoAdVAETraining(net, cfg, prior=prior, paired=pairs is not None)
        loader = StepLoader(batch_plan(x_a, x_b, batch_size=cfg.batch_size, seed=seed, pairs=pairs),
                            total=cfg.max_iter)
        result = fit(training, loader, settings=cfg, seed=seed,
                     digest=config_digest(cfg, (data.a.n_vars, data.b.n_vars), seed, data=data_hash(
                         x_a, x_b, pairs, None if prior is None else (prior.corr, prior.clusters_a, prior.clusters_b))),
                     checkpoint_dir=checkpoint_dir, resume=resume, live=live, what=self.method,
                     on_record=callback)
        self.history = result.history
        self.module = net.cpu().eval()
        self.info = {
            "n_train_a": int(data.a.n_obs), "n_train_b": int(data.b.n_obs), "mode": cfg.mode,
            "prior": None if prior is None else prior.source,
            "prior_clusters": None if prior is None else int(len(prior.corr)),
            "n_iter": cfg.max_iter, "device": result.summary["device"], "world_size": result.world,
            "precision": cfg.precision, "fit_seconds": time.perf_counter() - start,
            "features_a": list(map(str, data.a.var_names)), "features_b": list(map(str, data.b.var_names)),
            "names": list(data.names),
        }
        self.rank = result.rank
        log.info("geoadvae: trained %d iterations on %d × %d cells in %.1f s (%s × %d)", cfg.max_iter, data.a.n_obs,
                 data.b.n_obs, self.info["fit_seconds"], self.info["device"], result.world)
        return self

    def _pairs(self, data: PairedData) -> tuple[np.ndarray, np.ndarray] | None:
        if self.config.mode == "unpaired":
            return None  # the pairing is not read at all
        ia, ib = data.true_pairs()
        if len(ia) < self.config.batch_size:
            raise XmodalInputError(
                f"mode `paired` needs known partner pairs; the training data has {len(ia)}",
                fix="set methods.geoadvae.mode: unpaired, or give the data a `match` column")
        return ia, ib

    # ------------------------------------------------------------ transform
    @torch.no_grad()
    def transform(self, x: np.ndarray, *, modality: str, batch_size: int = 4096) -> np.ndarray:
        """Embed cells of one modality: the posterior mean, in eval mode, without gradients.

        Parameters
        ----------
        x
            Cells × features of modality ``modality``, ``(n, d_m)`` (as in training).
        modality
            ``"a"`` or ``"b"``.
        batch_size
            Cells per forward pass.

        Returns
        -------
        numpy.ndarray
            Latent codes ``(n, latent_dim)``, float32.
        """
        module = self._check_fitted()
        if modality not in ("a", "b"):
            raise ValueError(f"modality must be 'a' or 'b', got {modality!r}")
        vae = module.vae_a if modality == "a" else module.vae_b
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != vae.input_dim:
            raise XmodalInputError(
                f"modality {modality} has {x.shape[-1]} features, the model was trained on {vae.input_dim}",
                fix="preprocess new data with the same parameters as the training data")
        was_training = module.training
        module.eval()
        try:
            out = [vae.encode(torch.from_numpy(x[i:i + batch_size]))[0] for i in range(0, len(x), batch_size)]
        finally:
            module.train(was_training)
        if not out:
            return np.zeros((0, vae.latent_dim), dtype=np.float32)
        return torch.cat(out).numpy()

    # ----------------------------------------------------------- save/load
    def save(self, path: str | Path) -> Path:
        """Write ``model.json``, ``history.json``, ``weights.pt`` and ``loss_curves.png`` into ``path``."""
        module = self._check_fitted()
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        write_model_meta(path, method=self.method, config=self.config, info=self.info, history=self.history,
                         dims=[module.vae_a.input_dim, module.vae_b.input_dim])
        torch.save(module.state_dict(), path / WEIGHTS)
        plot_loss_curves(self.history, path / "loss_curves.png")
        return path

    @classmethod
    def load(cls, path: str | Path) -> GeoAdVAE:
        """Load a model written by :meth:`save` (on CPU, in eval mode)."""
        path = Path(path)
        meta = read_model_meta(path, method=cls.method)
        model = cls(GeoAdVAEConfig.model_validate(meta["config"]))
        dim_a, dim_b = meta["dims"]
        module = GeoAdVAEModule(dim_a, dim_b, model.config)
        module.load_state_dict(load_torch(path / WEIGHTS, what="geoadvae weights", fix=RETRAIN))
        model.module = module.eval()
        model.info = meta.get("info", {})
        model.history = read_history(path)
        return model

    def _check_fitted(self) -> GeoAdVAEModule:
        if self.module is None:
            raise RuntimeError("GeoAdVAE is not fitted: call fit() or load() first")
        return self.module


def plot_loss_curves(history: list[dict[str, float]], path: Path) -> None:
    """Raw (left) and weighted (right) loss terms per iteration, log scale, phases shaded."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    steps = np.array([h["step"] for h in history])
    for ax, prefix, title in ((axes[0], "loss_", "raw loss terms"), (axes[1], "weighted_", "weighted loss terms")):
        keys = sorted({k for h in history for k in h if k.startswith(prefix)})
        for key in keys:
            values = np.array([abs(h.get(key, np.nan)) for h in history], dtype=float)
            ax.plot(steps, values, label=key[len(prefix):], lw=1)
        if history and "phase" in history[0]:
            phases = np.array([h.get("phase", 1) for h in history])
            for change in steps[1:][np.diff(phases) != 0]:
                ax.axvline(change, color="grey", ls=":", lw=0.8)
        ax.set_yscale("log")
        ax.set_xlabel("iteration")
        ax.set_title(f"{title} (|value|; dotted: phase changes)")
        if keys:
            ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
